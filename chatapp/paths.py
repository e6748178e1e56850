"""The one place that knows where chatapp keeps its files.

platformdirs gives the per-user directories; CHATAPP_HOME, when set, puts every
directory under that one folder (tests point it at a tmp_path, portable installs at a USB stick).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs

APP_NAME = "chatapp"


@dataclass(frozen=True)
class AppPaths:
    data: Path
    config: Path
    cache: Path
    logs: Path

    @property
    def database(self) -> Path:
        return self.data / "chatapp.sqlite3"

    @property
    def settings(self) -> Path:
        return self.config / "settings.json"

    @property
    def models(self) -> Path:
        return self.data / "models"

    @property
    def log_file(self) -> Path:
        return self.logs / "chatapp.log"

    def ensure(self) -> AppPaths:
        for d in (self.data, self.config, self.cache, self.logs):
            d.mkdir(parents=True, exist_ok=True)
        return self


def app_paths() -> AppPaths:
    home = os.environ.get("CHATAPP_HOME")
    if home:
        root = Path(home).expanduser()
        return AppPaths(root / "data", root / "config", root / "cache", root / "logs")
    return AppPaths(
        Path(platformdirs.user_data_dir(APP_NAME, appauthor=False)),
        Path(platformdirs.user_config_dir(APP_NAME, appauthor=False)),
        Path(platformdirs.user_cache_dir(APP_NAME, appauthor=False)),
        Path(platformdirs.user_log_dir(APP_NAME, appauthor=False)),
    )
