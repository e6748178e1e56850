"""`chatapp prompt`: print exactly the prompt the app would send, for scripting and for
debugging a template.

    chatapp prompt --model M.gguf --messages chat.json [--template T.jinja] [--tokens]

chat.json holds OpenAI-style messages: a list of {"role", "content"} objects, or an object
with "messages" (and optionally "tools"). System messages become the system prompt. The
template is resolved as the window does it (the user's saved template for this model file,
the GGUF's, a preset, plain completion), unless --template names a file. Warnings (a merged
system prompt, plain completion) go to stderr so stdout is the prompt alone.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from chatapp.core.errors import TemplateError, UserError
from chatapp.core.gguf import check_model_file, read_gguf
from chatapp.core.presets import special_tokens_from_metadata, token_text
from chatapp.core.prompting import PromptResult, build_prompt
from chatapp.core.templates import ChatTemplate, check_syntax, resolve_template

log = logging.getLogger(__name__)


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "prompt",
        help="print the exact prompt a model would receive for a conversation",
        description="Render a conversation with a model's chat template and print the result.",
    )
    p.add_argument("--model", required=True, metavar="PATH", help="the GGUF model file")
    p.add_argument("--messages", required=True, metavar="FILE", help="OpenAI-style messages (JSON)")
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


def template_for(model: Path, template_file: str | None, metadata: dict[str, Any]) -> ChatTemplate:
    user_text = None
    if template_file:
        try:
            user_text = Path(template_file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise UserError(f"Cannot read the template {template_file}: {e}") from None
        check_syntax(user_text)  # asked for by name: its error, not a fallback
    else:
        user_text = _saved_user_template(model)
    return resolve_template(
        metadata,
        user_template=user_text,
        special_tokens=special_tokens_from_metadata(metadata),
        eos_token=token_text(metadata, "eos"),
    )


def _saved_user_template(model: Path) -> str | None:
    from chatapp.core.settings import Settings
    from chatapp.paths import app_paths

    return Settings.load(app_paths().settings).user_templates.get(model.name)


def render_for_model(
    model: Path,
    messages_file: Path,
    template_file: str | None = None,
    *,
    add_generation_prompt: bool = True,
) -> tuple[ChatTemplate, PromptResult]:
    check_model_file(model)
    metadata = read_gguf(model, keep_arrays=True).metadata
    template = template_for(model, template_file, metadata)
    system, messages, tools = load_messages(messages_file)
    extra: dict[str, Any] = {"tools": tools} if tools else {}
    result = build_prompt(
        template,
        system,
        messages,
        bos_token=token_text(metadata, "bos"),
        eos_token=token_text(metadata, "eos"),
        add_generation_prompt=add_generation_prompt,
        **extra,
    )
    return template, result


def tokenize_with_vocab(model: Path, text: str) -> list[tuple[int, str]]:
    """Token ids and their text pieces, with the model's own tokenizer.

    Uses llama_cpp directly with a vocabulary-only load (fast: no weights). To be
    switched to chatapp.engine.llama.LlamaEngine.tokenize/token_bytes once that exists.
    The prompt already holds the BOS text where the template wants one, so none is added.
    """
    try:
        import llama_cpp
    except ImportError as e:
        raise UserError("--tokens needs llama-cpp-python, which is not installed.") from e
    try:
        llm = llama_cpp.Llama(model_path=str(model), vocab_only=True, verbose=False)
    except (ValueError, RuntimeError) as e:
        raise UserError(f"llama.cpp could not load the vocabulary of {model.name}: {e}") from e
    try:
        ids = llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)
        return [
            (i, llm.detokenize([i], special=True).decode("utf-8", errors="replace")) for i in ids
        ]
    finally:
        llm.close()


def run_prompt(args: argparse.Namespace) -> int:
    model = Path(args.model).expanduser()
    try:
        template, result = render_for_model(
            model,
            Path(args.messages).expanduser(),
            args.template,
            add_generation_prompt=args.generation_prompt,
        )
    except TemplateError as e:
        raise TemplateError(f"{e.message} (template: {args.template or model.name})") from e
    if result.warning:
        print(f"chatapp: warning: {result.warning}", file=sys.stderr)
    print(f"chatapp: template: {template.name} ({template.source})", file=sys.stderr)
    sys.stdout.write(result.text)  # exactly the prompt: no newline of our own when piped
    ends_line = result.text.endswith("\n")
    if args.tokens:
        tokens = tokenize_with_vocab(model, result.text)
        if not ends_line:
            sys.stdout.write("\n")
        sys.stdout.write(f"--- {len(tokens)} tokens ---\n")
        for token_id, piece in tokens:
            sys.stdout.write(f"{token_id}\t{json.dumps(piece, ensure_ascii=False)}\n")
    elif not ends_line and sys.stdout.isatty():
        sys.stdout.write("\n")
    sys.stdout.flush()
    return 0
