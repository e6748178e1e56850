"""Settings file: versioned JSON, migration from version 1, damaged files, bad values."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from chatapp.core import settings as settings_mod
from chatapp.core.errors import UserError
from chatapp.core.settings import SCHEMA_VERSION, Settings, max_threads, validated

RUN_CLI = Path(__file__).resolve().parents[1] / "hub" / "run_cli.py"

# What version 1 of chatapp wrote (asdict of its dataclass), with another module's key.
V1_FILE = {
    "schema_version": 1,
    "models_dir": "/data/models",
    "default_model": None,
    "last_model": "/data/models/smol.gguf",
    "context_limit": 8192,
    "n_gpu_layers": -1,
    "n_threads": 6,
    "temperature": 0.2,
    "top_p": 0.9,
    "top_k": 20,
    "min_p": 0.1,
    "repeat_penalty": 1.05,
    "max_tokens": 512,
    "seed": 42,
    "system_prompt": "Answer in French.",
    "hf_token": "hf_secret",
    "user_templates": {"smol.gguf": "{{ messages }}"},
    "export_dir": "/home/me/exports",
    "extra": {"export.format": "html"},
}


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_missing_file_gives_defaults(tmp_path: Path) -> None:
    s = Settings.load(tmp_path / "settings.json")
    assert s == Settings() and s.notice is None


def test_round_trip_is_grouped_and_versioned(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    s = Settings(temperature=0.3, n_threads=1, theme="dark", font_size=14, hf_token="t")
    s.user_templates["m.gguf"] = "{{ x }}"
    s.save(path)
    data = json.loads(path.read_text())
    assert data["schema_version"] == SCHEMA_VERSION == 3
    assert data["new_chats"]["temperature"] == 0.3
    assert data["hardware"]["n_threads"] == 1
    assert data["appearance"] == {"theme": "dark", "font_size": 14}
    assert data["models"]["user_templates"] == {"m.gguf": "{{ x }}"}
    assert data["hf_token"] == "t" and "temperature" not in data
    assert Settings.load(path) == s


def test_migration_from_version_1_keeps_every_value(tmp_path: Path) -> None:
    path = _write(tmp_path / "settings.json", json.dumps(V1_FILE, indent=2))
    s = Settings.load(path)
    for key, value in V1_FILE.items():
        if key not in ("schema_version", "n_threads"):
            assert getattr(s, key) == value, key
    assert s.theme == "system" and s.font_size is None  # new in version 2: defaults
    assert s.n_threads == min(6, max_threads())
    s.save(path)
    data = json.loads(path.read_text())
    assert data["schema_version"] == 3
    assert data["models"]["models_dir"] == "/data/models"
    assert data["hardware"] == {
        "context_limit": 8192,
        "n_gpu_layers": -1,
        "n_threads": min(6, max_threads()),
        "kv_state_disk_mb": 2048,  # new since: a default
        "speculative": "off",  # new keys: their defaults
        "draft_models": {},
        "prefill_while_typing": True,
    }
    assert data["new_chats"]["system_prompt"] == "Answer in French."
    assert data["extra"] == {"export.format": "html"} and data["hf_token"] == "hf_secret"
    assert Settings.load(path) == s


# What version 2 wrote: grouped, no API server settings yet.
V2_FILE = {
    "schema_version": 2,
    "models": {"models_dir": "/data/models", "default_model": None, "last_model": None,
               "user_templates": {}},
    "hardware": {"context_limit": 8192, "n_gpu_layers": 0, "n_threads": None},
    "new_chats": {"system_prompt": "Be brief.", "temperature": 0.2, "top_p": 0.9, "top_k": 20,
                  "min_p": 0.1, "repeat_penalty": 1.05, "max_tokens": None, "seed": 42},
    "appearance": {"theme": "dark", "font_size": 13},
    "hf_token": "hf_secret",
    "export_dir": None,
    "extra": {"export.format": "html"},
}  # fmt: skip


def test_migration_from_version_2_adds_the_api_server_group_with_its_defaults(
    tmp_path: Path,
) -> None:
    path = _write(tmp_path / "settings.json", json.dumps(V2_FILE, indent=2))
    s = Settings.load(path)
    assert (s.models_dir, s.context_limit, s.system_prompt, s.theme, s.font_size) == (
        "/data/models",
        8192,
        "Be brief.",
        "dark",
        13,
    )
    assert (s.api_autostart, s.api_host, s.api_port, s.api_key, s.api_cors_origins) == (
        False,
        "127.0.0.1",
        8080,
        None,
        [],
    )
    s.api_autostart, s.api_port, s.api_cors_origins = True, 9123, ["http://localhost:3000"]
    s.save(path)
    data = json.loads(path.read_text())
    assert data["schema_version"] == 3
    assert data["api_server"] == {
        "api_autostart": True,
        "api_host": "127.0.0.1",
        "api_port": 9123,
        "api_key": None,
        "api_cors_origins": ["http://localhost:3000"],
    }
    assert data["appearance"] == {"theme": "dark", "font_size": 13}
    assert Settings.load(path) == s


def test_version_1_without_a_version_number_and_an_empty_models_dir(tmp_path: Path) -> None:
    path = _write(tmp_path / "settings.json", json.dumps({"models_dir": "", "top_k": 5}))
    s = Settings.load(path)
    assert s.models_dir is None and s.top_k == 5


def test_a_newer_file_keeps_what_this_version_does_not_know(tmp_path: Path) -> None:
    newer = {
        "schema_version": 7,
        "hardware": {"context_limit": 2048, "flash_attention": True},
        "server": {"port": 8080},
        "new_chats": {"temperature": 0.1},
    }
    path = _write(tmp_path / "settings.json", json.dumps(newer))
    s = Settings.load(path)
    assert s.context_limit == 2048 and s.temperature == 0.1
    s.temperature = 0.5
    s.save(path)
    data = json.loads(path.read_text())
    assert data["schema_version"] == 7  # not lowered: the newer version must not re-migrate
    assert data["server"] == {"port": 8080}
    assert data["hardware"]["flash_attention"] is True
    assert data["new_chats"]["temperature"] == 0.5


TRAILING_COMMA = '{\n  "hf_token": "hf_keep_me",\n  "system_prompt": "Be brief.",\n}\n'


@pytest.mark.parametrize(
    "content",
    [TRAILING_COMMA.encode(), b"[1, 2]", b'{"a": "\xff\xfe"}', b"", b"[" * 100_000],
    ids=["trailing-comma", "not-an-object", "not-utf8", "empty", "too-deep"],
)
def test_an_unreadable_file_is_kept_aside_never_overwritten(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "settings.json"
    path.write_bytes(content)
    s = Settings.load(path)
    assert s == Settings()
    kept = list(tmp_path.glob("settings.json.broken-*"))
    assert len(kept) == 1 and kept[0].read_bytes() == content
    assert s.notice is not None and str(kept[0]) in s.notice and "\n" not in s.notice
    assert not path.exists()
    s.save(path)  # the window saves on close: a new file, the old one untouched
    assert kept[0].read_bytes() == content
    # the same second again: a second damaged file gets its own name
    path.write_bytes(content + b" ")
    Settings.load(path)
    kept = sorted(tmp_path.glob("settings.json.broken-*"))
    assert sorted(k.read_bytes() for k in kept) == sorted([content, content + b" "])


def test_a_trailing_comma_names_the_place(tmp_path: Path) -> None:
    s = Settings.load(_write(tmp_path / "settings.json", TRAILING_COMMA))
    assert "line 4 column 1" in (s.notice or "")


def test_a_file_that_cannot_be_moved_aside_is_never_overwritten(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write(tmp_path / "settings.json", TRAILING_COMMA)

    def refuse(*_a: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(settings_mod.os, "link", refuse)
    monkeypatch.setattr(settings_mod.os, "rename", refuse)
    s = Settings.load(path)
    assert s.notice and "will not overwrite" in s.notice
    with pytest.raises(UserError, match="not overwritten"):
        s.save(path)
    assert path.read_text() == TRAILING_COMMA
    s.save(tmp_path / "elsewhere.json")  # other paths are fine


BAD_VALUES = {
    "models_dir": (5, None),
    "last_model": (["a"], None),
    "n_threads": (100000, max_threads()),
    "context_limit": (10, 256),
    "n_gpu_layers": (True, "auto"),
    "temperature": ("hot", 0.7),
    "top_p": (7, 1.0),
    "top_k": (-3, 0),
    "min_p": (float("nan"), 0.05),
    "repeat_penalty": (0, 0.5),
    "max_tokens": (2.5, None),
    "seed": (-1, None),
    "system_prompt": (None, ""),
    "hf_token": (123, None),
    "api_autostart": ("yes", False),
    "api_host": ("", "127.0.0.1"),
    "api_port": (70000, 65535),
    "api_key": (42, None),
    "api_cors_origins": ("http://a", []),
    "user_templates": ({"ok.gguf": "x", "bad.gguf": 3}, {"ok.gguf": "x"}),
    "theme": ("blue", "system"),
    "font_size": (500, 48),
    "extra": ("x", {}),
}


def test_each_bad_value_falls_back_or_is_clamped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    flat = {k: bad for k, (bad, _good) in BAD_VALUES.items()}
    path = _write(tmp_path / "settings.json", json.dumps(flat))  # version 1 (flat)
    with caplog.at_level(logging.WARNING, logger="chatapp.core.settings"):
        s = Settings.load(path)
    for key, (_bad, good) in BAD_VALUES.items():
        assert getattr(s, key) == good, key
        assert any(key in r.getMessage() or "bad.gguf" in r.getMessage() for r in caplog.records)
    assert s.notice is None  # a readable file with bad values is not "broken"
    assert s.sampling().temperature == 0.7


def test_huge_thread_counts_never_reach_the_engine(tmp_path: Path) -> None:
    for n in (100000, 5000, 2**70):
        path = _write(tmp_path / "settings.json", json.dumps({"hardware": {"n_threads": n}}))
        assert Settings.load(path).n_threads == max_threads()


def test_validated_clamps_values_set_in_code() -> None:
    s = Settings(n_threads=100000, temperature=-1.0, theme="neon")  # type: ignore[arg-type]
    changes = validated(s)
    assert s.n_threads == max_threads() and s.temperature == 0.0 and s.theme == "system"
    assert len(changes) == 3


def test_the_cli_says_so_in_one_line(tmp_path: Path, chatapp_home: Path) -> None:
    path = _write(chatapp_home / "config" / "settings.json", TRAILING_COMMA)
    env = {**os.environ, "CHATAPP_HOME": str(chatapp_home)}
    out = subprocess.run(
        [sys.executable, str(RUN_CLI), "conversations"],
        capture_output=True,
        check=False,
        text=True,
        env=env,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("chatapp: warning: The settings file")
    kept = list(path.parent.glob("settings.json.broken-*"))
    assert len(kept) == 1 and kept[0].read_text() == TRAILING_COMMA
    assert "hf_keep_me" in kept[0].read_text()


def test_a_field_added_without_a_check_is_still_type_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another feature adding a field must not make loading fail, nor let wrong types in."""
    monkeypatch.delitem(settings_mod._CHECKS, "theme")
    monkeypatch.delitem(settings_mod._CHECKS, "top_k")
    path = _write(tmp_path / "settings.json", json.dumps({"theme": 5, "top_k": "many"}))
    s = Settings.load(path)
    assert s.theme == "system" and s.top_k == 40
    path.write_text(json.dumps({"theme": "neon", "top_k": 7.0}))
    s = Settings.load(path)
    assert s.theme == "neon" and s.top_k == 7 and isinstance(s.top_k, int)
