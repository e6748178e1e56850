"""gpt-oss's "harmony" output, read while it streams: its channels and its tool calls.

A gpt-oss answer is a run of messages, each a header and a body:

    <|channel|>analysis<|message|>The user wants the weather...<|end|>
    <|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{"city": "Paris"}<|call|>

(the recipient may also stand before the channel: `<|start|>assistant to=functions.x
<|channel|>commentary json<|message|>...`). A message to `functions.NAME` is a call with
JSON arguments; the analysis channel is the model's thinking; the final channel, a
commentary without a recipient (a preamble the user is meant to see) and text outside
any message are the answer. A body ends at <|end|>, <|call|>, <|return|>, the next
message's header, or the end of the output (llama.cpp ends generation at <|call|> and
<|return|>).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

CHANNEL, MESSAGE, START = "<|channel|>", "<|message|>", "<|start|>"
CONSTRAIN, END, CALL, RETURN = "<|constrain|>", "<|end|>", "<|call|>", "<|return|>"
# the control tokens a harmony answer is written with: they pass as text while it streams
MARKERS = (CHANNEL, MESSAGE, START, CONSTRAIN, END, CALL, RETURN)
_HEADER_OPENERS = (CHANNEL, START)
_BODY_ENDS = (END, CALL, RETURN, START, CHANNEL)
_RECIPIENT = re.compile(r"\bto=([^\s<]+)")
_CHANNEL_NAME = re.compile(re.escape(CHANNEL) + r"\s*([A-Za-z_]+)")


@dataclass(frozen=True)
class Thought:
    """Text on the model's thinking (analysis) channel."""

    text: str


@dataclass(frozen=True)
class RawCall:
    """A complete message to a recipient: the tool's name and the body as written."""

    name: str
    body: str
    header: str


def partial_suffix(text: str, markers: tuple[str, ...]) -> int:
    """How many characters at the end of text could begin one of markers."""
    best = 0
    for marker in markers:
        for n in range(min(len(marker) - 1, len(text)), best, -1):
            if marker.startswith(text[-n:]):
                best = n
                break
    return best


class HarmonyReader:
    """Feed text pieces; get answer text (str), Thought and RawCall items, in order."""

    def __init__(self) -> None:
        self._held = ""
        self._header: list[str] | None = None  # inside a header: its text so far
        self._body: list[str] | None = None  # inside a call's body
        self._channel = ""  # the current message's channel ("" outside any message)
        self._to = ""  # its recipient
        self._head = ""  # its header as written

    def feed(self, text: str) -> list[str | Thought | RawCall]:
        out: list[str | Thought | RawCall] = []
        self._held += text
        while self._held:
            if self._header is not None:
                i = self._held.find(MESSAGE)
                if i < 0:
                    keep = partial_suffix(self._held, (MESSAGE,))
                    self._header.append(self._held[: len(self._held) - keep])
                    self._held = self._held[len(self._held) - keep :]
                    break
                self._header.append(self._held[:i])
                self._held = self._held[i + len(MESSAGE) :]
                self._open("".join(self._header))
                continue
            i, marker = _first(self._held, _BODY_ENDS if self._channel else _HEADER_OPENERS)
            if i < 0:
                ends = _BODY_ENDS if self._channel else _HEADER_OPENERS
                keep = partial_suffix(self._held, ends)
                self._text(out, self._held[: len(self._held) - keep])
                self._held = self._held[len(self._held) - keep :]
                break
            self._text(out, self._held[:i])
            self._held = self._held[i:]
            if self._channel:  # the body ends here
                self._close(out)
                if marker in (END, CALL, RETURN):
                    self._held = self._held[len(marker) :]
                continue
            self._header = [marker]
            self._held = self._held[len(marker) :]
        return out

    def finish(self) -> list[str | Thought | RawCall]:
        """The end of the output: a message still open ends here."""
        out: list[str | Thought | RawCall] = []
        if self._header is not None:  # a header that never got its body
            header = "".join(self._header) + self._held
            self._header, self._held = None, ""
            to = _recipient(header)
            if to:
                out.append(RawCall(to, "", header))
            return out
        if self._held:
            self._text(out, self._held)
            self._held = ""
        if self._channel:
            self._close(out)
        return out

    def _open(self, header: str) -> None:
        self._header = None
        found = _CHANNEL_NAME.search(header)
        self._channel = found.group(1) if found else "final"
        self._to = _recipient(header)
        self._head = header
        if self._to:
            self._body = []

    def _text(self, out: list[str | Thought | RawCall], text: str) -> None:
        if not text:
            return
        if self._body is not None:
            self._body.append(text)
        elif self._channel == "analysis":
            out.append(Thought(text))
        else:
            out.append(text)

    def _close(self, out: list[str | Thought | RawCall]) -> None:
        if self._body is not None:
            out.append(RawCall(self._to, "".join(self._body), self._head))
        self._body = None
        self._channel = self._to = ""


def _first(text: str, markers: tuple[str, ...]) -> tuple[int, str]:
    best, which = -1, ""
    for marker in markers:
        i = text.find(marker)
        if i >= 0 and (best < 0 or i < best):
            best, which = i, marker
    return best, which


def _recipient(header: str) -> str:
    found = _RECIPIENT.search(header)
    return found.group(1) if found else ""


def call_text(name: str, arguments_json: str) -> str:
    """How gpt-oss writes a call to `name` (a function tool)."""
    return f"{CHANNEL}commentary to=functions.{name} {CONSTRAIN}json{MESSAGE}{arguments_json}{CALL}"
