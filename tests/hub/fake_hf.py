"""A fake Hugging Face hub: a real HTTP server on 127.0.0.1 speaking the endpoints
huggingface_hub's HfApi and chatapp's downloader use.

- GET /api/models?search=&filter=&sort=&limit=        model search
- GET /api/models/{repo}[/revision/{rev}]?blobs=true   model info, siblings with LFS sha256
- GET /api/models/{repo}/tree/{rev}[/{path}]           file tree
- HEAD/GET /{repo}/resolve/{rev}/{file}                file bytes, Range, X-Repo-Commit,
                                                       X-Linked-Size, X-Linked-Etag, ETag

It counts the bytes it serves per file and can be told to misbehave: cut a transfer after
N bytes, corrupt a byte, ignore Range, answer with an error status, serve slowly, never
answer at all (`hang`), or send one byte every few seconds (`trickle`).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@dataclass
class Blob:
    """A file's content: bytes in memory, or a slice of a real file on disk."""

    path: Path | None = None
    data: bytes | None = None
    start: int = 0
    length: int | None = None
    _sha: str | None = None

    @property
    def size(self) -> int:
        if self.data is not None:
            return len(self.data)
        assert self.path is not None
        return self.length if self.length is not None else self.path.stat().st_size - self.start

    @property
    def sha256(self) -> str:
        if self._sha is None:
            h = hashlib.sha256()
            for chunk in self.read(0, self.size):
                h.update(chunk)
            self._sha = h.hexdigest()
        return self._sha

    def read(self, start: int, end: int, chunk: int = 1 << 20):  # end exclusive
        if self.data is not None:
            for i in range(start, end, chunk):
                yield self.data[i : min(end, i + chunk)]
            return
        assert self.path is not None
        with open(self.path, "rb") as f:
            f.seek(self.start + start)
            pos = start
            while pos < end:
                b = f.read(min(chunk, end - pos))
                if not b:
                    return
                yield b
                pos += len(b)


@dataclass
class Repo:
    files: dict[str, Blob]
    downloads: int = 0
    likes: int = 0
    gated: bool = False  # resolve answers 403 GatedRepo
    private: bool = False  # everything answers 401 without a token
    last_modified: str = "2025-01-01T00:00:00.000Z"
    license: str = "apache-2.0"


@dataclass
class Faults:
    cut_after: dict[str, int] = field(default_factory=dict)  # one-shot: drop after N bytes
    corrupt: set[str] = field(default_factory=set)  # flip the first byte served of the file
    ignore_range: set[str] = field(default_factory=set)
    statuses: dict[str, list[int]] = field(default_factory=dict)  # queued one-shot statuses
    retry_after: str = "0"
    delay: dict[str, float] = field(default_factory=dict)  # seconds per chunk
    chunk: int = 1 << 16
    # never answer a request whose path starts with one of these (until the hub stops)
    hang: set[str] = field(default_factory=set)
    # send the headers, then one byte every N seconds
    trickle: dict[str, float] = field(default_factory=dict)


@dataclass
class Transfer:
    name: str
    range: str | None
    sent: int = 0


class FakeHub:
    def __init__(self) -> None:
        self.repos: dict[str, Repo] = {}
        self.faults = Faults()
        self.served: dict[str, int] = {}  # file name -> bytes sent
        self.requests: list[tuple[str, str, str | None]] = []  # method, path, Range
        self.transfers: list[Transfer] = []  # every GET of a file, with the bytes it sent
        self.lock = threading.Lock()
        self.stopping = threading.Event()  # ends hanging and trickling answers
        self.release = threading.Event()  # ends hanging answers (the connection just closes)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeHub:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    def add(self, repo_id: str, files: dict[str, Blob], **kw: object) -> Repo:
        repo = Repo(files, **kw)  # type: ignore[arg-type]
        self.repos[repo_id] = repo
        return repo

    def bytes_served(self, name: str) -> int:
        with self.lock:
            return self.served.get(name, 0)


