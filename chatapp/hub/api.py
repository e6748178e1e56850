"""Search the hub for GGUF repositories and list a repository's GGUF files (HfApi).

The endpoint is read from HF_ENDPOINT on every call and passed to HfApi explicitly
(huggingface_hub reads it only once, at import). Errors become UserErrors from hub.errors.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from chatapp.core.catalog import FileGroup, RemoteFile, group_files
from chatapp.core.errors import UserError
from chatapp.hub import errors

log = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "https://huggingface.co"
SORTS = {"downloads": "downloads", "likes": "likes", "recent": "last_modified"}
T = TypeVar("T")
# The longest a hub call may take, start to end (huggingface_hub's HTTP client may wait
# forever on a server that accepts the connection and never answers).
API_TIMEOUT = 30.0
CONNECT_TIMEOUT = 5.0


def endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def is_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class RepoSummary:
    repo_id: str
    downloads: int = 0
    likes: int = 0
    last_modified: datetime | None = None
    gated: bool = False


@dataclass
class RepoFiles:
    repo_id: str
    revision: str  # the commit the file list belongs to: downloads pin it
    files: list[RemoteFile]
    gated: bool = False
    license: str = ""
    groups: list[FileGroup] = field(default_factory=list)


def _api(token: str | None) -> Any:
    from huggingface_hub import HfApi

    _set_http_timeouts()
    return HfApi(endpoint=endpoint(), token=token or False, library_name="chatapp")


_timeouts_set = False


def _set_http_timeouts() -> None:
    """huggingface_hub's HTTP client waits forever by default (timeout=None): give it
    connect and read timeouts, so even a call we stopped waiting for ends by itself."""
    global _timeouts_set
    if _timeouts_set:
        return
    _timeouts_set = True
    try:
        import huggingface_hub
        from huggingface_hub.utils import _http
    except ImportError:  # pragma: no cover
        return
    factory = getattr(_http, "default_client_factory", None)
    setter = getattr(huggingface_hub, "set_client_factory", None)
    if factory is None or setter is None:  # pragma: no cover - older huggingface_hub
        return

    def client() -> Any:
        c = factory()
        c.timeout = type(c.timeout)(API_TIMEOUT, connect=CONNECT_TIMEOUT)
        return c

    setter(client)


def _call(fn: Callable[[], T], repo_id: str = "", filename: str | None = None) -> T:
    """Run an HfApi call; turn every network or HTTP failure into a clear UserError."""
    if is_offline():
        raise errors.offline()
    _check_reachable()
    from huggingface_hub import errors as hf

    transport: tuple[type[BaseException], ...] = (OSError,)
    try:  # huggingface_hub's HTTP client: httpx2 in 2.x, httpx before
        import httpx2 as httpx
    except ImportError:  # pragma: no cover - older huggingface_hub
        import httpx  # type: ignore[no-redef]
    transport += (httpx.TransportError,)

    try:
        return _with_deadline(fn, API_TIMEOUT)
    except hf.OfflineModeIsEnabled as e:
        raise errors.offline() from e
    except hf.HfHubHTTPError as e:
        resp = getattr(e, "response", None)
        status = getattr(resp, "status_code", 0) or 0
        headers = getattr(resp, "headers", {}) or {}
        code = headers.get("X-Error-Code")
        if isinstance(e, hf.GatedRepoError):
            status = 403 if status not in (401, 403) else status
        elif isinstance(e, hf.RepositoryNotFoundError) and status == 401:
            status = 401
        raise errors.for_status(
            status,
            repo_id or "?",
            filename,
            error_code=code,
            retry_after=_float(headers.get("Retry-After")),
            endpoint=endpoint(),
        ) from e
    except transport as e:
        log.info("hub unreachable: %s", e)
        raise errors.offline() from e


def _with_deadline(fn: Callable[[], T], seconds: float) -> T:
    """fn() on a daemon thread, given up after `seconds` (the thread is left to end on its
    own: an HTTP call cannot be interrupted from outside)."""
    box: dict[str, Any] = {}
    done = threading.Event()

    def run() -> None:
        try:
            box["result"] = fn()
        except BaseException as e:  # noqa: BLE001 - handed to the caller
            box["error"] = e
        done.set()

    threading.Thread(target=run, name="hub-call", daemon=True).start()
    if not done.wait(seconds):
        log.info("hub call gave no answer within %.0f s", seconds)
        raise errors.HubTimeoutError(
            f"Hugging Face ({endpoint()}) did not answer within {seconds:.0f} s.",
            hint="The server or the network is too slow right now; try again later.",
        )
    if "error" in box:
        raise box["error"]
    return box["result"]


_reachable_until = 0.0
_reachable_endpoint = ""


def _check_reachable() -> None:
    """Fail fast when offline: HfApi's search retries for half a minute before giving up."""
    global _reachable_until, _reachable_endpoint
    if time.monotonic() < _reachable_until and _reachable_endpoint == endpoint():
        return
    _reachable_endpoint = endpoint()
    url = urllib.parse.urlsplit(endpoint())
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname or "", port), timeout=CONNECT_TIMEOUT).close()
    except OSError as e:
        log.info("hub unreachable: %s", e)
        raise errors.offline() from e
    _reachable_until = time.monotonic() + 30


