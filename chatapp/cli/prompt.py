"""`chatapp prompt`: print exactly the prompt the app would send, for scripting, for
debugging a template, and to check an answer's receipt.

    chatapp prompt --model M.gguf --messages chat.json [--template T.jinja] [--tokens]
    chatapp prompt --conversation ID [--message MSG_ID [--replay]] [--tokens]

chat.json holds OpenAI-style messages: a list of {"role", "content"} objects, or an object
with "messages" (and optionally "tools"). System messages become the system prompt. The
prompt comes from the chat service's prepare(), the very function a send runs, on the
model's own tokenizer (the model is loaded for that): the user's saved template for this
model file, the GGUF's, a preset, or plain completion, unless --template names a file; the
BOS token the model's vocabulary adds is shown as it is sent. With --conversation, the
prompt of the conversation's next answer; with --message, the prompt that produced that
answer, checked against its receipt (exit 0 if it matches, 1 if not, naming the first
differing token); with --replay, the answer is also generated again at its recorded
settings and its tokens compared. An answer given tools is re-rendered with the app's
definitions of those tools, and their sha256 is checked against the receipt too (a
schema that changed since fails the check). Warnings go to stderr so stdout is the
prompt alone.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from pathlib import Path
from typing import Any

from chatapp.core.backend import ModelRef, PreparedPrompt
from chatapp.core.catalog.gguf import check_model_file
from chatapp.core.conversation import Role
from chatapp.core.errors import TemplateError, UserError
from chatapp.core.receipt import Receipt, Verification, verify, verify_tools
from chatapp.core.settings import Settings
from chatapp.core.store import Store
from chatapp.core.templates import check_syntax
from chatapp.core.token_engine import SamplingParams
from chatapp.paths import app_paths
from chatapp.service import ChatService, TurnOptions
from chatapp.service.events import TurnChunk, TurnFailed

log = logging.getLogger(__name__)


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "prompt",
        help="print the exact prompt a model would receive for a conversation",
        description="Render a conversation with a model's chat template and print the result.",
    )
    p.add_argument("--model", metavar="PATH", help="the GGUF model file")
    p.add_argument("--messages", metavar="FILE", help="OpenAI-style messages (JSON)")
    p.add_argument("--conversation", metavar="ID", help="a stored conversation instead")
    p.add_argument(
        "--message",
        metavar="MSG_ID",
        help="with --conversation: re-render the prompt of this answer and check its receipt",
    )
    p.add_argument(
        "--replay",
        action="store_true",
        help="with --message: generate that answer again at its recorded settings and say "
        "whether the tokens match (exit 0 if they do, 1 if not)",
    )
    p.add_argument("--template", metavar="FILE", help="use this Jinja template instead")
    p.add_argument("--tokens", action="store_true", help="also print the token ids and pieces")
    p.add_argument(
        "--no-generation-prompt",
        dest="generation_prompt",
        action="store_false",
        help="do not open the assistant's turn at the end",
    )
    p.set_defaults(func=run_prompt)


def load_messages(path: Path) -> tuple[str, list[dict[str, Any]], list[dict[str, Any]] | None]:
    """(system prompt, messages without system ones, tools) from a JSON file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"No such messages file: {path}") from None
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise UserError(f"Cannot read the messages file {path}: {e}") from None
    tools = None
    if isinstance(data, dict):
        tools = data.get("tools")
        data = data.get("messages")
    if not isinstance(data, list) or not all(
        isinstance(m, dict) and isinstance(m.get("role"), str) for m in data
    ):
        raise UserError(
            f"{path} is not a list of messages: expected "
            '[{"role": "user", "content": "..."}, ...] or {"messages": [...]}'
        )
    if tools is not None and not isinstance(tools, list):
        raise UserError(f'{path}: "tools" must be a list')
    system = "\n\n".join(str(m.get("content") or "") for m in data if m["role"] == "system")
    return system, [m for m in data if m["role"] != "system"], tools


def _template_text(template_file: str | None) -> Any:
    """The template text asked for by --template, or "saved" for the usual resolution."""
    if not template_file:
        return _SAVED
    try:
        text = Path(template_file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"Cannot read the template {template_file}: {e}") from None
    check_syntax(text)  # asked for by name: its error, not a fallback
    return text


