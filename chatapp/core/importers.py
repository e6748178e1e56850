"""Import conversations: chatapp's own JSON export and ChatGPT's conversations.json.

A file is read and validated completely before anything is written; then every new
conversation goes into the store in ONE transaction, so a bad file or a cancelled import
leaves the database exactly as it was. Importing the same file twice adds nothing the
second time: chatapp files keep their ids, and ChatGPT conversations get ids derived from
their own (uuid5), so a conversation that is already there is recognised and skipped.
"""

from __future__ import annotations

import io
import json
import logging
import math
import uuid
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chatapp.core.conversation import Conversation, Message, Role, new_id
from chatapp.core.errors import UserError
from chatapp.core.export import fence_for
from chatapp.core.export_schema import (
    COLLECTION_FORMAT,
    FORMAT,
    ImportFormatError,
    doc_to_conversation,
    docs_in,
    tree_order,
)
from chatapp.core.store import Store

log = logging.getLogger(__name__)

IMPORT_FORMATS = ("auto", "chatapp", "chatgpt")
MAX_IMPORT_BYTES = 2 * 1024**3
_CHUNK = 8 * 1024 * 1024
_CHATGPT_NS = uuid.UUID("4b1e1f6c-4a55-5d0e-9c3b-2f7d1c0a6e11")

Progress = Callable[[int, int], None]  # (done, total) out of PROGRESS_TOTAL; may raise to cancel
PROGRESS_TOTAL = 1000
Item = tuple[Conversation, list[Message]]


@dataclass
class ImportResult:
    imported: list[str] = field(default_factory=list)  # ids of the conversations added
    messages: int = 0
    duplicates: int = 0  # conversations already in the store (or twice in the file)
    skipped_conversations: int = 0  # unusable entries (no messages, missing fields)
    skipped_messages: int = 0  # messages with missing fields or an unknown role

    def summary(self) -> str:
        n = len(self.imported)
        parts = [f"Imported {n} conversation{'s' if n != 1 else ''} ({self.messages} messages)"]
        if self.duplicates:
            parts.append(f"{self.duplicates} already present")
        if self.skipped_conversations:
            parts.append(f"skipped {self.skipped_conversations} unusable conversation(s)")
        if self.skipped_messages:
            parts.append(f"skipped {self.skipped_messages} message(s) with missing fields")
        return "; ".join(parts) + "."


@dataclass
class Parsed:
    items: list[Item]
    skipped_conversations: int = 0
    skipped_messages: int = 0


# -- reading files -----------------------------------------------------------------


def read_documents(path: str | Path, progress: Progress | None = None) -> list[tuple[str, Any]]:
    """The parsed JSON documents in a file: one for .json, each .json member of a .zip."""
    p = Path(path)
    try:
        size = p.stat().st_size
    except OSError as e:
        raise UserError(f"Cannot read {p}: {e.strerror or e}") from e
    if size > MAX_IMPORT_BYTES:
        raise UserError(
            f"{p.name} is {size / 1e9:.1f} GB; files over {MAX_IMPORT_BYTES / 1e9:.1f} GB "
            "cannot be imported."
        )
    data = _read_bytes(p, size, progress)
    if data[:4] == b"PK\x03\x04":
        return _zip_documents(p.name, data)
    return [(p.name, parse_json(data, p.name))]


def _read_bytes(p: Path, size: int, progress: Progress | None) -> bytes:
    chunks: list[bytes] = []
    done = 0
    try:
        with open(p, "rb") as f:
            while chunk := f.read(_CHUNK):
                chunks.append(chunk)
                done += len(chunk)
                if progress:  # reading is the first 40% of the bar
                    progress(int(0.4 * PROGRESS_TOTAL * done / max(size, 1)), PROGRESS_TOTAL)
    except OSError as e:
        raise UserError(f"Cannot read {p}: {e.strerror or e}") from e
    return b"".join(chunks)


