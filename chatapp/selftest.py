"""`chatapp --self-test [--model PATH]`: does this installation work, end to end?

Meant for a freshly built bundle (CI runs it on the frozen app) and for bug reports.
It checks the app's folders (writable), the database (opens, every migration applied,
not damaged), the bundled data files, a real model (loads, generates a few tokens), Qt
(the GUI modules import, a window's parts build, Markdown highlights) and the PDF worker
process. Prints one line per check; exits 0 when all pass, 1 otherwise.
"""

from __future__ import annotations

import argparse
import logging
import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from chatapp import __version__
from chatapp.paths import AppPaths, app_paths

log = logging.getLogger(__name__)

PROMPT = "Say hello in five words."
N_TOKENS = 8


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{'ok  ' if self.ok else 'FAIL'}  {self.name}: {self.detail}"


def check_folders(paths: AppPaths) -> str:
    paths.ensure()
    for folder in (paths.data, paths.config, paths.cache, paths.logs):
        probe = folder / f".chatapp-self-test-{os.getpid()}"
        try:
            probe.write_bytes(b"ok")
            probe.unlink()
        except OSError as e:
            raise RuntimeError(f"{folder} is not writable: {e.strerror or e}") from e
    return f"data, config, cache and log folders writable ({paths.data.parent})"


def check_database(paths: AppPaths) -> str:
    from chatapp.core.store import Store
    from chatapp.core.store.migrations import MIGRATIONS

    with Store(paths.database) as store:
        applied = store.applied_migrations()
        conversations = store.count_conversations()
    missing = [name for name, _ in MIGRATIONS if name not in applied]
    if missing:
        raise RuntimeError(f"{paths.database}: migrations not applied: {', '.join(missing)}")
    db = sqlite3.connect(f"file:{paths.database}?mode=ro", uri=True)
    try:
        verdict = db.execute("PRAGMA quick_check").fetchone()[0]
    finally:
        db.close()
    if verdict != "ok":
        raise RuntimeError(f"{paths.database} is damaged: {verdict}")
    return (
        f"{paths.database.name}: {len(applied)} migrations applied, "
        f"{conversations} conversations, quick_check ok"
    )


def check_resources() -> str:
    from chatapp.core.catalog import load_starters
    from chatapp.core.templates.presets import load_presets
    from chatapp.resources import resource_path, resources_dir

    presets = load_presets()
    starters = load_starters(resource_path("models.json"))
    icons = [resource_path("icons", "chatapp.svg"), resource_path("icons", "chatapp-256.png")]
    missing = [str(p) for p in icons if not p.is_file()]
    if not presets or not starters or missing:
        raise RuntimeError(
            f"resources incomplete in {resources_dir()}: {len(presets)} template presets, "
            f"{len(starters)} starter models, missing {missing or 'nothing'}"
        )
    return f"{len(presets)} template presets, {len(starters)} starter models, icons"


def check_libraries() -> str:
    """The libraries imported late or by name (a bundle can miss those): Jinja, Markdown,
    Pygments' lexers, the Hugging Face client."""
    import jinja2
    import markdown_it
    import platformdirs
    import pygments
    from pygments.lexers import get_lexer_by_name

    from chatapp.service.library import client_check

    for name in ("python", "rust", "bash", "json", "cpp"):
        get_lexer_by_name(name)
    return (
        f"jinja2 {jinja2.__version__}, markdown-it {markdown_it.__version__}, "
        f"pygments {pygments.__version__}, platformdirs {platformdirs.__version__}, "
        f"{client_check()}"
    )


def default_model(paths: AppPaths) -> Path:
    """The smallest complete model in the library (the folder, registered files, the
    Hugging Face cache and LM Studio's folder)."""
    from chatapp.core.catalog import open_library
    from chatapp.core.settings import Settings

    settings = Settings.load(paths.settings)
    models = [m for m in open_library(settings.models_dir, paths.data).models() if m.complete]
    if not models:
        raise RuntimeError("no model in the library; pass --model PATH to a .gguf file")
    return min(models, key=lambda m: m.size).path