_SAVED: Any = object()


class _Loaded:
    """The chat service with one model loaded, for the length of a command."""

    def __init__(self, ref: ModelRef) -> None:
        paths = app_paths().ensure()
        settings = Settings.load(paths.settings)
        if ref.is_local:
            check_model_file(ref.name)
        self.service = ChatService(paths.database, settings)
        try:
            # a check and a replay run cold: no KV state from an earlier process is used
            request = self.service.load_request(ref, keep_states=False)
            self.service.load(request).result()
        except BaseException:
            self.service.shutdown()
            raise

    def __enter__(self) -> ChatService:
        return self.service

    def __exit__(self, *exc: object) -> None:
        self.service.shutdown()


def _print_prompt(service: ChatService, prepared: PreparedPrompt, tokens: bool) -> None:
    if prepared.warning:
        print(f"chatapp: warning: {prepared.warning}", file=sys.stderr)
    t = prepared.template
    print(f"chatapp: template: {t.name} ({t.source})", file=sys.stderr)
    sys.stdout.write(prepared.text)  # exactly the prompt: no newline of our own when piped
    ends_line = prepared.text.endswith("\n")
    if tokens:
        if not prepared.tokens_known:
            raise UserError("The remote server does not report the prompt's tokens.")
        pairs = service.describe_tokens(prepared.tokens).result()
        if not ends_line:
            sys.stdout.write("\n")
        sys.stdout.write(f"--- {len(pairs)} tokens ---\n")
        for token_id, piece in pairs:
            text = piece.decode("utf-8", errors="replace")
            sys.stdout.write(f"{token_id}\t{json.dumps(text, ensure_ascii=False)}\n")
    elif not ends_line and sys.stdout.isatty():
        sys.stdout.write("\n")
    sys.stdout.flush()


def run_prompt(args: argparse.Namespace) -> int:
    if args.conversation:
        return _conversation_prompt(args)
    if args.message:
        raise UserError("--message needs --conversation ID.")
    if not args.model or not args.messages:
        raise UserError("Give --model and --messages, or --conversation ID.")
    model = Path(args.model).expanduser()
    template = _template_text(args.template)
    system, messages, tools = load_messages(Path(args.messages).expanduser())
    kwargs: dict[str, Any] = {} if template is _SAVED else {"user_template": template}
    with _Loaded(ModelRef.local(model)) as service:
        try:
            prepared = service.prepare(
                messages,
                system,
                tools=tools,
                add_generation_prompt=args.generation_prompt,
                **kwargs,
            ).result()
        except TemplateError as e:
            raise TemplateError(f"{e.message} (template: {args.template or model.name})") from e
        _print_prompt(service, prepared, args.tokens)
    return 0


def _conversation_prompt(args: argparse.Namespace) -> int:
    paths = app_paths().ensure()
    with Store(paths.database) as store:
        conv = store.find_conversation(args.conversation)
        if conv is None:
            raise UserError(f"No conversation with id {args.conversation}.")
        answer = None
        if args.message:
            answer = store.get_message(args.message) or next(
                (m for m in store.messages(conv.id) if m.id.startswith(args.message)), None
            )
            if answer is None or answer.conversation_id != conv.id:
                raise UserError(f"No message {args.message} in conversation {conv.id[:12]}.")
            if answer.role is not Role.ASSISTANT:
                raise UserError("--message must name an answer: its prompt is what was sent.")
        receipt = Receipt.from_dict(answer.meta.get("receipt")) if answer else None
        if answer is not None and receipt is None:
            raise UserError("This answer has no receipt (it was made before chatapp kept them).")
        recorded = store.prompt_tokens(answer.id) if answer else None
        trace = store.token_trace(answer.id) if answer else None
    if args.replay and answer is None:
        raise UserError("--replay needs --message MSG_ID (the answer to generate again).")
    model = args.model or (receipt.model if receipt else None) or conv.model_path
    if not model:
        raise UserError("This conversation has no model: give --model PATH.")
    template = _template_text(args.template)
    kwargs: dict[str, Any] = {} if template is _SAVED else {"user_template": template}
    tools, tools_check = _receipt_tools(receipt)
    with _Loaded(ModelRef.parse(model)) as service:
        # a continued answer's prompt ended with the answer so far (Continue)
        prefill = answer.content[: receipt.prefill_chars] if answer and receipt else ""
        prepared = service.prepare_conversation(
            conv.id,
            upto_message_id=answer.parent_id if answer else None,
            prefill=prefill,
            # an answer from documents: its question as sent, with the passages
            question=(answer.meta.get("documents") or {}).get("inserted", "") if answer else "",
            tools=tools,
            **kwargs,
        ).result()
        _print_prompt(service, prepared, args.tokens)
        if answer is None or receipt is None:
            return 0
        check = verify(receipt, prepared.tokens, recorded)
        print(f"chatapp: receipt: the prompt {check.detail}", file=sys.stderr)
        if receipt.tools_sha256:
            print(f"chatapp: receipt: tools: {tools_check.detail}", file=sys.stderr)
        ok = check.matches and tools_check.matches
        if not args.replay:
            return 0 if ok else 1
        expected = trace.token_ids if trace is not None else None
        same = _replay(
            service, prepared, conv.system_prompt, receipt, answer.content, expected, tools
        )
    return 0 if ok and same else 1


