"""`chatapp chat`: the headless chat, through the same chat service as the window (no
Qt)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import replace
from pathlib import Path
from typing import Any

from chatapp.cli.common import add_gpu_layers_flag, add_speculation_flags, model_ref, shown
from chatapp.cli.tokens_json import TokenPrinter, add_token_flags, check_json_flags
from chatapp.core.backend import ModelRef
from chatapp.core.chat_settings import BadValue
from chatapp.core.errors import FailureKind, UserError
from chatapp.core.images import read_image_file
from chatapp.core.json_grammar import schema_grammar
from chatapp.core.message_info import speculation_text
from chatapp.core.settings import Settings
from chatapp.core.store import Store
from chatapp.paths import app_paths
from chatapp.service import ChatService, TurnHandle, TurnOptions
from chatapp.service.documents import DocumentsStep, EmbedderCache, citations, index_path
from chatapp.service.events import (
    TurnChunk,
    TurnFailed,
    TurnFinished,
    TurnPrompt,
    TurnToolCall,
    TurnToolResult,
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("chat", help="send a prompt and stream the answer to stdout")
    p.add_argument("prompt", nargs="*", help="the message ('-' reads it from stdin)")
    p.add_argument("-m", "--model", metavar="PATH", help="a .gguf file (default: the chat's model)")
    p.add_argument(
        "--backend",
        metavar="URL",
        help="an OpenAI-compatible server (llama.cpp server, vLLM, Ollama) instead of a local file",
    )
    p.add_argument("--backend-model", metavar="NAME", help="the server's model id (with --backend)")
    p.add_argument(
        "--api-key",
        metavar="KEY",
        default=os.environ.get("CHATAPP_REMOTE_API_KEY", ""),
        help="the server's API key (default $CHATAPP_REMOTE_API_KEY)",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="the longest a server's answer may take in all (with --backend or a remote "
        "model; default 1800)",
    )
    p.add_argument("-c", "--conversation", metavar="ID", help="continue this conversation")
    p.add_argument("-s", "--system", metavar="TEXT", help="system prompt for a new conversation")
    p.add_argument(
        "--regenerate",
        nargs="?",
        const="",
        metavar="MSG_ID",
        help="a new answer (to the last question, or to the answer MSG_ID's question); "
        "the old answer stays as a branch",
    )
    p.add_argument(
        "--edit", metavar="MSG_ID", help="send the prompt as a new version of message MSG_ID"
    )
    # sampling: each flag given overrides the chat's own, the model's and the app's settings
    p.add_argument("--temperature", type=float, default=None)
    p.add_argument("--top-p", type=float, default=None)
    p.add_argument("--top-k", type=int, default=None)
    p.add_argument("--min-p", type=float, default=None)
    p.add_argument("--repeat-penalty", type=float, default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--max-tokens", type=int, default=None)
    p.add_argument(
        "--context-policy",
        choices=["stop", "drop-oldest"],
        default=None,
        help="when the chat no longer fits the context: stop and explain, or leave out "
        "the oldest turns (default: the chat's own setting)",
    )
    p.add_argument("--context", type=int, default=None, help="context limit in tokens")
    p.add_argument("--threads", type=int, default=None)
    add_gpu_layers_flag(p)
    add_speculation_flags(p)
    p.add_argument("--stats", action="store_true", help="print speed and token counts")
    p.add_argument(
        "--tools",
        metavar="NAME[,NAME...]",
        help="tools the model may call; calls and results are printed on stderr",
    )
    p.add_argument(
        "--tool-choice",
        metavar="auto|none|required|NAME",
        default=None,
        help="required (or a tool's name): the model must call a tool, and the call is "
        "constrained to the tools' schemas",
    )
    p.add_argument(
        "--yes", action="store_true", help="approve every tool call of this run without asking"
    )
    p.add_argument(
        "--json-schema",
        metavar="FILE",
        help="constrain the answer to JSON valid for this schema ('-': any JSON object)",
    )
    p.add_argument(
        "--docs",
        action="append",
        default=[],
        metavar="NAME",
        help="answer from this document collection (chatapp docs add); may repeat",
    )
    p.add_argument(
        "--attach",
        action="append",
        default=[],
        metavar="FILE",
        help="attach a file to the question (whole if it fits, else its best parts); may repeat",
    )
    p.add_argument(
        "--embedding-model",
        metavar="PATH",
        help="a GGUF embedding model to rank the parts of an attached file that does not fit",
    )
    p.add_argument(
        "--rewrite-queries",
        type=int,
        default=None,
        metavar="N",
        help="with --docs: the chat model rephrases the question N times and every phrasing "
        "is searched (RAG-Fusion; default: the setting documents.query_rewrites, else 0: off)",
    )
    p.add_argument(
        "--image",
        action="append",
        default=[],
        metavar="FILE",
        help="an image with the message (PNG, JPEG, WebP, GIF); may repeat. The model needs "
        "its projector: an mmproj-*.gguf beside the model file, or --mmproj",
    )
    p.add_argument(
        "--mmproj",
        metavar="PATH",
        help="the vision projector for --model (default: an mmproj-*.gguf beside it)",
    )
    add_token_flags(p)
    p.set_defaults(func=chat)


def _open_store() -> tuple[Store, Settings]:
    paths = app_paths().ensure()
    store = Store(paths.database)
    store.recover_interrupted()
    return store, Settings.load(paths.settings)


def _prompt_text(args: argparse.Namespace) -> str:
    text = " ".join(args.prompt)
    if text == "-":
        text = sys.stdin.read()
    return text


def chat(args: argparse.Namespace) -> int:
    check_json_flags(args)
    text = _prompt_text(args)
    regenerate = args.regenerate is not None
    if regenerate and (args.edit or text.strip()):
        raise UserError("--regenerate takes no prompt and no --edit.")
    if not regenerate and not text.strip():
        raise UserError("The prompt is empty.")
    if args.image and (regenerate or args.edit):
        raise UserError("--image goes with a new message, not --regenerate or --edit.")
    # read and checked before anything loads: a bad file is one line, nothing stored
    images = tuple(read_image_file(p) for p in args.image)
    if (regenerate or args.edit) and not args.conversation and not args.edit:
        raise UserError("--regenerate needs --conversation ID.")
    store, settings = _open_store()
    try:
        conv = None
        if args.conversation:
            conv = store.find_conversation(args.conversation)
            if conv is None:
                raise UserError(f"No conversation with id {args.conversation}.")
        if args.edit:
            edited = store.get_message(args.edit) or _find_message(store, conv, args.edit)
            if edited is None:
                raise UserError(f"No message with id {args.edit}.")
            conv = store.get_conversation(edited.conversation_id)
            args.edit = edited.id
        answer_id = None
        if regenerate and args.regenerate:
            found = store.get_message(args.regenerate) or _find_message(
                store, conv, args.regenerate
            )
            if found is None:
                raise UserError(f"No message with id {args.regenerate}.")
            answer_id = found.id
    finally:
        store.close()
    if bool(args.backend) != bool(args.backend_model):
        raise UserError("--backend URL and --backend-model NAME go together.")
    if args.backend and args.model:
        raise UserError("Give either --model PATH or --backend URL, not both.")
    if args.timeout is not None and not args.timeout > 0:
        raise UserError("--timeout takes a number of seconds above 0.")
    model = args.model or (conv.model_path if conv else None)
    if args.backend:
        model = str(ModelRef(name=args.backend_model, endpoint=args.backend))
    ref = model_ref(model, settings)
    opts = options_from_args(args)
    opts = replace(opts, images=images, **tool_options(args))
    runner = _tool_runner(settings) if opts.tools else None

    documents = documents_step(args, settings)
    if documents is not None:
        opts = replace(opts, retrieval=documents)
    service = ChatService(app_paths().database, settings, tools=runner)
    try:
        request = service.load_request(
            ref,
            context_limit=args.context,
            n_threads=args.threads,
            n_gpu_layers=args.gpu_layers,
            speculative=args.speculative,
            draft_model=args.draft_model,
            api_key=args.api_key,
            timeout=args.timeout,
        )
        if args.mmproj:
            request = replace(request, mmproj=args.mmproj)
        loaded = service.load(request).result()
        if loaded.template.warning:
            print(f"chatapp: note: {loaded.template.warning}", file=sys.stderr)
        printer = TokenPrinter() if args.json else _Printer(said=loaded.template.warning)
        if args.edit:
            handle = service.edit(args.edit, text, options=opts, listener=printer)
        elif regenerate:
            assert conv is not None
            handle = service.regenerate(conv.id, answer_id, options=opts, listener=printer)
        else:
            handle = service.send(conv.id if conv else None, text, options=opts, listener=printer)
        result, interrupted = _wait(handle)
    finally:
        service.shutdown()
        if runner is not None:
            runner.close()  # stops MCP servers and any running tool process
        if documents is not None:
            documents.embedder.close()
    if not args.json:
        sys.stdout.write("\n")
    sys.stdout.flush()
    if isinstance(result, TurnFailed):
        kept = (
            f" (the partial answer is kept in conversation {result.conversation_id[:12]})"
            if result.message_id and result.conversation_id
            else ""
        )
        raise UserError(shown(" ".join(result.error.split())) + kept, kind=result.kind)
    if documents is not None and not args.json:
        print_sources(result.message)
    st = result.stats
    cid = result.conversation_id
    if args.stats:
        print(
            f"[conversation {cid[:12]} · message {result.message.id[:12]}"
            f" · prompt {st.prompt_tokens} tokens ({st.reused_tokens} reused,"
            f" {st.evaluated_tokens} evaluated, {st.prompt_seconds:.2f} s)"
            f" · {st.completion_tokens} tokens · {st.tokens_per_second:.1f} tok/s"
            f" · {st.finish_reason.value} · seed {st.seed}{_images_note(result.message)}"
            + (f" · {speculation_text(st.speculation)}" if st.speculation else "")
            + "]",
            file=sys.stderr,
        )
    else:
        print(f"[conversation {cid[:12]}]", file=sys.stderr)
    return 130 if interrupted else 0


def _images_note(message: Any) -> str:
    receipt = message.meta.get("receipt") or {}
    images = receipt.get("images") or []
    if not images:
        return ""
    positions = sum(int(i.get("positions", 0)) for i in images)
    encoded = int(receipt.get("images_encoded", 0))
    return f" · {len(images)} image(s), {positions} positions, {encoded} encoded"


def documents_step(args: argparse.Namespace, settings: Settings) -> DocumentsStep | None:
    """The retrieval step for --docs and --attach (None without them). Settings:
    extra["documents"] = {"query_rewrites": N, "embedding_model": PATH} give the defaults
    of --rewrite-queries and --embedding-model."""
    if not args.docs and not args.attach:
        return None
    saved = settings.extra.get("documents")
    saved = saved if isinstance(saved, dict) else {}
    if args.rewrite_queries is None:
        n = saved.get("query_rewrites", 0)
        args.rewrite_queries = n if isinstance(n, int) and 0 <= n <= 8 else 0
    if args.embedding_model is None and isinstance(saved.get("embedding_model"), str):
        args.embedding_model = saved["embedding_model"] or None
    from chatapp.cli.docs import load_embedder

    for f in args.attach:
        if not Path(f).expanduser().is_file():
            raise UserError(f"Cannot attach {f}: no such file.")
    model = ""
    if args.embedding_model:
        if not Path(args.embedding_model).expanduser().is_file():
            raise UserError(f"No such embedding model file: {args.embedding_model}")
        model = str(Path(args.embedding_model).expanduser().resolve())
    return DocumentsStep(
        index_path(app_paths().ensure().data),
        collections=tuple(args.docs),
        attachments=tuple(Path(f).expanduser().absolute() for f in args.attach),
        embedder=EmbedderCache(load_embedder),
        attach_embedding_model=model,
        rewrites=max(0, args.rewrite_queries),
    )


def print_sources(message: Any) -> None:
    """The passages the answer cites (stderr), else every passage it was given."""
    docs = message.meta.get("documents") or {}
    passages = docs.get("passages") or []
    if not passages:
        print("chatapp: note: no passage matched the question.", file=sys.stderr)
        return
    cited = citations(message.content, passages)
    print("Cited:" if cited else "Sources given:", file=sys.stderr)
    for p in cited or passages:
        print(f"  [{p['n']}] {p['where']}  ({p['file']})", file=sys.stderr)


SAMPLING_FLAGS = ("temperature", "top_p", "top_k", "min_p", "repeat_penalty", "seed", "max_tokens")


def options_from_args(args: argparse.Namespace) -> TurnOptions:
    """What the command line gave explicitly; the rest comes from the chat's own settings,
    the model's and the app's (service.resolver). Values are checked against the chat
    settings panel's ranges."""
    policy = getattr(args, "context_policy", None)
    opts = TurnOptions(
        overrides={name: getattr(args, name, None) for name in SAMPLING_FLAGS},
        system_prompt=args.system,
        context_policy=policy.replace("-", "_") if policy else None,
        logprobs=args.logprobs,
    )
    try:
        opts.given()
        return opts
    except BadValue as e:
        raise UserError(f"Bad value: {e}.", kind=FailureKind.BAD_REQUEST) from e


