"""Keep llama-cpp-python from compiling a model file's chat templates.

Llama.__init__ (llama_cpp/llama.py, 0.3.x) builds a Jinja2ChatFormatter for
`tokenizer.chat_template` and every `tokenizer.chat_template.<name>` in the GGUF's
metadata, whatever chat_format is passed, and Jinja2ChatFormatter.__init__ compiles the
template with environment.from_string(): in this process, with no time or memory limit,
before the load returns. A hostile template (megabytes of text, deep nesting) hangs or
crashes the load there. chatapp renders templates itself, in its limited template worker
(chatapp.core.templates), and never uses llama-cpp-python's chat handlers; so install()
swaps that class, process-wide, for one that keeps the text and compiles nothing. A chat
handler made from it refuses to run instead of formatting anything.
"""

from __future__ import annotations

import logging
from typing import Any

from llama_cpp import llama_chat_format

log = logging.getLogger(__name__)


class UncompiledChatFormatter:
    """Stands in for llama_chat_format.Jinja2ChatFormatter: keeps the template, compiles
    nothing."""

    def __init__(
        self,
        template: str,
        eos_token: str = "",
        bos_token: str = "",
        add_generation_prompt: bool = True,
        stop_token_ids: list[int] | None = None,
    ) -> None:
        self.template = template
        self.eos_token = eos_token
        self.bos_token = bos_token
        self.add_generation_prompt = add_generation_prompt
        self.stop_token_ids = set(stop_token_ids) if stop_token_ids is not None else None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(
            "chatapp renders chat templates itself; llama-cpp-python's formatter for the "
            "model file's template is disabled"
        )

    def to_chat_handler(self) -> Any:
        return self


_original: Any = None


def install() -> None:
    """Replace Jinja2ChatFormatter for every Llama created from now on (idempotent)."""
    global _original
    current = llama_chat_format.Jinja2ChatFormatter
    if current is UncompiledChatFormatter:
        return
    _original = current
    llama_chat_format.Jinja2ChatFormatter = UncompiledChatFormatter  # type: ignore[misc,assignment]
    log.debug("llama-cpp-python's chat template compilation disabled")


def installed() -> bool:
    return llama_chat_format.Jinja2ChatFormatter is UncompiledChatFormatter
