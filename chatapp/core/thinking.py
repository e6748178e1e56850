"""Reasoning text: splitting <think>...</think> out of a streamed answer, and passing it
back in later turns the way the template expects.

The splitter is fed text as it is decoded, in pieces of any size: a tag may arrive split
across pieces ("<th", "ink>"), so a piece that could be the start of a tag is held back
until the next piece settles it. Text inside the tags goes to the "thinking" channel,
the rest to "answer". Some templates (DeepSeek-R1) end the prompt with the open tag, so
the model's output starts inside the thinking: `start_inside` covers that.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from chatapp.core.templates import partial_stop_len as _partial_suffix  # the one implementation

THINKING = "thinking"
ANSWER = "answer"
DEFAULT_TAGS: tuple[tuple[str, str], ...] = (("<think>", "</think>"),)


@dataclass
class ThinkingSplitter:
    tags: Sequence[tuple[str, str]] = DEFAULT_TAGS
    start_inside: bool = False
    thinking: str = ""
    answer: str = ""
    # completion mode: the text is exactly what the tokens spell, leading space included
    verbatim: bool = False
    _buffer: str = field(default="", repr=False)
    _close: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.tags = tuple(self.tags)
        if self.start_inside and self.tags:
            self._close = self.tags[0][1]

    @property
    def inside(self) -> bool:
        return self._close is not None

    def feed(self, text: str) -> list[tuple[str, str]]:
        """Route a piece of streamed text; returns (channel, text) pieces ready to show."""
        self._buffer += text
        out: list[tuple[str, str]] = []
        while self._buffer:
            if self._close is not None:
                i = self._buffer.find(self._close)
                if i >= 0:
                    self._emit(out, THINKING, self._buffer[:i])
                    self._buffer = self._buffer[i + len(self._close) :]
                    self._close = None
                    continue
                keep = _partial_suffix(self._buffer, (self._close,))
                self._emit(out, THINKING, self._buffer[: len(self._buffer) - keep])
                self._buffer = self._buffer[len(self._buffer) - keep :]
                break
            hits = [(self._buffer.find(o), o, c) for o, c in self.tags if o in self._buffer]
            if hits:
                i, open_tag, close_tag = min(hits)
                self._emit(out, ANSWER, self._buffer[:i])
                self._buffer = self._buffer[i + len(open_tag) :]
                self._close = close_tag
                continue
            keep = _partial_suffix(self._buffer, tuple(o for o, _ in self.tags))
            self._emit(out, ANSWER, self._buffer[: len(self._buffer) - keep])
            self._buffer = self._buffer[len(self._buffer) - keep :]
            break
        return out

    def flush(self) -> list[tuple[str, str]]:
        """End of stream: whatever is held back belongs to the current channel."""
        out: list[tuple[str, str]] = []
        self._emit(out, THINKING if self.inside else ANSWER, self._buffer)
        self._buffer = ""
        return out

    def _emit(self, out: list[tuple[str, str]], channel: str, text: str) -> None:
        # Whitespace between the thinking and the answer ("</think>\n\n") is layout, not
        # content: leading whitespace of each channel is dropped.
        if channel == THINKING:
            if not self.thinking and not self.verbatim:
                text = text.lstrip()
            self.thinking += text
        else:
            if not self.answer and not self.verbatim:
                text = text.lstrip()
            self.answer += text
        if text:
            if out and out[-1][0] == channel:
                out[-1] = (channel, out[-1][1] + text)
            else:
                out.append((channel, text))


def split_thinking(
    text: str, tags: Sequence[tuple[str, str]] = DEFAULT_TAGS, *, start_inside: bool = False
) -> tuple[str, str]:
    """(thinking, answer) of a complete text, both stripped."""
    s = ThinkingSplitter(tags, start_inside)
    s.feed(text)
    s.flush()
    return s.thinking.strip(), s.answer.strip()


def starts_inside_thinking(prompt: str, tags: Sequence[tuple[str, str]]) -> bool:
    """True when the prompt ends by opening a thinking block (DeepSeek-R1, QwQ): the
    model's first words are then thinking, with no open tag of their own."""
    tail = prompt.rstrip()
    return any(tail.endswith(open_tag) for open_tag, _ in tags)


