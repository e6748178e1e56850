"""Resumable, verified downloads against the fake hub (a real HTTP server on 127.0.0.1)."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from chatapp.core import catalog
from chatapp.core.catalog import FileGroup, RemoteFile
from chatapp.core.catalog.gguf import check_model_file
from chatapp.core.errors import DiskFullError
from chatapp.hub import api, errors
from chatapp.hub.download import (
    DownloadCancelled,
    Downloader,
    DownloadPaused,
    Progress,
    check_filename,
    partial_paths,
)
from tests.hub.fake_hf import Blob, FakeHub
from tests.tmpfs import small_tmpfs


def _downloader(hub: FakeHub, models: Path, **kw: object) -> Downloader:
    kw.setdefault("backoff", 0.0)
    kw.setdefault("chunk_size", 64 * 1024)
    kw.setdefault("progress_interval", 0.0)
    return Downloader(models, endpoint=hub.url, **kw)  # type: ignore[arg-type]


def _group(hub: FakeHub, repo: str, choice: str) -> tuple[api.RepoFiles, FileGroup]:
    files = api.repo_files(repo)
    return files, api.find_group(files, choice)


@pytest.mark.model
def test_real_model_downloads_verified_and_loadable(
    hub: FakeHub, smollm2_path: Path, tmp_path: Path
) -> None:
    hub.add(
        "HuggingFaceTB/SmolLM2-135M-Instruct-GGUF", {smollm2_path.name: Blob(path=smollm2_path)}
    )
    files, group = _group(hub, "HuggingFaceTB/SmolLM2-135M-Instruct-GGUF", "Q4_1")
    seen: list[Progress] = []
    path = _downloader(hub, tmp_path / "models", chunk_size=1 << 20).download_group(
        files.repo_id, files.revision, group, seen.append
    )
    assert path == tmp_path / "models/HuggingFaceTB/SmolLM2-135M-Instruct-GGUF" / smollm2_path.name
    info = check_model_file(path)
    assert info.architecture == "llama"
    assert hub.bytes_served(smollm2_path.name) == smollm2_path.stat().st_size
    assert seen[-1].done == seen[-1].total == smollm2_path.stat().st_size
    assert not partial_paths(path)[0].exists() and not partial_paths(path)[1].exists()
    lib = catalog.Library(tmp_path / "models", tmp_path / "reg.json")
    assert [m.path for m in lib.models(external=False)] == [path]


def test_cut_transfer_resumes_from_its_offset(
    hub: FakeHub, small_blob: Blob, tmp_path: Path
) -> None:
    hub.add("org/repo", {"m-Q4_0.gguf": small_blob})
    hub.faults.cut_after["m-Q4_0.gguf"] = 100_000
    files, group = _group(hub, "org/repo", "Q4_0")
    path = _downloader(hub, tmp_path).download_group("org/repo", files.revision, group)
    assert path.read_bytes() == small_blob.data
    # Nothing sent twice: the retry asked for the rest only.
    assert hub.bytes_served("m-Q4_0.gguf") == small_blob.size
    ranges = [r for m, p, r in hub.requests if p.endswith("m-Q4_0.gguf")]
    assert ranges == [None, "bytes=100000-"]


def test_pause_keeps_partial_and_resume_sends_only_the_rest(
    hub: FakeHub, small_blob: Blob, tmp_path: Path
) -> None:
    hub.add("org/repo", {"m-Q4_0.gguf": small_blob})
    files, group = _group(hub, "org/repo", "Q4_0")
    dl = _downloader(hub, tmp_path)

    def pause_midway(p: Progress) -> None:
        if p.done >= 120_000:
            dl.pause.set()

    with pytest.raises(DownloadPaused):
        dl.download_group("org/repo", files.revision, group, pause_midway)
    dest = tmp_path / "org/repo/m-Q4_0.gguf"
    part, sidecar = partial_paths(dest)
    have = part.stat().st_size
    assert 0 < have < small_blob.size and sidecar.exists() and not dest.exists()
    first = hub.bytes_served("m-Q4_0.gguf")

    seen: list[Progress] = []
    path = _downloader(hub, tmp_path).download_group("org/repo", files.revision, group, seen.append)
    assert path.read_bytes() == small_blob.data
    assert hub.bytes_served("m-Q4_0.gguf") - first == small_blob.size - have
    assert seen[0].done > have and seen[-1].done == seen[-1].total == small_blob.size
    assert hub.requests[-1][2] == f"bytes={have}-"


def test_server_ignoring_range_restarts_cleanly(
    hub: FakeHub, small_blob: Blob, tmp_path: Path
) -> None:
    hub.add("org/repo", {"m-Q4_0.gguf": small_blob})
    files, group = _group(hub, "org/repo", "Q4_0")
    dl = _downloader(hub, tmp_path)
    with pytest.raises(DownloadPaused):
        dl.download_group("org/repo", files.revision, group, lambda p: dl.pause.set())
    hub.faults.ignore_range.add("m-Q4_0.gguf")
    path = _downloader(hub, tmp_path).download_group("org/repo", files.revision, group)
    assert path.read_bytes() == small_blob.data


def test_cancel_removes_the_partial(hub: FakeHub, small_blob: Blob, tmp_path: Path) -> None:
    hub.add("org/repo", {"m-Q4_0.gguf": small_blob})
    files, group = _group(hub, "org/repo", "Q4_0")
    dl = _downloader(hub, tmp_path)
    with pytest.raises(DownloadCancelled):
        dl.download_group("org/repo", files.revision, group, lambda p: dl.cancel.set())
    folder = tmp_path / "org/repo"
    assert list(folder.iterdir()) == []


def test_corrupted_bytes_are_quarantined_and_never_offered(
    hub: FakeHub, small_blob: Blob, tmp_path: Path
) -> None:
    hub.add("org/repo", {"m-Q4_0.gguf": small_blob})
    hub.faults.corrupt.add("m-Q4_0.gguf")
    files, group = _group(hub, "org/repo", "Q4_0")
    with pytest.raises(errors.ChecksumError, match="sha256 does not match"):
        _downloader(hub, tmp_path).download_group("org/repo", files.revision, group)
    assert not (tmp_path / "org/repo/m-Q4_0.gguf").exists()
    quarantined = list((tmp_path / catalog.QUARANTINE).iterdir())
    assert len(quarantined) == 1
    assert hashlib.sha256(quarantined[0].read_bytes()).hexdigest() != small_blob.sha256
    assert catalog.Library(tmp_path, tmp_path / "r.json").models(external=False) == []


@pytest.mark.parametrize(
    ("setup", "error", "words"),
    [
        ("private", errors.AuthRequiredError, "login"),
        ("gated", errors.GatedRepoError, "accept its license"),
        ("missing", errors.NotFoundError, "Not found"),
        ("429", errors.RateLimitedError, "limiting requests"),
        ("500", errors.ServerError, r"server error \(HTTP 500\)"),
    ],
)
def test_http_errors_have_their_own_messages(
    hub: FakeHub, small_blob: Blob, tmp_path: Path, setup: str, error: type, words: str
) -> None:
    repo = hub.add("org/repo", {"m-Q4_0.gguf": small_blob})
    group = FileGroup(
        "m-Q4_0.gguf", [RemoteFile("m-Q4_0.gguf", small_blob.size, small_blob.sha256)], "Q4_0"
    )
    if setup == "private":
        repo.private = True
    elif setup == "gated":
        repo.gated = True
    elif setup == "missing":
        group = FileGroup("x.gguf", [RemoteFile("x.gguf", 10, None)], "")
    else:
        hub.faults.statuses["m-Q4_0.gguf"] = [int(setup)] * 5
    slept: list[float] = []
    dl = _downloader(hub, tmp_path, retries=2, backoff=1.0, sleep=slept.append)
    with pytest.raises(error, match=words) as exc:
        dl.download_group("org/repo", "main", group)
    others = {
        errors.AuthRequiredError,
        errors.GatedRepoError,
        errors.NotFoundError,
        errors.RateLimitedError,
        errors.ServerError,
    } - {error}
    assert not isinstance(exc.value, tuple(others))
    if setup in ("429", "500"):
        assert len(hub.faults.statuses["m-Q4_0.gguf"]) == 2  # tried 1 + 2 retries
        assert sum(slept) == pytest.approx(0.0 if setup == "429" else 1.0 + 2.0)
    if setup == "gated":
        assert "HF_TOKEN" in str(exc.value) and hub.url + "/org/repo" in str(exc.value)


def test_retries_honour_retry_after_then_succeed(
    hub: FakeHub, small_blob: Blob, tmp_path: Path
) -> None:
    hub.add("org/repo", {"m-Q4_0.gguf": small_blob})
    hub.faults.statuses["m-Q4_0.gguf"] = [429, 503]
    hub.faults.retry_after = "3"
    files, group = _group(hub, "org/repo", "Q4_0")
    slept: list[float] = []
    path = _downloader(hub, tmp_path, backoff=0.5, sleep=slept.append).download_group(
        "org/repo", files.revision, group
    )
    assert path.read_bytes() == small_blob.data
    assert sum(slept) == pytest.approx(3.0 + 1.0)  # Retry-After, then backoff 0.5 * 2


def test_private_repo_with_token(hub: FakeHub, small_blob: Blob, tmp_path: Path) -> None:
    hub.add("org/repo", {"m-Q4_0.gguf": small_blob}, private=True)
    files = api.repo_files("org/repo", token="hf_test")
    group = api.find_group(files, "Q4_0")
    path = _downloader(hub, tmp_path, token="hf_test").download_group(
        "org/repo", files.revision, group
    )
    assert path.read_bytes() == small_blob.data


@pytest.mark.parametrize(
    "name", ["../x.gguf", "/etc/x.gguf", "a/../../x.gguf", "a\\b.gguf", "C:x.gguf", "", "a//b.gguf"]
)
def test_bad_filenames_are_refused_before_any_request(
    hub: FakeHub, tmp_path: Path, name: str
) -> None:
    group = FileGroup(name, [RemoteFile(name, 10, None)], "")
    with pytest.raises(errors.BadFilenameError, match="path parts"):
        _downloader(hub, tmp_path).download_group("org/repo", "main", group)
    assert hub.requests == []
    assert list(tmp_path.iterdir()) == []


def test_folders_inside_a_repo_are_allowed() -> None:
    assert (
        check_filename("Q4_K_M/model-Q4_K_M-00001-of-00002.gguf")
        == "model-Q4_K_M-00001-of-00002.gguf"
    )


@pytest.mark.model
def test_split_model_downloads_as_a_set(hub: FakeHub, smollm2_path: Path, tmp_path: Path) -> None:
    size = smollm2_path.stat().st_size
    cuts = [0, size // 3, 2 * size // 3, size]
    shards = {
        f"smol-Q4_1-{i + 1:05d}-of-00003.gguf": Blob(path=smollm2_path, start=a, length=b - a)
        for i, (a, b) in enumerate(itertools.pairwise(cuts))
    }
    hub.add("org/split", {**shards, "mmproj-smol-f16.gguf": Blob(data=b"GGUF")})
    files = api.repo_files("org/split")
    assert [g.name for g in files.groups] == ["smol-Q4_1.gguf"]
    group = files.groups[0]
    assert group.size == size and group.is_split
    first = _downloader(hub, tmp_path, chunk_size=1 << 20).download_group(
        "org/split", files.revision, group
    )
    assert first.name == "smol-Q4_1-00001-of-00003.gguf"
    got = b"".join((first.parent / n).read_bytes() for n in shards)
    assert hashlib.sha256(got).hexdigest() == hashlib.sha256(smollm2_path.read_bytes()).hexdigest()
    models = catalog.Library(tmp_path, tmp_path / "r.json").models(external=False)
    assert len(models) == 1 and models[0].path == first and models[0].size == size
    assert models[0].complete and len(models[0].shards) == 3


def test_cancelling_a_split_set_removes_every_shard(hub: FakeHub, tmp_path: Path) -> None:
    shards = {f"s-Q8_0-{i:05d}-of-00002.gguf": Blob(data=bytes([i]) * 200_000) for i in (1, 2)}
    hub.add("org/split", shards)
    files = api.repo_files("org/split")
    dl = _downloader(hub, tmp_path)

    def cancel_in_second(p: Progress) -> None:
        if p.file.endswith("00002-of-00002.gguf"):
            dl.cancel.set()

    with pytest.raises(DownloadCancelled):
        dl.download_group("org/split", files.revision, files.groups[0], cancel_in_second)
    assert list((tmp_path / "org/split").iterdir()) == []


def test_not_enough_disk_space_is_refused_before_starting(
    hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    huge = 1 << 50  # a petabyte: no test machine has that free
    group = FileGroup("big.gguf", [RemoteFile("big.gguf", huge, "0" * 64)], "")
    with pytest.raises(DiskFullError, match="Not enough disk space"):
        _downloader(hub, tmp_path).download_group("org/repo", "main", group)
    assert hub.requests == []


def test_stale_partial_from_another_file_version_is_discarded(
    hub: FakeHub, small_blob: Blob, tmp_path: Path
) -> None:
    hub.add("org/repo", {"m-Q4_0.gguf": small_blob})
    files, group = _group(hub, "org/repo", "Q4_0")
    dest = tmp_path / "org/repo/m-Q4_0.gguf"
    part, sidecar = partial_paths(dest)
    part.parent.mkdir(parents=True)
    part.write_bytes(b"x" * 5000)
    sidecar.write_text('{"url": "elsewhere", "size": 1, "sha256": "00"}')
    path = _downloader(hub, tmp_path).download_group("org/repo", files.revision, group)
    assert path.read_bytes() == small_blob.data


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 512 KiB tmpfs, where the system lets us mount one (root on Linux); else skip."""
    with small_tmpfs(tmp_path, "512k") as mnt:
        yield mnt


def test_disk_full_midway_keeps_the_partial(
    hub: FakeHub, small_blob: Blob, tiny_disk: Path
) -> None:
    big = Blob(data=small_blob.data * 3)  # 900 kB onto a 512 KiB disk
    hub.add("org/repo", {"m-Q4_0.gguf": big})
    # The hub did not say the size, so the check before starting cannot catch it.
    group = FileGroup("m-Q4_0.gguf", [RemoteFile("m-Q4_0.gguf", None, big.sha256)], "Q4_0")
    with pytest.raises(DiskFullError, match="disk filled up.*partial file is kept"):
        _downloader(hub, tiny_disk).download_group("org/repo", "main", group)
    part = tiny_disk / "org/repo/m-Q4_0.gguf.part"
    assert part.exists() and 0 < part.stat().st_size < big.size
