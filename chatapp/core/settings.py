"""User settings: a typed dataclass saved as versioned JSON (never pickle).

The file is grouped the way the settings dialog is (models, hardware, new chats,
appearance); the dataclass stays flat so code reads `settings.temperature`. Loading is
defensive, because the file is edited by hand and by older and newer versions:

- an unreadable file (bad JSON, not an object, not UTF-8, no permission) is renamed to
  `settings.json.broken-<timestamp>` (never overwritten) and `notice` says so in one line;
  if it cannot be moved, `save()` refuses to overwrite it;
- older files are migrated step by step (MIGRATIONS), newer ones are read as far as known;
- every field is type-checked and clamped to a sane range (threads to this machine's
  CPUs); a bad value falls back to its default with a warning in the log;
- keys this version does not know (a newer version's, another module's) are written back
  where they were.

Window geometry is not here: that is QSettings' job.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from chatapp.core import atomic
from chatapp.core.errors import UserError
from chatapp.core.gpu_fit import AUTO, GpuLayers, parse_gpu_layers
from chatapp.core.token_engine import SamplingParams

log = logging.getLogger(__name__)

SCHEMA_VERSION = 3
THEMES = ("system", "light", "dark")

# Sane ranges, shared with the settings dialog's spin boxes.
CONTEXT_RANGE = (256, 1_048_576)  # the engine also caps at the model's trained context
GPU_LAYERS_RANGE = (-1, 999)  # -1: every layer
TEMPERATURE_RANGE = (0.0, 5.0)
TOP_P_RANGE = (0.0, 1.0)
TOP_K_RANGE = (0, 1000)  # 0: off
MIN_P_RANGE = (0.0, 1.0)
REPEAT_PENALTY_RANGE = (0.5, 5.0)  # 1.0: off
MAX_TOKENS_RANGE = (1, 1_048_576)
TOP_N_RANGE = (0, 20)  # alternatives kept per token (core.logprobs.MAX_TOP_N)
SEED_RANGE = (0, 2**31 - 1)
FONT_SIZE_RANGE = (6, 48)  # points
PORT_RANGE = (1, 65535)
KV_DISK_MB_RANGE = (0, 1_048_576)  # 0: KV states are not kept on disk
DEFAULT_API_HOST = "127.0.0.1"
DEFAULT_API_PORT = 8080

# How version 2 (and 3, which adds "api_server") groups the keys in the file; keys not named here stay at the top level.
GROUPS: dict[str, tuple[str, ...]] = {
    "models": ("models_dir", "default_model", "last_model", "user_templates"),
    "hardware": (
        "context_limit",
        "n_gpu_layers",
        "n_threads",
        "kv_state_disk_mb",
        "speculative",
        "draft_models",
        "prefill_while_typing",
    ),
    "new_chats": (
        "system_prompt",
        "temperature",
        "top_p",
        "top_k",
        "min_p",
        "repeat_penalty",
        "max_tokens",
        "seed",
        "logprobs_top_n",
        "tool_max_steps",
    ),
    "appearance": ("theme", "font_size"),
    "api_server": ("api_autostart", "api_host", "api_port", "api_key", "api_cors_origins"),
}


def max_threads() -> int:
    """The CPUs this process may run on: more llama.cpp threads than that only thrash
    (and 100,000 of them crash it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


@dataclass
class Settings:
    models_dir: str | None = None  # None: <data dir>/models
    default_model: str | None = None  # for new chats; None: the last model used
    last_model: str | None = None
    context_limit: int = 4096  # n_ctx = min(trained context, this)
    # layers offloaded to the GPU (GPU builds of llama.cpp): "auto" as many as fit its free
    # memory (0 on a CPU build), -1 every layer, 0 none, N that many (core.gpu_fit)
    n_gpu_layers: GpuLayers = AUTO
    n_threads: int | None = None  # None: physical cores
    # KV states of conversations kept in the cache folder across restarts, least recently
    # used out first (engine.state_disk); 0: none kept
    kv_state_disk_mb: int = 2048
    # speculative decoding (engine.speculative): "off", "lookup" (drafts copied from the
    # context) or "draft" (a draft model, from draft_models: model file name -> its path)
    speculative: str = "off"
    draft_models: dict[str, str] = field(default_factory=dict)
    # the window evaluates the next send's prompt while the user types (gui.prefill_typing)
    prefill_while_typing: bool = True
    temperature: float = 0.7
    top_p: float = 0.95
    top_k: int = 40
    min_p: float = 0.05
    repeat_penalty: float = 1.1
    max_tokens: int | None = None
    seed: int | None = None  # None: a new random seed for every answer
    logprobs_top_n: int = 5  # alternatives kept per generated token (0: none, at most 20)
    tool_max_steps: int = 5  # tool calls answered per turn before the model must answer
    system_prompt: str = ""
    hf_token: str | None = None
    user_templates: dict[str, str] = field(default_factory=dict)  # model file name -> Jinja
    export_dir: str | None = None
    theme: str = "system"  # "system", "light" or "dark"
    font_size: int | None = None  # points for the chat; None: the system's size
    # the window's local API server (Models > Serve…, Settings > API server)
    api_autostart: bool = False  # start it when the window opens
    api_host: str = DEFAULT_API_HOST  # anything but loopback needs api_key (enforced)
    api_port: int = DEFAULT_API_PORT  # $CHATAPP_API_PORT overrides it
    api_key: str | None = None  # None: no key asked (loopback only)
    api_cors_origins: list[str] = field(default_factory=list)  # browser origins allowed
    extra: dict[str, Any] = field(default_factory=dict)  # other modules' keys

    # Not saved: what loading found. `notice` is one line for the user (window or stderr).
    notice: str | None = field(default=None, init=False, repr=False, compare=False)
    _raw: dict[str, Any] = field(default_factory=dict, init=False, repr=False, compare=False)
    _protected: Path | None = field(default=None, init=False, repr=False, compare=False)

    def sampling(self, **overrides: Any) -> SamplingParams:
        """The sampling settings, with any given (non-None) overrides."""
        values: dict[str, Any] = {
            "temperature": self.temperature,
            "top_p": self.top_p,
            "top_k": self.top_k,
            "min_p": self.min_p,
            "repeat_penalty": self.repeat_penalty,
            "max_tokens": self.max_tokens,
            "seed": self.seed,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return SamplingParams(**values)

    # -- saving -------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """The file's content: grouped, versioned, with unknown keys kept where they were."""
        data = copy.deepcopy(self._raw)
        values = {f.name: copy.deepcopy(getattr(self, f.name)) for f in fields(self) if f.init}
        for group, names in GROUPS.items():
            section = data.get(group)
            section = dict(section) if isinstance(section, dict) else {}
            for name in names:
                section[name] = values.pop(name)
                data.pop(name, None)  # a flat copy (hand-edited, or version 1) is superseded
            data[group] = section
        data.update(values)
        old = data.get("schema_version")
        newer = isinstance(old, int) and not isinstance(old, bool) and old > SCHEMA_VERSION
        data["schema_version"] = old if newer else SCHEMA_VERSION  # never claim to be older
        return {"schema_version": data.pop("schema_version"), **data}

    def save(self, path: Path) -> None:
        if self._protected is not None and Path(path) == self._protected:
            raise UserError(
                f"The settings file {path} could not be read or moved aside, so it is not "
                "overwritten; fix or remove it and restart chatapp."
            )
        atomic.write_text(path, json.dumps(self.to_json(), indent=2, ensure_ascii=False) + "\n")

    # -- loading ------------------------------------------------------------------------

    @classmethod
    def load(cls, path: Path) -> Settings:
        """Settings from `path`; defaults when it does not exist. Never raises for a bad file:
        see the module docstring for what happens instead."""
        path = Path(path)
        try:
            raw = json.loads(path.read_bytes().decode("utf-8"))
            if not isinstance(raw, dict):
                raise TypeError(f"expected a JSON object, found {type(raw).__name__}")
        except FileNotFoundError:
            return cls()
        except (OSError, ValueError, TypeError, RecursionError) as e:
            return cls._broken(path, e)
        return cls.from_json(raw, source=str(path))

    @classmethod
    def from_json(cls, raw: dict[str, Any], *, source: str = "settings") -> Settings:
        version = raw.get("schema_version", 1)
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            log.warning(
                "%s: schema_version %r is not a version; read as version 1", source, version
            )
            version = 1
        data = dict(raw)
        for step in range(version, SCHEMA_VERSION):
            data = MIGRATIONS[step](data)
            log.info("%s: migrated settings from version %d to %d", source, step, step + 1)
        if version > SCHEMA_VERSION:
            log.warning(
                "%s: written by a newer chatapp (settings version %d, this one knows %d); "
                "reading what this version knows, keeping the rest",
                source,
                version,
                SCHEMA_VERSION,
            )
        flat = _flatten(data)
        settings = cls()
        defaults = cls()
        for name, check in field_checks().items():
            if name not in flat:
                continue
            try:
                value = check(flat[name])
            except _Bad as e:
                log.warning(
                    "%s: %s=%s %s; using the default %r",
                    source,
                    name,
                    _short(flat[name]),
                    e,
                    getattr(defaults, name),
                )
                continue
            if value != flat[name] and not isinstance(value, dict):
                log.warning("%s: %s=%s adjusted to %r", source, name, _short(flat[name]), value)
            setattr(settings, name, value)
        settings._raw = data
        return settings

    @classmethod
    def _broken(cls, path: Path, error: Exception) -> Settings:
        reason = _reason(error)
        settings = cls()
        aside = _keep_aside(path)
        if aside is None:
            settings._protected = path
            settings.notice = (
                f"The settings file {path} could not be read ({reason}); chatapp is using "
                "default settings and will not overwrite that file."
            )
        else:
            settings.notice = (
                f"The settings file could not be read ({reason}); it was kept as {aside} "
                "and chatapp is using default settings."
            )
        log.warning("%s", settings.notice)
        return settings


def _reason(error: Exception) -> str:
    if isinstance(error, json.JSONDecodeError):
        return f"{error.msg} at line {error.lineno} column {error.colno}"
    if isinstance(error, UnicodeDecodeError):
        return "it is not UTF-8 text"
    if isinstance(error, OSError):
        return error.strerror or str(error)
    return str(error)


def _keep_aside(path: Path) -> Path | None:
    """Rename the file to <name>.broken-<UTC timestamp>[-n]; never replaces an existing one."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    for n in range(100):
        target = path.with_name(f"{path.name}.broken-{stamp}" + (f"-{n}" if n else ""))
        try:
            # os.link fails if the target exists (os.rename would silently replace it)
            os.link(path, target)
        except FileExistsError:
            continue
        except OSError:
            try:  # no hard links here (some file systems): rename after checking
                if target.exists():
                    continue
                os.rename(path, target)
                return target
            except OSError as e:
                log.warning("could not move %s aside: %s", path, e)
                return None
        try:
            os.unlink(path)
        except OSError as e:
            log.warning("kept a copy of %s as %s but could not remove it: %s", path, target, e)
            return None
        return target
    return None


def _flatten(data: dict[str, Any]) -> dict[str, Any]:
    """Group sections merged into one flat dict (a flat key, e.g. hand-added, wins)."""
    flat: dict[str, Any] = {}
    for group in GROUPS:
        section = data.get(group)
        if isinstance(section, dict):
            flat.update(section)
    flat.update({k: v for k, v in data.items() if k not in GROUPS})
    return flat


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# -- migrations: one step per version, append only ------------------------------------------


def _v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    """Version 1 was flat; version 2 groups the keys (GROUPS) and adds theme and font_size
    (their defaults apply). An empty models_dir meant the default folder: now None."""
    out = {k: v for k, v in data.items() if k != "schema_version"}
    if out.get("models_dir") == "":
        out["models_dir"] = None
    for group, names in GROUPS.items():
        section = {name: out.pop(name) for name in names if name in out}
        if section:
            out[group] = section
    out["schema_version"] = 2
    return out


def _v2_to_v3(data: dict[str, Any]) -> dict[str, Any]:
    """Version 3 adds the "api_server" group (the window's local API server: start at
    launch, host, port, key, CORS origins); its defaults apply (off, 127.0.0.1:8080)."""
    out = {k: v for k, v in data.items() if k != "schema_version"}
    out["schema_version"] = 3
    return out


MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {
    1: _v1_to_v2,
    2: _v2_to_v3,
}


# -- field checks: each returns the value to use or raises _Bad -------------------------------


class _Bad(ValueError):
    pass


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _opt_str(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise _Bad(f"is a {_type_name(value)}, not text")
    return value


def _path(value: Any) -> str | None:
    text = _opt_str(value)
    if text is not None and ("\0" in text or not text.strip()):
        return None  # empty: the default folder; NUL: no file system takes it
    return text


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise _Bad(f"is a {_type_name(value)}, not text")
    return value


def _number(value: Any, kind: type, lo: float, hi: float) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _Bad(f"is a {_type_name(value)}, not a number")
    if isinstance(value, float) and not math.isfinite(value):
        raise _Bad("is not a finite number")
    if kind is int and isinstance(value, float):
        if not value.is_integer():
            raise _Bad("is not a whole number")
        value = int(value)
    return kind(min(max(value, lo), hi))


def _int(lo: int, hi: int | Callable[[], int]) -> Callable[[Any], int]:
    return lambda v: int(_number(v, int, lo, hi() if callable(hi) else hi))


def _opt_int(lo: int, hi: int | Callable[[], int]) -> Callable[[Any], int | None]:
    check = _int(lo, hi)
    return lambda v: None if v is None else check(v)


def _float(lo: float, hi: float) -> Callable[[Any], float]:
    return lambda v: float(_number(v, float, lo, hi))


def _threads(value: Any) -> int | None:
    if value is None or value == 0:  # 0 was taken as "automatic" by version 1 too
        return None
    return _opt_int(1, max_threads)(value)


def _gpu_layers(value: Any) -> GpuLayers:
    if isinstance(value, str):  # "auto"; "all" and "12" by hand are taken too
        try:
            value = parse_gpu_layers(value)
        except ValueError as e:
            raise _Bad(f"is {value!r}, not auto, all or a number") from e
        if value == AUTO:
            return AUTO
    return _int(*GPU_LAYERS_RANGE)(value)


def _seed(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value < 0:
        return None  # -1 is llama.cpp's "random"
    return _opt_int(*SEED_RANGE)(value)


def _theme(value: Any) -> str:
    if value not in THEMES:
        raise _Bad(f"is not one of {', '.join(THEMES)}")
    return str(value)


SPECULATIVE_MODES = ("off", "lookup", "draft")


def _speculative(value: Any) -> str:
    if value not in SPECULATIVE_MODES:
        raise _Bad(f"is not one of {', '.join(SPECULATIVE_MODES)}")
    return str(value)


def _str_dict(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise _Bad(f"is a {_type_name(value)}, not an object")
    good = {k: v for k, v in value.items() if isinstance(k, str) and isinstance(v, str)}
    for k in value.keys() - good.keys():
        log.warning("settings: dropped the entry %r: its key or value is not text", k)
    return good


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _Bad(f"is a {_type_name(value)}, not true or false")
    return value


def _host(value: Any) -> str:
    text = _text(value).strip()
    if not text or any(c.isspace() or c in "/\0" for c in text):
        raise _Bad("is not a host name or address")
    return text


def _key(value: Any) -> str | None:
    text = _opt_str(value)
    if text is None:
        return None
    return text.strip() or None  # an empty key is no key


def _origins(value: Any) -> list[str]:
    if not isinstance(value, list):
        raise _Bad(f"is a {_type_name(value)}, not a list")
    good = [v.strip() for v in value if isinstance(v, str) and v.strip()]
    if len(good) != len(value):
        log.warning("settings: dropped api_cors_origins entries that are not text")
    return good


def _dict(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Bad(f"is a {_type_name(value)}, not an object")
    return dict(value)


_CHECKS: dict[str, Callable[[Any], Any]] = {
    "models_dir": _path,
    "default_model": _path,
    "last_model": _path,
    "context_limit": _int(*CONTEXT_RANGE),
    "n_gpu_layers": _gpu_layers,
    "n_threads": _threads,
    "kv_state_disk_mb": _int(*KV_DISK_MB_RANGE),
    "speculative": _speculative,
    "draft_models": _str_dict,
    "prefill_while_typing": _bool,
    "temperature": _float(*TEMPERATURE_RANGE),
    "top_p": _float(*TOP_P_RANGE),
    "top_k": _int(*TOP_K_RANGE),
    "min_p": _float(*MIN_P_RANGE),
    "repeat_penalty": _float(*REPEAT_PENALTY_RANGE),
    "max_tokens": _opt_int(*MAX_TOKENS_RANGE),
    "seed": _seed,
    "logprobs_top_n": _int(*TOP_N_RANGE),
    "tool_max_steps": _int(0, 50),
    "system_prompt": _text,
    "hf_token": _opt_str,
    "user_templates": _str_dict,
    "export_dir": _path,
    "theme": _theme,
    "font_size": _opt_int(*FONT_SIZE_RANGE),
    "api_autostart": _bool,
    "api_host": _host,
    "api_port": _int(*PORT_RANGE),
    "api_key": _key,
    "api_cors_origins": _origins,
    "extra": _dict,
}


def _same_type_as(default: Any) -> Callable[[Any], Any]:
    """For a field added without its own check: the default's JSON type, or anything if the
    default is None. (Give new fields a real check above, with a range where one applies.)"""
    if default is None:
        return lambda v: v
    if isinstance(default, bool):
        kind: tuple[type, ...] = (bool,)
    elif isinstance(default, (int, float)):
        return lambda v: _number(v, type(default), -math.inf, math.inf)
    else:
        kind = (type(default),)

    def check(value: Any) -> Any:
        if not isinstance(value, kind):
            raise _Bad(f"is a {_type_name(value)}, not a {kind[0].__name__}")
        return value

    return check


def field_checks() -> dict[str, Callable[[Any], Any]]:
    """A check for every saved field."""
    defaults = Settings()
    return {
        f.name: _CHECKS.get(f.name) or _same_type_as(getattr(defaults, f.name))
        for f in fields(Settings)
        if f.init
    }


def validated(settings: Settings) -> list[str]:
    """Clamp a Settings object changed in code (e.g. by a dialog) the way load() does;
    returns what was changed, one line each."""
    changed = []
    for name, check in field_checks().items():
        value = getattr(settings, name)
        try:
            good = check(value)
        except _Bad as e:
            good = getattr(Settings(), name)
            changed.append(f"{name}={_short(value)} {e}; using {good!r}")
        else:
            if good != value:
                changed.append(f"{name}={_short(value)} adjusted to {good!r}")
        setattr(settings, name, good)
    return changed
