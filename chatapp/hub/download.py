"""Resumable, verified downloads of GGUF files from the hub's resolve URL.

Plain Python (urllib): HTTP Range requests against {endpoint}/{repo}/resolve/{rev}/{file},
so a download resumes from its partial file after a pause, a dropped connection or a crash
of the app (huggingface_hub no longer resumes across processes, and its Xet path cannot be
cancelled). Next to `<name>.gguf.part` a small JSON sidecar records the URL, size, sha256
and ETag; a mismatching sidecar means the partial is stale and is discarded.

The sha256 is computed while writing (the existing part is re-hashed on resume) and checked
against the hub's LFS sha256 before the file is renamed into the library; a mismatch moves
it to the quarantine folder. Cancel deletes the partial, pause keeps it.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import http.client
import json
import logging
import os
import shutil
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO

from chatapp.core import atomic
from chatapp.core.catalog import QUARANTINE, FileGroup, RemoteFile
from chatapp.core.errors import DiskFullError, NetworkError, UserError
from chatapp.hub import errors

log = logging.getLogger(__name__)

CHUNK = 1 << 20
SPACE_MARGIN = 16 * 1024 * 1024
CONNECT_TIMEOUT = 15.0  # to connect and to get the response's headers
READ_TIMEOUT = 30.0  # for any one read of the body
# A transfer slower than MIN_SPEED bytes/s over STALL_WINDOW seconds has stalled: it is
# dropped and retried from its offset (like curl's --speed-limit/--speed-time).
MIN_SPEED = 1024.0
STALL_WINDOW = 30.0
WATCH_INTERVAL = 0.1  # how often pause, cancel and the speed rule are checked mid-read


class DownloadStopped(Exception):
    """Not an error: the user paused or cancelled."""


class DownloadPaused(DownloadStopped):
    pass


class DownloadCancelled(DownloadStopped):
    pass


@dataclass
class Progress:
    """Bytes of the whole set (all shards), for one progress bar."""

    done: int
    total: int
    speed: float  # bytes per second, recent
    eta: float | None  # seconds left
    file: str  # the file being transferred


ProgressCallback = Callable[[Progress], None]


def check_filename(name: str) -> str:
    """Refuse names that could write outside the models folder; return the local base name.

    Repository files may sit in folders ("Q4_K_M/x.gguf"); the folder stays part of the
    URL, but "..", absolute paths, backslashes and drive letters are refused outright.
    """
    bad = (
        not name
        or name.startswith(("/", "~"))
        or "\\" in name
        or ":" in name
        or any(ord(c) < 32 for c in name)
        or any(part in ("", ".", "..") for part in name.split("/"))
    )
    if bad:
        raise errors.BadFilenameError(f"Refusing the file name {name!r}: it has path parts.")
    return name.rsplit("/", 1)[-1]


def local_dir(models_dir: Path, repo_id: str) -> Path:
    owner, _, name = repo_id.partition("/")
    check_filename(owner)
    check_filename(name)
    return models_dir / owner / name


def partial_paths(dest: Path) -> tuple[Path, Path]:
    return dest.with_name(dest.name + ".part"), dest.with_name(dest.name + ".part.json")


class Downloader:
    """Downloads one file or a split set into models_dir/<owner>/<repo>/.

    `pause` and `cancel` are threading.Events checked between chunks. `sleep` and
    `backoff` are parameters so tests can make retries instant.
    """

    def __init__(
        self,
        models_dir: Path,
        *,
        endpoint: str,
        token: str | None = None,
        retries: int = 5,
        backoff: float = 1.0,
        max_backoff: float = 60.0,
        timeout: float = CONNECT_TIMEOUT,
        read_timeout: float = READ_TIMEOUT,
        min_speed: float = MIN_SPEED,
        stall_window: float = STALL_WINDOW,
        chunk_size: int = CHUNK,
        sleep: Callable[[float], None] = time.sleep,
        progress_interval: float = 0.25,
    ) -> None:
        self.models_dir = models_dir
        self.endpoint = endpoint.rstrip("/")
        self.token = token
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.timeout = timeout
        self.read_timeout = read_timeout
        self.min_speed = min_speed
        self.stall_window = stall_window
        self.chunk_size = chunk_size
        self.sleep = sleep
        self.progress_interval = progress_interval
        self.pause = threading.Event()
        self.cancel = threading.Event()
        self._opener = urllib.request.build_opener(_NoAuthOnRedirect())

    # --- public --------------------------------------------------------------------------

    def url(self, repo_id: str, revision: str, filename: str) -> str:
        quoted = urllib.parse.quote(filename, safe="/")
        rev = urllib.parse.quote(revision, safe="")
        return f"{self.endpoint}/{repo_id}/resolve/{rev}/{quoted}"

    def download_group(
        self,
        repo_id: str,
        revision: str,
        group: FileGroup,
        on_progress: ProgressCallback | None = None,
    ) -> Path:
        """Download every file of the group as one set; return the path to open (shard 1)."""
        dest_dir = local_dir(self.models_dir, repo_id)
        names = [check_filename(f.name) for f in group.files]
        if not group.complete:
            raise UserError(f"{group.name} is missing shards on the hub; it cannot be loaded.")
        total = sum(f.size or 0 for f in group.files)
        dests = [dest_dir / n for n in names]
        self._check_space(dest_dir, group.files, dests)
        meter = _Meter(total, on_progress, self.progress_interval)
        have = {d for f, d in zip(group.files, dests) if d.exists() and _size(d) == f.size}
        meter.done = sum(_size(d) for d in have)
        try:
            for f, dest in zip(group.files, dests):
                if dest in have:
                    continue
                self._download_file(repo_id, revision, f, dest, meter, group)
        except DownloadCancelled:
            for d in dests:  # the set is the unit: no orphan shards
                for p in (d, *partial_paths(d)):
                    p.unlink(missing_ok=True)
            raise
        return dests[0]

    # --- one file ------------------------------------------------------------------------

    def _check_space(self, folder: Path, files: list[RemoteFile], dests: list[Path]) -> None:
        need = 0
        for f, d in zip(files, dests):
            if d.exists():
                continue
            need += max(0, (f.size or 0) - _size(partial_paths(d)[0]))
        probe = folder
        while not probe.exists():
            probe = probe.parent
        free = shutil.disk_usage(probe).free
        if need and free < need + SPACE_MARGIN:
            raise DiskFullError(
                f"Not enough disk space: {need / 1e9:.2f} GB needed, {free / 1e9:.2f} GB free.",
                hint="Free some space or choose another models folder in Settings.",
            )

    def _download_file(
        self,
        repo_id: str,
        revision: str,
        f: RemoteFile,
        dest: Path,
        meter: _Meter,
        group: FileGroup,
    ) -> None:
        dest.parent.mkdir(parents=True, exist_ok=True)
        part, sidecar = partial_paths(dest)
        url = self.url(repo_id, revision, f.name)
        meta = {
            "repo_id": repo_id,
            "revision": revision,
            "filename": f.name,
            "url": url,
            "size": f.size,
            "sha256": f.sha256,
            "group": [asdict(x) for x in group.files],
            "group_name": group.name,
        }
        old = _read_json(sidecar)
        if part.exists() and (
            not old or any(old.get(k) != meta[k] for k in ("url", "size", "sha256"))
        ):
            log.info("discarding stale partial %s", part)
            part.unlink()
        st = _State(part)
        meter.done += st.offset
        if f.size is not None and st.offset > f.size:
            meter.done -= st.offset
            st.reset()
        meta["etag"] = (old or {}).get("etag")
        atomic.write_text(sidecar, json.dumps(meta, indent=1))
        try:
            self._fetch(url, st, f, meter, meta, sidecar)
        except DownloadStopped:
            raise
        except BaseException:
            if not part.exists():  # refused before a byte came: nothing to resume
                sidecar.unlink(missing_ok=True)
            raise
        self._finish(part, sidecar, dest, f, st.hasher.hexdigest())

    def _fetch(
        self, url: str, st: _State, f: RemoteFile, meter: _Meter, meta: dict, sidecar: Path
    ) -> None:
        attempt = 0
        while f.size is None or st.offset < f.size:
            if self.cancel.is_set():
                raise DownloadCancelled()
            if self.pause.is_set():
                raise DownloadPaused()
            before = st.offset
            try:
                self._transfer(url, st, f, meter, meta, sidecar)
            except _Retry as r:
                attempt += 1
                if attempt > self.retries:
                    raise r.error from None
                delay = r.after if r.after is not None else self.backoff * 2 ** (attempt - 1)
                log.info("retry %d for %s in %.1fs: %s", attempt, f.name, delay, r.error)
                self._wait(min(delay, self.max_backoff))
                continue
            if st.offset > before:
                attempt = 0
            if f.size is None:
                break

    def _wait(self, seconds: float) -> None:
        """Sleep before a retry, in slices so pause and cancel stay responsive."""
        left = seconds
        while left > 0 and not (self.cancel.is_set() or self.pause.is_set()):
            step = min(0.2, left)
            self.sleep(step)
            left -= step

    def _finish(self, part: Path, sidecar: Path, dest: Path, f: RemoteFile, digest: str) -> None:
        if f.sha256 and digest != f.sha256.lower():
            qdir = self.models_dir / QUARANTINE
            qdir.mkdir(parents=True, exist_ok=True)
            qpath = qdir / f"{dest.name}.{digest[:12]}"
            os.replace(part, qpath)
            sidecar.unlink(missing_ok=True)
            raise errors.ChecksumError(
                f"{dest.name} arrived damaged (its sha256 does not match the hub's); "
                f"it was moved to {qpath} and will not be used.",
                hint="Download it again; if it keeps failing, report it to the repository.",
            )
        os.replace(part, dest)
        sidecar.unlink(missing_ok=True)
        log.info("downloaded %s (sha256 %s)", dest, digest)

    def _request(self, url: str, offset: int, etag: str | None) -> http.client.HTTPResponse:
        headers = {"User-Agent": "chatapp", "Accept-Encoding": "identity"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if offset:
            headers["Range"] = f"bytes={offset}-"
        req = urllib.request.Request(url, headers=headers)
        resp = self._open_cancellable(req)
        sock = _socket_of(resp)
        if sock is not None:
            sock.settimeout(self.read_timeout)
        return resp

    def _open_cancellable(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        """urlopen on a helper thread, so pause and cancel act while a server makes us wait
        for its answer (the connect timeout still bounds the wait itself)."""
        box: dict[str, object] = {}
        ready = threading.Event()
        lock = threading.Lock()

        def run() -> None:
            try:
                result: object = self._opener.open(req, timeout=self.timeout)
            except BaseException as e:  # noqa: BLE001 - handed to the waiting thread
                result = e
            with lock:
                if box.get("abandoned"):  # nobody waits any more
                    if hasattr(result, "close"):
                        result.close()
                    return
                box["result"] = result
            ready.set()

        threading.Thread(target=run, name="download-connect", daemon=True).start()
        while not ready.wait(WATCH_INTERVAL):
            if self.cancel.is_set() or self.pause.is_set():
                with lock:
                    if "result" not in box:
                        box["abandoned"] = True
                        raise DownloadCancelled() if self.cancel.is_set() else DownloadPaused()
                break
        ready.wait()
        result = box["result"]
        if isinstance(result, BaseException):
            raise result
        return result  # type: ignore[return-value]

    def _transfer(
        self, url: str, st: _State, f: RemoteFile, meter: _Meter, meta: dict, sidecar: Path
    ) -> None:
        """One GET from st.offset, appending to the partial; raises _Retry to try again."""
        repo_id = str(meta["repo_id"])
        offset = st.offset
        try:
            resp = self._request(url, offset, meta.get("etag"))
        except urllib.error.HTTPError as e:
            e.close()
            if e.code == 416:
                if f.size is None or offset < f.size:  # the partial is longer than the file
                    meter.done -= offset
                    st.reset()
                return
            after = _float(e.headers.get("Retry-After"))
            err = errors.for_status(
                e.code,
                repo_id,
                f.name,
                error_code=e.headers.get("X-Error-Code"),
                retry_after=after,
                endpoint=self.endpoint,
            )
            if e.code == 429 or e.code >= 500:
                raise _Retry(err, after) from None
            raise err from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
            raise _Retry(self._offline_error(e), None) from None
        with resp:
            if offset and resp.status == 200:
                log.info("server ignored Range for %s; starting over", f.name)
                meter.done -= offset
                st.reset()
            elif offset and _content_range_start(resp.headers.get("Content-Range")) != offset:
                log.info("bad Content-Range for %s; starting over", f.name)
                meter.done -= offset
                st.reset()
                return
            etag = resp.headers.get("X-Linked-Etag") or resp.headers.get("ETag")
            if etag and etag != meta.get("etag"):
                if meta.get("etag"):
                    # The revision is pinned to a commit, so the bytes cannot change; the
                    # sha256 check at the end is the guard. CDNs may label the same bytes
                    # differently, and restarting on every label change could never finish.
                    log.info("ETag of %s changed (%s -> %s)", f.name, meta["etag"], etag)
                meta["etag"] = etag
                atomic.write_text(sidecar, json.dumps(meta, indent=1))
            start = st.offset
            watch = _Watchdog(resp, self, f.name)
            # Unbuffered: what write() returned is on disk, and a full disk fails here, not
            # later in close().
            with watch, open(st.part, "ab" if st.offset else "wb", buffering=0) as out:
                while True:
                    if self.cancel.is_set():
                        raise DownloadCancelled()
                    if self.pause.is_set():
                        raise DownloadPaused()
                    try:
                        chunk = resp.read1(self.chunk_size)
                    except (OSError, http.client.HTTPException, ValueError) as e:
                        watch.check()
                        raise _Retry(self._offline_error(e), None) from None
                    watch.check()
                    if not chunk:
                        break
                    watch.got(len(chunk))
                    try:
                        view = memoryview(chunk)
                        while view:
                            view = view[out.write(view) or 0 :]
                    except OSError as e:
                        if e.errno in (errno.ENOSPC, errno.EDQUOT):
                            raise DiskFullError(
                                f"The disk filled up while downloading {f.name}.",
                                hint="Free some space and resume: the partial file is kept.",
                            ) from e
                        raise UserError(f"Could not write {st.part}: {e.strerror or e}") from e
                    st.hasher.update(chunk)
                    st.offset += len(chunk)
                    meter.add(len(chunk), f.name)
            if f.size is not None and st.offset < f.size:
                got = st.offset - start
                raise _Retry(
                    NetworkError(
                        f"The connection dropped while downloading {f.name} "
                        f"({got} bytes in this attempt).",
                        hint="Check the network and resume: the partial file is kept.",
                    ),
                    None,
                )

    def _offline_error(self, e: BaseException) -> NetworkError:
        if isinstance(e, urllib.error.URLError) and isinstance(
            e.reason, (socket.gaierror, ConnectionRefusedError)
        ):
            return errors.offline()
        return NetworkError(
            f"The connection to Hugging Face failed ({e}).",
            hint="Check the network and resume: the partial file is kept.",
        )


def _socket_of(resp: object) -> socket.socket | None:
    """The socket under an http.client response (the watchdog shuts it to end a read)."""
    raw = getattr(getattr(resp, "fp", None), "raw", None)
    sock = getattr(raw, "_sock", None)
    return sock if isinstance(sock, socket.socket) else None


class _Watchdog:
    """Ends a blocked read within WATCH_INTERVAL when the user pauses or cancels, or when
    the transfer has stalled (below min_speed over stall_window), by shutting the socket.
    `check()` then raises what happened instead of a bare connection error."""

    def __init__(self, resp: object, dl: Downloader, name: str) -> None:
        self.sock = _socket_of(resp)
        self.dl = dl
        self.name = name
        self.stalled = False
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._history: list[tuple[float, int]] = [(time.monotonic(), 0)]
        self._total = 0
        self._thread = threading.Thread(target=self._run, name="download-watchdog", daemon=True)

    def __enter__(self) -> None:
        self._thread.start()

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()

    def got(self, n: int) -> None:
        with self._lock:
            self._total += n
            now = time.monotonic()
            self._history.append((now, self._total))
            # keep one point at least stall_window old, to measure the speed over it
            self._trim(now)

    def _trim(self, now: float) -> None:
        while len(self._history) > 1 and now - self._history[1][0] >= self.dl.stall_window:
            self._history.pop(0)

    def _is_stalled(self) -> bool:
        with self._lock:
            now = time.monotonic()
            self._trim(now)
            t0, n0 = self._history[0]
            if now - t0 < self.dl.stall_window:
                return False
            # bytes over the last stall_window (the oldest point at or before its start)
            return (self._total - n0) / (now - t0) < self.dl.min_speed

    def _run(self) -> None:
        while not self._done.wait(WATCH_INTERVAL):
            stop = self.dl.cancel.is_set() or self.dl.pause.is_set()
            if not stop and self._is_stalled():
                self.stalled = True
                log.info("download of %s stalled (below %.0f B/s)", self.name, self.dl.min_speed)
                stop = True
            if stop:
                if self.sock is not None:
                    with contextlib.suppress(OSError):
                        self.sock.shutdown(socket.SHUT_RDWR)
                return

    def check(self) -> None:
        if self.dl.cancel.is_set():
            raise DownloadCancelled()
        if self.dl.pause.is_set():
            raise DownloadPaused()
        if self.stalled:
            raise _Retry(
                NetworkError(
                    f"The download of {self.name} stalled (less than "
                    f"{self.dl.min_speed / 1024:.0f} KB/s for {self.dl.stall_window:.0f} s).",
                    hint="Check the network and resume: the partial file is kept.",
                ),
                None,
            )


class _Retry(Exception):
    def __init__(self, error: UserError, after: float | None) -> None:
        super().__init__(str(error))
        self.error = error
        self.after = after


class _Meter:
    """Bytes done over the whole set, speed over the last seconds, throttled callbacks."""

    def __init__(self, total: int, cb: ProgressCallback | None, interval: float = 0.25) -> None:
        self.total = total
        self.done = 0
        self.cb = cb
        self.interval = interval
        self._last = 0.0
        self._window: list[tuple[float, int]] = []

    def add(self, n: int, file: str) -> None:
        self.done += n
        now = time.monotonic()
        self._window.append((now, self.done))
        while len(self._window) > 2 and now - self._window[0][0] > 5.0:
            self._window.pop(0)
        if self.cb and (now - self._last >= self.interval or self.done >= self.total):
            self._last = now
            t0, d0 = self._window[0]
            speed = (self.done - d0) / (now - t0) if now > t0 else 0.0
            left = max(0, self.total - self.done)
            eta = left / speed if speed > 0 else None
            self.cb(Progress(self.done, self.total, speed, eta, file))


class _NoAuthOnRedirect(urllib.request.HTTPRedirectHandler):
    """Follow the hub's redirect to its CDN without sending the token to another host."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: http.client.HTTPMessage,
        newurl: str,
    ) -> urllib.request.Request | None:
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if (
            new is not None
            and urllib.parse.urlsplit(newurl).netloc != urllib.parse.urlsplit(req.full_url).netloc
        ):
            new.remove_header("Authorization")
        return new


