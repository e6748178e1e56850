"""`chatapp complete`: completion mode for base models. The model continues the text as
written: no chat template, nothing added but the BOS token its vocabulary asks for.
Nothing is saved."""

from __future__ import annotations

import argparse
import sys
import threading
from concurrent.futures import TimeoutError as FutureTimeout

from chatapp.cli.common import add_gpu_layers_flag, add_speculation_flags, model_ref
from chatapp.cli.tokens_json import TokenPrinter, add_token_flags, check_json_flags
from chatapp.core.backend import Chunk
from chatapp.core.errors import UserError
from chatapp.core.logprobs import top_n_setting
from chatapp.core.message_info import speculation_text
from chatapp.core.settings import Settings
from chatapp.paths import app_paths
from chatapp.service import ChatService, Completion, TurnOptions


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "complete",
        help="continue a text as written (completion mode, for base models)",
        description="The model continues TEXT as written: no chat template, nothing added "
        "but the BOS token its vocabulary asks for. The continuation goes to stdout.",
    )
    p.add_argument("text", nargs="*", help="the text to continue ('-' reads it from stdin)")
    p.add_argument("-m", "--model", metavar="PATH", help="a .gguf file (default: the last used)")
    p.add_argument("--max-tokens", type=int, default=None)
    p.add_argument("--temperature", type=float, default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--context", type=int, default=None, help="context limit in tokens")
    p.add_argument("--threads", type=int, default=None)
    add_gpu_layers_flag(p)
    add_speculation_flags(p)
    p.add_argument("--stats", action="store_true", help="print speed and token counts")
    p.add_argument("--echo", action="store_true", help="print the text before its continuation")
    add_token_flags(p)
    p.set_defaults(func=complete)


class _TextPrinter:
    def __init__(self) -> None:
        self.lock = threading.Lock()

    def __call__(self, chunk: Chunk) -> None:
        if chunk.text:
            with self.lock:
                sys.stdout.write(chunk.text)
                sys.stdout.flush()


def complete(args: argparse.Namespace) -> int:
    check_json_flags(args)
    text = " ".join(args.text)
    if text == "-":
        text = sys.stdin.read()
    if not text:
        raise UserError("There is no text to continue.")
    paths = app_paths().ensure()
    settings = Settings.load(paths.settings)
    ref = model_ref(args.model, settings, must_exist=True)
    # only the flags given override the app's and the model's defaults (service.resolver)
    options = TurnOptions(
        overrides={
            "temperature": args.temperature,
            "max_tokens": args.max_tokens,
            "seed": args.seed,
        }
    )
    logprobs = top_n_setting(settings) if args.logprobs is None else args.logprobs
    service = ChatService(paths.database, settings)
    cancel = threading.Event()
    interrupted = False
    try:
        service.load(
            service.load_request(
                ref,
                context_limit=args.context,
                n_threads=args.threads,
                n_gpu_layers=args.gpu_layers,
                speculative=args.speculative,
                draft_model=args.draft_model,
            )
        ).result()
        if args.echo and not args.json:
            sys.stdout.write(text)
        printer = TokenPrinter() if args.json else _TextPrinter()
        fut = service.continue_text(
            text,
            options=options,
            logprobs=logprobs if args.json else 0,
            listener=printer,
            cancel=cancel,
        )
        while True:
            try:
                result: Completion = fut.result(timeout=0.2)
                break
            except FutureTimeout:
                continue
            except KeyboardInterrupt:
                interrupted = True
                cancel.set()
    finally:
        service.shutdown()
    if not args.json:
        sys.stdout.write("\n")
    sys.stdout.flush()
    if args.stats:
        st = result.stats
        print(
            f"[prompt {st.prompt_tokens} tokens · {st.completion_tokens} tokens"
            f" · {st.tokens_per_second:.1f} tok/s · {st.finish_reason.value} · seed {st.seed}"
            + (f" · {speculation_text(st.speculation)}" if st.speculation else "")
            + "]",
            file=sys.stderr,
        )
    return 130 if interrupted else 0
