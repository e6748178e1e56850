"""`chatapp models search|list|download|import|remove|info`: the model manager, headless."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any

from chatapp.cli.common import shown
from chatapp.core import catalog
from chatapp.core.catalog import sysinfo
from chatapp.core.errors import UserError
from chatapp.core.settings import Settings
from chatapp.paths import app_paths

log = logging.getLogger(__name__)


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("models", help="find, download and manage GGUF models")
    sub = p.add_subparsers(dest="models_command", metavar="ACTION", required=True)

    s = sub.add_parser("search", help="search Hugging Face for GGUF models")
    s.add_argument("query", nargs="?", default="")
    s.add_argument("--sort", choices=["downloads", "likes", "recent"], default="downloads")
    s.add_argument("--page", type=int, default=1)
    s.add_argument("--limit", type=int, default=20)
    s.set_defaults(func=cmd_search)

    s = sub.add_parser("list", help="models on this computer")
    s.add_argument("--no-external", action="store_true", help="skip the HF cache and LM Studio")
    s.set_defaults(func=cmd_list)

    s = sub.add_parser("info", help="details of a local model, or the files of a repository")
    s.add_argument("model", help="a path, a library name, or owner/repo")
    s.add_argument("--context", type=int, help="context length for the fit estimate")
    s.set_defaults(func=cmd_info)

    s = sub.add_parser("download", help="download a model (resumes an interrupted download)")
    s.add_argument("repo", help="owner/repo on Hugging Face")
    s.add_argument("file", nargs="?", help="file name or quantization (e.g. Q4_K_M)")
    s.add_argument("--revision", default=None)
    s.add_argument("--retries", type=int, default=5)
    s.set_defaults(func=cmd_download)

    s = sub.add_parser("import", help="add a .gguf file to the library")
    s.add_argument("path")
    s.add_argument("--in-place", action="store_true", help="use it where it is, do not copy")
    s.set_defaults(func=cmd_import)

    s = sub.add_parser("remove", help="delete a downloaded model (or forget an in-place one)")
    s.add_argument("model", help="a path or library name")
    s.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    s.set_defaults(func=cmd_remove)


def _settings() -> Settings:
    return Settings.load(app_paths().settings)


def _library(settings: Settings | None = None) -> catalog.Library:
    settings = settings or _settings()
    return catalog.open_library(settings.models_dir, app_paths().data)


def _token(settings: Settings) -> str | None:
    from chatapp.service.library import find_token

    return find_token(settings.hf_token)


def cmd_search(args: argparse.Namespace) -> int:
    from chatapp.service import library as api

    settings = _settings()
    results = api.search(
        args.query,
        sort=args.sort,
        page=max(0, args.page - 1),
        page_size=args.limit,
        token=_token(settings),
    )
    if not results:
        print("No GGUF models found.")
        return 0
    for r in results:
        gated = "  (gated)" if r.gated else ""
        print(shown(f"{r.repo_id:<60} {r.downloads:>10,} downloads {r.likes:>6,} likes{gated}"))
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    lib = _library()
    models = lib.models(external=not args.no_external)
    if not models:
        print(f"No models yet. Library folder: {lib.models_dir}")
        print("Try: chatapp models download bartowski/SmolLM2-135M-Instruct-GGUF Q4_K_M")
        return 0
    for m in models:
        flag = "" if m.complete else "  (incomplete split set)"
        size = catalog.human_size(m.size)
        print(shown(f"{m.name:<70} {size:>9}  {m.quant or '-':<8} {m.source}{flag}"))
    print(f"\nLibrary folder {lib.models_dir}: {catalog.human_size(lib.disk_use())} used")
    return 0


def _free_vram(settings: Settings) -> int | None:
    """Free VRAM, where layers can go there (a GPU build, GPU layers not 0)."""
    from chatapp.service.machine import can_offload

    return sysinfo.free_vram() if can_offload(settings.n_gpu_layers) else None


def cmd_info(args: argparse.Namespace) -> int:
    settings = _settings()
    ctx = args.context or settings.context_limit
    lib = _library(settings)
    local = lib.find(args.model) if not _looks_like_repo(args.model) else None
    if local is None and Path(args.model).expanduser().is_file():
        local = catalog.LocalModel(Path(args.model).expanduser(), args.model, 0, "file")
    if local is not None:
        vram = _free_vram(settings)
        return _local_info(local.path, ctx, vram)
    if not _looks_like_repo(args.model):
        raise UserError(f"No model {args.model!r} in the library, and it is not owner/repo.")
    from chatapp.service import library as api

    files = api.repo_files(args.model, token=_token(settings))
    free = sysinfo.free_ram()
    vram = _free_vram(settings)
    print(shown(f"{files.repo_id} @ {files.revision[:12]}") + ("  (gated)" if files.gated else ""))
    if files.license:
        print(shown(f"license: {files.license}"))
    if not files.groups:
        print("No GGUF chat model files in this repository.")
    for g in files.groups:
        fit = catalog.estimate_fit(g.size or 0, ctx, free, free_vram=vram, quant=g.quant)
        split = f" ({len(g.files)} parts)" if g.is_split else ""
        size = catalog.human_size(g.size)
        print(shown(f"  {g.quant or '?':<8} {size:>9}  {fit.label or '?':<13}{g.name}{split}"))
    print(f"(fit at {ctx} tokens of context, {catalog.human_size(free)} RAM free)")
    return 0


def _looks_like_repo(s: str) -> bool:
    return s.count("/") == 1 and not s.startswith((".", "/", "~")) and not s.endswith(".gguf")


def _local_info(path: Path, ctx: int, vram: int | None = None) -> int:
    cache = catalog.DetailsCache(app_paths().cache / "gguf-details.json")
    d = cache.details(path)
    fit = catalog.estimate_fit(
        d.file_size, ctx, sysinfo.free_ram(), free_vram=vram, kv_per_token=d.kv_bytes_per_token
    )
    rows = [
        ("file", str(path)),
        ("name", d.name),
        ("architecture", d.architecture),
        ("parameters", catalog.human_params(d.parameter_count)),
        ("quantization", d.quantization),
        ("trained context", str(d.context_length or "?")),
        ("chat template", "yes" if d.has_chat_template else "no (chatapp picks a preset)"),
        ("license", d.license or "?"),
        ("size", catalog.human_size(d.file_size)),
        (f"fit at {ctx} ctx", fit.describe()),
    ]
    for k, v in rows:
        print(shown(f"{k:>16}: {v}"))
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    from chatapp.service import library as api
    from chatapp.service.library import Downloader, DownloadPaused, Progress

    settings = _settings()
    token = _token(settings)
    files = api.repo_files(args.repo, revision=args.revision, token=token)
    if args.file:
        group = api.find_group(files, args.file)
    elif len(files.groups) == 1:
        group = files.groups[0]
    else:
        names = ", ".join(f"{g.quant or g.name}" for g in files.groups) or "none"
        raise UserError(f"{args.repo} has several GGUF files; choose one: {names}")
    lib = _library(settings)
    dl = Downloader(lib.models_dir, endpoint=api.endpoint(), token=token, retries=args.retries)
    tty = sys.stderr.isatty()
    last = [0.0]

    def show(p: Progress) -> None:
        now = time.monotonic()
        if not tty and now - last[0] < 2 and p.done < p.total:
            return
        last[0] = now
        pct = 100 * p.done / p.total if p.total else 0
        eta = f"{p.eta:.0f}s left" if p.eta is not None else ""
        line = f"{pct:5.1f}%  {catalog.human_size(p.done)} of {catalog.human_size(p.total)}  "
        line += f"{catalog.human_size(int(p.speed))}/s  {eta}"
        print(
            ("\r" if tty else "") + line.ljust(60),
            end="" if tty else "\n",
            file=sys.stderr,
            flush=True,
        )

    print(
        f"Downloading {group.name} ({catalog.human_size(group.size)}) from {args.repo}",
        file=sys.stderr,
    )
    try:
        path = dl.download_group(args.repo, files.revision, group, show)
    except (KeyboardInterrupt, DownloadPaused):
        print(
            "\nPaused: the partial file is kept; run the same command to resume.", file=sys.stderr
        )
        return 130
    if tty:
        print(file=sys.stderr)
    print(path)
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    m = _library().import_file(Path(args.path), copy=not args.in_place)
    print(f"registered in place: {m.path}" if args.in_place else f"copied to {m.path}")
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    lib = _library()
    m = lib.find(args.model)
    if m is None:
        raise UserError(f"No model {args.model!r} in the library. See `chatapp models list`.")
    if not (m.owned or m.source == catalog.SOURCE_REGISTERED):
        raise UserError(
            f"{m.path} belongs to {m.source}; chatapp does not delete it.",
            hint="Remove it with the tool that downloaded it.",
        )
    verb = "Delete" if m.owned else "Forget (the file stays)"
    if not args.yes:
        if not sys.stdin.isatty():
            raise UserError("Refusing to delete without confirmation: add --yes.")
        answer = input(f"{verb} {m.name} ({catalog.human_size(m.size)})? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("Nothing removed.")
            return 1
    lib.remove(m)
    print(("deleted " if m.owned else "forgot ") + str(m.path))
    return 0
