"""KV states across a restart, and prefill while typing (issue 20), through the service.

1. Restart: a ~3,000-token SmolLM2 chat (imported-looking, tests/long_chat.py) gets a
   question; the user reads (--pause); then the next question, either in the same
   process (the state is in the context) or after the service was shut down and started
   again (the state is saved at quit and restored from the cache folder). Ratio of the
   second question's time to first token: restarted / not restarted (target <= 1.5).
2. Typing: the same chat opened in a fresh service (no state in memory or on disk), a
   40-word question typed a word every --word-seconds, the service asked to prefill on
   open and after each word (as the window's debounce does in a pause), then Enter.
   Ratio of the time to first token after Enter to that of the chat already in the
   cache (its history evaluated, the question sent as typed) (target <= 1.3).

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
    ap.add_argument("--messages", type=int, default=28, help="about 107 tokens each")
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

    q1, q2 = "Which ship came back last?", "And what did the keeper do then?"
    stay: list[float] = []
    restart: list[float] = []
    typed: list[float] = []
    cached: list[float] = []
    for rnd in range(args.rounds):
        print(f"round {rnd + 1}", flush=True)
        # 1. the next question without and with a restart
        svc = service(copy(), 2048)
        t, r = turn(svc, q1)
        show("question 1 (cold)", t, r)
        time.sleep(args.pause)
        t, r = turn(svc, q2)
        show("question 2, same process", t, r)
        stay.append(t)
        svc.shutdown()
        db = copy()
        svc = service(db, 2048)
        turn(svc, q1)
        time.sleep(args.pause)
        t0 = time.perf_counter()
        svc.shutdown()
        t_quit = time.perf_counter() - t0
        t0 = time.perf_counter()
        svc = service(db, 2048)
        t_load = time.perf_counter() - t0
        t, r = turn(svc, q2)
        show("question 2, after a restart", t, r)
        print(f"  (quit with saving {t_quit * 1000:.0f} ms, start and load {t_load * 1000:.0f} ms)")
        restart.append(t)
        svc.shutdown()
        # 2. a question typed into a chat in no cache, against one already cached
        svc = service(copy(), 0)
        assert svc.prefill(conv.id).result() > 0  # the chat, opened earlier
        time.sleep(args.pause)
        t, r = turn(svc, QUESTION)
        show("cached chat, question sent", t, r)
        cached.append(t)
        svc.shutdown()
        svc = service(copy(), 0)
        svc.prefill(conv.id)  # the chat is opened
        words = QUESTION.split()
        for i in range(len(words)):
            time.sleep(args.word_seconds)
            svc.prefill(conv.id, " ".join(words[: i + 1]))
        time.sleep(0.3)  # the last debounce
        t, r = turn(svc, QUESTION)
        show("uncached chat, typed with prefill", t, r)
        typed.append(t)
        svc.shutdown()
    a, b = statistics.median(restart), statistics.median(stay)
    c, d = statistics.median(typed), statistics.median(cached)
    print(f"\nmodel {Path(model).name}, {args.threads} threads, {args.rounds} rounds (medians)")
    print(f"restart then continue / same turn without restart: {a / b:.2f}  (target <= 1.5)")
    print(f"typed into an uncached chat / chat already cached:  {c / d:.2f}  (target <= 1.3)")
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