def check_model(paths: AppPaths, model: str | None) -> str:
    from chatapp.core.chat import prepare_prompt, template_for
    from chatapp.core.settings import Settings
    from chatapp.core.token_engine import SamplingParams
    from chatapp.engine.llama import LlamaEngine
    from chatapp.service.machine import llama_build_info

    path = Path(model).expanduser() if model else default_model(paths)
    settings = Settings.load(paths.settings)
    t0 = time.perf_counter()
    engine = LlamaEngine(path, context_limit=512, n_gpu_layers=settings.n_gpu_layers)
    try:
        loaded = time.perf_counter() - t0
        template = template_for(engine)
        prompt = prepare_prompt(engine, template, "", [{"role": "user", "content": PROMPT}])
        params = SamplingParams(temperature=0.0, max_tokens=N_TOKENS, seed=1)
        t1 = time.perf_counter()
        # token ids, or Sampled(token_id, ...) where the engine reports what it sampled
        tokens = [
            t if isinstance(t, int) else t.token_id
            for t in engine.generate(prompt.tokens, params, threading.Event())
        ]
        took = time.perf_counter() - t1
        text = b"".join(engine.token_bytes(t) for t in tokens).decode("utf-8", "replace")
    finally:
        engine.close()
    if not tokens:
        raise RuntimeError(f"{path.name} loaded but generated no token")
    build = llama_build_info()
    return (
        f"{path.name} loaded in {loaded:.1f} s, {len(tokens)} tokens in {took:.2f} s "
        f"({text.strip()[:40]!r}); llama-cpp-python {build.version}, {build.backend}"
    )


def check_qt() -> str:
    from chatapp.gui.selfcheck import check_gui

    return check_gui()


def check_pdf_worker() -> str:
    """The PDF export runs in a child process; a bundle must be able to start it."""
    with tempfile.TemporaryDirectory(prefix="chatapp-self-test-") as tmp:
        html, pdf = Path(tmp) / "in.html", Path(tmp) / "out.pdf"
        html.write_text("<h1>chatapp</h1><p>self-test</p>", encoding="utf-8")
        worker = ["--pdf-worker"] if getattr(sys, "frozen", False) else ["-m", "chatapp.gui.pdf"]
        env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
        root = str(Path(__file__).resolve().parents[1])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        proc = subprocess.run(
            [sys.executable, *worker, str(html), str(pdf)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        data = pdf.read_bytes() if pdf.exists() else b""
        if proc.returncode != 0 or not data.startswith(b"%PDF"):
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise RuntimeError(f"the PDF worker failed (exit {proc.returncode}): {last}")
    return f"PDF worker wrote {len(data)} bytes"


def run_checks(model: str | None = None) -> list[CheckResult]:
    paths = app_paths()
    checks: list[tuple[str, Callable[[], str]]] = [
        ("folders", lambda: check_folders(paths)),
        ("database", lambda: check_database(paths)),
        ("resources", check_resources),
        ("libraries", check_libraries),
        ("model", lambda: check_model(paths, model)),
        ("qt", check_qt),
        ("pdf", check_pdf_worker),
    ]
    results = []
    for name, fn in checks:
        try:
            result = CheckResult(name, True, fn())
        except Exception as e:  # every failure becomes one line; the rest still run
            log.exception("self-test check %s failed", name)
            detail = " ".join(str(e).split()) or type(e).__name__
            result = CheckResult(name, False, detail)
        print(result.line(), flush=True)
        results.append(result)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="chatapp --self-test", description=__doc__.split("\n")[0])
    p.add_argument("--model", metavar="PATH", help="the .gguf to load (default: the smallest)")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(list(argv or []))
    from chatapp.logsetup import setup_logging

    setup_logging(verbose=args.verbose)
    if not logging.getLogger().handlers:  # no log file (the folders check says why):
        logging.getLogger().addHandler(logging.NullHandler())  # no tracebacks on stderr
    print(
        f"chatapp {__version__} self-test ({'frozen' if getattr(sys, 'frozen', False) else 'source'})"
    )
    results = run_checks(args.model)
    failed = [r for r in results if not r.ok]
    if failed:
        print(f"self-test FAILED: {len(failed)} of {len(results)} checks", flush=True)
        return 1
    print(f"self-test passed ({len(results)} checks)", flush=True)
    return 0