def _float(v: Any) -> float | None:
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def search(
    query: str = "",
    *,
    sort: str = "downloads",
    page: int = 0,
    page_size: int = 20,
    token: str | None = None,
) -> list[RepoSummary]:
    """GGUF repositories matching the query, one page, most downloaded/liked/recent first."""
    if sort not in SORTS:
        raise UserError(f"Unknown sort {sort!r}: use one of {', '.join(SORTS)}.")
    want = (page + 1) * page_size

    def run() -> list[Any]:
        it = _api(token).list_models(
            search=query or None, filter="gguf", sort=SORTS[sort], limit=want
        )
        return list(it)[page * page_size : want]

    out = []
    for m in _call(run, query or "search"):
        out.append(
            RepoSummary(
                m.id,
                int(getattr(m, "downloads", 0) or 0),
                int(getattr(m, "likes", 0) or 0),
                getattr(m, "last_modified", None),
                bool(getattr(m, "gated", False)),
            )
        )
    return out


def repo_files(repo_id: str, *, revision: str | None = None, token: str | None = None) -> RepoFiles:
    """Every file of a repository with size and LFS sha256, and its GGUF groups."""
    _check_repo_id(repo_id)
    info = _call(
        lambda: _api(token).model_info(repo_id, revision=revision, files_metadata=True), repo_id
    )
    files = []
    for s in info.siblings or []:
        lfs = getattr(s, "lfs", None)
        sha = getattr(lfs, "sha256", None) if lfs else None
        size = getattr(lfs, "size", None) if lfs else None
        files.append(RemoteFile(s.rfilename, size if size is not None else s.size, sha))
    card = getattr(info, "card_data", None) or {}
    lic = card.get("license", "") if isinstance(card, dict) else getattr(card, "license", "")
    return RepoFiles(
        repo_id=repo_id,
        revision=info.sha or revision or "main",
        files=files,
        gated=bool(getattr(info, "gated", False)),
        license=str(lic or ""),
        groups=group_files(files),
    )


def tree_files(
    repo_id: str, *, revision: str = "main", token: str | None = None
) -> list[RemoteFile]:
    """The file tree (recursive) with LFS sha256: the same facts from the tree endpoint."""
    _check_repo_id(repo_id)

    def run() -> list[Any]:
        return list(_api(token).list_repo_tree(repo_id, revision=revision, recursive=True))

    out = []
    for entry in _call(run, repo_id):
        if not hasattr(entry, "size"):
            continue  # a folder
        lfs = getattr(entry, "lfs", None)
        out.append(
            RemoteFile(entry.path, entry.size, getattr(lfs, "sha256", None) if lfs else None)
        )
    return out


def _check_repo_id(repo_id: str) -> None:
    parts = repo_id.split("/")
    if len(parts) != 2 or not all(parts) or any(p in (".", "..") for p in parts) or "\\" in repo_id:
        raise UserError(f"{repo_id!r} is not a repository name: use owner/name.")


def find_group(files: RepoFiles, choice: str) -> FileGroup:
    """The group a user asked for by file name, split-set name or quantization ("Q4_K_M")."""
    groups = files.groups
    if not groups:
        raise UserError(f"{files.repo_id} has no GGUF chat model files.")
    for g in groups:
        if choice in (g.name, g.name.rsplit("/", 1)[-1]) or any(choice == f.name for f in g.files):
            return g
    by_quant = [g for g in groups if g.quant.lower() == choice.lower()]
    if len(by_quant) == 1:
        return by_quant[0]
    names = ", ".join(g.name for g in (by_quant or groups))
    if by_quant:
        raise UserError(f"Several {choice} files in {files.repo_id}: {names}. Name one.")
    raise UserError(f"No file {choice!r} in {files.repo_id}. Choose one of: {names}")


def client_check() -> str:
    """The huggingface_hub pieces the app uses, imported and named (for --self-test)."""
    from huggingface_hub import HfApi, get_token
    from huggingface_hub import errors as hf_errors

    names = [HfApi.__name__, get_token.__name__, hf_errors.HfHubHTTPError.__name__]
    return f"huggingface_hub ({', '.join(names)})"
