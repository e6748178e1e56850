"""Servers that never answer or trickle: every hub call and download ends, with a clear
message, and cancel acts during a stall. Waits are bounded only so that a hang fails the
test instead of blocking it; nothing here asserts how long anything took."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest

from chatapp.core.catalog import FileGroup, RemoteFile
from chatapp.core.errors import NetworkError
from chatapp.hub import api, errors
from chatapp.hub.download import DownloadCancelled, Downloader, DownloadPaused, partial_paths
from tests.hub.fake_hf import COMMIT, Blob, FakeHub

HANG_BOUND = 60.0  # far above any limit configured below: reaching it means a hang

REPO = "org/slow-GGUF"
NAME = "slow-Q4_0.gguf"


def _setup(hub: FakeHub, size: int = 50_000) -> tuple[Blob, FileGroup]:
    blob = Blob(data=b"GGUF" + bytes(range(256)) * (size // 256))
    hub.add(REPO, {NAME: blob})
    group = FileGroup(NAME, [RemoteFile(NAME, blob.size, blob.sha256)], "Q4_0")
    return blob, group


def _in_thread(fn) -> tuple[threading.Thread, dict]:  # type: ignore[no-untyped-def]
    box: dict = {}

    def run() -> None:
        try:
            box["result"] = fn()
        except BaseException as e:  # noqa: BLE001 - handed to the test
            box["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, box


def _wait_for(cond, what: str) -> None:  # type: ignore[no-untyped-def]
    ev = threading.Event()
    for _ in range(int(HANG_BOUND / 0.02)):
        if cond():
            return
        ev.wait(0.02)
    raise AssertionError(f"never happened: {what}")


def test_trickling_transfer_times_out_by_the_minimum_speed_rule(
    hub: FakeHub, tmp_path: Path
) -> None:
    _blob, group = _setup(hub)
    hub.faults.trickle[NAME] = 0.2  # 5 bytes/s: each read returns well within read_timeout
    dl = Downloader(
        tmp_path,
        endpoint=hub.url,
        retries=1,
        backoff=0.0,
        read_timeout=HANG_BOUND * 10,
        min_speed=1000.0,
        stall_window=1.0,
    )
    t, box = _in_thread(lambda: dl.download_group(REPO, COMMIT, group))
    t.join(HANG_BOUND)
    assert not t.is_alive(), "a trickling server kept the download alive"
    err = box.get("error")
    assert isinstance(err, NetworkError) and "stalled" in str(err), err
    assert str(err).splitlines() == [str(err)]
    assert len(hub.transfers) == 2  # the first try and one retry, each dropped
    part, sidecar = partial_paths(tmp_path / "org/slow-GGUF" / NAME)
    assert sidecar.exists() == part.exists()  # what did arrive is kept to resume


@pytest.mark.parametrize("stop", ["cancel", "pause"])
def test_cancel_and_pause_act_during_a_stalled_body(
    hub: FakeHub, tmp_path: Path, stop: str
) -> None:
    _blob, group = _setup(hub)
    hub.faults.trickle[NAME] = HANG_BOUND * 10  # headers, then nothing
    dl = Downloader(tmp_path, endpoint=hub.url, read_timeout=HANG_BOUND * 10, backoff=0.0)
    t, box = _in_thread(lambda: dl.download_group(REPO, COMMIT, group))
    _wait_for(lambda: hub.transfers, "the transfer started")
    getattr(dl, stop).set()
    t.join(HANG_BOUND)  # the read timeout is 10x longer: only the watchdog ends this
    assert not t.is_alive()
    expected = DownloadCancelled if stop == "cancel" else DownloadPaused
    assert type(box.get("error")) is expected
    part, sidecar = partial_paths(tmp_path / "org/slow-GGUF" / NAME)
    if stop == "cancel":
        assert not part.exists() and not sidecar.exists()
    else:
        assert sidecar.exists()


def test_cancel_acts_while_the_server_never_answers(hub: FakeHub, tmp_path: Path) -> None:
    _blob, group = _setup(hub)
    hub.faults.hang.add(f"/{REPO}/resolve/")
    dl = Downloader(tmp_path, endpoint=hub.url, timeout=HANG_BOUND * 10, backoff=0.0)
    t, box = _in_thread(lambda: dl.download_group(REPO, COMMIT, group))
    _wait_for(lambda: hub.requests, "the request arrived")
    dl.cancel.set()
    t.join(HANG_BOUND)
    assert not t.is_alive()
    assert isinstance(box.get("error"), DownloadCancelled)
    part, sidecar = partial_paths(tmp_path / "org/slow-GGUF" / NAME)
    assert not part.exists() and not sidecar.exists()


def test_a_server_that_never_answers_times_out(hub: FakeHub, tmp_path: Path) -> None:
    _blob, group = _setup(hub)
    hub.faults.hang.add(f"/{REPO}/resolve/")
    dl = Downloader(tmp_path, endpoint=hub.url, timeout=0.5, retries=1, backoff=0.0)
    t, box = _in_thread(lambda: dl.download_group(REPO, COMMIT, group))
    t.join(HANG_BOUND)
    assert not t.is_alive()
    err = box.get("error")
    assert isinstance(err, NetworkError) and "timed out" in str(err), err
    assert len(hub.requests) == 2
    # refused before a single byte: nothing is left to resume
    assert list(tmp_path.rglob("*.part*")) == []


@pytest.mark.parametrize("status", [401, 403, 404])
def test_a_refused_download_leaves_no_partial_metadata(
    hub: FakeHub, tmp_path: Path, status: int
) -> None:
    _blob, group = _setup(hub)
    hub.faults.statuses[NAME] = [status]
    dl = Downloader(tmp_path, endpoint=hub.url, backoff=0.0)
    with pytest.raises(NetworkError):
        dl.download_group(REPO, COMMIT, group)
    assert list(tmp_path.rglob("*.part*")) == []


def test_an_api_that_never_answers_gives_a_timeout_message(
    hub: FakeHub, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _setup(hub)
    hub.faults.hang.add("/api/")
    monkeypatch.setattr(api, "API_TIMEOUT", 1.0)
    monkeypatch.setattr(
        sys,
        "meta_path",
        [f for f in sys.meta_path if "__editable__" not in getattr(f, "__module__", "")],
    )
    from chatapp import cli

    t, box = _in_thread(lambda: cli.run(["models", "info", REPO]))
    t.join(HANG_BOUND)
    assert not t.is_alive()
    assert box.get("result") == 1
    err = capsys.readouterr().err.strip()
    assert err == (
        f"chatapp: error: Hugging Face ({hub.url}) did not answer within 1 s. "
        "The server or the network is too slow right now; try again later."
    )
    with pytest.raises(errors.HubTimeoutError):
        api.search("slow")
    # let the abandoned calls end (they retry and now get answers), so no thread outlives
    # the test
    hub.faults.hang.clear()
    hub.release.set()
    for t in [t for t in threading.enumerate() if t.name == "hub-call"]:
        t.join(HANG_BOUND)
        assert not t.is_alive()