def _zip_documents(name: str, data: bytes) -> list[tuple[str, Any]]:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            names = [n for n in zf.namelist() if n.lower().endswith(".json")]
            if any(Path(n).name == "conversations.json" for n in names):  # a ChatGPT export
                names = [n for n in names if Path(n).name == "conversations.json"]
            names = [n for n in names if Path(n).name != "index.json"]
            if not names:
                raise ImportFormatError(f"{name} holds no .json files to import.")
            return [(f"{name}/{n}", parse_json(zf.read(n), f"{name}/{n}")) for n in names]
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError) as e:
        raise ImportFormatError(f"{name} is not a readable zip file ({e}).") from e


def parse_json(data: bytes, where: str) -> Any:
    try:
        return json.loads(data)
    except json.JSONDecodeError as e:
        raise ImportFormatError(
            f"{where} is not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})."
        ) from e
    except UnicodeDecodeError as e:
        raise ImportFormatError(f"{where} is not UTF-8 text.") from e
    except RecursionError as e:
        raise ImportFormatError(f"{where} is nested too deeply to be a chat export.") from e


def detect_format(doc: Any) -> str:
    if isinstance(doc, dict) and doc.get("format") in (FORMAT, COLLECTION_FORMAT):
        return "chatapp"
    if isinstance(doc, list) or (isinstance(doc, dict) and "mapping" in doc):
        return "chatgpt"
    if isinstance(doc, dict) and isinstance(doc.get("format"), str):
        return "chatapp"  # let the schema check explain what is wrong with it
    return "unknown"


# -- chatapp JSON -----------------------------------------------------------------


def parse_chatapp(doc: Any, where: str) -> Parsed:
    return Parsed([doc_to_conversation(d, where) for d in docs_in(doc, where)])


# -- ChatGPT conversations.json -------------------------------------------------------


def parse_chatgpt(doc: Any, where: str) -> Parsed:
    convs = [doc] if isinstance(doc, dict) else doc
    if not isinstance(convs, list):
        raise ImportFormatError(
            f"{where} is not a ChatGPT conversations.json (expected a list of conversations)."
        )
    parsed = Parsed([])
    for raw in convs:
        item = _chatgpt_conversation(raw, parsed)
        if item is None:
            parsed.skipped_conversations += 1
        else:
            parsed.items.append(item)
    if convs and not parsed.items:
        raise ImportFormatError(
            f"{where}: none of its {len(convs)} entries is a conversation with messages "
            "(each needs a 'mapping' of message nodes)."
        )
    return parsed


def _number(x: Any) -> float | None:
    if (
        isinstance(x, (int, float))
        and not isinstance(x, bool)
        and math.isfinite(x)
        and abs(x) < 1e13
    ):
        return float(x)
    return None


def _chatgpt_conversation(raw: Any, parsed: Parsed) -> Item | None:
    if not isinstance(raw, dict) or not isinstance(raw.get("mapping"), dict):
        return None
    mapping: dict[str, Any] = raw["mapping"]
    title = raw.get("title")
    title = title if isinstance(title, str) else ""
    created = _number(raw.get("create_time"))
    source_id = raw.get("conversation_id") or raw.get("id")
    if not isinstance(source_id, str) or not source_id:
        source_id = f"{title}|{created}|{','.join(sorted(map(str, mapping))[:8])}"
    conv_id = uuid.uuid5(_CHATGPT_NS, f"conversation:{source_id}").hex

    parent_of = {
        str(k): (str(n["parent"]) if isinstance(n.get("parent"), str) else None)
        for k, n in mapping.items()
        if isinstance(n, dict)
    }
    kids: dict[str | None, list[str]] = {}
    for node_id, parent in parent_of.items():
        kids.setdefault(parent if parent in parent_of else None, []).append(node_id)

    messages: list[Message] = []
    kept_for: dict[str, str | None] = {}  # node id -> nearest kept message id at or above it
    # (node id, nearest kept ancestor message id, thinking waiting for the next reply)
    stack: list[tuple[str, str | None, str, float]] = [
        (n, None, "", created or 0.0) for n in reversed(kids.get(None, []))
    ]
    while stack:
        node_id, parent_msg, pending, t_parent = stack.pop()
        if node_id in kept_for:  # a loop in the parent links
            continue
        msg = _chatgpt_message(conv_id, node_id, mapping[node_id], parent_msg, pending, t_parent)
        if isinstance(msg, _Skip):
            parsed.skipped_messages += 1
            kept = parent_msg
        elif isinstance(msg, str):  # thinking to carry down to the reply
            kept, pending = parent_msg, (pending + "\n\n" + msg).strip()
        elif msg is None:
            kept = parent_msg
        else:
            messages.append(msg)
            kept, pending, t_parent = msg.id, "", msg.created_at
        kept_for[node_id] = kept
        stack.extend((k, kept, pending, t_parent) for k in reversed(kids.get(node_id, [])))
    if not messages:
        return None

    current = raw.get("current_node")
    leaf = kept_for.get(current) if isinstance(current, str) else None
    if leaf is None:
        leaf = max(messages, key=lambda m: m.created_at).id
    created = created if created is not None else min(m.created_at for m in messages)
    updated = _number(raw.get("update_time")) or max(m.created_at for m in messages)
    conv = Conversation(
        id=conv_id,
        title=" ".join(title.split()) or "Imported ChatGPT conversation",
        created_at=created,
        updated_at=max(updated, created),
        current_leaf_id=leaf,
        meta={"source": "chatgpt", "source_id": source_id},
    )
    return conv, tree_order(messages)


