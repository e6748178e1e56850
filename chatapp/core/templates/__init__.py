"""Chat templates: turning a conversation into the exact text the model receives.

Templates are Jinja with the conventions of Hugging Face transformers' apply_chat_template;
the same inputs give the same text, character for character (tests hold us to that). The
sandbox itself is chatapp.core.templates.sandbox.

Templates are untrusted code: they come inside model files downloaded from strangers. So
no template is ever parsed or rendered in this process. Every check_syntax() and render()
is a request to the template worker (chatapp.core.templates.worker), a child process with
a memory limit that is killed when it overruns its deadline; a runaway template costs a
one-line TemplateError and a fresh worker, never a hang, a traceback or the app's memory.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

from chatapp.core.errors import TemplateError
from chatapp.core.templates import worker as template_worker

log = logging.getLogger(__name__)

TIME_LIMIT_S = 3.0  # a real template renders in milliseconds
CHARS_PER_SECOND = 1_000_000  # more time allowed per character of the messages rendered
MAX_TEMPLATE_CHARS = 500_000  # real templates are a few KB, the largest known ~30 KB
_PARSED_OK_MAX = 64


@dataclass(frozen=True)
class ChatTemplate:
    """A template ready to render, with where it came from and how turns end.

    source: "user" (the user's own for this model), "gguf" (the file's), "preset" (built
    in, chosen from the metadata) or "completion" (no chat format: `warning` says so).
    stop_markers: texts that end the assistant's turn; they never belong in shown text.
    think_tags: (open, close) pairs around reasoning the model writes before its answer.
    """

    name: str
    source: str
    text: str
    stop_markers: tuple[str, ...] = ()
    warning: str = ""
    think_tags: tuple[tuple[str, str], ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)


class TemplateRefused(TemplateError):
    """The template itself refused the conversation (raise_exception): its message is
    meant for the user, and a caller may work around it (e.g. merge the system prompt)."""


# --- asking the worker -----------------------------------------------------------------

_parsed_ok: dict[str, None] = {}  # texts known to parse (insertion order: oldest first)


def _check_size(text: str) -> None:
    if not isinstance(text, str):
        raise TemplateError(f"A chat template must be text, not {type(text).__name__}.")
    if len(text) > MAX_TEMPLATE_CHARS:
        raise TemplateError(
            f"The chat template is {len(text):,} characters long; templates over "
            f"{MAX_TEMPLATE_CHARS:,} are refused (real ones are a few thousand)."
        )


def _ask(request: dict[str, Any], time_limit: float) -> str:
    if not (isinstance(time_limit, (int, float)) and math.isfinite(time_limit)):
        time_limit = TIME_LIMIT_S
    time_limit = min(max(float(time_limit), 0.05), 600.0)
    reply = template_worker.request({**request, "time_limit": time_limit}, time_limit)
    error = reply.get("error")
    if isinstance(error, dict):
        message = str(error.get("message") or "The chat template failed.")
        err: TemplateError = (
            TemplateRefused(message) if error.get("kind") == "refused" else TemplateError(message)
        )
        lineno = error.get("lineno")
        err.lineno = lineno if isinstance(lineno, int) else None  # type: ignore[attr-defined]
        raise err
    text = reply.get("text")
    if not isinstance(text, str):
        raise TemplateError("The template renderer gave a malformed answer.")
    return text


def check_syntax(text: str) -> None:
    """Raise TemplateError (with the line number) if the text does not parse."""
    _check_size(text)
    if text in _parsed_ok:
        return
    _ask({"op": "check", "text": text}, TIME_LIMIT_S)
    _parsed_ok[text] = None
    while len(_parsed_ok) > _PARSED_OK_MAX:
        del _parsed_ok[next(iter(_parsed_ok))]


# --- the data a template sees -----------------------------------------------------------

_REASONING_FIELDS = ("reasoning_content", "thinking", "reasoning")


def plain_data(value: Any) -> Any:
    """Rebuild a value from plain JSON types, so a template never gets a rich object."""
    if value is None or type(value) in (str, int, float, bool):
        return value
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int.__int__(value)
    if isinstance(value, float):
        return float.__float__(value)
    if isinstance(value, dict):
        return {plain_data(k): plain_data(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain_data(v) for v in value]
    if isinstance(value, tuple):
        return tuple(plain_data(v) for v in value)
    return f"<{type(value).__name__}>"


def _alias_reasoning(messages: list[Any]) -> list[Any]:
    # As transformers does: older names for the reasoning fill `reasoning_content`, and
    # `thinking` is filled for templates that read that name.
    out = []
    for m in messages:
        if isinstance(m, dict):
            r = next((m[k] for k in _REASONING_FIELDS if m.get(k) is not None), None)
            if r is not None:
                m = {"thinking": r, **m, "reasoning_content": r}
        out.append(m)
    return out


# --- rendering ---------------------------------------------------------------------------


def render(
    template: ChatTemplate | str,
    messages: list[dict[str, Any]],
    *,
    bos_token: str = "",
    eos_token: str = "",
    add_generation_prompt: bool = True,
    tools: list[dict[str, Any]] | None = None,
    time_limit: float = TIME_LIMIT_S,
    **extra: Any,
) -> str:
    """Render messages the way transformers' apply_chat_template(tokenize=False) does.

    Extra keyword arguments (date_string, enable_thinking, documents...) reach the
    template as variables. Raises TemplateError for a syntax error, a template that
    raises (TemplateRefused, its own message kept), an unsafe operation, or a blown
    time/memory/size limit. Runs in the template worker (see the module's docstring).
    """
    text = template.text if isinstance(template, ChatTemplate) else template
    _check_size(text)
    chat = _alias_reasoning(plain_data(list(messages)))
    context: dict[str, Any] = {
        "messages": chat,
        "tools": plain_data(tools),
        "documents": plain_data(extra.pop("documents", None)),
        "add_generation_prompt": add_generation_prompt,
        "bos_token": bos_token,
        "eos_token": eos_token,
    }
    for key, value in extra.items():
        context[key] = plain_data(value)
    # a long conversation takes longer to render: the deadline stops runaway templates,
    # not long chats (the worker's size limits grow with the input the same way)
    chars = sum(
        len(c) for m in chat if isinstance(m, dict) and isinstance(c := m.get("content"), str)
    )
    if isinstance(time_limit, (int, float)) and math.isfinite(time_limit):
        time_limit += chars / CHARS_PER_SECOND
    return _ask({"op": "render", "text": text, "context": context}, time_limit)


# --- choosing a template -----------------------------------------------------------------

# Texts that end an assistant turn, by the special tokens a template writes.
KNOWN_MARKERS = (
    "<|im_end|>",
    "<end_of_turn>",
    "<|eot_id|>",
    "<|eom_id|>",
    "<|end|>",
    "<|endoftext|>",
    "<｜end▁of▁sentence｜>",
    "</s>",
)

COMPLETION_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}{{ message['content'] }}"
    "{% if not loop.last %}\n\n{% endif %}{% endfor %}"
)

COMPLETION_WARNING = (
    "This model has no chat template and none of the built-in formats fits it, so it "
    "continues your text as plain completion. Set a template in Models > Edit chat template."
)


def stop_markers_for(text: str, eos_token: str = "") -> tuple[str, ...]:
    """The known end-of-turn markers a template writes, plus the model's EOS text."""
    found = [m for m in KNOWN_MARKERS if m in text]
    if eos_token and eos_token not in found:
        found.append(eos_token)
    return tuple(found)


def think_tags_for(text: str) -> tuple[tuple[str, str], ...]:
    return (("<think>", "</think>"),) if "<think>" in text or "</think>" in text else ()


def gguf_templates(metadata: dict[str, Any]) -> dict[str, str]:
    """The GGUF's templates by name: "default" and any named variants (tool_use, rag)."""
    out: dict[str, str] = {}
    default = metadata.get("tokenizer.chat_template")
    if isinstance(default, str) and default.strip():
        out["default"] = default
    prefix = "tokenizer.chat_template."
    for key, value in metadata.items():
        if key.startswith(prefix) and isinstance(value, str) and value.strip():
            out[key[len(prefix) :]] = value
    return out


def resolve_template(
    metadata: dict[str, Any],
    *,
    user_template: str | None = None,
    special_tokens: set[str] | None = None,
    eos_token: str = "",
    variant: str | None = None,
) -> ChatTemplate:
    """Pick the template for a model, in order: the user's own, the GGUF's (a named
    variant if asked for), a built-in preset chosen from the metadata, else plain
    completion with a warning. Never silently a wrong chat format.

    special_tokens: the vocabulary's control tokens, when the caller has them (the
    metadata read without arrays lacks the vocabulary); see presets.special_tokens().
    """
    from chatapp.core.templates import presets

    preset = presets.choose_preset(metadata, special_tokens)
    candidates: list[tuple[str, str, str]] = []  # (name, source, text) in order
    if user_template and user_template.strip():
        candidates.append(("custom", "user", user_template))
    found = gguf_templates(metadata)
    if found:
        name = (
            variant
            if variant in found
            else ("default" if "default" in found else next(iter(found)))
        )
        candidates.append(("gguf" if name == "default" else f"gguf:{name}", "gguf", found[name]))
    # A template that does not even parse is passed over, and the user is told: the
    # next in line (usually the preset for this model) is better than no chat at all.
    skipped: list[str] = []
    for name, source, text in candidates:
        try:
            check_syntax(text)
        except TemplateError as e:
            what = "Your template" if source == "user" else "The model file's chat template"
            why = "does not parse" if e.message.startswith("Template syntax") else "is refused"
            skipped.append(f"{what} {why} ({e.message.rstrip('.')}).")
            log.warning("%s template %s skipped: %s", source, name, e.message)
            continue
        return _from_text(name, source, text, eos_token, preset, " ".join(skipped))
    if preset is not None:
        stops = list(preset.stop_markers)
        if eos_token and eos_token not in stops:
            stops.append(eos_token)
        note = f"Using the built-in {preset.title} format instead." if skipped else ""
        warning = " ".join([*skipped, note]).strip()
        return ChatTemplate(
            preset.name, "preset", preset.template, tuple(stops), warning, preset.think_tags
        )
    return ChatTemplate(
        "completion",
        "completion",
        COMPLETION_TEMPLATE,
        stop_markers_for("", eos_token),
        " ".join([*skipped, COMPLETION_WARNING]),
    )


def _from_text(
    name: str, source: str, text: str, eos_token: str, preset: Any | None, warning: str = ""
) -> ChatTemplate:
    stops = list(stop_markers_for(text, eos_token))
    think = think_tags_for(text)
    if preset is not None and any(m in text for m in preset.stop_markers):
        # The file's template speaks the preset's format: take the preset's knowledge of it.
        stops += [m for m in preset.stop_markers if m not in stops]
        think = think or preset.think_tags
    return ChatTemplate(name, source, text, tuple(stops), warning, think)


def cut_at_stop(text: str, markers: tuple[str, ...] | list[str]) -> tuple[str, bool]:
    """The text before the first stop marker, and whether one was found. For streaming,
    hold back `partial_stop_len(text, markers)` characters: they may begin a marker."""
    hits = [i for m in markers if m and (i := text.find(m)) >= 0]
    return (text[: min(hits)], True) if hits else (text, False)


def partial_stop_len(text: str, markers: tuple[str, ...] | list[str]) -> int:
    """Length of the longest end of `text` that is the start of a stop marker."""
    best = 0
    for m in markers:
        for n in range(min(len(m) - 1, len(text)), best, -1):
            if text.endswith(m[:n]):
                best = n
                break
    return best
