"""Import conversations: chatapp's own JSON export and ChatGPT's conversations.json.

A file is read and validated completely before anything is written; then every new
conversation goes into the store in ONE transaction, so a bad file or a cancelled import
leaves the database exactly as it was. Importing the same file twice adds nothing the
second time: chatapp files keep their ids, and ChatGPT conversations get ids derived from
their own (uuid5), so a conversation that is already there is recognised and skipped.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sqlite3
import stat
import uuid
import zipfile
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from chatapp.core.conversation import Conversation, FinishReason, Message, Role, new_id
from chatapp.core.errors import UserError
from chatapp.core.export import fence_for
from chatapp.core.export.images import take_image_data
from chatapp.core.export.schema import (
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
MAX_IMPORT_BYTES = 2 * 1024**3  # a file, or the JSON a zip expands to
# One JSON document is parsed whole (the stdlib has no streaming parser): its Python
# objects take a few times its size, so this cap is what bounds memory.
MAX_JSON_BYTES = 512 * 1024**2
MAX_ZIP_RATIO = 100  # JSON exports compress 5-20 times
_RATIO_FREE_BYTES = 1024**2  # a small member may compress as well as it likes
MAX_ZIP_MEMBERS = 100_000
MAX_TEXT_CHARS = 100_000_000  # one message's text; SQLite holds at most 1e9 bytes
MAX_TIMESTAMP = 253_402_300_799.0  # 9999-12-31: datetime's limit
_MAX_INT = (1 << 63) - 1  # SQLite's INTEGER
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
    """The parsed JSON documents in a file: one for .json, each .json member of a .zip.

    Memory stays bounded: only regular files are read (a FIFO would block, /dev/zero never
    ends), a file is read no further than its limit whatever its size claims, and zip
    members are checked by declared size and compression ratio before one is expanded."""
    p = Path(path)
    fd = _open_regular(p)
    with os.fdopen(fd, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size > MAX_IMPORT_BYTES:
            raise UserError(
                f"{p.name} is {size / 1e9:.1f} GB; files over {MAX_IMPORT_BYTES / 1e9:.1f} GB "
                "cannot be imported."
            )
        if f.read(4) == b"PK\x03\x04":
            f.seek(0)
            return _zip_documents(p.name, f)
        f.seek(0)
        if size > MAX_JSON_BYTES:
            raise UserError(
                f"{p.name} is {size / 1e6:.0f} MB; a JSON file over "
                f"{MAX_JSON_BYTES / 1e6:.0f} MB cannot be imported at once.",
                hint="Split it, or zip it with one conversation per file.",
            )
        data = _read_capped(f, p, MAX_JSON_BYTES, size, progress)
    return [(p.name, parse_json(data, p.name))]


def _open_regular(p: Path) -> int:
    """Open for reading without blocking (a FIFO would wait for a writer) and refuse
    anything but a regular file."""
    try:
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except IsADirectoryError:
        raise UserError(f"{p} is a folder; give a .json or .zip file to import.") from None
    except OSError as e:
        raise UserError(f"Cannot read {p}: {e.strerror or e}") from e
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        what = "a folder" if stat.S_ISDIR(mode) else "not a regular file (a device or a pipe?)"
        raise UserError(f"{p} is {what}; give a .json or .zip file to import.")
    return fd


def _read_capped(f: BinaryIO, p: Path, cap: int, size: int, progress: Progress | None) -> bytes:
    """At most `cap` bytes (a file may grow while it is read: the cap holds anyway)."""
    chunks: list[bytes] = []
    done = 0
    try:
        while chunk := f.read(min(_CHUNK, cap + 1 - done)):
            chunks.append(chunk)
            done += len(chunk)
            if done > cap:
                raise UserError(f"{p.name} grew past {cap / 1e6:.0f} MB while it was read.")
            if progress:  # reading is the first 40% of the bar
                progress(int(0.4 * PROGRESS_TOTAL * min(done, size) / max(size, 1)), PROGRESS_TOTAL)
    except OSError as e:
        raise UserError(f"Cannot read {p}: {e.strerror or e}") from e
    return b"".join(chunks)


def _zip_documents(name: str, f: BinaryIO) -> list[tuple[str, Any]]:
    try:
        with zipfile.ZipFile(f) as zf:
            infos = zf.infolist()
            if len(infos) > MAX_ZIP_MEMBERS:
                raise ImportFormatError(f"{name} holds {len(infos):,} files; too many to import.")
            wanted = [i for i in infos if i.filename.lower().endswith(".json") and not i.is_dir()]
            if any(Path(i.filename).name == "conversations.json" for i in wanted):
                wanted = [i for i in wanted if Path(i.filename).name == "conversations.json"]
            wanted = [i for i in wanted if Path(i.filename).name != "index.json"]
            if not wanted:
                raise ImportFormatError(f"{name} holds no .json files to import.")
            for info in wanted:  # every member judged before any is expanded
                _check_member(name, info)
            total = sum(i.file_size for i in wanted)
            if total > MAX_IMPORT_BYTES:
                raise ImportFormatError(
                    f"{name} would expand to {total / 1e9:.1f} GB of JSON; more than "
                    f"{MAX_IMPORT_BYTES / 1e9:.1f} GB cannot be imported."
                )
            docs = []
            for info in wanted:
                where = f"{name}/{info.filename}"
                with zf.open(info) as member:
                    data = member.read(info.file_size + 1)  # never past what it declared
                if len(data) > info.file_size:
                    raise ImportFormatError(f"{where} is larger than the zip says.")
                docs.append((where, parse_json(data, where)))
                del data
            return docs
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, zlib.error) as e:
        raise ImportFormatError(f"{name} is not a readable zip file ({e}).") from e
    except (NotImplementedError, RuntimeError) as e:  # an unsupported method, encryption
        raise ImportFormatError(f"{name} cannot be read: {e}.") from e


def _check_member(name: str, info: zipfile.ZipInfo) -> None:
    where = f"{name}/{info.filename}"
    if info.file_size > MAX_JSON_BYTES:
        raise ImportFormatError(
            f"{where} would expand to {info.file_size / 1e6:.0f} MB; a JSON file over "
            f"{MAX_JSON_BYTES / 1e6:.0f} MB cannot be imported at once."
        )
    ratio = info.file_size / max(info.compress_size, 1)
    if info.file_size > _RATIO_FREE_BYTES and ratio > MAX_ZIP_RATIO:
        raise ImportFormatError(
            f"{where} would expand {ratio:,.0f} times ({info.compress_size:,} bytes to "
            f"{info.file_size:,}); that is a zip bomb, not an export."
        )


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
    except ValueError as e:  # a number of more than 4300 digits
        raise ImportFormatError(f"{where} is not valid JSON ({_short(e)}).") from e
    except MemoryError as e:
        raise ImportFormatError(f"{where} is too large to read in the memory available.") from e


def _short(e: BaseException, limit: int = 120) -> str:
    text = " ".join(str(e).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


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
    _check_integers(doc, where)
    return Parsed([doc_to_conversation(d, where) for d in docs_in(doc, where)])


def _check_integers(doc: Any, where: str) -> None:
    """No integer past SQLite's range anywhere (a 400-digit created_at would otherwise
    overflow in float(), a 400-digit token count in the insert)."""
    stack: list[tuple[Any, tuple[str, ...]]] = [(doc, ())]
    while stack:
        value, path = stack.pop()
        if isinstance(value, dict):
            stack.extend((v, (*path, str(k))) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((v, (*path, str(i))) for i, v in enumerate(value))
        elif isinstance(value, int) and not isinstance(value, bool) and abs(value) > _MAX_INT:
            field = ".".join(path[-3:]) or "the file"
            raise ImportFormatError(
                f"{where}: {field} is a number of {len(str(abs(value)))} digits, out of range."
            )


# -- ChatGPT conversations.json -------------------------------------------------------


def parse_chatgpt(doc: Any, where: str) -> Parsed:
    convs = [doc] if isinstance(doc, dict) else doc
    if not isinstance(convs, list):
        raise ImportFormatError(
            f"{where} is not a ChatGPT conversations.json (expected a list of conversations)."
        )
    parsed = Parsed([])
    for raw in convs:
        try:
            item = _chatgpt_conversation(raw, parsed)
        except _OutOfRange as e:
            title = raw.get("title") if isinstance(raw, dict) else None
            raise ImportFormatError(f"{where}: conversation {_shown(title)}: {e}.") from None
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


class _OutOfRange(Exception):
    """A timestamp that is a number, but not one a calendar can show."""


def _number(x: Any) -> float | None:
    """A timestamp from a ChatGPT export; None where there is none (null, not a number).
    A number out of range (a 400-digit integer, a negative one, infinity) is an error:
    it must never reach float() or the database."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    if (isinstance(x, int) and 0 <= x <= MAX_TIMESTAMP) or (
        isinstance(x, float) and math.isfinite(x) and 0 <= x <= MAX_TIMESTAMP
    ):
        return float(x)
    raise _OutOfRange(f"a timestamp is out of range ({_shown(x)})")


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
    return conv, tree_order(_link_results(messages))


