"""KV states on disk: a conversation's evaluated prompt survives a restart.

When a conversation's KV state leaves the RAM cache (engine.llama.StateCache), and when
the engine closes, the state is written to the cache folder; the next process that opens
that conversation with the same model restores it instead of evaluating the prompt again.

A file is never trusted by its name. Each holds, in a JSON header, the key it was made
under (the model file's size, mtime and a sha256 of its first MiB, the context length,
the KV cache types, GPU layers, flash attention, llama-cpp-python's version and the
llama.cpp library file's size and mtime, and its system info); a state is used only when
every field equals the loading engine's. The file also holds the token ids the state was
computed for: the engine compares them with the new prompt token by token and uses only
the matching prefix, and only its exact part (engine.llama.GRID). A crc32 over the ids
and the state catches a cut or damaged file; such a file is deleted with a log line and
the prompt is evaluated as usual.

Writes happen on a thread of their own (the bytes were already copied out of llama.cpp
by the state cache): a temporary file, then os.replace. Closing the engine does not wait
for them (switching models stays quick); the writer is not a daemon thread, so the
process finishes them before it exits, and wait_for_writes() waits where that matters
(the service's shutdown). A budget in bytes bounds the
folder; the least recently used states go first (a restore touches its file). The budget
can change while the model is loaded (set_budget: a lower one trims the folder at once,
0 stops saving and restoring), and clear() empties the folder between two writes: a
write under way finishes first, and those queued before it are dropped.

Not compressed: zlib level 1 made a 1,500-token SmolLM2 state (34.6 MB) 10 % smaller in
2.2 s and took 0.41 s to inflate, while reading it back from disk takes a fraction of that
(docs/benchmarks.md, "KV states on disk").
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import logging
import mmap
import os
import queue
import struct
import threading
import time
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

MAGIC = b"CHATKV01"
SUFFIX = ".kvstate"
HEADER_BYTES = 1 << 20  # a model file's first MiB: its GGUF header and metadata
_LEN = struct.Struct("<I")
_MAX_HEADER = 1 << 20
_writers: set[threading.Thread] = set()  # closed disks' writers still writing
_writers_lock = threading.Lock()


def wait_for_writes() -> None:
    """Wait until every KV state queued by a closed StateDisk is written."""
    with _writers_lock:
        running = list(_writers)
    for t in running:
        t.join()


def file_fingerprint(path: str | Path, *, head: int = HEADER_BYTES) -> dict[str, Any]:
    """Size, mtime (ns) and sha256 of the first `head` bytes of a file."""
    st = os.stat(path)
    h = hashlib.sha256()
    with open(path, "rb") as f:
        h.update(f.read(head))
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "head_sha256": h.hexdigest()}


@dataclass
class DiskState:
    """A state read back from disk, checked against its crc."""

    input_ids: np.ndarray  # int32 token ids the state was computed for
    data: Any  # a ctypes uint8 array over the state's bytes
    n_bytes: int
    exact: int  # leading positions computed on the grid


def llama_key(llm: Any, model_path: str | Path, n_gpu_layers: int) -> dict[str, Any]:
    """What a saved KV state of this llama_cpp.Llama is only valid for."""
    import llama_cpp

    cp = llm.context_params
    lib = Path(llama_cpp.llama_cpp._lib._name)
    try:
        lib_stat: list[int] = [lib.stat().st_size, lib.stat().st_mtime_ns]
    except OSError:
        lib_stat = []
    return {
        "format": 1,
        "model": file_fingerprint(model_path),
        "n_ctx": int(llm.n_ctx()),
        "type_k": int(cp.type_k),
        "type_v": int(cp.type_v),
        "flash_attn": int(getattr(cp, "flash_attn_type", getattr(cp, "flash_attn", 0))),
        "swa_full": bool(getattr(cp, "swa_full", False)),
        "n_gpu_layers": int(n_gpu_layers),
        "llama_cpp_python": llama_cpp.__version__,
        "libllama": lib_stat,
        "system_info": llama_cpp.llama_print_system_info().decode("utf-8", "replace"),
    }


@dataclass(frozen=True)
class _Write:
    conversation: str
    path: Path
    header: bytes
    ids: bytes
    data: Any  # a buffer (the RAM cache's ctypes array: no second copy)
    n_bytes: int
    epoch: int  # StateDisk.clear() drops the writes queued before it


class StateDisk:
    """The folder of saved states of one loaded model (one key)."""

    def __init__(self, folder: str | Path, key: Mapping[str, Any], budget_bytes: int) -> None:
        self.folder = Path(folder)
        self.key = dict(key)
        self.budget = int(budget_bytes)
        self._key_json = json.dumps(self.key, sort_keys=True)
        self._fingerprint = hashlib.sha256(self._key_json.encode()).hexdigest()
        # what this process knows each file to hold (a state unchanged since it was read
        # or written is not written again)
        self._known: dict[str, tuple[int, int, str]] = {}
        self._queue: queue.Queue[_Write | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()  # held while a file is written or the folder trimmed
        self._epoch = 0  # clear() counts up: writes queued before it are not written
        self._closed = False
        self._forgotten: set[str] = set()  # deleted chats: a queued write is dropped

    # -- names --------------------------------------------------------------------------

    def path_for(self, conversation: str) -> Path:
        name = hashlib.sha256(f"{self._fingerprint}\0{conversation}".encode()).hexdigest()
        return self.folder / f"{name[:40]}{SUFFIX}"

    @staticmethod
    def _summary(ids: np.ndarray, exact: int) -> tuple[int, int, str]:
        return (len(ids), exact, hashlib.sha256(ids.astype("<i4").tobytes()).hexdigest())

    # -- writing ------------------------------------------------------------------------

    def save(
        self, conversation: str, input_ids: np.ndarray, data: Any, n_bytes: int, exact: int
    ) -> bool:
        """Queue a state for writing (off the caller's thread). False when it is not
        written: nothing in it, bigger than the budget, already on disk, or closed."""
        if self._closed or len(input_ids) == 0 or exact <= 0 or self.budget <= 0:
            return False
        if n_bytes + len(input_ids) * 4 > self.budget:
            return False
        summary = self._summary(input_ids, exact)
        if self._known.get(conversation) == summary:
            return False
        ids = np.ascontiguousarray(input_ids, dtype="<i4").tobytes()
        crc = zlib.crc32(memoryview(data).cast("B")[:n_bytes], zlib.crc32(ids))
        header = json.dumps(
            {
                "key": self.key,
                "conversation": conversation,
                "n_tokens": len(input_ids),
                "exact": int(exact),
                "state_bytes": int(n_bytes),
                "crc32": crc,
            },
            sort_keys=True,
        ).encode()
        self._known[conversation] = summary
        with self._lock:
            self._forgotten.discard(conversation)  # saved again: restored from the trash
        self._start()
        path = self.path_for(conversation)
        with self._lock:
            epoch = self._epoch
        self._queue.put(_Write(conversation, path, header, ids, data, int(n_bytes), epoch))
        return True

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                # not a daemon: the process writes what is queued before it exits
                self._thread = threading.Thread(target=self._run, name="kv-state-writer")
                self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                self._queue.task_done()
                with _writers_lock:
                    _writers.discard(threading.current_thread())
                return
            try:
                self._write(item)
            except OSError as e:  # a full or read-only disk: the state is simply not kept
                self._known.pop(item.conversation, None)
                log.warning("could not save a KV state to %s: %s", self.folder, e)
            except Exception:  # a bug: logged, the writer goes on
                self._known.pop(item.conversation, None)
                log.exception("saving a KV state failed")
            finally:
                self._queue.task_done()

    def _write(self, w: _Write) -> None:
        with self._write_lock:
            with self._lock:
                if w.conversation in self._forgotten or w.epoch != self._epoch:
                    return
            self._write_file(w)

    def _write_file(self, w: _Write) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = w.path.with_name(f"{w.path.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as f:
                f.write(MAGIC)
                f.write(_LEN.pack(len(w.header)))
                f.write(w.header)
                f.write(w.ids)
                f.write(memoryview(w.data).cast("B")[: w.n_bytes])
            os.replace(tmp, w.path)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        self._enforce_budget(keep=w.path)

    def _enforce_budget(self, keep: Path | None) -> None:
        """Delete the least recently used states until the folder fits the budget."""
        files = []
        for p in self.folder.glob(f"*{SUFFIX}"):
            with contextlib.suppress(OSError):
                st = p.stat()
                files.append((st.st_mtime_ns, st.st_size, p))
        total = sum(size for _, size, _ in files)
        for _, size, p in sorted(files):
            if total <= self.budget:
                break
            if p == keep:
                continue
            with contextlib.suppress(OSError):
                p.unlink()
                total -= size
                log.debug("KV state %s dropped (disk budget %d bytes)", p.name, self.budget)

    def set_budget(self, budget_bytes: int) -> None:
        """A new budget for the folder: a lower one deletes the least recently used states
        now; 0 saves and restores nothing more (the files stay until deleted)."""
        self.budget = max(0, int(budget_bytes))
        if self.budget > 0:
            with self._write_lock:
                self._enforce_budget(keep=None)

    def clear(self) -> int:
        """Delete every saved state in the folder (of any model): a write under way
        finishes first, writes queued before this call are dropped. Returns the files
        deleted."""
        with self._lock:
            self._epoch += 1
        self._known.clear()  # nothing is on disk any more: the next save writes
        with self._write_lock:
            return clear_folder(self.folder)

    def flush(self) -> None:
        """Wait until every queued state is written."""
        if self._thread is not None:
            self._queue.join()

    def close(self, *, wait: bool = True) -> None:
        """Take no more states; the writer writes what is queued, then stops.
        wait: until it has."""
        if not self._closed:
            self._closed = True
            if self._thread is not None:
                with _writers_lock:
                    _writers.add(self._thread)
                self._queue.put(None)
        if wait and self._thread is not None:
            self._thread.join()

    # -- reading ------------------------------------------------------------------------

    def forget(self, conversation: str) -> None:
        """Delete a conversation's state (the chat was deleted), a write queued included."""
        with self._lock:
            self._forgotten.add(conversation)
        self._known.pop(conversation, None)
        with contextlib.suppress(OSError):
            self.path_for(conversation).unlink()

    def discard(self, conversation: str, why: str) -> None:
        """Delete a conversation's saved state (llama.cpp refused it), with a log line."""
        self._known.pop(conversation, None)
        self._discard(self.path_for(conversation), why)

    def _discard(self, path: Path, why: str) -> None:
        log.warning("KV state %s discarded: %s", path.name, why)
        with contextlib.suppress(OSError):
            path.unlink()

    def _header(self, f: Any, path: Path, conversation: str) -> dict[str, Any] | None:
        head = _read_head(f)
        if isinstance(head, str):
            self._discard(path, head)
            return None
        try:
            for field in ("n_tokens", "exact", "state_bytes", "crc32"):
                head[field] = int(head[field])
        except (ValueError, KeyError, TypeError) as e:
            self._discard(path, f"damaged header ({e})")
            return None
        if json.dumps(head.get("key"), sort_keys=True) != self._key_json:
            # another model file, build or context: not ours to use (nor to delete: its
            # own engine may come back)
            log.info("KV state %s is for another model or build: not used", path.name)
            return None
        if head.get("conversation") != conversation:
            log.info("KV state %s belongs to another conversation: not used", path.name)
            return None
        return head

    def tokens(self, conversation: str) -> list[int] | None:
        """The token ids a saved state holds (header and ids only: cheap), or None
        (also with a budget of 0: states on disk are off)."""
        if self.budget <= 0:
            return None
        path = self.path_for(conversation)
        try:
            with open(path, "rb") as f:
                head = self._header(f, path, conversation)
                if head is None:
                    return None
                raw = f.read(head["n_tokens"] * 4)
        except FileNotFoundError:
            return None
        except OSError as e:
            log.warning("could not read KV state %s: %s", path.name, e)
            return None
        if len(raw) != head["n_tokens"] * 4:
            self._discard(path, "truncated")
            return None
        return np.frombuffer(raw, dtype="<i4").tolist()

    def load(self, conversation: str) -> DiskState | None:
        """The saved state of a conversation, whole and checked, or None.

        The file is mapped, not read: the crc runs over the page cache and llama.cpp
        copies the state straight from the mapping (a 61 MB state: about 25 ms, against
        70 ms read into memory first). The mapping is private (copy on write), and a
        state file is only ever replaced whole (written aside, then renamed), so the
        mapped file cannot shrink under it."""
        if self.budget <= 0:
            return None
        path = self.path_for(conversation)
        try:
            with open(path, "rb") as f:
                head = self._header(f, path, conversation)
                if head is None:
                    return None
                n_ids, n_bytes = head["n_tokens"], head["state_bytes"]
                start = f.tell()
                if os.fstat(f.fileno()).st_size != start + n_ids * 4 + n_bytes:
                    self._discard(path, "truncated or padded (size does not match its header)")
                    return None
                if n_bytes <= 0:
                    self._discard(path, "damaged header (no state)")
                    return None
                mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as e:
            log.warning("could not read KV state %s: %s", path.name, e)
            return None
        view = memoryview(mapped)
        ids = view[start : start + n_ids * 4]
        data = view[start + n_ids * 4 :]
        if zlib.crc32(data, zlib.crc32(ids)) != head["crc32"]:
            ids.release()
            data.release()
            view.release()
            mapped.close()
            self._discard(path, "damaged (crc32 differs)")
            return None
        with contextlib.suppress(OSError):
            os.utime(path)  # recently used: last out of the budget
        input_ids = np.frombuffer(ids, dtype="<i4").astype(np.int32)  # a copy: unmapped later
        ids.release()
        exact = max(0, min(head["exact"], n_ids))
        self._known[conversation] = self._summary(input_ids, exact)
        buf = (ctypes.c_uint8 * n_bytes).from_buffer(data)  # the mapping, not a copy
        return DiskState(input_ids, buf, n_bytes, exact)


def _read_head(f: Any) -> dict[str, Any] | str:
    """The JSON header of a state file open at its start, or why it is not one."""
    if f.read(len(MAGIC)) != MAGIC:
        return "not a KV state file"
    raw = f.read(_LEN.size)
    if len(raw) != _LEN.size:
        return "truncated"
    (n,) = _LEN.unpack(raw)
    if n > _MAX_HEADER:
        return "damaged header"
    try:
        head = json.loads(f.read(n).decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        return f"damaged header ({e})"
    return head if isinstance(head, dict) else "damaged header (not an object)"


def forget(folder: str | Path, conversations: Iterable[str]) -> int:
    """Delete every saved state (of any model) of these conversations: a deleted chat's
    tokens are its text, not to be left in the cache folder. Returns the files deleted."""
    wanted = set(conversations)
    gone = 0
    if not wanted:
        return 0
    for path in Path(folder).glob(f"*{SUFFIX}"):
        try:
            with path.open("rb") as f:
                head = _read_head(f)
        except OSError:
            continue  # unreadable: not one we can attribute (the budget removes it in time)
        if isinstance(head, dict) and head.get("conversation") in wanted:
            with contextlib.suppress(OSError):
                path.unlink()
                gone += 1
    return gone


def usage(folder: str | Path) -> tuple[int, int]:
    """(saved states, bytes) in the folder, temporary files of writes included: a stat
    per file, no file read."""
    n = total = 0
    for path in Path(folder).glob(f"*{SUFFIX}*"):
        with contextlib.suppress(OSError):
            total += path.stat().st_size
            n += path.name.endswith(SUFFIX)
    return n, total


STALE_TMP_S = 600  # another process's temporary file this old is a leftover, not a write


def clear_folder(folder: str | Path) -> int:
    """Delete the saved states in the folder, and the temporary files this process left
    or another one left long ago (one younger is another process's write under way).
    Call it where this process writes nothing (StateDisk.clear, or with no model
    loaded after wait_for_writes). Returns the states deleted."""
    gone = 0
    mine = f".{os.getpid()}.tmp"
    now = time.time()
    for path in Path(folder).glob(f"*{SUFFIX}*"):
        try:
            if path.name.endswith(SUFFIX):
                path.unlink()
                gone += 1
            elif path.name.endswith(".tmp") and (
                path.name.endswith(mine) or now - path.stat().st_mtime > STALE_TMP_S
            ):
                path.unlink()
        except FileNotFoundError:
            continue
        except OSError as e:  # open elsewhere (Windows), read-only: left, and said
            log.warning("could not delete the KV state %s: %s", path.name, e)
    if gone:
        log.info("deleted %d saved KV states from %s", gone, folder)
    return gone