class _Skip:
    """A message node with fields missing: passed over and counted in the summary."""


_SKIP = _Skip()
_ROLES = {
    "user": Role.USER,
    "assistant": Role.ASSISTANT,
    "system": Role.SYSTEM,
    "tool": Role.ASSISTANT,
}


def _chatgpt_message(
    conv_id: str, node_id: str, node: Any, parent_msg: str | None, pending: str, t_parent: float
) -> Message | str | _Skip | None:
    """A Message; a str of thinking for the next reply; None to pass over; _SKIP if broken."""
    msg = node.get("message") if isinstance(node, dict) else None
    if msg is None:
        return None  # the structural root node, or a node with nothing in it
    if not isinstance(msg, dict):
        return _SKIP
    author = msg.get("author")
    role = author.get("role") if isinstance(author, dict) else None
    content = msg.get("content")
    if not isinstance(author, dict) or role not in _ROLES or not isinstance(content, dict):
        return _SKIP
    metadata = msg.get("metadata")
    metadata = metadata if isinstance(metadata, dict) else {}
    if metadata.get("is_visually_hidden_from_conversation"):
        return None
    text, thinking = _chatgpt_content(content)
    if content.get("content_type") == "thoughts":
        return thinking or None
    if not text.strip():
        return None  # empty system/tool/placeholder messages carry nothing to keep
    meta: dict[str, Any] = {"source_id": node_id}
    if role == "tool":
        meta["source_role"] = "tool"
        if isinstance(author.get("name"), str):
            meta["source_name"] = author["name"]
    model = metadata.get("model_slug")
    thinking = "\n\n".join(t for t in (pending, thinking) if t) if role == "assistant" else ""
    return Message(
        id=uuid.uuid5(_CHATGPT_NS, f"message:{conv_id}:{node_id}").hex,
        conversation_id=conv_id,
        parent_id=parent_msg,
        role=_ROLES[role],
        content=text,
        created_at=_number(msg.get("create_time")) or t_parent,
        thinking=thinking,
        model=model if isinstance(model, str) and model else None,
        meta=meta,
    )


def _chatgpt_content(content: dict[str, Any]) -> tuple[str, str]:
    """(text, thinking) of a ChatGPT message content object."""
    ctype = content.get("content_type")
    if ctype == "thoughts":
        thoughts = content.get("thoughts")
        thoughts = thoughts if isinstance(thoughts, list) else []
        texts = [t.get("content") for t in thoughts if isinstance(t, dict)]
        return "", "\n\n".join(t for t in texts if isinstance(t, str) and t.strip())
    if ctype in ("reasoning_recap", "user_editable_context", "model_editable_context"):
        return "", ""
    parts = content.get("parts")
    if isinstance(parts, list):
        return "\n\n".join(p for p in map(_part_text, parts) if p), ""
    text = content.get("text")
    if isinstance(text, str):
        lang = content.get("language")
        if ctype == "code" and isinstance(lang, str) and lang not in ("", "unknown"):
            fence = fence_for(text)
            return f"{fence}{lang}\n{text}\n{fence}", ""
        return text, ""
    return (f"[{ctype}]" if isinstance(ctype, str) else ""), ""