class _Skip:
    """A message node with fields missing: passed over and counted in the summary."""


_SKIP = _Skip()
_ROLES = {
    "user": Role.USER,
    "assistant": Role.ASSISTANT,
    "system": Role.SYSTEM,
    "tool": Role.TOOL,
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
    finish = None
    # a tool's output: ChatGPT names the tool as the author
    if role == "tool" and isinstance(author.get("name"), str) and author["name"]:
        meta["name"] = author["name"]
    recipient = msg.get("recipient")
    if role == "assistant" and isinstance(recipient, str) and recipient not in ("", "all"):
        # the assistant writing to a tool (python, web.run, dalle.text2im...): a call
        call_id = "call_" + uuid.uuid5(_CHATGPT_NS, f"call:{conv_id}:{node_id}").hex[:24]
        meta["tool_calls"] = [
            {"id": call_id, "name": recipient, "arguments": _call_arguments(content, text)}
        ]
        text, finish = "", FinishReason.TOOL_CALLS
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
        finish_reason=finish,
        meta=meta,
    )


def _call_arguments(content: dict[str, Any], text: str) -> dict[str, Any]:
    """A ChatGPT call's arguments: its JSON object as written; code (the python tool)
    as {"code": ...}; anything else as {"input": ...}."""
    given = content.get("text")
    raw = given if isinstance(given, str) else text
    try:
        value = json.loads(raw)
    except ValueError:
        value = None
    if isinstance(value, dict):
        return value
    return {"code" if content.get("content_type") == "code" else "input": raw}


