"""A real DOCX with a zip bomb inside that lies about its size: word/document.xml
declares only its XML's size, but its deflate stream goes on to unpack `megabytes` MB of
spaces. Written directly (one deflate block of a megabyte, flushed so it stands alone,
repeated), so making a 300 MB bomb takes a moment, not a minute."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from pathlib import Path


def lying_docx(path: Path, megabytes: int, *, crc_of: str = "all") -> Path:
    """crc_of: "all" (the CRC of everything the stream unpacks to: zipfile finds the
    mismatch, but only after unpacking it all in memory) or "declared" (the CRC of the
    declared part: zipfile would return the decoy XML and never notice)."""
    import docx

    d = docx.Document()
    d.add_paragraph("The decoy paragraph.")
    buf = io.BytesIO()
    d.save(buf)
    src = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
    body, central = bytearray(), bytearray()
    block = b" " * (1 << 20)
    for info in src.infolist():
        raw = src.read(info.filename)
        c = zlib.compressobj(9, zlib.DEFLATED, -15)
        crc = zlib.crc32(raw)
        if info.filename == "word/document.xml":
            data = c.compress(raw) + c.flush(zlib.Z_FULL_FLUSH)
            spaces = zlib.compressobj(9, zlib.DEFLATED, -15)
            data += (spaces.compress(block) + spaces.flush(zlib.Z_FULL_FLUSH)) * megabytes
            data += b"\x03\x00"  # a final, empty fixed-Huffman block
            if crc_of == "all":
                for _ in range(megabytes):
                    crc = zlib.crc32(block, crc)
        else:
            data = c.compress(raw) + c.flush()
        name = info.filename.encode()
        offset = len(body)
        body += struct.pack(
            "<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0, 8, 0, 0x21, crc, len(data), len(raw),
            len(name), 0,
        ) + name + data  # fmt: skip
        central += struct.pack(
            "<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 20, 20, 0, 8, 0, 0x21, crc, len(data),
            len(raw), len(name), 0, 0, 0, 0, 0, offset,
        ) + name  # fmt: skip
    n = len(src.infolist())
    end = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, n, n, len(central), len(body), 0)
    path.write_bytes(bytes(body + central + end))
    return path
