"""The versioned JSON form of a conversation (docs/export-format.md), both directions.

`conversation_to_doc` is lossless: the whole message tree, every field, the meta dicts.
`doc_to_conversation` validates a document completely and raises ImportFormatError with
a one-line message naming the first problem; it never writes anything.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from chatapp.core.citations import message_citations
from chatapp.core.conversation import Conversation, FinishReason, Message, Role
from chatapp.core.errors import UserError
from chatapp.core.logprobs import TraceFormatError, trace_from_doc, trace_to_doc

FORMAT = "chatapp.conversation"
COLLECTION_FORMAT = "chatapp.conversations"
VERSION = 1

# Well-known keys of Message.meta, lifted to named fields in the JSON so readers need not
# know our meta conventions; put back into meta on import, so the round trip is exact.
LIFTED_META = ("model_sha256", "template", "sampling", "receipt")
# the same, present only where a message has them: an answer's tool calls ({id, name,
# arguments}) and the call a tool result answers
TOOL_META = ("tool_calls", "tool_call_id")


class ImportFormatError(UserError):
    """A file to import is not valid JSON or does not follow the expected schema."""


def _finite(x: float | None) -> float | None:
    return x if x is None or math.isfinite(x) else None


def message_to_doc(m: Message) -> dict[str, Any]:
    meta = {k: v for k, v in m.meta.items() if k not in LIFTED_META and k not in TOOL_META}
    tools = {k: m.meta[k] for k in TOOL_META if m.meta.get(k) is not None}
    return {
        "id": m.id,
        "parent_id": m.parent_id,
        "role": m.role.value,
        "content": m.content,
        "thinking": m.thinking,
        "created_at": m.created_at,
        "model": m.model,
        "model_sha256": m.meta.get("model_sha256"),
        "template": m.meta.get("template"),
        "sampling": m.meta.get("sampling"),
        "receipt": m.meta.get("receipt"),
        "finish_reason": m.finish_reason.value if m.finish_reason else None,
        "prompt_tokens": m.prompt_tokens,
        "completion_tokens": m.completion_tokens,
        "tokens_per_second": _finite(m.tokens_per_second),
        **tools,
        "meta": meta,
        # optional: per-token probabilities, only for answers that have them (issue 10)
        **({"tokens": trace_to_doc(m.tokens)} if m.tokens is not None else {}),
        # optional, derived: an answer given documents, its [n] resolved to the passages
        # in meta.documents.passages (read again from those on import, so not read here)
        **(
            {"citations": cited}
            if (cited := message_citations(m.content, m.meta)) is not None
            else {}
        ),
    }


def tree_order(messages: Iterable[Message]) -> list[Message]:
    """Parents before children, siblings oldest first; a stable order for files and inserts."""
    msgs = list(messages)
    ids = {m.id for m in msgs}
    kids: dict[str | None, list[Message]] = {}
    for m in msgs:
        parent = m.parent_id if m.parent_id in ids else None
        kids.setdefault(parent, []).append(m)
    for group in kids.values():
        group.sort(key=lambda m: (m.created_at, m.id))
    out: list[Message] = []
    stack = list(reversed(kids.get(None, [])))
    while stack:
        m = stack.pop()
        out.append(m)
        stack.extend(reversed(kids.get(m.id, [])))
    return out


def conversation_to_doc(conv: Conversation, messages: Iterable[Message]) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "version": VERSION,
        "conversation": {
            "id": conv.id,
            "title": conv.title,
            "created_at": conv.created_at,
            "updated_at": conv.updated_at,
            "model_path": conv.model_path,
            "system_prompt": conv.system_prompt,
            "current_leaf_id": conv.current_leaf_id,
            "meta": conv.meta,
        },
        "messages": [message_to_doc(m) for m in tree_order(messages)],
    }


# -- reading -----------------------------------------------------------------------


class _Checker:
    """Typed field access that turns every schema problem into one clear sentence."""

    def __init__(self, where: str) -> None:
        self.where = where

    def fail(self, problem: str) -> ImportFormatError:
        return ImportFormatError(f"{self.where}: {problem}.")

    def obj(self, value: Any, what: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(f"{what} must be an object, not {_kind(value)}")
        return value

    def get(self, d: dict[str, Any], key: str, types: tuple[type, ...], *, required: bool) -> Any:
        if key not in d or (d[key] is None and not required):
            if required:
                raise self.fail(f"missing field {key!r}")
            return None
        value = d[key]
        if isinstance(value, bool) and bool not in types:  # bool is an int in Python
            raise self.fail(f"field {key!r} must be {_names(types)}, not {_kind(value)}")
        if not isinstance(value, types):
            raise self.fail(f"field {key!r} must be {_names(types)}, not {_kind(value)}")
        if isinstance(value, float) and not math.isfinite(value):
            raise self.fail(f"field {key!r} must be a finite number")
        return value


def _kind(value: Any) -> str:
    return {
        dict: "an object",
        list: "a list",
        str: "a string",
        bool: "true/false",
        int: "a number",
        float: "a number",
        type(None): "null",
    }.get(type(value), type(value).__name__)


def _names(types: tuple[type, ...]) -> str:
    names = {str: "a string", int: "a number", float: "a number", dict: "an object", list: "a list"}
    return " or ".join(dict.fromkeys(names.get(t, t.__name__) for t in types))


NUM = (int, float)


def check_header(doc: Any, where: str) -> dict[str, Any]:
    c = _Checker(where)
    d = c.obj(doc, "the file")
    fmt = d.get("format")
    if fmt not in (FORMAT, COLLECTION_FORMAT):
        raise c.fail(f"not a chatapp export (format is {fmt!r}, expected {FORMAT!r})")
    version = d.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise c.fail(f"invalid schema version {version!r}")
    if version > VERSION:
        raise ImportFormatError(
            f"{where}: written by a newer chatapp (schema version {version}); "
            f"this chatapp reads version {VERSION}.",
            hint="Update chatapp to import it.",
        )
    return d


def docs_in(doc: Any, where: str) -> list[dict[str, Any]]:
    """The single-conversation documents in a file (a conversation or a collection)."""
    d = check_header(doc, where)
    if d["format"] == FORMAT:
        return [d]
    convs = d.get("conversations")
    if not isinstance(convs, list):
        raise _Checker(where).fail("field 'conversations' must be a list")
    return [
        {"format": FORMAT, "version": d["version"], **_Checker(where).obj(x, "a conversation")}
        for x in convs
    ]


def doc_to_conversation(doc: Any, where: str) -> tuple[Conversation, list[Message]]:
    """Validate one conversation document fully and build the objects (parents first)."""
    d = check_header(doc, where)
    c = _Checker(where)
    cd = c.obj(d.get("conversation"), "field 'conversation'")
    conv_id = c.get(cd, "id", (str,), required=True)
    if not conv_id:
        raise c.fail("the conversation id is empty")
    title = c.get(cd, "title", (str,), required=True)
    c = _Checker(f"{where}: conversation {title!r}")
    conv = Conversation(
        id=conv_id,
        title=title,
        created_at=float(c.get(cd, "created_at", NUM, required=True)),
        updated_at=float(c.get(cd, "updated_at", NUM, required=True)),
        model_path=c.get(cd, "model_path", (str,), required=False),
        system_prompt=c.get(cd, "system_prompt", (str,), required=False) or "",
        current_leaf_id=c.get(cd, "current_leaf_id", (str,), required=False),
        meta=c.get(cd, "meta", (dict,), required=False) or {},
    )
    raw = d.get("messages")
    if not isinstance(raw, list):
        raise c.fail("field 'messages' must be a list")
    messages = [_message(conv_id, c.where, i, x) for i, x in enumerate(raw, 1)]
    ids: set[str] = set()
    for m in messages:
        if m.id in ids:
            raise c.fail(f"message id {m.id!r} appears twice")
        ids.add(m.id)
    for m in messages:
        if m.parent_id is not None and m.parent_id not in ids:
            raise c.fail(f"message {m.id!r} has a parent {m.parent_id!r} that is not in the file")
    ordered = tree_order(messages)
    if len(ordered) != len(messages):
        raise c.fail("the messages' parent links form a loop")
    if conv.current_leaf_id is not None and conv.current_leaf_id not in ids:
        raise c.fail(f"current_leaf_id {conv.current_leaf_id!r} is not one of its messages")
    return conv, ordered


def _message(conv_id: str, where: str, i: int, raw: Any) -> Message:
    c = _Checker(f"{where}: message {i}")
    d = c.obj(raw, "a message")
    msg_id = c.get(d, "id", (str,), required=True)
    if not msg_id:
        raise c.fail("the message id is empty")
    role = c.get(d, "role", (str,), required=True)
    if role not in {r.value for r in Role}:
        raise c.fail(f"unknown role {role!r}")
    finish = c.get(d, "finish_reason", (str,), required=False)
    if finish is not None and finish not in {f.value for f in FinishReason}:
        raise c.fail(f"unknown finish_reason {finish!r}")
    meta = dict(c.get(d, "meta", (dict,), required=False) or {})
    for key in LIFTED_META:
        if d.get(key) is not None:
            meta[key] = d[key]
    calls = c.get(d, "tool_calls", (list,), required=False)
    if calls is not None:
        if not all(isinstance(x, dict) for x in calls):
            raise c.fail("'tool_calls' must be a list of objects")
        meta["tool_calls"] = calls
    call_id = c.get(d, "tool_call_id", (str,), required=False)
    if call_id is not None:
        meta["tool_call_id"] = call_id
    tps = c.get(d, "tokens_per_second", NUM, required=False)
    tokens = None
    if d.get("tokens") is not None:
        try:
            tokens = trace_from_doc(d["tokens"])
        except TraceFormatError as e:
            raise c.fail(str(e)) from e
    return Message(
        id=msg_id,
        conversation_id=conv_id,
        parent_id=c.get(d, "parent_id", (str,), required=False),
        role=Role(role),
        content=c.get(d, "content", (str,), required=True),
        created_at=float(c.get(d, "created_at", NUM, required=True)),
        thinking=c.get(d, "thinking", (str,), required=False) or "",
        model=c.get(d, "model", (str,), required=False),
        finish_reason=FinishReason(finish) if finish else None,
        prompt_tokens=c.get(d, "prompt_tokens", (int,), required=False),
        completion_tokens=c.get(d, "completion_tokens", (int,), required=False),
        tokens_per_second=float(tps) if tps is not None else None,
        meta=meta,
        tokens=tokens,
    )
