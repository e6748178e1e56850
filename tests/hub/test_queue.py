"""The download queue: one set at a time on a worker thread; pause, resume, cancel, restore."""

from __future__ import annotations

from pathlib import Path

from chatapp.hub import api
from chatapp.hub.download import Downloader
from chatapp.hub.queue import CANCELLED, DONE, FAILED, PAUSED, DownloadQueue, Job
from tests.hub.fake_hf import Blob, FakeHub


def _queue(hub: FakeHub, models: Path, on_change=None) -> DownloadQueue:  # type: ignore[no-untyped-def]
    def make() -> Downloader:
        return Downloader(
            models,
            endpoint=hub.url,
            backoff=0.0,
            chunk_size=32 * 1024,
            progress_interval=0.0,
            retries=1,
        )

    return DownloadQueue(make, on_change)


def test_queue_runs_pauses_resumes_and_restores(
    hub: FakeHub, small_blob: Blob, tmp_path: Path
) -> None:
    hub.add("org/repo", {"a-Q4_0.gguf": small_blob, "b-Q8_0.gguf": Blob(data=b"GGUF" * 50_000)})
    files = api.repo_files("org/repo")
    paused_once: list[Job] = []

    def on_change(job: Job) -> None:
        if job.group.name == "a-Q4_0.gguf" and job.done >= 100_000 and not paused_once:
            paused_once.append(job)
            q.pause(job)

    q = _queue(hub, tmp_path, on_change)
    a = q.add("org/repo", files.revision, api.find_group(files, "Q4_0"))
    b = q.add("org/repo", files.revision, api.find_group(files, "Q8_0"))
    assert q.add("org/repo", files.revision, api.find_group(files, "Q4_0")) is a  # no duplicates
    assert q.wait_idle(30)
    assert a.state == PAUSED and b.state == DONE and b.path is not None
    assert 100_000 <= a.done < small_blob.size
    q.shutdown()

    q2 = _queue(hub, tmp_path)  # as after a restart of the app
    (restored,) = q2.restore(tmp_path)
    assert restored.state == PAUSED and restored.group.name == "a-Q4_0.gguf"
    assert restored.done == (tmp_path / "org/repo/a-Q4_0.gguf.part").stat().st_size
    again = q2.add("org/repo", files.revision, api.find_group(files, "Q4_0"))
    assert again is restored  # asking for it again resumes the restored job
    assert q2.wait_idle(30)
    assert restored.state == DONE and restored.path.read_bytes() == small_blob.data
    q2.shutdown()


def test_cancel_a_paused_job_deletes_its_partial(
    hub: FakeHub, small_blob: Blob, tmp_path: Path
) -> None:
    hub.add("org/repo", {"a-Q4_0.gguf": small_blob})
    files = api.repo_files("org/repo")

    asked: list[Job] = []

    def on_change(job: Job) -> None:
        if job.done >= 50_000 and not asked:
            asked.append(job)
            q.pause(job)

    q = _queue(hub, tmp_path, on_change)
    job = q.add("org/repo", files.revision, files.groups[0])
    assert q.wait_idle(30) and job.state == PAUSED
    assert (tmp_path / "org/repo/a-Q4_0.gguf.part").exists()
    q.cancel(job)
    assert job.state == CANCELLED
    assert list((tmp_path / "org/repo").iterdir()) == []
    q.shutdown()


def test_a_failed_job_keeps_its_message(hub: FakeHub, small_blob: Blob, tmp_path: Path) -> None:
    hub.add("org/repo", {"a-Q4_0.gguf": small_blob}, gated=True)
    files = api.repo_files("org/repo")
    q = _queue(hub, tmp_path)
    job = q.add("org/repo", files.revision, files.groups[0])
    assert q.wait_idle(30)
    assert job.state == FAILED and "gated" in job.error
    q.shutdown()
