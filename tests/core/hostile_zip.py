"""Zip bombs for the import tests, written directly (deflating 1.5 GB would take a while):
one deflate chunk of a megabyte of spaces, flushed so it stands alone, repeated."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

_MB = 1 << 20


def bomb(path: Path, name: str, megabytes: int, *, declared: int | None = None) -> Path:
    """A zip whose member really expands to `megabytes` MB of spaces. declared: the
    uncompressed size its headers claim (default: the truth)."""
    block = b" " * _MB
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = c.compress(block) + c.flush(zlib.Z_FULL_FLUSH)
    data = chunk * megabytes + b"\x03\x00"  # a final, empty fixed-Huffman block
    crc = 0
    for _ in range(megabytes):
        crc = zlib.crc32(block, crc)
    size = megabytes * _MB if declared is None else declared
    n = name.encode()
    local = struct.pack(
        "<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0, 8, 0, 0x21, crc, len(data), size, len(n), 0
    )
    central = struct.pack(
        "<4sHHHHHHIIIHHHHHII",
        b"PK\x01\x02", 20, 20, 0, 8, 0, 0x21, crc, len(data), size, len(n), 0, 0, 0, 0, 0, 0,
    )  # fmt: skip
    body = local + n + data
    end = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, 1, 1, len(central) + len(n), len(body), 0)
    path.write_bytes(body + central + n + end)
    return path
