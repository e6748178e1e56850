"""Receipts: what exactly produced an answer, so it can be checked later.

Every answer stores the number of prompt tokens and a sha256 of their ids, the template's
name and a sha256 of its source, the sampling settings with the seed actually used, what
ran the model (llama-cpp-python's version) and how much of the prompt came from the KV
cache. The prompt's token ids themselves are kept beside the message (compressed), so a
re-rendered prompt that does not match can say at which token it first differs.
"""

from __future__ import annotations

import hashlib
import json
import sys
import zlib
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

RECEIPT_VERSION = 2  # 2: context_policy, system_prompt_sha256, sources (+ tools, optional)


def _int32(tokens: Sequence[int]) -> bytes:
    a = array("i", tokens)
    if sys.byteorder != "little":
        a.byteswap()
    return a.tobytes()


def tokens_sha256(tokens: Sequence[int]) -> str:
    """sha256 of the token ids as little-endian int32."""
    return hashlib.sha256(_int32(tokens)).hexdigest()


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def tools_json(tools: Sequence[dict[str, Any]]) -> str:
    """The tool definitions as one canonical JSON text: the list as it was sent, in its
    order and with each object's keys in their order (which the template renders), no
    whitespace, non-ASCII as itself."""
    return json.dumps(list(tools), ensure_ascii=False, separators=(",", ":"))


def tools_sha256(tools: Sequence[dict[str, Any]]) -> str:
    """sha256 of the tool definitions offered to the model (tools_json)."""
    return text_sha256(tools_json(tools))


def tool_names(tools: Sequence[dict[str, Any]]) -> tuple[str, ...]:
    out = []
    for t in tools:
        fn = t.get("function", t) if isinstance(t, dict) else {}
        out.append(str(fn.get("name", "")) if isinstance(fn, dict) else "")
    return tuple(out)


def pack_tokens(tokens: Sequence[int]) -> bytes:
    return zlib.compress(_int32(tokens), 6)


def unpack_tokens(blob: bytes) -> list[int]:
    a = array("i")
    a.frombytes(zlib.decompress(blob))
    if sys.byteorder != "little":
        a.byteswap()
    return a.tolist()


@dataclass(frozen=True)
class Receipt:
    prompt_tokens: int
    prompt_sha256: str
    template: str
    template_source: str
    template_sha256: str
    sampling: dict[str, Any]
    backend: str
    model: str
    reused_tokens: int = 0
    evaluated_tokens: int = 0
    tokens_known: bool = True
    context_policy: str = ""
    system_prompt_sha256: str = ""
    # which settings layer each value came from (service.resolver: app, model, chat,
    # answer, caller); empty in receipts written before version 2
    sources: dict[str, str] = field(default_factory=dict)
    # Continue: the answer's first characters that opened the model's turn in this prompt
    prefill_chars: int = 0
    # why the KV state of this model is not kept between chats ("" where it is)
    state_note: str = ""
    # the tools offered in this answer's request, exactly as sent (tools_sha256 of the
    # list), their names, and the tool_choice that applied to this step ("auto" after a
    # required first call); all empty (and absent from as_dict) without tools
    tools_sha256: str = ""
    tools: tuple[str, ...] = ()
    tool_choice: str = ""
    # of reused_tokens: restored from a KV state saved on disk (an earlier process's)
    disk_tokens: int = 0
    # speculative decoding: {"mode", "drafted", "accepted"[, "note"]} ({} if off)
    speculative: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"version": RECEIPT_VERSION, **self.__dict__}
        out["tools"] = list(self.tools)
        for key in ("tools_sha256", "tools", "tool_choice"):
            if not out[key]:
                del out[key]
        return out

    @classmethod
    def from_dict(cls, data: Any) -> Receipt | None:
        """None for a missing or malformed receipt (older answers have none)."""
        if not isinstance(data, dict):
            return None
        try:
            return cls(
                prompt_tokens=int(data["prompt_tokens"]),
                prompt_sha256=str(data["prompt_sha256"]),
                template=str(data.get("template", "")),
                template_source=str(data.get("template_source", "")),
                template_sha256=str(data.get("template_sha256", "")),
                sampling=dict(data.get("sampling") or {}),
                backend=str(data.get("backend", "")),
                model=str(data.get("model", "")),
                reused_tokens=int(data.get("reused_tokens", 0)),
                evaluated_tokens=int(data.get("evaluated_tokens", 0)),
                tokens_known=bool(data.get("tokens_known", True)),
                context_policy=str(data.get("context_policy", "")),
                system_prompt_sha256=str(data.get("system_prompt_sha256", "")),
                sources={str(k): str(v) for k, v in (data.get("sources") or {}).items()},
                prefill_chars=int(data.get("prefill_chars", 0)),
                state_note=str(data.get("state_note", "")),
                tools_sha256=str(data.get("tools_sha256", "")),
                tools=tuple(str(t) for t in data.get("tools") or ()),
                tool_choice=str(data.get("tool_choice", "")),
                disk_tokens=int(data.get("disk_tokens", 0)),
                speculative=dict(data.get("speculative") or {}),
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            return None


@dataclass(frozen=True)
class Verification:
    matches: bool
    detail: str
    first_difference: int | None = None  # index of the first differing token


def verify(
    receipt: Receipt, tokens: Sequence[int], recorded: Sequence[int] | None = None
) -> Verification:
    """Does a re-rendered prompt (tokens) match what the receipt says was sent?
    recorded: the stored prompt token ids, used to name the first difference."""
    if receipt.prompt_tokens == len(tokens) and receipt.prompt_sha256 == tokens_sha256(tokens):
        return Verification(True, f"matches the receipt: {len(tokens)} tokens, same sha256")
    if recorded is not None and tokens_sha256(recorded) == receipt.prompt_sha256:
        for i, (a, b) in enumerate(zip(recorded, tokens)):
            if a != b:
                return Verification(
                    False,
                    f"differs from the receipt at token {i}: sent {a}, re-rendered {b}",
                    i,
                )
        i = min(len(recorded), len(tokens))
        longer = "the re-rendered prompt" if len(tokens) > len(recorded) else "the sent prompt"
        return Verification(
            False,
            f"differs from the receipt at token {i}: {longer} is longer "
            f"({len(recorded)} sent, {len(tokens)} re-rendered)",
            i,
        )
    return Verification(
        False,
        f"does not match the receipt: {len(tokens)} tokens re-rendered, "
        f"{receipt.prompt_tokens} sent (sha256 differs)",
    )


def verify_tools(receipt: Receipt, tools: Sequence[dict[str, Any]] | None) -> Verification:
    """Are these the tool definitions the receipt says were offered (none: none)?"""
    if not receipt.tools_sha256:
        if tools:
            return Verification(False, f"{len(tools)} tools now, none were offered")
        return Verification(True, "no tools were offered")
    if not tools:
        return Verification(
            False, f"the tools {', '.join(receipt.tools)} were offered; none are given now"
        )
    if tools_sha256(tools) == receipt.tools_sha256:
        return Verification(True, f"the {len(tools)} tool definitions match (same sha256)")
    names = tool_names(tools)
    if names != receipt.tools:
        return Verification(
            False,
            f"the tools differ: {', '.join(receipt.tools)} were offered, "
            f"{', '.join(names)} are given now",
        )
    return Verification(
        False, f"the definitions of {', '.join(names)} changed since (sha256 differs)"
    )
