"""A download queue: one file set at a time on a worker thread; pause, resume, cancel.

Plain Python. The window wraps it in a Qt adapter that forwards `on_change` (called on the
worker thread) to the GUI thread; the CLI does not need it.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from chatapp.core.catalog import FileGroup, RemoteFile
from chatapp.core.errors import UserError
from chatapp.hub.download import (
    DownloadCancelled,
    Downloader,
    DownloadPaused,
    Progress,
    check_filename,
    local_dir,
    partial_paths,
    pending,
)

log = logging.getLogger(__name__)

QUEUED, RUNNING, PAUSED, DONE, FAILED, CANCELLED = (
    "queued",
    "downloading",
    "paused",
    "done",
    "failed",
    "cancelled",
)
_ids = itertools.count(1)


@dataclass
class Job:
    repo_id: str
    revision: str
    group: FileGroup
    state: str = QUEUED
    done: int = 0
    speed: float = 0.0
    eta: float | None = None
    error: str = ""
    path: Path | None = None  # the file to open once DONE
    id: int = 0

    def __post_init__(self) -> None:
        self.id = self.id or next(_ids)

    @property
    def total(self) -> int:
        return self.group.size or 0

    @property
    def title(self) -> str:
        return f"{self.repo_id} · {self.group.name}"

    @property
    def finished(self) -> bool:
        return self.state in (DONE, FAILED, CANCELLED)


class DownloadQueue:
    def __init__(
        self,
        make_downloader: Callable[[], Downloader],
        on_change: Callable[[Job], None] | None = None,
    ) -> None:
        self.make_downloader = make_downloader
        self.on_change = on_change or (lambda job: None)
        self.jobs: list[Job] = []
        self._cond = threading.Condition()
        self._current: tuple[Job, Downloader] | None = None
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="downloads", daemon=True)
        self._thread.start()

    # --- commands (any thread) -----------------------------------------------------------

    def add(self, repo_id: str, revision: str, group: FileGroup, *, paused: bool = False) -> Job:
        for f in group.files:
            check_filename(f.name)
        for job in self.jobs:
            if job.repo_id == repo_id and job.group.name == group.name and job.state != DONE:
                if job.state in (PAUSED, FAILED, CANCELLED) and not paused:
                    job.state = PAUSED
                    self.resume(job)  # asking again for a stopped download resumes it
                return job
        job = Job(repo_id, revision, group, PAUSED if paused else QUEUED)
        with self._cond:
            self.jobs.append(job)
            self._cond.notify_all()
        self.on_change(job)
        return job

    def restore(self, models_dir: Path) -> list[Job]:
        """Unfinished downloads left on disk (by a pause, a crash, a closed app), paused."""
        out = []
        seen: set[tuple[str, str]] = set()
        for meta in pending(models_dir):
            key = (meta["repo_id"], meta.get("group_name") or meta["filename"])
            if key in seen:
                continue
            seen.add(key)
            try:
                files = [RemoteFile(**f) for f in meta["group"]]
                group = FileGroup(key[1], files, _quant(files[0].name))
                out.append(self.add(meta["repo_id"], meta["revision"], group, paused=True))
            except (TypeError, KeyError, UserError) as e:
                log.warning("ignoring a damaged download record: %s", e)
        for job in out:
            job.done = _bytes_on_disk(models_dir, job)
            self.on_change(job)
        return out

    def pause(self, job: Job) -> None:
        with self._cond:
            if job.state == QUEUED:
                job.state = PAUSED
            elif self._current and self._current[0] is job:
                self._current[1].pause.set()
        self.on_change(job)

    def resume(self, job: Job) -> None:
        with self._cond:
            if job.state in (PAUSED, FAILED):
                job.state, job.error = QUEUED, ""
                self._cond.notify_all()
        self.on_change(job)

    def cancel(self, job: Job) -> None:
        """Stop and delete the partial files (a running job cleans up on its thread)."""
        with self._cond:
            if self._current and self._current[0] is job:
                self._current[1].cancel.set()
                return
            if job.state == DONE:
                return
            job.state = CANCELLED
        _discard(self.make_downloader().models_dir, job)
        self.on_change(job)

    def clear_finished(self) -> None:
        with self._cond:
            self.jobs = [j for j in self.jobs if not j.finished]

    def shutdown(self, timeout: float = 5.0) -> None:
        """Pause what runs (its partial stays for next time) and stop the thread."""
        with self._cond:
            self._stop = True
            if self._current:
                self._current[1].pause.set()
            self._cond.notify_all()
        self._thread.join(timeout)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until no job is queued or running (for the CLI and tests)."""
        with self._cond:
            return self._cond.wait_for(
                lambda: not any(j.state in (QUEUED, RUNNING) for j in self.jobs), timeout
            )

    # --- worker --------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._stop or any(j.state == QUEUED for j in self.jobs))
                if self._stop:
                    return
                job = next(j for j in self.jobs if j.state == QUEUED)
                dl = self.make_downloader()
                job.state = RUNNING
                self._current = (job, dl)
            self.on_change(job)
            self._execute(job, dl)
            with self._cond:
                self._current = None
                self._cond.notify_all()
            self.on_change(job)

    def _execute(self, job: Job, dl: Downloader) -> None:
        def progress(p: Progress) -> None:
            job.done, job.speed, job.eta = p.done, p.speed, p.eta
            self.on_change(job)

        try:
            job.path = dl.download_group(job.repo_id, job.revision, job.group, progress)
            job.state, job.done, job.eta = DONE, job.total, 0.0
        except DownloadPaused:
            job.state = PAUSED
        except DownloadCancelled:
            job.state = CANCELLED
        except UserError as e:
            job.state, job.error = FAILED, str(e)
        except Exception as e:  # a bug: logged, shown as a failed download, never a crash
            log.exception("download of %s failed", job.title)
            job.state, job.error = FAILED, f"Unexpected error: {e}"


def _quant(name: str) -> str:
    from chatapp.core.catalog import quant_of

    return quant_of(name)


def _bytes_on_disk(models_dir: Path, job: Job) -> int:
    folder = local_dir(models_dir, job.repo_id)
    total = 0
    for f in job.group.files:
        dest = folder / check_filename(f.name)
        for p in (dest, partial_paths(dest)[0]):
            if p.exists():
                total += p.stat().st_size
    return total


def _discard(models_dir: Path, job: Job) -> None:
    folder = local_dir(models_dir, job.repo_id)
    for f in job.group.files:
        dest = folder / check_filename(f.name)
        for p in partial_paths(dest):
            p.unlink(missing_ok=True)
        if job.group.is_split:
            dest.unlink(missing_ok=True)
