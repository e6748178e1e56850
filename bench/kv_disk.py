"""KV states across a restart, and prefill while typing (issue 20), through the service.

1. Restart: a ~3,000-token SmolLM2 chat (imported-looking, tests/long_chat.py) gets a
   question; the user reads (--pause: the answer is settled); the state is saved as a
   quit would save it (and the database and cache folder copied); then the next question
   in the same process, and in a new service started on the copies (its state restored
   from the cache folder), sent at once or after the chat was opened and the question
   typed (prefill, as the window does). Ratio of the next question's time to first
   token: restarted / not restarted (target <= 1.5).
2. Typing: a 40-word question sent in the chat while it is in the cache (the reference),
   and typed into the same chat opened in a fresh service (no state in memory or on
   disk): a word every --word-seconds, the service asked to prefill on open and after
   each word (as the window's debounce does in a pause), then Enter. Ratio of the time
   to first token after Enter to the reference (target <= 1.3).

Times are from send() to the first token, as the user sees them. Ratios in one run;
these machines are noisy.

    python bench/kv_disk.py [--model M.gguf] [--rounds 2] [--pause 2] [--word-seconds 0.5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

QUESTION = (
    "Looking back over everything we discussed about the harbour town, which of the "
    "stories about the lighthouse keeper and the ships do you think says the most "
    "about the people who lived there, and why would you pick that one?"
)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None)
    ap.add_argument("--messages", type=int, default=32, help="about 93 tokens each")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--pause", type=float, default=2.0, help="s the user reads an answer")
    ap.add_argument("--word-seconds", type=float, default=0.5, help="typing pace")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tokens", type=int, default=20, help="answer length")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="chatapp-bench-kv-"))
    os.environ["CHATAPP_HOME"] = str(root / "home")

    from chatapp.core.backend import ModelRef
    from chatapp.core.settings import Settings
    from chatapp.core.store import Store
    from chatapp.core.token_engine import SamplingParams
    from chatapp.service import ChatService, TurnOptions
    from chatapp.service.events import TurnChunk, TurnFinished
    from tests.fetch_models import SMOLLM2, fetch
    from tests.long_chat import long_chat

    model = args.model or str(fetch() / SMOLLM2)
    ref = ModelRef.local(model)
    opts = TurnOptions(sampling=SamplingParams(temperature=0.0, seed=3, max_tokens=args.tokens))
    assert len(QUESTION.split()) == 40

    base = root / "chat.sqlite3"
    store = Store(base)
    conv = store.create_conversation("long chat", model_path=str(ref))
    parent = None
    for m in long_chat(conv.id, args.messages):
        parent = store.add_message(conv.id, m.role, m.content, parent_id=parent).id
    store.close()
    n = 0

    def copy() -> Path:
        nonlocal n
        n += 1
        folder = root / f"run{n}"
        folder.mkdir()
        shutil.copyfile(base, folder / "chat.sqlite3")
        return folder / "chat.sqlite3"

    def service(db: Path, disk_mb: int) -> ChatService:
        os.environ["CHATAPP_HOME"] = str(db.parent / "home")  # its own cache folder
        svc = ChatService(db, Settings(kv_state_disk_mb=disk_mb))
        svc.load(svc.load_request(ref, n_threads=args.threads)).result()
        return svc

    def turn(svc: ChatService, text: str) -> tuple[float, Any]:
        first: list[float] = []

        def listener(event: object) -> None:
            if isinstance(event, TurnChunk) and event.chunk.token_id is not None and not first:
                first.append(time.perf_counter())

        t0 = time.perf_counter()
        done = svc.send(conv.id, text, options=opts, listener=listener).result()
        assert isinstance(done, TurnFinished), done
        return first[0] - t0, done.message.meta["receipt"]

    def show(label: str, t: float, r: dict[str, Any]) -> None:
        print(
            f"  {label:34s} ttft {t * 1000:7.0f} ms  prompt {r['prompt_tokens']} "
            f"({r['reused_tokens']} reused, {r.get('disk_tokens', 0)} from disk, "
            f"{r['evaluated_tokens']} evaluated)",
            flush=True,
        )

    def typed(svc: ChatService, text: str) -> None:
        """The chat opened, then `text` typed a word at a time, prefilled after each word."""
        svc.prefill(conv.id)
        words = text.split()
        for i in range(len(words)):
            time.sleep(args.word_seconds)
            svc.prefill(conv.id, " ".join(words[: i + 1]))
        time.sleep(0.3)  # the last debounce

    def snapshot(db: Path, name: str) -> Path:
        """The database and cache folder as they are now (a service may be running:
        the database is in WAL mode and idle between turns)."""
        shutil.copytree(db.parent, root / name)
        return root / name / db.name

    q1, q2 = "Which ship came back last?", "And what did the keeper do then?"
    stay: list[float] = []
    restart: list[float] = []
    restart_open: list[float] = []
    typed_in: list[float] = []
    cached: list[float] = []
    for rnd in range(args.rounds):
        print(f"round {rnd + 1}", flush=True)
        db = copy()
        svc = service(db, 2048)
        t, r = turn(svc, q1)
        show("question 1 (cold)", t, r)
        time.sleep(args.pause)  # the answer is settled while the user reads
        engine = svc._host.backend.engine  # type: ignore[union-attr]
        t0 = time.perf_counter()
        engine.save_states()  # what quitting now would write
        engine._disk.flush()
        t_save = time.perf_counter() - t0
        quit_a, quit_b = snapshot(db, f"quit{rnd}a"), snapshot(db, f"quit{rnd}b")
        t, r = turn(svc, q2)
        show("question 2, same process", t, r)
        stay.append(t)
        time.sleep(args.pause)
        after = snapshot(db, f"after{rnd}")
        t, r = turn(svc, QUESTION)
        show("40-word question, chat cached", t, r)
        cached.append(t)
        svc.shutdown()
        print(f"  (saving the state at quit: {t_save * 1000:.0f} ms)", flush=True)
        # 1. after a restart: sent at once, or opened and typed first (the window)
        t0 = time.perf_counter()
        svc = service(quit_a, 2048)
        t_load = time.perf_counter() - t0
        t, r = turn(svc, q2)
        show("question 2 after a restart", t, r)
        print(f"  (start and load {t_load * 1000:.0f} ms)", flush=True)
        restart.append(t)
        svc.shutdown()
        svc = service(quit_b, 2048)
        typed(svc, q2)
        t, r = turn(svc, q2)
        show("question 2 after a restart, typed", t, r)
        restart_open.append(t)
        svc.shutdown()
        # 2. the 40-word question typed into the chat in no cache (no disk either)
        svc = service(after, 0)
        typed(svc, QUESTION)
        t, r = turn(svc, QUESTION)
        show("40-word question, typed, uncached", t, r)
        typed_in.append(t)
        svc.shutdown()
    a, b = statistics.median(restart), statistics.median(stay)
    c, d = statistics.median(typed_in), statistics.median(cached)
    e = statistics.median(restart_open)
    print(f"\nmodel {Path(model).name}, {args.threads} threads, {args.rounds} rounds (medians)")
    print(f"restart then continue / same turn without restart: {a / b:.2f}  (target <= 1.5)")
    print(f"  the same, the chat opened and the question typed first: {e / b:.2f}")
    print(f"typed into an uncached chat / chat already cached:  {c / d:.2f}  (target <= 1.3)")
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
