"""The KV states kept on disk across restarts (engine.state_disk), for the settings
dialog: where they are, how much space they take, a new budget for the loaded model, and
deleting them all.

A new budget and deleting run as jobs on the inference thread, so no state is being
restored meanwhile; the loaded model's writer finishes the file it is writing and drops
the ones queued before (StateDisk.clear), and writers of models closed earlier finish
first (wait_for_writes). Without a model loaded the folder is emptied directly. Counting
the space is a stat per file, cheap enough for any thread.
"""

from __future__ import annotations

import logging
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chatapp.paths import app_paths

if TYPE_CHECKING:
    from chatapp.service.chat_service import ChatService

log = logging.getLogger(__name__)

MB = 1024 * 1024
STATE_FOLDER = "kv-states"  # in the cache folder: KV states kept across restarts


@dataclass(frozen=True)
class StatesUsage:
    states: int  # saved states (files)
    bytes: int  # their size, writes under way included


def state_folder() -> Path:
    """Where KV states are kept: <cache folder>/kv-states."""
    return app_paths().cache / STATE_FOLDER


def usage(folder: Path | None = None) -> StatesUsage:
    from chatapp.engine.state_disk import usage as folder_usage

    n, size = folder_usage(folder or state_folder())
    return StatesUsage(n, size)


def _loaded_disk(service: ChatService) -> Any:
    """On the inference thread: the loaded model's StateDisk, or None."""
    saved = getattr(service._host.backend, "saved_states", None)
    return saved() if saved is not None else None


def set_budget(service: ChatService, mb: int) -> Future[bool]:
    """Give the loaded model's states on disk a new budget now (settings.kv_state_disk_mb
    is what the next load uses). True when a loaded model keeps states and took it; a
    model loaded with the budget at 0 keeps none until it is loaded again."""

    def job() -> bool:
        disk = _loaded_disk(service)
        if disk is None:
            return False
        disk.set_budget(max(0, mb) * MB)
        log.info("KV states on disk: budget %d MB for the loaded model", mb)
        return True

    return service._infer.submit(job)


def clear(service: ChatService) -> Future[int]:
    """Delete every saved state (of every model); the states deleted. The loaded model's
    states in memory stay: they are written again when they leave memory or at quit."""

    def job() -> int:
        from chatapp.engine.state_disk import clear_folder, wait_for_writes

        wait_for_writes()  # models closed earlier: their last states land before the delete
        disk = _loaded_disk(service)
        if disk is not None:
            return int(disk.clear())
        return clear_folder(state_folder())

    return service._infer.submit(job)