class _State:
    """The partial file, how much of it there is, and the sha256 of those bytes."""

    def __init__(self, part: Path) -> None:
        self.part = part
        self.hasher = hashlib.sha256()
        self.offset = _hash_file(part, self.hasher) if part.exists() else 0

    def reset(self) -> None:
        self.part.unlink(missing_ok=True)
        self.hasher = hashlib.sha256()
        self.offset = 0


def _hash_file(path: Path, hasher: hashlib._Hash) -> int:
    n = 0
    with open(path, "rb") as f:
        while True:
            b = f.read(CHUNK * 4)
            if not b:
                return n
            hasher.update(b)
            n += len(b)


def _content_range_start(value: str | None) -> int | None:
    # "bytes 100-199/200"
    if not value or not value.startswith("bytes "):
        return None
    try:
        return int(value[6:].split("-", 1)[0])
    except ValueError:
        return None


def _size(p: Path) -> int:
    try:
        return p.stat().st_size
    except OSError:
        return 0


def _float(v: object) -> float | None:
    try:
        return float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _read_json(p: Path) -> dict | None:
    try:
        raw = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return raw if isinstance(raw, dict) else None


def pending(models_dir: Path) -> list[dict]:
    """Sidecars of unfinished downloads under models_dir: what can be resumed."""
    out = []
    for sidecar in sorted(models_dir.glob("*/*/*.part.json")):
        meta = _read_json(sidecar)
        if meta and meta.get("repo_id") and meta.get("group"):
            meta["part_bytes"] = _size(sidecar.with_name(sidecar.name[: -len(".json")]))
            out.append(meta)
    return out
