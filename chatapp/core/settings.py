"""User settings: a typed dataclass saved as versioned JSON (never pickle).

Unknown keys from a newer version are kept in `extra` so saving does not drop them.
Window geometry is not here: that is QSettings' job.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from chatapp.core import atomic
from chatapp.core.engine import SamplingParams

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1


@dataclass
class Settings:
    models_dir: str | None = None  # None: <data dir>/models
    default_model: str | None = None  # for new chats; None: the last model used
    last_model: str | None = None
    context_limit: int = 4096  # n_ctx = min(trained context, this)
    n_gpu_layers: int = 0  # -1: offload everything (GPU builds)
    n_threads: int | None = None  # None: physical cores
    temperature: float = 0.7
    top_p: float = 0.95
    top_k: int = 40
    min_p: float = 0.05
    repeat_penalty: float = 1.1
    max_tokens: int | None = None
    seed: int | None = None  # None: a new random seed for every answer
    system_prompt: str = ""
    hf_token: str | None = None
    user_templates: dict[str, str] = field(default_factory=dict)  # model file name -> Jinja
    export_dir: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # other modules' keys

    def sampling(self, **overrides: Any) -> SamplingParams:
        """The sampling settings, with any given (non-None) overrides."""
        values = {
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

    def save(self, path: Path) -> None:
        data = {"schema_version": SCHEMA_VERSION, **asdict(self)}
        atomic.write_text(path, json.dumps(data, indent=2, ensure_ascii=False))

    @classmethod
    def load(cls, path: Path) -> Settings:
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls()
        except (OSError, ValueError) as e:
            log.warning("settings file %s unreadable (%s); using defaults", path, e)
            return cls()
        if not isinstance(raw, dict):
            return cls()
        raw.pop("schema_version", None)
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in raw.items() if k in known}
        extra = dict(kwargs.get("extra") or {})
        extra.update({k: v for k, v in raw.items() if k not in known})
        kwargs["extra"] = extra
        try:
            return cls(**kwargs)
        except TypeError as e:
            log.warning("settings file %s has bad values (%s); using defaults", path, e)
            return cls()
