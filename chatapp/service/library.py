"""The service's face of the Hugging Face hub, for the window and the CLI: search
repositories, list a repository's GGUF files, download them (one at a time, resumable,
verified) and find the user's token. The GUI and the CLI reach the hub only through
here (an import-linter contract), so what they may do with it is named in one place."""

from __future__ import annotations

from chatapp.hub import api
from chatapp.hub.api import SORTS, RepoFiles, RepoSummary, endpoint, find_group, repo_files, search
from chatapp.hub.auth import find_token
from chatapp.hub.download import Downloader, DownloadPaused, Progress
from chatapp.hub.queue import CANCELLED, DONE, FAILED, PAUSED, QUEUED, RUNNING, DownloadQueue, Job


def client_check() -> str:
    """The hub client's pieces the app uses, named (for --self-test)."""
    return api.client_check()


__all__ = [
    "CANCELLED",
    "DONE",
    "FAILED",
    "PAUSED",
    "QUEUED",
    "RUNNING",
    "SORTS",
    "DownloadPaused",
    "DownloadQueue",
    "Downloader",
    "Job",
    "Progress",
    "RepoFiles",
    "RepoSummary",
    "client_check",
    "endpoint",
    "find_group",
    "find_token",
    "repo_files",
    "search",
]
