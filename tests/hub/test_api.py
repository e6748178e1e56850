"""Search and file lists through huggingface_hub's HfApi, against the fake hub."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from chatapp.core.errors import UserError
from chatapp.hub import api, auth, errors
from tests.hub.fake_hf import COMMIT, Blob, FakeHub


def _populate(hub: FakeHub) -> None:
    g = Blob(data=b"GGUF")
    hub.add(
        "a/popular-GGUF",
        {"m-Q4_K_M.gguf": g},
        downloads=900,
        likes=5,
        last_modified="2024-01-01T00:00:00.000Z",
    )
    hub.add(
        "b/liked-GGUF",
        {"m-Q4_K_M.gguf": g},
        downloads=100,
        likes=50,
        last_modified="2024-06-01T00:00:00.000Z",
    )
    hub.add(
        "c/fresh-GGUF",
        {"m-Q4_K_M.gguf": g},
        downloads=10,
        likes=1,
        last_modified="2025-03-01T00:00:00.000Z",
    )


def test_endpoint_is_read_from_the_environment_each_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9/")
    assert api.endpoint() == "http://127.0.0.1:9"
    monkeypatch.delenv("HF_ENDPOINT")
    assert api.endpoint() == "https://huggingface.co"


def test_search_sorts_and_pages(hub: FakeHub) -> None:
    _populate(hub)
    assert [r.repo_id for r in api.search()] == ["a/popular-GGUF", "b/liked-GGUF", "c/fresh-GGUF"]
    assert next(r.repo_id for r in api.search(sort="likes")) == "b/liked-GGUF"
    assert next(r.repo_id for r in api.search(sort="recent")) == "c/fresh-GGUF"
    assert [r.repo_id for r in api.search(page=1, page_size=2)] == ["c/fresh-GGUF"]
    assert [r.repo_id for r in api.search("liked")] == ["b/liked-GGUF"]
    assert api.search("nothing-like-this") == []
    searches = [p for m, p, r in hub.requests if p.startswith("/api/models?")]
    assert all("filter=gguf" in p for p in searches)


def test_repo_files_groups_quants_and_skips_non_chat_files(hub: FakeHub) -> None:
    b = Blob(data=b"GGUF1234")
    hub.add(
        "org/m-GGUF",
        {
            "README.md": b,
            "m-Q8_0.gguf": Blob(data=b"GGUF" * 100),
            "m-Q2_K.gguf": b,
            "m-F16-00001-of-00002.gguf": b,
            "m-F16-00002-of-00002.gguf": b,
            "mmproj-m-f16.gguf": b,
            "m.imatrix.gguf": b,
            "imatrix.dat": b,
        },
    )
    files = api.repo_files("org/m-GGUF")
    assert files.revision == COMMIT
    assert [(g.name, g.quant) for g in files.groups] == [
        ("m-Q2_K.gguf", "Q2_K"),
        ("m-Q8_0.gguf", "Q8_0"),
        ("m-F16.gguf", "F16"),
    ]
    q8 = api.find_group(files, "q8_0")
    assert q8.size == 400 and q8.first.sha256 == Blob(data=b"GGUF" * 100).sha256
    assert api.find_group(files, "m-F16-00002-of-00002.gguf").name == "m-F16.gguf"
    with pytest.raises(UserError, match="Choose one of"):
        api.find_group(files, "Q5_K_M")
    tree = api.tree_files("org/m-GGUF")
    assert {f.name: f.sha256 for f in tree} == {f.name: f.sha256 for f in files.files}


@pytest.mark.parametrize(
    ("repo", "error", "words"),
    [
        ("org/private", errors.AuthRequiredError, "login"),
        ("org/none", errors.AuthRequiredError, "login"),
    ],
)
def test_repo_errors(hub: FakeHub, repo: str, error: type, words: str) -> None:
    hub.add("org/private", {"m.gguf": Blob(data=b"GGUF")}, private=True)
    with pytest.raises(error, match=words):
        api.repo_files(repo)


def test_unknown_revision_is_not_found(hub: FakeHub) -> None:
    hub.add("org/repo", {"m.gguf": Blob(data=b"GGUF")})
    with pytest.raises(errors.NotFoundError, match="Not found"):
        api.repo_files("org/repo", revision="nope")


@pytest.mark.parametrize("bad", ["../x", "a", "a/b/c", "/abs", "a\\b"])
def test_bad_repo_ids_are_refused(hub: FakeHub, bad: str) -> None:
    with pytest.raises(UserError, match="not a repository name"):
        api.repo_files(bad)
    assert hub.requests == []


def test_offline_mode_says_offline() -> None:
    # conftest sets HF_HUB_OFFLINE=1 for every test
    with pytest.raises(errors.OfflineError, match="Offline"):
        api.search("llama")


def test_unreachable_hub_says_offline_quickly(
    online: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setattr(api, "_reachable_until", 0.0)
    with pytest.raises(errors.OfflineError, match="Offline"):
        api.search("llama")


def test_token_sources_in_order(
    online: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert auth.find_token(None) is None
    assert auth.find_token("hf_settings") == "hf_settings"
    token_file = Path(tmp_path / "hf-home" / "token")
    token_file.parent.mkdir(parents=True, exist_ok=True)
    token_file.write_text("hf_cli_login")
    assert auth.find_token("hf_settings") == "hf_cli_login"
    monkeypatch.setenv("HF_TOKEN", "hf_env")
    assert auth.find_token("hf_settings") == "hf_env"


def test_fake_hub_speaks_the_resolve_protocol_huggingface_hub_expects(hub: FakeHub) -> None:
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    blob = Blob(data=b"GGUF" * 10)
    hub.add("org/repo", {"m-Q4_0.gguf": blob})
    meta = get_hf_file_metadata(
        hf_hub_url("org/repo", "m-Q4_0.gguf", endpoint=hub.url), token=False
    )
    assert (meta.size, meta.commit_hash, meta.etag) == (40, COMMIT, blob.sha256)
    assert hub.requests[-1][0] == "HEAD"
