"""Split a GGUF file into shards the way llama.cpp's gguf-split does (--split-max-tensors).

Shard 1 keeps every metadata key of the original plus split.no / split.count /
split.tensors.count; the other shards hold only those three keys. Each shard has its own
tensor table and data section; llama.cpp opens shard 1 and finds the rest by name
(<prefix>-0000i-of-0000n.gguf). Test helper only: the metadata bytes are copied verbatim.
"""

from __future__ import annotations

import struct
from pathlib import Path

from chatapp.core.catalog.gguf import _U32, _Reader, read_gguf

_U16_T, _I32_T = 2, 5


def _kv_u16(key: str, v: int) -> bytes:
    k = key.encode()
    return struct.pack("<Q", len(k)) + k + struct.pack("<IH", _U16_T, v)


def _kv_i32(key: str, v: int) -> bytes:
    k = key.encode()
    return struct.pack("<Q", len(k)) + k + struct.pack("<Ii", _I32_T, v)


def split_gguf(src: Path, out_dir: Path, prefix: str, n_shards: int) -> list[Path]:
    info = read_gguf(src)
    align = int(info.get("general.alignment", 32) or 32)
    with open(src, "rb") as f:
        size = src.stat().st_size
        r = _Reader(f, size)
        f.seek(24)  # magic, version, n_tensors, n_kv
        for _ in range(len(info.metadata)):
            key = r.string()
            r.value(r.scalar(_U32), key, info, False)
        kv_end = f.tell()
        f.seek(24)
        original_kv = f.read(kv_end - 24)
        tensors = info.tensors
        per = -(-len(tensors) // n_shards)
        paths = []
        for i in range(n_shards):
            part = tensors[i * per : (i + 1) * per]
            split_kv = (
                _kv_u16("split.no", i)
                + _kv_u16("split.count", n_shards)
                + _kv_i32("split.tensors.count", len(tensors))
            )
            kv = (original_kv if i == 0 else b"") + split_kv
            n_kv = (len(info.metadata) if i == 0 else 0) + 3
            table = b""
            offset = 0
            layout = []
            for t in part:
                name = t.name.encode()
                table += struct.pack("<Q", len(name)) + name + struct.pack("<I", len(t.shape))
                table += b"".join(struct.pack("<Q", d) for d in t.shape)
                table += struct.pack("<IQ", t.type_id, offset)
                layout.append((t, offset))
                assert t.n_bytes is not None
                offset += t.n_bytes + (-t.n_bytes % align)
            head = b"GGUF" + struct.pack("<IQQ", 3, len(part), n_kv) + kv + table
            head += b"\0" * (-len(head) % align)
            path = out_dir / f"{prefix}-{i + 1:05d}-of-{n_shards:05d}.gguf"
            with open(path, "wb") as out:
                out.write(head)
                for t, off in layout:
                    assert t.n_bytes is not None
                    out.seek(len(head) + off)
                    f.seek(info.data_offset + t.offset)
                    out.write(f.read(t.n_bytes))
                out.truncate(len(head) + offset)
            paths.append(path)
    return paths
