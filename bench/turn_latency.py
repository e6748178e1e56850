"""Time to first token as a chat grows, and after switching conversations, through the
chat service (what the window, the CLI and the API server all use).

A 20-turn chat with SmolLM2 (about 150 tokens an answer): time to first token at turn 20
against turn 1 (the KV cache keeps the history evaluated), then one turn in another
conversation and back: time to first token after the switch against staying put (the
service keeps the KV state of recent conversations). Prints both ratios, measured in one
run (these machines are noisy: compare ratios, not seconds).

    python bench/turn_latency.py [--model M.gguf] [--turns 20] [--tokens 150]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

QUESTIONS = [
    "Tell me about the history of tea.",
    "How is green tea made?",
    "And black tea?",
    "Which countries grow the most tea?",
    "What is matcha?",
    "How should I brew oolong?",
    "Is tea healthier than coffee?",
    "What is a tea ceremony?",
    "Tell me about chai.",
    "What is bubble tea?",
]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None)
    ap.add_argument("--turns", type=int, default=20)
    ap.add_argument("--tokens", type=int, default=150)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument(
        "--pause", type=float, default=0.0, help="seconds between turns (the user reads)"
    )
    args = ap.parse_args()
    os.environ["CHATAPP_HOME"] = tempfile.mkdtemp(prefix="chatapp-bench-")

    from chatapp.core.backend import ModelRef
    from chatapp.core.settings import Settings
    from chatapp.core.token_engine import SamplingParams
    from chatapp.paths import app_paths
    from chatapp.service import ChatService, LoadRequest, TurnOptions
    from chatapp.service.events import TurnChunk, TurnFinished
    from tests.fetch_models import SMOLLM2, fetch

    model = args.model or str(fetch() / SMOLLM2)
    service = ChatService(app_paths().ensure().database, Settings())
    service.load(LoadRequest(ModelRef.local(model), n_threads=args.threads)).result()
    opts = TurnOptions(sampling=SamplingParams(seed=3, max_tokens=args.tokens))

    def turn(cid: str | None, text: str) -> tuple[str, float, TurnFinished]:
        first: list[float] = []

        def listener(event: object) -> None:
            if isinstance(event, TurnChunk) and event.chunk.token_id is not None and not first:
                first.append(time.perf_counter())

        time.sleep(args.pause)
        t0 = time.perf_counter()
        result = service.send(cid, text, options=opts, listener=listener).result()
        assert isinstance(result, TurnFinished), result
        return result.conversation_id, first[0] - t0, result

    ttft: list[float] = []
    cid = None
    for i in range(args.turns):
        cid, t, res = turn(cid, QUESTIONS[i % len(QUESTIONS)])
        ttft.append(t)
        st = res.stats
        print(
            f"turn {i + 1:2d}: ttft {t * 1000:7.1f} ms, prompt {st.prompt_tokens} tokens "
            f"({st.reused_tokens} reused, {st.evaluated_tokens} evaluated), "
            f"{st.completion_tokens} generated",
            flush=True,
        )
    assert cid is not None
    backs: list[float] = []
    other = None
    for i in range(3):  # away to another conversation and back, three times
        other, t_other, _ = turn(other, f"Name a colour, please ({i}).")
        _, t_back, res = turn(cid, "Thanks! One more fact, please.")
        backs.append(t_back)
        st = res.stats
        print(
            f"other conversation: ttft {t_other * 1000:.1f} ms; back: ttft {t_back * 1000:.1f} "
            f"ms, prompt {st.prompt_tokens} ({st.reused_tokens} reused, "
            f"{st.evaluated_tokens} evaluated)",
            flush=True,
        )
    t_back = statistics.median(backs)
    service.shutdown()
    first = statistics.median(ttft[:1])
    last = ttft[-1]
    stay = statistics.median(ttft[-3:])
    print(
        f"\nmodel {Path(model).name}, {args.turns} turns, {args.tokens}-token answers, "
        f"{args.pause:g} s between turns"
    )
    print(
        f"time to first token, turn {args.turns} / turn 1:       {last / first:.2f}  (target <= 1.5)"
    )
    print(
        f"after switching back (median of 3) / staying put (median of last 3): {t_back / stay:.2f}"
        "  (target <= 1.5)"
    )


if __name__ == "__main__":
    main()
