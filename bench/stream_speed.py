"""Streaming speed through the window vs llama-cpp-python's bare generate loop, and GUI
event-loop stalls while a long answer streams.

    python bench/stream_speed.py [--model PATH] [--tokens 1000] [--rounds 3]

Both paths use the same model file, threads, context, sampling and seed, so they produce
the same tokens; rounds alternate so machine noise hits both alike. Each measurement runs
in its own process: llama.cpp's OpenMP threads left over from one run in a process slow a
later run on another thread of that process about threefold on 2 cores. The default
model is Gemma 3 270M (a base model: it does not stop early, so answers reach --tokens).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

PROMPT = "Write a long story about a lighthouse keeper."
SEED = 7


def bare_llama(model: str, threads: int, n_tokens: int) -> tuple[float, int]:
    """llama-cpp-python alone: tokens/s of Llama.generate after the first token."""
    import llama_cpp

    from chatapp.core.chat import prepare_prompt, template_for
    from chatapp.engine.llama import LlamaEngine

    eng = LlamaEngine(model, n_threads=threads)  # only to render the identical prompt
    prompt = prepare_prompt(eng, template_for(eng), "", [{"role": "user", "content": PROMPT}])
    n_ctx = eng.info.n_ctx
    eng.close()
    llm = llama_cpp.Llama(
        model_path=model,
        n_ctx=n_ctx,
        n_threads=threads,
        n_threads_batch=threads,
        seed=SEED,
        verbose=False,
    )
    eog = {t for t in range(llm.n_vocab()) if llama_cpp.llama_vocab_is_eog(llm._model.vocab, t)}
    n = 0
    t_first = t_last = 0.0
    for tok in llm.generate(
        prompt.tokens, top_k=40, top_p=0.95, min_p=0.05, temp=0.7, repeat_penalty=1.1
    ):
        now = time.perf_counter()
        if tok in eog:
            break
        n += 1
        if n == 1:
            t_first = now
        t_last = now
        if n >= n_tokens:
            break
    llm.close()
    return (n - 1) / (t_last - t_first), n


def window(model: str, threads: int, n_tokens: int) -> dict[str, float]:
    """The real window: ChatSession over the chat service + MessageView rendering."""
    from PySide6.QtCore import QEventLoop, QTimer
    from PySide6.QtWidgets import QApplication

    from chatapp.core.settings import Settings
    from chatapp.core.store import Store
    from chatapp.gui.chat_session import ChatSession
    from chatapp.gui.mainwindow import MainWindow
    from chatapp.paths import app_paths

    app = QApplication.instance() or QApplication([])
    home = tempfile.mkdtemp(prefix="chatapp-bench-")
    os.environ["CHATAPP_HOME"] = home
    paths = app_paths().ensure()
    store = Store(paths.database)
    settings = Settings(n_threads=threads, max_tokens=n_tokens, seed=SEED)
    # how many alternatives the window captures per token (the app's default is 5)
    settings.logprobs_top_n = int(os.environ.get("CHATAPP_BENCH_TOP_N", "5"))
    session = ChatSession(store, settings)
    # CHATAPP_BENCH_DISPLAY=tokens|confidence|raw: the answer streams as a token display
    # (View > Messages as), rebuilt with every coalesced update
    display = os.environ.get("CHATAPP_BENCH_DISPLAY", "text")
    ext = ("chatapp.gui.message_tokens",) if display != "text" else ()
    w = MainWindow(store, settings, paths, session, extensions=ext)
    w.message_view.set_default_display(display)
    w.resize(1000, 800)
    w.show()
    from chatapp.app import freeze_startup_objects

    freeze_startup_objects()  # as the app does once its window is shown
    loop = QEventLoop()
    session.model_loaded.connect(lambda _m: loop.quit())
    session.open_model(model)
    loop.exec()

    ticks: list[float] = []
    timer = QTimer()
    timer.setInterval(5)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    first: list[float] = []
    session.reply_delta.connect(lambda *_: first or first.append(time.perf_counter()))
    done = QEventLoop()
    session.reply_finished.connect(lambda _mid: done.quit())
    timer.start()
    session.send(PROMPT)
    done.exec()
    t_end = time.perf_counter()
    timer.stop()
    msg = store.active_thread(session.conversation_id)[-1]
    gaps = [b - a for a, b in itertools.pairwise(ticks) if a >= first[0]]
    result = {
        "gui_tps": (msg.completion_tokens - 1) / (t_end - first[0]),
        "worker_tps": msg.tokens_per_second or 0.0,
        "tokens": float(msg.completion_tokens or 0),
        "max_stall_ms": (max(gaps) - 0.005) * 1000 if gaps else 0.0,
        "renders": float(w.message_view.render_count),
        "render_ms": 1000 * w.message_view.render_seconds / max(1, w.message_view.render_count),
    }
    w.close()
    store.close()
    app.processEvents()
    return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None)
    ap.add_argument("--tokens", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--one", choices=["bare", "window"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    from chatapp.engine.hardware import physical_cores
    from tests.fetch_models import GEMMA3, fetch

    if args.one:
        if args.one == "bare":
            tps, n = bare_llama(args.model, args.threads, args.tokens)
            print(json.dumps({"tps": tps, "tokens": n}))
        else:
            print(json.dumps(window(args.model, args.threads, args.tokens)))
        return
    model = args.model or str(fetch() / GEMMA3)
    threads = args.threads or physical_cores()

    def child(kind: str) -> dict:
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--one",
                kind,
                "--model",
                model,
                "--threads",
                str(threads),
                "--tokens",
                str(args.tokens),
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return json.loads(out.strip().splitlines()[-1])

    base, win = [], []
    for r in range(args.rounds):
        bare = child("bare")
        b, nb = bare["tps"], bare["tokens"]
        wr = child("window")
        base.append(b)
        win.append(wr)
        print(
            f"round {r + 1}: llama-cpp-python {b:.1f} tok/s ({nb} tokens) | window "
            f"{wr['gui_tps']:.1f} tok/s ({wr['tokens']:.0f} tokens, worker "
            f"{wr['worker_tps']:.1f}) | max GUI stall {wr['max_stall_ms']:.1f} ms, "
            f"{wr['renders']:.0f} renders of {wr['render_ms']:.1f} ms",
            flush=True,
        )
    b_med = statistics.median(base)
    w_med = statistics.median(x["gui_tps"] for x in win)
    print(f"\nmodel {Path(model).name}, {threads} threads, {args.tokens}-token answers")
    print(f"median llama-cpp-python generate loop: {b_med:.1f} tok/s")
    print(f"median through the window:            {w_med:.1f} tok/s")
    print(f"ratio window / llama.cpp:             {w_med / b_med:.3f}  (target >= 0.95)")
    print(
        f"worst GUI event-loop stall:           "
        f"{max(x['max_stall_ms'] for x in win):.1f} ms  (target <= 50)"
    )


if __name__ == "__main__":
    main()
