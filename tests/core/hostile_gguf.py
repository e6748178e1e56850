"""Write GGUF files for the hostile-input tests: small synthetic ones, and copies of a real
model with metadata values replaced (the tensors are copied byte for byte)."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path
from typing import Any

from chatapp.core.catalog.gguf import _U32, _Reader, read_gguf

U8, I8, U16, I16, U32, I32, F32, BOOL, STR, ARR, U64, I64, F64 = range(13)
_FMT = {U8: "B", I8: "b", U16: "H", I16: "h", U32: "I", I32: "i", F32: "f", BOOL: "?",
        U64: "Q", I64: "q", F64: "d"}  # fmt: skip


def s(text: str | bytes) -> bytes:
    b = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    return struct.pack("<Q", len(b)) + b


def value(t: int, v: Any) -> bytes:
    """A typed value: (type id) + payload. For arrays, v is (element type, items)."""
    if t == STR:
        return struct.pack("<I", STR) + s(v)
    if t == ARR:
        et, items = v
        body = b"".join(s(x) if et == STR else struct.pack("<" + _FMT[et], x) for x in items)
        return struct.pack("<IIQ", ARR, et, len(items)) + body
    return struct.pack("<I", t) + struct.pack("<" + _FMT[t], v)


def kv(key: str, t: int, v: Any) -> bytes:
    return s(key) + value(t, v)


CHATML = (
    "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + "
    "'<|im_end|>\\n' }}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\\n"
    "{% endif %}"
)


def base_kvs() -> dict[str, bytes]:
    """The metadata of a small, sound llama-style file: key -> encoded kv."""
    tokens = ["<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>"] + [f"t{i}" for i in range(95)]
    items = [
        ("general.architecture", STR, "llama"),
        ("general.name", STR, "Hostile Test"),
        ("general.alignment", U32, 32),
        ("general.file_type", U32, 0),
        ("llama.context_length", U32, 2048),
        ("llama.block_count", U32, 2),
        ("llama.embedding_length", U32, 64),
        ("llama.attention.head_count", U32, 4),
        ("llama.attention.head_count_kv", U32, 2),
        ("tokenizer.ggml.model", STR, "llama"),
        ("tokenizer.ggml.tokens", ARR, (STR, tokens)),
        ("tokenizer.ggml.token_type", ARR, (I32, [3] * 5 + [1] * 95)),
        ("tokenizer.ggml.bos_token_id", U32, 1),
        ("tokenizer.ggml.eos_token_id", U32, 2),
        ("tokenizer.ggml.add_bos_token", BOOL, True),
        ("tokenizer.chat_template", STR, CHATML),
    ]
    return {k: kv(k, t, v) for k, t, v in items}


def build(kvs: dict[str, bytes] | list[bytes], alignment: int = 32) -> bytes:
    """A whole file: the given metadata and one 4x4 F32 tensor."""
    entries = list(kvs.values()) if isinstance(kvs, dict) else kvs
    tensor = s("token_embd.weight") + struct.pack("<I", 2) + struct.pack("<QQ", 4, 4)
    tensor += struct.pack("<IQ", 0, 0)
    head = b"GGUF" + struct.pack("<IQQ", 3, 1, len(entries)) + b"".join(entries) + tensor
    head += b"\0" * (-len(head) % alignment)
    return head + struct.pack("<16f", *range(16))


def with_metadata(src: Path, dst: Path, replace: dict[str, bytes | None]) -> Path:
    """Copy a real GGUF with some metadata entries replaced (key -> encoded kv from kv())
    or dropped (None); new keys are appended. Tensor offsets are relative to the data
    section, so only the padding before it changes."""
    info = read_gguf(src)
    align = int(info.get("general.alignment", 32) or 32)
    entries: list[bytes] = []
    with open(src, "rb") as f:
        r = _Reader(f, src.stat().st_size)
        f.seek(24)
        for _ in range(len(info.metadata)):
            start = f.tell()
            key = r.string()
            r.value(r.scalar(_U32), key, info, False)
            end = f.tell()
            if key in replace:
                if replace[key] is not None:
                    entries.append(replace[key])  # type: ignore[arg-type]
            else:
                f.seek(start)
                entries.append(f.read(end - start))
        for key, entry in replace.items():
            if key not in info.metadata and entry is not None:
                entries.append(entry)
        table_start = f.tell()
        for _ in info.tensors:
            r.string()
            n_dims = r.scalar(_U32)
            f.seek(8 * n_dims + 12, 1)
        table = b""
        table_end = f.tell()
        f.seek(table_start)
        table = f.read(table_end - table_start)
        head = b"GGUF" + struct.pack("<IQQ", info.version, len(info.tensors), len(entries))
        head += b"".join(entries) + table
        head += b"\0" * (-len(head) % align)
        with open(dst, "wb") as out:
            out.write(head)
            f.seek(info.data_offset)
            shutil.copyfileobj(f, out, 1 << 20)
    return dst