def _receipt_tools(
    receipt: Receipt | None,
) -> tuple[list[dict[str, Any]] | None, Verification]:
    """The app's definitions of the tools the receipt names (None: it names none), and
    whether they are the ones that were sent."""
    if receipt is None or not receipt.tools:
        return None, Verification(True, "no tools were offered")
    from chatapp.tools.registry import ToolRegistry

    paths = app_paths().ensure()
    with ToolRegistry(paths.config, scratch_dir=paths.data / "tool-scratch") as registry:
        specs = {s.name: s.openai() for s in registry.specs(list(receipt.tools))}
    missing = [n for n in receipt.tools if n not in specs]
    if missing:
        return [specs[n] for n in receipt.tools if n in specs], Verification(
            False,
            f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not among this "
            "app's tools (an API client's, or an MCP server that is gone); the prompt is "
            "rendered without them",
        )
    tools = [specs[n] for n in receipt.tools]
    return tools, verify_tools(receipt, tools)


def _replay(
    service: ChatService,
    prepared: PreparedPrompt,
    system_prompt: str,
    receipt: Receipt,
    content: str,
    expected: list[int] | None,
    tools: list[dict[str, Any]] | None = None,
) -> bool:
    """Generate the answer again from the same prompt at the recorded sampling (seed
    included) and compare: the token ids where the answer's tokens were kept, else the
    text. The answer is a function of its receipt (docs/chat-service.md, Exact answers)."""
    fields = {f.name for f in dataclasses.fields(SamplingParams)}
    sampling = SamplingParams(**{k: v for k, v in receipt.sampling.items() if k in fields})
    if expected is not None and sampling.max_tokens is None:
        sampling = dataclasses.replace(sampling, max_tokens=len(expected) + 1)
    ids: list[int] = []

    def listen(event: Any) -> None:
        if isinstance(event, TurnChunk) and event.chunk.token_id is not None:
            ids.append(event.chunk.token_id)

    opts = TurnOptions(sampling=sampling, logprobs=0)
    if tools:  # offered as they were, under the step's tool choice (its grammar)
        opts = dataclasses.replace(
            opts, tool_specs=tuple(tools), tool_choice=receipt.tool_choice or None
        )
    done = service.complete(prepared.messages, system_prompt, opts, listen).result()
    if isinstance(done, TurnFailed):
        raise UserError(f"The replay failed: {done.error}")
    if expected is not None:
        first = next(
            (i for i, (a, b) in enumerate(zip(ids, expected, strict=False)) if a != b), None
        )
        if first is None and len(ids) == len(expected):
            print(f"chatapp: replay: the {len(ids)} answer tokens match", file=sys.stderr)
            return True
        at = first if first is not None else min(len(ids), len(expected))
        print(
            f"chatapp: replay: the answer differs from token {at} "
            f"({len(ids)} tokens generated, {len(expected)} recorded)",
            file=sys.stderr,
        )
        return False
    same = done.message.content == content
    print(
        f"chatapp: replay: the answer text {'matches' if same else 'differs'} "
        "(no tokens were recorded for it)",
        file=sys.stderr,
    )
    return same
