"""`--logprobs N --json` for `chatapp chat` and `chatapp complete`: one JSON object per
generated token on stdout (core.logprobs.chunk_to_json), nothing else there."""

from __future__ import annotations

import argparse
import json
import sys
import threading
from typing import Any

from chatapp.core.backend import Chunk
from chatapp.core.errors import UserError
from chatapp.core.logprobs import MAX_TOP_N, chunk_to_json


def _top_n(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= n <= MAX_TOP_N:
        raise argparse.ArgumentTypeError(f"must be from 0 to {MAX_TOP_N}")
    return n


def add_token_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--logprobs",
        type=_top_n,
        default=None,
        metavar="N",
        help=f"alternatives kept per token, 0-{MAX_TOP_N} (default: the settings', 5)",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object per generated token (text, id, probability, top-N)",
    )


class TokenPrinter:
    """A listener: service turn events (TurnChunk) or plain Chunks (completion)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.count = 0

    def __call__(self, event: Any) -> None:
        chunk = event if isinstance(event, Chunk) else getattr(event, "chunk", None)
        prompt = getattr(event, "prompt", None)
        warning = str(getattr(prompt, "warning", "") or "")
        if warning:
            print(f"chatapp: note: {warning}", file=sys.stderr)
        if not isinstance(chunk, Chunk) or chunk.token_id is None:
            return
        line = json.dumps(chunk_to_json(chunk), ensure_ascii=False, allow_nan=False)
        with self.lock:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
            self.count += 1


def check_json_flags(args: argparse.Namespace) -> None:
    if args.json and args.logprobs == 0:
        raise UserError("--json prints each token's alternatives: give --logprobs 1 or more.")
