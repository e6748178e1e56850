"""The pipeline's tool step: the model's output read for calls while it streams, and the
request of the next step once the calls have their results.

    generate -> [calls] -> approval -> run -> result (a tool message) -> generate ...
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from chatapp.core.backend import Backend, ChatRequest, Chunk
from chatapp.core.conversation import FinishReason
from chatapp.core.errors import FailureKind, UserError
from chatapp.core.harmony import Thought
from chatapp.core.thinking import ANSWER, THINKING
from chatapp.core.toolcalls import (
    ToolCall,
    ToolCallParser,
    call_grammar,
    family_for,
    start_marker,
)
from chatapp.service.tools import ToolOutcome, TurnTools

log = logging.getLogger(__name__)

TOOL_CALL = "tool_call"  # the Chunk channel of a call: its raw text, never answer text


class ToolStream:
    """A reply stream whose answer text is read for tool calls: a call's text comes out
    as one chunk on the "tool_call" channel once complete; everything else passes."""

    def __init__(self, stream: Any, family: str, required: str = "") -> None:
        """required: the tool_choice that demanded a call ("required" or a tool's name;
        "" if none): an answer that ends without one fails the turn, saying so."""
        self.stream = stream
        self.required = required
        self.prompt = stream.prompt
        self.parser = ToolCallParser(family)
        self._answer: list[str] = []
        self._thinking: list[str] = []

    @property
    def stats(self) -> Any:
        return self.stream.stats

    @property
    def params(self) -> Any:
        return self.stream.params

    @property
    def thinking(self) -> str:
        return (str(self.stream.thinking) + "".join(self._thinking)).strip()

    @property
    def answer(self) -> str:
        return "".join(self._answer).strip()

    @property
    def calls(self) -> list[ToolCall]:
        """The calls read from the text, and those a server returned as tool_calls."""
        return self.parser.calls + list(getattr(self.stream, "calls", None) or [])

    def __iter__(self) -> Iterator[Chunk]:
        for chunk in self.stream:
            if chunk.channel != ANSWER:
                yield chunk
                continue
            yield from self._out(chunk, self.parser.feed(chunk.text))
        yield from self._out(None, self.parser.finish())
        if self.calls and self.stats.finish_reason is FinishReason.STOP:
            self.stats.finish_reason = FinishReason.TOOL_CALLS
        if self.required and not self.calls and self.stats.finish_reason is FinishReason.STOP:
            what = "a call" if self.required == "required" else f"a call to {self.required}"
            raise UserError(
                f"The model answered without a tool call although tool_choice asked for "
                f"{what}; a server that ignores tool_choice cannot do this.",
                kind=FailureKind.BACKEND_FAILED,
            )

    def _out(self, chunk: Chunk | None, items: list[str | ToolCall | Thought]) -> Iterator[Chunk]:
        token = chunk  # the token's details go with the first piece it produced
        if not items and token is not None:
            yield replace(token, text="")
            return
        for item in items:
            if isinstance(item, str):
                self._answer.append(item)
                out = Chunk(item) if token is None else replace(token, text=item)
            elif isinstance(item, Thought):  # gpt-oss's analysis channel
                self._thinking.append(item.text)
                out = replace(token or Chunk(""), text=item.text, channel=THINKING)
            else:
                out = Chunk(item.raw, TOOL_CALL)
                if token is not None:
                    yield replace(token, text="")
            token = None
            yield out


def with_tools(request: ChatRequest, tools: TurnTools, backend: Backend, step: int) -> ChatRequest:
    """The request of a step: the tools offered (none on the last step, so the model
    answers), and a grammar for the call where one is required (first step only: the
    model then answers with the result)."""
    last = step >= tools.max_steps
    offered = None if last else tools.offered
    grammar = request.grammar
    family = tool_family(backend, request)
    if tools.constrained and step == 0 and backend.capabilities.tokens:
        grammar = call_grammar(family, tools.specs, tools.required_name)
    elif step > 0 and tools.constrained:
        grammar = None
    # the choice that applies to this step: a required call only on the first one
    choice = tools.choice if step == 0 or not tools.constrained else "auto"
    return replace(
        request,
        tools=offered,
        grammar=grammar,
        tool_marker=start_marker(family),
        tool_choice=choice if offered else None,
        parallel_tool_calls=tools.parallel,
    )


def tool_family(backend: Backend, request: ChatRequest) -> str:
    try:
        return family_for(backend.template(request.user_template).text)
    except Exception:  # a remote server renders its own template  # noqa: BLE001
        return "hermes"


def run_calls(
    tools: TurnTools, calls: list[ToolCall], cancel: Any
) -> list[tuple[ToolCall, ToolOutcome]]:
    """Each call decided and run in order; Stop skips the rest (each told so)."""
    out: list[tuple[ToolCall, ToolOutcome]] = []
    for call in calls:
        if cancel.is_set():
            out.append((call, ToolOutcome("Stopped by the user.", is_error=True)))
            continue
        try:
            outcome = tools.run(call, cancel)
        except Exception as e:  # a runner must not raise; if it does, the model hears it
            log.exception("tool %s failed", call.name)
            outcome = ToolOutcome(f"The tool failed: {e}", is_error=True)
        out.append((call, outcome))
    return out
