"""What the tool loop adds between a tool's result and the model's next token, beyond
the prompt's own evaluation (issue 18: under 50 ms), through the chat service with the
real model.

A turn with tool_choice required: the model's constrained call, an instant calculator
(a double that returns at once and notes when), then the answer. Measured:

    loop overhead = (first token of the answer - the tool's return) - the answer's prompt time

where the prompt time is the answer step's own prompt_seconds (llama.cpp evaluating what
was not reused, and the first token's sampling). The loop's part is what remains: saving
the result and the next answer's row (store thread), the events, the next request, the
template rendered again and tokenized, the context fitted; printed split into "saved"
(the tool's return -> TurnToolResult) and "prepared" (-> the next step's TurnPrompt).
The reference, measured in the same run and alternated with it: a plain turn's
overhead, (its first token - TurnStarted) - its prompt time, which holds the same kind
of work (the prompt prepared and fitted) plus the hand-over to the inference thread
(each turn waits --pause seconds first, so a background settle has finished). Medians of
--rounds rounds; these machines are noisy, so compare the difference, not seconds.

    python bench/tool_loop_latency.py [--model M.gguf] [--rounds 10] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


class InstantCalculator:
    """One tool that answers at once; notes when each call returned."""

    def __init__(self) -> None:
        from chatapp.tools.spec import ToolSpec

        self.spec = ToolSpec(
            "calculator",
            "Evaluate an arithmetic expression exactly.",
            {
                "type": "object",
                # one possible value: the 135M model's constrained call is then always
                # complete and readable, so every round runs the tool
                "properties": {"expression": {"enum": ["12345 * 6789"]}},
                "required": ["expression"],
            },
            "builtin",
            "always",
        )
        self.returned: list[float] = []

    def specs(self, names: list[str] | None = None) -> list[Any]:
        return [self.spec]

    def run(
        self, name: str, arguments: dict[str, Any], *, cancel: threading.Event, timeout: float = 30
    ) -> Any:
        from chatapp.tools.spec import ToolResult

        result = ToolResult("83810205", seconds=0.0)
        self.returned.append(time.perf_counter())
        return result

    def close(self) -> None:
        pass


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--pause", type=float, default=3.0, help="seconds before each turn")
    ap.add_argument("--tokens", type=int, default=64, help="max tokens of the call and the answer")
    args = ap.parse_args()
    os.environ["CHATAPP_HOME"] = tempfile.mkdtemp(prefix="chatapp-bench-")

    from chatapp.core.backend import ModelRef
    from chatapp.core.settings import Settings
    from chatapp.core.token_engine import SamplingParams
    from chatapp.paths import app_paths
    from chatapp.service import ChatService, LoadRequest, TurnOptions
    from chatapp.service.events import (
        TurnChunk,
        TurnFinished,
        TurnPrompt,
        TurnStarted,
        TurnToolResult,
    )
    from tests.fetch_models import SMOLLM2, fetch

    model = args.model or str(fetch() / SMOLLM2)
    calc = InstantCalculator()
    settings = Settings()
    settings.tool_max_steps = 1  # the call, then the answer (no tools offered to it)
    service = ChatService(app_paths().ensure().database, settings, tools=calc)
    service.load(LoadRequest(ModelRef.local(model), n_threads=args.threads)).result()
    sampling = SamplingParams(seed=5, max_tokens=args.tokens)
    tool_opts = TurnOptions(sampling=sampling, tools=("calculator",), tool_choice="required")
    plain_opts = TurnOptions(sampling=sampling)

    def timed(question: str, opts: Any, start_after: type) -> dict[str, float]:
        """Event times of one turn: the start event (`start_after`), then the first
        TurnPrompt and the first token after it, and the last step's prompt time."""
        marks: dict[str, float] = {}

        def listener(event: object) -> None:
            now = time.perf_counter()
            if isinstance(event, start_after):
                marks.setdefault("start", now)
            elif "start" not in marks:
                return
            elif isinstance(event, TurnPrompt):
                marks.setdefault("prepared", now)
            elif isinstance(event, TurnChunk) and event.chunk.token_id is not None:
                marks.setdefault("first", now)

        time.sleep(args.pause)
        result = service.send(None, question, options=opts, listener=listener).result()
        assert isinstance(result, TurnFinished), result
        assert "first" in marks, "no token after the start"
        marks["prompt"] = result.stats.prompt_seconds  # the last step's: the answer's
        return marks

    def tool_turn(i: int) -> tuple[float, float, float, float] | None:
        """(the loop's overhead, of which saving, of which preparing; prompt time), or
        None when the model's call could not be read (the tool did not run)."""
        ran = len(calc.returned)
        m = timed(f"What is 12345 times 6789? ({i})", tool_opts, TurnToolResult)
        if len(calc.returned) == ran:
            return None
        t0 = calc.returned[-1]
        over = m["first"] - t0 - m["prompt"]
        return over, m["start"] - t0, m["prepared"] - m["start"], m["prompt"]

    def plain_turn(i: int) -> tuple[float, float, float]:
        """(a plain turn's overhead from its start on the inference thread, of which
        preparing; prompt time)."""
        question = f"What is 12345 times 6789? Answer in words, please. ({i})"
        m = timed(question, plain_opts, TurnStarted)
        return m["first"] - m["start"] - m["prompt"], m["prepared"] - m["start"], m["prompt"]

    tool_turn(-1)  # warm up: the model's first evaluation, the template compiled
    plain_turn(-1)
    loop: list[float] = []
    ref: list[float] = []
    for i in range(args.rounds):
        measured = tool_turn(i)
        if measured is None:
            print(f"round {i + 1:2d}: the model's call could not be read; not counted")
            continue
        over, saved, prepared, prompt = measured
        loop.append(over)
        print(
            f"round {i + 1:2d}: loop {over * 1000:6.1f} ms (result saved {saved * 1000:5.1f}, "
            f"next prompt prepared {prepared * 1000:5.1f}; prompt {prompt * 1000:7.1f})",
            end="",
            flush=True,
        )
        over, prepared, prompt = plain_turn(i)
        ref.append(over)
        print(
            f" | plain turn {over * 1000:6.1f} ms (prepared {prepared * 1000:5.1f}; "
            f"prompt {prompt * 1000:7.1f})",
            flush=True,
        )
    service.shutdown()
    if not loop:
        raise SystemExit("no round ran the tool")
    m_loop, m_ref = statistics.median(loop), statistics.median(ref)
    print(f"\nmodel {Path(model).name}, {args.rounds} rounds, load {os.getloadavg()[0]:.2f}")
    print(
        f"the loop's overhead, tool result -> next token beyond the prompt's evaluation: "
        f"median {m_loop * 1000:.1f} ms, max {max(loop) * 1000:.1f} ms  (target < 50 ms)"
    )
    print(
        f"a plain turn's overhead, TurnStarted -> first token beyond the prompt: "
        f"median {m_ref * 1000:.1f} ms"
    )
    print(f"difference (loop - plain turn): {(m_loop - m_ref) * 1000:+.1f} ms")


if __name__ == "__main__":
    main()