def tool_options(args: argparse.Namespace) -> dict[str, Any]:
    """--tools, --tool-choice, --yes and --json-schema as TurnOptions fields."""
    out: dict[str, Any] = {}
    names = tuple(n.strip() for n in (getattr(args, "tools", None) or "").split(",") if n.strip())
    choice = getattr(args, "tool_choice", None)
    if choice and not names:
        raise UserError("--tool-choice needs --tools NAME[,NAME...].")
    if names:
        out.update(tools=names, tool_choice=choice, approve=_approver(bool(args.yes)))
    path = getattr(args, "json_schema", None)
    if path:
        out["json_schema"] = True if path == "-" else _read_schema(path)
        if out["json_schema"] is not True:
            schema_grammar(out["json_schema"])  # refused here, before anything runs
    return out


def _read_schema(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except OSError as e:
        raise UserError(f"Cannot read the JSON schema {path}: {e.strerror or e}.") from e
    except ValueError as e:
        raise UserError(f"The JSON schema {path} is not valid JSON: {e}.") from e


def _tool_runner(settings: Settings) -> Any:
    """The app's tools (chatapp.tools' registry: the built-ins and the MCP servers of
    mcp.json in the config folder), built here as the composition root. The Python tool
    works in a scratch folder of its own; no folder is granted to the file tools."""
    from chatapp.tools.registry import ToolRegistry

    paths = app_paths().ensure()
    return ToolRegistry(paths.config, scratch_dir=paths.data / "tool-scratch")


def _approver(yes: bool) -> Any:
    """--yes approves every call; otherwise ask on the terminal (no terminal: denied)."""

    def approve(call: Any) -> bool:
        if yes:
            return True
        if not sys.stdin.isatty():
            print(
                f"chatapp: denied {call.name} (no terminal to ask; --yes approves)", file=sys.stderr
            )
            return False
        args = json.dumps(call.arguments, ensure_ascii=False)
        answer = input(f"Run {call.name}({args})? [y/N] ")
        return answer.strip().lower() in ("y", "yes")

    return approve


def _find_message(store: Store, conv: Any, prefix: str) -> Any:
    """A message by id prefix within the conversation (ids are long)."""
    if conv is None or len(prefix) < 4:
        return None
    hits = [m for m in store.messages(conv.id) if m.id.startswith(prefix)]
    return hits[0] if len(hits) == 1 else None


class _Printer:
    """The answer to stdout and thinking to stderr, as it streams (on the service's
    inference thread)."""

    def __init__(self, said: str = "") -> None:
        self.lock = threading.Lock()
        self.said = said  # a note already printed (the template's), not repeated

    def __call__(self, event: Any) -> None:
        if isinstance(event, TurnToolCall):
            call = event.call
            with self.lock:
                if call.error:
                    print(f"\n[tool call not understood: {call.error}] {call.raw}", file=sys.stderr)
                else:
                    args = json.dumps(call.arguments, ensure_ascii=False)
                    print(f"\n[tool call] {call.name}({args})", file=sys.stderr)
        elif isinstance(event, TurnToolResult):
            o = event.outcome
            kind = "denied" if o.denied else "error" if o.is_error else "result"
            with self.lock:
                print(f"[tool {kind}] {o.content}", file=sys.stderr)
        elif (
            isinstance(event, TurnChunk) and event.chunk.text and event.chunk.channel != "tool_call"
        ):
            out = sys.stderr if event.chunk.channel == "thinking" else sys.stdout
            with self.lock:
                out.write(shown(event.chunk.text))
                out.flush()
        elif isinstance(event, TurnPrompt) and event.prompt.warning:
            note = (
                event.prompt.warning.replace(self.said, "").strip()
                if self.said
                else event.prompt.warning
            )
            if note:
                print(f"chatapp: note: {note}", file=sys.stderr)


def _wait(handle: TurnHandle) -> tuple[TurnFinished | TurnFailed, bool]:
    """Wait for the turn; Ctrl-C stops it and keeps what came (saved as cancelled)."""
    interrupted = False
    while True:
        try:
            return handle.result(timeout=0.2), interrupted
        except FutureTimeout:
            continue
        except KeyboardInterrupt:
            interrupted = True
            handle.cancel()