_READS_REASONING = re.compile(r"""(\.|\[['"])(reasoning_content|thinking|reasoning)\b""")


def template_reads_thinking(template_text: str) -> bool:
    """Whether a template looks at a message's reasoning (Qwen3's reasoning_content)."""
    return bool(_READS_REASONING.search(template_text))


def history_message(content: str, thinking: str, template: Any | None = None) -> dict[str, Any]:
    """A past assistant turn for the template. Most templates drop old thinking (and
    DeepSeek-R1's cuts anything up to </think>), so the answer alone goes in `content`;
    the thinking goes in `reasoning_content` only for a template that reads it, which
    then decides itself what to keep (as transformers' apply_chat_template would)."""
    msg: dict[str, Any] = {"role": "assistant", "content": content}
    text = getattr(template, "text", template) if template is not None else ""
    if thinking and isinstance(text, str) and template_reads_thinking(text):
        msg["reasoning_content"] = thinking
    return msg


class AnswerStream:
    """Decoded model output in, text to show out: ends at the first stop marker (which
    is never shown) and routes reasoning to the thinking channel.

    For the generation loop: feed() each decoded piece, stop generating once `stopped`,
    call finish() at the end; `thinking` and `answer` are what to store.
    """

    def __init__(
        self,
        stop_markers: Sequence[str] = (),
        think_tags: Sequence[tuple[str, str]] = (),
        *,
        start_inside: bool = False,
        verbatim: bool = False,
    ) -> None:
        """verbatim: completion mode, where the text is the tokens' bytes exactly: no
        whitespace is dropped at the start (a base model's " Paris") or the end."""
        self.stop_markers = tuple(m for m in stop_markers if m)
        self.splitter = ThinkingSplitter(
            tuple(think_tags), start_inside and bool(think_tags), verbatim=verbatim
        )
        self.stopped = False
        self._pending = ""

    @classmethod
    def for_template(cls, template: Any, prompt: str) -> AnswerStream:
        tags = tuple(getattr(template, "think_tags", ()) or ())
        return cls(
            getattr(template, "stop_markers", ()),
            tags,
            start_inside=starts_inside_thinking(prompt, tags),
        )

    def resume(self, answer: str, thinking: str = "") -> None:
        """Carry on an answer that already has this text (Continue): what follows is
        appended as it comes, not stripped as the start of a reply is."""
        self.splitter.answer = answer
        self.splitter.thinking = thinking

    @property
    def thinking(self) -> str:
        text = self.splitter.thinking
        return text if self.splitter.verbatim else text.strip()

    @property
    def answer(self) -> str:
        text = self.splitter.answer
        return text if self.splitter.verbatim else text.strip()

    def feed(self, text: str) -> list[tuple[str, str]]:
        if self.stopped:
            return []
        self._pending += text
        hits = [i for m in self.stop_markers if (i := self._pending.find(m)) >= 0]
        if hits:
            before = self._pending[: min(hits)]
            self._pending = ""
            self.stopped = True
            return self.splitter.feed(before) + self.splitter.flush()
        keep = _partial_suffix(self._pending, self.stop_markers)
        ready = self._pending[: len(self._pending) - keep]
        self._pending = self._pending[len(self._pending) - keep :]
        return self.splitter.feed(ready) if ready else []

    def finish(self) -> list[tuple[str, str]]:
        """End of generation: text held back as a possible marker start is released."""
        if self.stopped:
            return []
        rest, self._pending = self._pending, ""
        out = self.splitter.feed(rest) if rest else []
        return out + self.splitter.flush()
