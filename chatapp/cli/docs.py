"""`chatapp docs`: knowledge collections (add, list, remove, search). No Qt.

    chatapp docs add NAME PATH... [--embedding-model PATH]
    chatapp docs list
    chatapp docs remove NAME
    chatapp docs search NAME "query" [--json] [-k N]

`add` creates the collection (or adds paths to it) and indexes it: only what changed is
read again, what vanished is removed, and each file that cannot be indexed is a line of
the report. Ctrl-C stops between files; what was indexed stays.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from chatapp.core.docindex import VECTOR_STORE, DocIndex, Report
from chatapp.core.errors import UserError
from chatapp.paths import app_paths
from chatapp.service.documents import (
    Embedder,
    EmbedderCache,
    Indexer,
    Progress,
    index_path,
    search,
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "docs",
        help="document collections to chat with (add, list, remove, search)",
        description="Collections of folders and files, indexed for questions "
        "(chatapp chat --docs NAME). Keyword search always; vector search when the "
        "collection has an embedding model (a GGUF file).",
    )
    dsub = p.add_subparsers(dest="docs_command", metavar="ACTION", required=True)
    a = dsub.add_parser("add", help="create or update a collection and index it")
    a.add_argument("name")
    a.add_argument("paths", nargs="*", metavar="PATH", help="folders and files (none: re-index)")
    a.add_argument("--embedding-model", metavar="PATH", help="a GGUF embedding model")
    a.set_defaults(func=add)
    ls = dsub.add_parser("list", help="the collections, their size and their model")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=list_collections)
    r = dsub.add_parser("remove", help="forget a collection (the files stay)")
    r.add_argument("name")
    r.set_defaults(func=remove)
    s = dsub.add_parser("search", help="the passages that best match a question")
    s.add_argument("name")
    s.add_argument("query", nargs="+")
    s.add_argument("-k", "--limit", type=int, default=5, help="how many passages (default 5)")
    s.add_argument("--json", action="store_true", help="JSON with scores and both ranks")
    s.set_defaults(func=search_collection)


def _index_file() -> Path:
    return index_path(app_paths().ensure().data)


def load_embedder(path: str) -> Embedder:
    from chatapp.service.machine import embedding_model

    return embedding_model(path)


def add(args: argparse.Namespace) -> int:
    paths = []
    for given in args.paths:
        p = Path(given).expanduser()
        if not p.exists() and not p.is_symlink():
            raise UserError(f"No such file or folder: {given}")
        paths.append(str(p.absolute()))
    model = None
    if args.embedding_model:
        m = Path(args.embedding_model).expanduser()
        if not m.is_file():
            raise UserError(f"No such embedding model file: {args.embedding_model}")
        model = str(m.resolve())
    with DocIndex(_index_file()) as index:
        existing = index.collection(args.name)
        if existing is None and not paths:
            raise UserError(f"No collection named {args.name!r}: give the folders or files.")
        collection = index.ensure_collection(args.name, paths, model)
    if not collection.embedding_model:
        print(
            "chatapp: note: no --embedding-model: keyword search only for this collection.",
            file=sys.stderr,
        )
    tty = sys.stderr.isatty()
    last = [0.0]

    def progress(p: Progress) -> None:
        if tty and (time.monotonic() - last[0] > 0.1 or p.done == p.total):
            last[0] = time.monotonic()
            width = 30
            filled = int(width * p.done / max(p.total, 1))
            bar = "#" * filled + "-" * (width - filled)
            sys.stderr.write(f"\r[{bar}] {p.done}/{p.total} files  (Ctrl-C stops)")
            sys.stderr.flush()

    model_path = collection.embedding_model
    indexer = Indexer(
        _index_file(),
        args.name,
        lambda: load_embedder(model_path) if model_path else None,
        on_progress=progress,
    ).start()
    interrupted = False
    while True:
        try:
            result = indexer.join(0.2)
            if not indexer._thread.is_alive():
                break
        except KeyboardInterrupt:
            interrupted = True
            indexer.cancel()
    if tty:
        sys.stderr.write("\n")
    if isinstance(result, Exception):
        raise result
    assert isinstance(result, Report)
    print(f"{args.name}: {result.summary()}")
    for line in result.problems:
        print(f"  not indexed: {line}")
    return 130 if interrupted else 0


def list_collections(args: argparse.Namespace) -> int:
    with DocIndex(_index_file()) as index:
        collections = index.collections()
    if args.json:
        out = [
            {
                "name": c.name,
                "paths": c.paths,
                "files": c.files,
                "chunks": c.chunks,
                "embedding_model": c.embedding_model,
                "dimensions": c.dim,
                "vector_store": VECTOR_STORE if c.embedding_model else "",
                "indexed_at": c.indexed_at,
                "report": c.report,
            }
            for c in collections
        ]
        print(json.dumps(out, indent=2))
        return 0
    if not collections:
        print("No collections. Add one: chatapp docs add NAME FOLDER...", file=sys.stderr)
        return 0
    print(f"vector store: {VECTOR_STORE}")
    for c in collections:
        when = (
            datetime.fromtimestamp(c.indexed_at).strftime("%Y-%m-%d %H:%M")
            if c.indexed_at
            else "never"
        )
        model = Path(c.embedding_model).name if c.embedding_model else "keyword only"
        print(f"{c.name}  {c.files} files  {c.chunks} chunks  {model}  indexed {when}")
        for p in c.paths:
            print(f"    {p}")
        for line in c.report:
            print(f"    not indexed: {line}")
    return 0


def remove(args: argparse.Namespace) -> int:
    with DocIndex(_index_file()) as index:
        if not index.remove_collection(args.name):
            raise UserError(f"No collection named {args.name!r}.")
    print(f"Removed the collection {args.name!r} (its files are untouched).")
    return 0


def search_collection(args: argparse.Namespace) -> int:
    query = " ".join(args.query)
    cache = EmbedderCache(load_embedder)
    try:
        with DocIndex(_index_file()) as index:
            collection = index.collection(args.name)
            if collection is None:
                raise UserError(f"No collection named {args.name!r}.")
            hits = search(
                index, args.name, query, cache(collection.embedding_model), max(args.limit, 1)
            )
    finally:
        cache.close()
    if args.json:
        out: dict[str, Any] = {
            "collection": args.name,
            "query": query,
            "vector_store": VECTOR_STORE if collection.embedding_model else "",
            "passages": [dict(h.as_dict(), rank=i) for i, h in enumerate(hits, 1)],
        }
        print(json.dumps(out, indent=2, ensure_ascii=False))
        return 0 if hits else 1
    if not hits:
        print(f"Nothing in {args.name!r} matches {query!r}.", file=sys.stderr)
        return 1
    for i, h in enumerate(hits, 1):
        kw = f"#{h.keyword_rank}" if h.keyword_rank else "-"
        vec = f"#{h.vector_rank}" if h.vector_rank else "-"
        print(f"{i}. {h.path}  ({h.where})  score {h.score:.4f}  keyword {kw}  vector {vec}")
        snippet = " ".join(h.text.split())
        print(f"    {snippet[:240]}{'…' if len(snippet) > 240 else ''}")
    return 0