def _link_results(messages: list[Message]) -> list[Message]:
    """Each tool result with the id of the call it answers: the call of the nearest
    answer above it (past other results of the same answer)."""
    by_id = {m.id: m for m in messages}
    out = []
    for m in messages:
        if m.role is Role.TOOL and "tool_call_id" not in m.meta:
            up = by_id.get(m.parent_id or "")
            while up is not None and up.role is Role.TOOL:
                up = by_id.get(up.parent_id or "")
            calls = up.meta.get("tool_calls") if up is not None else None
            if calls:
                named = [c for c in calls if c.get("name") == m.meta.get("name")] or calls
                m = m.with_(meta={**m.meta, "tool_call_id": named[-1]["id"]})
        out.append(m)
    return out


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


# -- all of a file -------------------------------------------------------------------


def parse_documents(docs: Iterable[tuple[str, Any]], fmt: str = "auto") -> Parsed:
    if fmt not in IMPORT_FORMATS:
        raise UserError(f"Unknown import format {fmt!r}; use one of {', '.join(IMPORT_FORMATS)}.")
    out = Parsed([])
    for where, doc in docs:
        kind = detect_format(doc) if fmt == "auto" else fmt
        if kind not in ("chatapp", "chatgpt"):
            raise ImportFormatError(
                f"{where} is neither a chatapp export nor a ChatGPT conversations.json."
            )
        try:
            parsed = parse_chatapp(doc, where) if kind == "chatapp" else parse_chatgpt(doc, where)
        except UnicodeEncodeError as e:  # an id with a lone surrogate, hashed into a uuid
            raise ImportFormatError(
                f"{where}: a text holds a lone surrogate ({_short(e)}), which is not valid text."
            ) from e
        except OverflowError as e:
            raise ImportFormatError(f"{where}: a number is out of range ({_short(e)}).") from e
        out.items += parsed.items
        out.skipped_conversations += parsed.skipped_conversations
        out.skipped_messages += parsed.skipped_messages
    return out