def _part_text(part: Any) -> str:
    if isinstance(part, str):
        return part
    if isinstance(part, dict):
        if isinstance(part.get("text"), str):
            return str(part["text"])
        kind = part.get("content_type")
        return f"[{kind if isinstance(kind, str) else 'attachment'} not imported]"
    return "" if part is None else f"[{type(part).__name__} not imported]"


# -- into the store -----------------------------------------------------------------


def parse_documents(docs: Iterable[tuple[str, Any]], fmt: str = "auto") -> Parsed:
    if fmt not in IMPORT_FORMATS:
        raise UserError(f"Unknown import format {fmt!r}; use one of {', '.join(IMPORT_FORMATS)}.")
    out = Parsed([])
    for where, doc in docs:
        kind = detect_format(doc) if fmt == "auto" else fmt
        if kind == "chatapp":
            parsed = parse_chatapp(doc, where)
        elif kind == "chatgpt":
            parsed = parse_chatgpt(doc, where)
        else:
            raise ImportFormatError(
                f"{where} is neither a chatapp export nor a ChatGPT conversations.json."
            )
        out.items += parsed.items
        out.skipped_conversations += parsed.skipped_conversations
        out.skipped_messages += parsed.skipped_messages
    return out


def import_file(
    store: Store, path: str | Path, fmt: str = "auto", progress: Progress | None = None
) -> ImportResult:
    """Read, validate and import a file; nothing is written unless all of it is valid."""
    docs = read_documents(path, progress)
    parsed = parse_documents(docs, fmt)
    del docs
    result = ImportResult(
        skipped_conversations=parsed.skipped_conversations,
        skipped_messages=parsed.skipped_messages,
    )
    insert(store, parsed.items, result, progress)
    log.info("import of %s: %s", path, result.summary())
    return result


def insert(
    store: Store, items: list[Item], result: ImportResult, progress: Progress | None = None
) -> None:
    """Add the conversations not yet in the store: all or nothing, committed in short
    batches so a chat streaming in another process never waits long."""
    with store.batched():
        taken: set[str] = set()  # conversation ids added by this import
        used: set[str] = set()  # message ids added by this import
        for i, (conv, messages) in enumerate(items):
            if progress:  # the last 60% of the bar
                step = int(0.6 * PROGRESS_TOTAL * i / max(len(items), 1))
                progress(int(0.4 * PROGRESS_TOTAL) + step, PROGRESS_TOTAL)
            if conv.id in taken or store.get_conversation(conv.id) is not None:
                result.duplicates += 1
                continue
            taken.add(conv.id)
            conv, messages = _fresh_ids_if_taken(store, conv, messages, used)
            store.create_conversation(
                conv.title,
                model_path=conv.model_path,
                system_prompt=conv.system_prompt,
                meta=conv.meta,
                created_at=conv.created_at,
                conversation_id=conv.id,
            )
            store.insert_messages(messages)
            store.update_conversation(
                conv.id, current_leaf_id=conv.current_leaf_id, updated_at=conv.updated_at
            )
            result.imported.append(conv.id)
            result.messages += len(messages)
    if progress:
        progress(PROGRESS_TOTAL, PROGRESS_TOTAL)


def _fresh_ids_if_taken(
    store: Store, conv: Conversation, messages: list[Message], used: set[str]
) -> Item:
    """New message ids, mapped consistently, when any id is already used elsewhere.

    Only a hand-edited file (a conversation copied under a new id) gets here; its tree
    and current leaf are kept, under new ids.
    """
    clash = any(m.id in used or store.get_message(m.id) is not None for m in messages)
    if not clash:
        used.update(m.id for m in messages)
        return conv, messages
    ids = {m.id: new_id() for m in messages}
    used.update(ids.values())
    renamed = [
        m.with_(id=ids[m.id], parent_id=ids.get(m.parent_id) if m.parent_id else None)
        for m in messages
    ]
    leaf = ids.get(conv.current_leaf_id) if conv.current_leaf_id else None
    return conv.with_(current_leaf_id=leaf), renamed