def _handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        # --- helpers ---------------------------------------------------------------------
        def _json(self, obj: object, status: int = 200, headers: dict | None = None) -> None:
            body = json.dumps(obj).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _error(self, status: int, code: str, message: str) -> None:
            headers = {"X-Error-Code": code, "X-Error-Message": message}
            if status == 429:
                headers["Retry-After"] = hub.faults.retry_after
            self._json({"error": message}, status, headers)

        def _auth_ok(self, repo: Repo) -> bool:
            return not repo.private or self.headers.get("Authorization", "").startswith("Bearer ")

        def do_HEAD(self) -> None:
            self.do_GET()

        def do_GET(self) -> None:
            with hub.lock:
                hub.requests.append((self.command, self.path, self.headers.get("Range")))
            url = urllib.parse.urlsplit(self.path)
            path = urllib.parse.unquote(url.path)
            if any(path.startswith(p) for p in hub.faults.hang):
                hub.release.wait()  # a server that accepted the connection, then nothing
                self.close_connection = True
                return None
            query = dict(urllib.parse.parse_qsl(url.query))
            if path == "/api/models":
                return self._search(query)
            if path.startswith("/api/models/"):
                return self._model_api(path[len("/api/models/") :])
            parts = path.lstrip("/").split("/")
            if len(parts) >= 5 and parts[2] == "resolve":
                return self._resolve("/".join(parts[:2]), parts[3], "/".join(parts[4:]))
            self._error(404, "EntryNotFound", "Not found")
            return None

        def _search(self, q: dict[str, str]) -> None:
            words = q.get("search", "").lower()
            items = [
                (rid, r) for rid, r in hub.repos.items() if words in rid.lower() and not r.private
            ]
            sort = q.get("sort", "downloads")
            key = {"likes": lambda t: t[1].likes, "lastModified": lambda t: t[1].last_modified}
            items.sort(key=key.get(sort, lambda t: t[1].downloads), reverse=True)
            limit = int(q.get("limit", "1000"))
            self._json([_summary(rid, r) for rid, r in items[:limit]])

        def _model_api(self, rest: str) -> None:
            parts = rest.split("/")
            repo_id = "/".join(parts[:2])
            repo = hub.repos.get(repo_id)
            if repo is None or not self._auth_ok(repo):
                status = 401 if repo is None or repo.private else 404
                return self._error(status, "RepoNotFound", "Repository not found")
            tail = parts[2:]
            if not tail or tail[0] == "revision":
                if tail and tail[1:2] not in ([COMMIT], ["main"]):
                    return self._error(404, "RevisionNotFound", "Invalid rev id")
                info = _summary(repo_id, repo)
                info["siblings"] = [
                    {
                        "rfilename": name,
                        "size": blob.size,
                        "blobId": blob.sha256[:40],
                        "lfs": {"size": blob.size, "sha256": blob.sha256, "pointerSize": 134},
                    }
                    for name, blob in repo.files.items()
                ]
                info["cardData"] = {"license": repo.license}
                return self._json(info)
            if tail[0] == "tree":
                prefix = "/".join(tail[2:])
                entries = [
                    {
                        "type": "file",
                        "oid": blob.sha256[:40],
                        "size": blob.size,
                        "path": name,
                        "lfs": {"oid": blob.sha256, "size": blob.size, "pointerSize": 134},
                    }
                    for name, blob in repo.files.items()
                    if name.startswith(prefix)
                ]
                return self._json(entries)
            self._error(404, "EntryNotFound", "Not found")
            return None

        def _resolve(self, repo_id: str, rev: str, name: str) -> None:
            repo = hub.repos.get(repo_id)
            if repo is None:
                return self._error(401, "RepoNotFound", "Repository not found")
            if not self._auth_ok(repo):
                return self._error(401, "RepoNotFound", "Invalid credentials")
            if repo.gated:
                return self._error(
                    403,
                    "GatedRepo",
                    f"Access to model {repo_id} is restricted and you are not in the"
                    " authorized list.",
                )
            queued = hub.faults.statuses.get(name)
            if queued:
                status = queued.pop(0)
                return self._error(status, "", f"fault {status}")
            blob = repo.files.get(name)
            if blob is None or rev not in (COMMIT, "main"):
                return self._error(404, "EntryNotFound", f"{name} does not exist")
            size = blob.size
            start, end = 0, size
            rng = self.headers.get("Range")
            status = 200
            if rng and name not in hub.faults.ignore_range:
                spec = rng.removeprefix("bytes=")
                a, _, b = spec.partition("-")
                start = int(a)
                end = int(b) + 1 if b else size
                if start >= size:
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{size}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return None
                status = 206
            self.send_response(status)
            self.send_header("Content-Length", str(end - start))
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("ETag", f'"{blob.sha256}"')
            self.send_header("X-Linked-Etag", f'"{blob.sha256}"')
            self.send_header("X-Linked-Size", str(size))
            self.send_header("X-Repo-Commit", COMMIT)
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{end - 1}/{size}")
            self.end_headers()
            if self.command == "HEAD":
                return None
            if name in hub.faults.trickle:
                return self._trickle(blob, start, end, name, hub.faults.trickle[name])
            cut = hub.faults.cut_after.pop(name, None)
            corrupt = name in hub.faults.corrupt
            delay = hub.faults.delay.get(name, 0.0)
            sent = 0
            transfer = Transfer(name, self.headers.get("Range"))
            with hub.lock:
                hub.transfers.append(transfer)
            try:
                for chunk in blob.read(start, end, hub.faults.chunk):
                    if corrupt and sent == 0 and start == 0:
                        chunk = bytes([chunk[0] ^ 0xFF]) + chunk[1:]
                    if cut is not None and sent + len(chunk) > cut:
                        chunk = chunk[: cut - sent]
                        self.wfile.write(chunk)
                        self._count(name, len(chunk), transfer)
                        self.close_connection = True
                        self.wfile.flush()
                        self.connection.shutdown(2)
                        return None
                    self.wfile.write(chunk)
                    self._count(name, len(chunk), transfer)
                    sent += len(chunk)
                    if delay:
                        time.sleep(delay)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

        def _trickle(self, blob: Blob, start: int, end: int, name: str, every: float) -> None:
            transfer = Transfer(name, self.headers.get("Range"))
            with hub.lock:
                hub.transfers.append(transfer)
            data = b"".join(blob.read(start, end))
            try:
                for i in range(len(data)):
                    if hub.stopping.wait(every):
                        break
                    self.wfile.write(data[i : i + 1])
                    self.wfile.flush()
                    self._count(name, 1, transfer)
            except (BrokenPipeError, ConnectionResetError):
                pass
            self.close_connection = True

        def _count(self, name: str, n: int, transfer: Transfer) -> None:
            with hub.lock:
                transfer.sent += n
                hub.served[name] = hub.served.get(name, 0) + n

    return Handler


def _summary(repo_id: str, repo: Repo) -> dict:
    return {
        "_id": hashlib.md5(repo_id.encode()).hexdigest()[:24],
        "id": repo_id,
        "modelId": repo_id,
        "author": repo_id.split("/")[0],
        "sha": COMMIT,
        "downloads": repo.downloads,
        "likes": repo.likes,
        "lastModified": repo.last_modified,
        "createdAt": repo.last_modified,
        "private": repo.private,
        "gated": "manual" if repo.gated else False,
        "disabled": False,
        "tags": ["gguf"],
        "library_name": "gguf",
    }


def main() -> None:  # pragma: no cover - manual use: python -m tests.hub.fake_hf FILE
    import sys

    hub = FakeHub()
    for arg in sys.argv[1:]:
        p = Path(arg)
        hub.add(f"test/{p.stem}", {p.name: Blob(path=p)})
    print(hub.url, flush=True)
    hub.server.serve_forever()


if __name__ == "__main__":
    main()