# -- values the store can hold ---------------------------------------------------------


def check_items(items: list[Item], where: str) -> None:
    """Every value fits the store and reads back: text without lone surrogates and under
    MAX_TEXT_CHARS, timestamps a calendar can show, counts SQLite can hold, finite
    numbers in meta. Raises ImportFormatError naming the first bad value."""
    for conv, messages in items:
        c = f"{where}: conversation {_shown(conv.title)}"
        for name in ("id", "title", "model_path", "system_prompt", "current_leaf_id"):
            _check_text(getattr(conv, name), c, name)
        for name in ("created_at", "updated_at"):
            _check_time(getattr(conv, name), c, name)
        _check_meta(conv.meta, c)
        for m in messages:
            w = f"{c}: message {_shown(m.id)}"
            for name in ("id", "parent_id", "content", "thinking", "model"):
                _check_text(getattr(m, name), w, name)
            _check_time(m.created_at, w, "created_at")
            for name in ("prompt_tokens", "completion_tokens"):
                n = getattr(m, name)
                if n is not None and not (isinstance(n, int) and 0 <= n <= _MAX_INT):
                    raise ImportFormatError(f"{w}: {name} is out of range ({_shown(n)}).")
            tps = m.tokens_per_second
            if tps is not None and not (math.isfinite(tps) and 0 <= tps < 1e12):
                raise ImportFormatError(f"{w}: tokens_per_second is out of range ({tps}).")
            _check_meta(m.meta, w)


def _shown(value: Any, limit: int = 40) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**20:
        return f"a number of {len(str(abs(value)))} digits"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


def _check_text(value: Any, where: str, name: str) -> None:
    if value is None:
        return
    if not isinstance(value, str):
        raise ImportFormatError(f"{where}: {name} must be text, not {type(value).__name__}.")
    if len(value) > MAX_TEXT_CHARS:
        raise ImportFormatError(
            f"{where}: {name} is {len(value):,} characters long; the limit is {MAX_TEXT_CHARS:,}."
        )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ImportFormatError(
            f"{where}: {name} holds a lone surrogate (U+{ord(value[e.start]):04X}), "
            "which is not valid text."
        ) from None


def _check_time(value: Any, where: str, name: str) -> None:
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not (number and math.isfinite(value) and 0 <= value <= MAX_TIMESTAMP):
        raise ImportFormatError(f"{where}: {name} is out of range ({_shown(value)}).")


def _check_meta(meta: Any, where: str) -> None:
    stack = [meta]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            for k, v in value.items():
                _check_text(k, where, "a meta key")
                stack.append(v)
        elif isinstance(value, list):
            stack.extend(value)
        elif isinstance(value, str):
            _check_text(value, where, "a meta value")
        elif isinstance(value, float) and not math.isfinite(value):
            raise ImportFormatError(f"{where}: a meta value is not a finite number.")
        elif isinstance(value, int) and not isinstance(value, bool) and abs(value) > _MAX_INT:
            raise ImportFormatError(f"{where}: a meta value is out of range ({_shown(value)}).")
    if len(json.dumps(meta)) > MAX_TEXT_CHARS:
        raise ImportFormatError(f"{where}: its meta data is too large to store.")


# -- into the store -----------------------------------------------------------------


def import_file(
    store: Store, path: str | Path, fmt: str = "auto", progress: Progress | None = None
) -> ImportResult:
    """Read, validate and import a file; nothing is written unless all of it is valid."""
    docs = read_documents(path, progress)
    parsed = parse_documents(docs, fmt)
    del docs
    check_items(parsed.items, Path(path).name)
    result = ImportResult(
        skipped_conversations=parsed.skipped_conversations,
        skipped_messages=parsed.skipped_messages,
    )
    try:
        insert(store, parsed.items, result, progress)
    except (sqlite3.DataError, OverflowError, UnicodeEncodeError) as e:
        # check_items lets no such value through; if one slips by, the insert's
        # transaction has rolled back and the user gets one line, not a traceback
        raise ImportFormatError(f"The import could not be stored, so none of it was ({e}).") from e
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
            messages, images = take_image_data(messages)
            store.put_images(images)
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
