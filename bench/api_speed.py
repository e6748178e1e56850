"""The local API server's overhead, and its KV-cache reuse for API clients.

1. Tokens/s of a streaming openai client (in a child process, as another tool would
   be) through `chatapp serve`'s app (uvicorn on 127.0.0.1 in this process, as the
   window's switch runs it) against the same chat
   service without the server (ChatService.complete with a listener): the same model,
   prompt, seed and length, alternated A/B for --rounds rounds; medians; ratio.
2. Time to first token at turn 20 of a chat sent through the server (the whole history
   in every request, as API clients do) against turn 1. The server passes a cache key
   derived from the conversation's first messages, so the service keeps its KV state.

Both ratios come from one run (these machines are noisy: compare ratios, not seconds).

    python bench/api_speed.py [--model M.gguf] [--tokens 200] [--rounds 3] [--turns 20]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PROMPT = [{"role": "user", "content": "Write a long story about a lighthouse keeper."}]
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


def client_main(url: str, name: str, tokens: int) -> None:
    """Child process: stream one answer, print its tokens/s and token count."""
    import openai

    client = openai.OpenAI(base_url=url, api_key="-", max_retries=0)
    stamps: list[float] = []
    usage = None
    stream = client.chat.completions.create(
        model=name,
        messages=PROMPT,  # type: ignore[arg-type]
        stream=True,
        stream_options={"include_usage": True},
        temperature=0.0,
        seed=5,
        max_tokens=tokens,
    )
    for ev in stream:
        if ev.usage is not None:
            usage = ev.usage
        if ev.choices and ev.choices[0].delta.content:
            stamps.append(time.perf_counter())
    assert usage is not None
    n = usage.completion_tokens
    # deltas, not tokens, reach the client: the span from the first to the last delta
    print((n - 1) / (stamps[-1] - stamps[0]), n)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None)
    ap.add_argument("--tokens", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--turns", type=int, default=20)
    ap.add_argument("--turn-tokens", type=int, default=100)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--client", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--client-model", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.client:
        client_main(args.client, args.client_model, args.tokens)
        return
    os.environ["CHATAPP_HOME"] = tempfile.mkdtemp(prefix="chatapp-bench-")

    import openai

    from chatapp.core.backend import ModelRef
    from chatapp.core.settings import Settings
    from chatapp.core.token_engine import SamplingParams
    from chatapp.paths import app_paths
    from chatapp.server import ServerThread, create_app, model_id
    from chatapp.service import ChatService, LoadRequest, TurnOptions
    from chatapp.service.events import TurnChunk, TurnFinished
    from tests.fetch_models import SMOLLM2, fetch

    model = args.model or str(fetch() / SMOLLM2)
    service = ChatService(app_paths().ensure().database, Settings())
    service.load(LoadRequest(ModelRef.local(model), n_threads=args.threads)).result()
    server = ServerThread(create_app(service)).start()
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="-", max_retries=0)
    name = model_id(service)
    # temperature 0 with a seed: both sides generate the same tokens
    sampling = {"temperature": 0.0, "seed": 5, "max_tokens": args.tokens}

    def direct() -> tuple[float, int]:
        stamps: list[float] = []

        def listener(event: Any) -> None:
            if isinstance(event, TurnChunk) and event.chunk.token_id is not None:
                stamps.append(time.perf_counter())

        opts = TurnOptions(sampling=SamplingParams(repeat_penalty=1.0, **sampling))
        result = service.complete(PROMPT, "", opts, listener, cache_key="bench").result()
        assert isinstance(result, TurnFinished), result
        n = result.stats.completion_tokens
        return (n - 1) / (stamps[-1] - stamps[0]), n

    def through_server() -> tuple[float, int]:
        """A streaming openai client in its own process, as another tool would be."""
        out = subprocess.run(
            [sys.executable, __file__, "--client", server.url + "/v1", "--client-model", name,
             "--tokens", str(args.tokens)],
            check=True, capture_output=True, text=True,
        ).stdout.split()  # fmt: skip
        return float(out[0]), int(out[1])

    through_server()  # warm up both paths (first-load page faults, the KV state)
    direct()
    a: list[float] = []
    b: list[float] = []
    for r in range(args.rounds):
        tps_d, n_d = direct()
        tps_s, n_s = through_server()
        a.append(tps_d)
        b.append(tps_s)
        print(
            f"round {r + 1}: service {tps_d:6.1f} tok/s ({n_d}), server {tps_s:6.1f} tok/s ({n_s})"
        )

    ttft: list[float] = []
    messages: list[dict[str, str]] = [{"role": "system", "content": "You are a tea expert."}]
    for i in range(args.turns):
        messages.append({"role": "user", "content": QUESTIONS[i % len(QUESTIONS)]})
        t0 = time.perf_counter()
        first: float | None = None
        parts: list[str] = []
        usage = None
        stream = client.chat.completions.create(
            model=name,
            messages=messages,  # type: ignore[arg-type]
            stream=True,
            stream_options={"include_usage": True},
            temperature=0.7,
            seed=3,
            max_tokens=args.turn_tokens,
        )
        for ev in stream:
            if ev.usage is not None:
                usage = ev.usage
            if ev.choices and ev.choices[0].delta.content:
                if first is None:
                    first = time.perf_counter()
                parts.append(ev.choices[0].delta.content)
        assert first is not None and usage is not None
        ttft.append(first - t0)
        messages.append({"role": "assistant", "content": "".join(parts).strip()})
        print(
            f"turn {i + 1:2d}: ttft {ttft[-1] * 1000:7.1f} ms, prompt {usage.prompt_tokens} "
            f"tokens, {usage.completion_tokens} generated",
            flush=True,
        )
    server.stop()
    service.shutdown()
    speed = statistics.median(b) / statistics.median(a)
    print(f"\nmodel {Path(model).name}, {args.tokens}-token answers, {args.rounds} rounds")
    print(
        f"tokens/s through the server / the service alone (medians): {speed:.2f}  (target >= 0.90)"
    )
    print(
        f"time to first token through the server, turn {args.turns} / turn 1: "
        f"{ttft[-1] / ttft[0]:.2f}  (target <= 1.5)"
    )


if __name__ == "__main__":
    main()
