"""`chatapp chat`: the headless chat on the same core and engine as the window (no Qt)."""

from __future__ import annotations

import argparse
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

from chatapp.core.chat import begin_reply, prepare_prompt, template_for
from chatapp.core.conversation import FinishReason, Role, title_from
from chatapp.core.errors import UserError
from chatapp.core.generation import THINKING, ReplyStream
from chatapp.core.settings import Settings
from chatapp.core.store import Store
from chatapp.paths import app_paths

SAVE_INTERVAL = 0.5


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("chat", help="send a prompt and stream the answer to stdout")
    p.add_argument("prompt", nargs="+", help="the message ('-' reads it from stdin)")
    p.add_argument("-m", "--model", metavar="PATH", help="a .gguf file (default: the chat's model)")
    p.add_argument("-c", "--conversation", metavar="ID", help="continue this conversation")
    p.add_argument("-s", "--system", metavar="TEXT", help="system prompt for a new conversation")
    p.add_argument("--max-tokens", type=int, default=None)
    p.add_argument("--temperature", type=float, default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--context", type=int, default=None, help="context limit in tokens")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--gpu-layers", type=int, default=None, help="layers to offload (-1: all)")
    p.add_argument("--stats", action="store_true", help="print speed and token counts")
    p.set_defaults(func=chat)


def _open_store() -> tuple[Store, Settings]:
    paths = app_paths().ensure()
    store = Store(paths.database)
    store.recover_interrupted()
    return store, Settings.load(paths.settings)


def chat(args: argparse.Namespace) -> int:
    from chatapp.engine.llama import LlamaEngine  # imported late: `chatapp --help` stays fast

    text = " ".join(args.prompt)
    if text == "-":
        text = sys.stdin.read()
    if not text.strip():
        raise UserError("The prompt is empty.")
    store, settings = _open_store()
    conv = None
    if args.conversation:
        conv = store.find_conversation(args.conversation)
        if conv is None:
            raise UserError(f"No conversation with id {args.conversation}.")
    model = args.model or (conv.model_path if conv else None) or settings.default_model
    model = model or settings.last_model
    if not model:
        raise UserError("No model given: use --model PATH to a .gguf file.")
    engine = LlamaEngine(
        Path(model).expanduser(),
        context_limit=args.context or settings.context_limit,
        n_threads=args.threads or settings.n_threads,
        n_gpu_layers=settings.n_gpu_layers if args.gpu_layers is None else args.gpu_layers,
    )
    try:
        return _chat_turn(args, store, settings, engine, conv, text)
    finally:
        engine.close()
        store.close()


def _chat_turn(args, store, settings, engine, conv, text) -> int:  # type: ignore[no-untyped-def]
    template = template_for(engine, settings.user_templates)
    if template.warning:
        print(f"chatapp: note: {template.warning}", file=sys.stderr)
    if conv is None:
        conv = store.create_conversation(
            title_from(text),
            model_path=engine.info.path,
            system_prompt=args.system if args.system is not None else settings.system_prompt,
        )
    elif conv.model_path != engine.info.path:
        store.update_conversation(conv.id, model_path=engine.info.path)
    user = store.add_message(conv.id, Role.USER, text, parent_id=conv.current_leaf_id)
    branch = store.active_thread(conv.id)
    prompt = prepare_prompt(engine, template, conv.system_prompt, branch)
    if prompt.warning:
        print(f"chatapp: note: {prompt.warning}", file=sys.stderr)
    # --seed alone decides the CLI's seed (none: a fresh one each run)
    params = replace(
        settings.sampling(temperature=args.temperature, max_tokens=args.max_tokens),
        seed=args.seed,
    )
    reply = begin_reply(store, conv.id, user.id, engine.info.path, template, params)
    cancel = threading.Event()
    stream = ReplyStream(
        engine,
        prompt.tokens,
        params,
        cancel,
        template.stop_markers,
        template.think_tags,
        start_inside_thinking=prompt.starts_inside_thinking,
    )
    saved = time.monotonic()
    out = sys.stdout
    interrupted = False
    try:
        for channel, piece in stream:
            if channel == THINKING:  # reasoning goes to stderr, the answer to stdout
                sys.stderr.write(piece)
                sys.stderr.flush()
                continue
            out.write(piece)
            out.flush()
            if time.monotonic() - saved >= SAVE_INTERVAL:
                store.update_message(reply.id, content=stream.answer, thinking=stream.thinking)
                saved = time.monotonic()
    except KeyboardInterrupt:
        interrupted = True
    out.write("\n")
    out.flush()
    st = stream.stats
    store.update_message(
        reply.id,
        content=stream.answer,
        thinking=stream.thinking,
        finish_reason=FinishReason.CANCELLED if interrupted else st.finish_reason,
        prompt_tokens=st.prompt_tokens,
        completion_tokens=st.completion_tokens,
        tokens_per_second=round(st.tokens_per_second, 2),
    )
    if args.stats:
        print(
            f"[conversation {conv.id[:12]} · prompt {st.prompt_tokens} tokens"
            f" ({st.prompt_seconds:.2f} s) · {st.completion_tokens} tokens"
            f" · {st.tokens_per_second:.1f} tok/s · {st.finish_reason.value}]",
            file=sys.stderr,
        )
    else:
        print(f"[conversation {conv.id[:12]}]", file=sys.stderr)
    return 130 if interrupted else 0
