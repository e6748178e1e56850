"""The file tools read, list and search only inside the granted folders: `..`, absolute
paths and symlinks that lead outside are refused, and reads are size-capped."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from chatapp.tools import files
from chatapp.tools.registry import ToolRegistry, ToolResult


@pytest.fixture
def tree(tmp_path: Path) -> dict[str, Path]:
    granted = tmp_path / "granted"
    (granted / "sub").mkdir(parents=True)
    (granted / "notes.txt").write_text("alpha\nthe Needle is here\nomega\n")
    (granted / "sub" / "deep.md").write_text("another needle, deeper\n")
    (granted / "blob.bin").write_bytes(b"\x00\x01binary needle\x00")
    outside = tmp_path / "private"
    outside.mkdir()
    (outside / "secret.txt").write_text("needle: the secret words\n")
    os.symlink(outside / "secret.txt", granted / "link_to_secret.txt")
    os.symlink(outside, granted / "link_to_private")
    return {"granted": granted, "outside": outside}


@pytest.fixture
def registry(tmp_path: Path, tree: dict[str, Path]):
    with ToolRegistry(tmp_path / "config", granted_folders=[tree["granted"]]) as r:
        yield r


def call(registry: ToolRegistry, name: str, **args: object) -> ToolResult:
    return registry.run(name, dict(args), cancel=threading.Event())


def test_read_a_file_relative_and_absolute(registry: ToolRegistry, tree: dict[str, Path]) -> None:
    r = call(registry, "read_file", path="notes.txt")
    assert not r.is_error and r.content.startswith("alpha\nthe Needle")
    r = call(registry, "read_file", path=str(tree["granted"] / "sub" / "deep.md"))
    assert r.content == "another needle, deeper\n"
    assert call(registry, "read_file", path="sub/../notes.txt").content.startswith("alpha")


@pytest.mark.parametrize(
    "path",
    [
        "../private/secret.txt",
        "sub/../../private/secret.txt",
        "link_to_secret.txt",
        "link_to_private/secret.txt",
        "/etc/passwd",
        "~/.bashrc",
    ],
)
def test_escapes_are_refused(registry: ToolRegistry, path: str) -> None:
    r = call(registry, "read_file", path=path)
    assert r.is_error
    assert "outside the granted folders" in r.content
    assert "secret words" not in r.content


def test_listing_and_search_do_not_follow_links_out(
    registry: ToolRegistry, tree: dict[str, Path]
) -> None:
    r = call(registry, "list_files", recursive=True)
    assert not r.is_error
    assert "notes.txt" in r.content and "sub/deep.md" in r.content
    assert "secret.txt" not in r.content
    r = call(registry, "list_files", path="link_to_private")
    assert r.is_error and "outside" in r.content
    r = call(registry, "search_files", query="needle")
    lines = r.content.splitlines()
    assert any(line.endswith("notes.txt:2: the Needle is here") for line in lines)
    assert any("deep.md:1: another needle, deeper" in line for line in lines)
    assert "secret" not in r.content
    assert "blob.bin" not in r.content  # binary files are not searched
    r = call(registry, "search_files", query="needle", glob="*.md")
    assert len(r.content.splitlines()) == 1


def test_reads_are_capped_and_say_how_to_continue(
    registry: ToolRegistry, tree: dict[str, Path], tmp_path: Path
) -> None:
    big = tree["granted"] / "big.txt"
    big.write_text("y" * (files.READ_BYTES + 100))
    with ToolRegistry(tmp_path / "c2", granted_folders=[tree["granted"]], max_chars=10**6) as reg:
        r = call(reg, "read_file", path="big.txt")
        assert r.truncated
        assert r.content.startswith("y" * files.READ_BYTES + "\n[read bytes 0-")
        assert f"offset={files.READ_BYTES}" in r.content
        r = call(reg, "read_file", path="big.txt", offset=files.READ_BYTES)
        assert r.content == "y" * 100 and not r.truncated
        # a window never ends inside a character (é is two bytes; the window is even)
        big.write_text("x" + "é" * files.READ_BYTES)
        r = call(reg, "read_file", path="big.txt")
        assert "\ufffd" not in r.content
        assert f"offset={files.READ_BYTES - 1}" in r.content
    # the registry's own cap on what the model is told
    r = call(registry, "read_file", path="big.txt")
    assert r.truncated and len(r.content) < 8100
    assert "[cut:" in r.content


def test_binary_file_is_described_not_dumped(registry: ToolRegistry) -> None:
    r = call(registry, "read_file", path="blob.bin")
    assert "binary file of 16 bytes" in r.content
    assert "needle" not in r.content


def test_no_granted_folder(tmp_path: Path) -> None:
    with ToolRegistry(tmp_path / "c") as reg:
        for name, args in [
            ("read_file", {"path": "x"}),
            ("list_files", {}),
            ("search_files", {"query": "x"}),
        ]:
            r = reg.run(name, args, cancel=threading.Event())
            assert r.is_error and "no folder is granted" in r.content


def test_missing_file_and_folder_mistakes(registry: ToolRegistry) -> None:
    assert "does not exist" in call(registry, "read_file", path="nope.txt").content
    assert "is a folder" in call(registry, "read_file", path="sub").content
    assert "is a file" in call(registry, "list_files", path="notes.txt").content
