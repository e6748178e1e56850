"""Read a GGUF file's header and metadata without loading its weights.

Used to check a file before llama.cpp sees it (llama.cpp may abort the whole process on
some malformed files) and to show model details. Large arrays (a 262k-token vocabulary)
are skipped, not decoded, unless asked for, so reading stays fast.

Format: https://github.com/ggml-org/ggml/blob/master/docs/gguf.md
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from chatapp.core.errors import BadModelFile

MAGIC = b"GGUF"
# value types
_U8, _I8, _U16, _I16, _U32, _I32, _F32, _BOOL, _STR, _ARR, _U64, _I64, _F64 = range(13)
_SCALAR = {
    _U8: "<B",
    _I8: "<b",
    _U16: "<H",
    _I16: "<h",
    _U32: "<I",
    _I32: "<i",
    _F32: "<f",
    _BOOL: "<?",
    _U64: "<Q",
    _I64: "<q",
    _F64: "<d",
}
_SCALAR_SIZE = {t: struct.calcsize(f) for t, f in _SCALAR.items()}

# ggml tensor types: (elements per block, bytes per block)
GGML_TYPES: dict[int, tuple[str, int, int]] = {
    0: ("F32", 1, 4),
    1: ("F16", 1, 2),
    2: ("Q4_0", 32, 18),
    3: ("Q4_1", 32, 20),
    6: ("Q5_0", 32, 22),
    7: ("Q5_1", 32, 24),
    8: ("Q8_0", 32, 34),
    9: ("Q8_1", 32, 36),
    10: ("Q2_K", 256, 84),
    11: ("Q3_K", 256, 110),
    12: ("Q4_K", 256, 144),
    13: ("Q5_K", 256, 176),
    14: ("Q6_K", 256, 210),
    15: ("Q8_K", 256, 292),
    16: ("IQ2_XXS", 256, 66),
    17: ("IQ2_XS", 256, 74),
    18: ("IQ3_XXS", 256, 98),
    19: ("IQ1_S", 256, 50),
    20: ("IQ4_NL", 32, 18),
    21: ("IQ3_S", 256, 110),
    22: ("IQ2_S", 256, 82),
    23: ("IQ4_XS", 256, 136),
    24: ("I8", 1, 1),
    25: ("I16", 1, 2),
    26: ("I32", 1, 4),
    27: ("I64", 1, 8),
    28: ("F64", 1, 8),
    29: ("IQ1_M", 256, 56),
    30: ("BF16", 1, 2),
    34: ("TQ1_0", 256, 54),
    35: ("TQ2_0", 256, 66),
    39: ("MXFP4", 32, 17),
}

# llama_ftype values written as general.file_type
FILE_TYPES = {
    0: "F32",
    1: "F16",
    2: "Q4_0",
    3: "Q4_1",
    7: "Q8_0",
    8: "Q5_0",
    9: "Q5_1",
    10: "Q2_K",
    11: "Q3_K_S",
    12: "Q3_K_M",
    13: "Q3_K_L",
    14: "Q4_K_S",
    15: "Q4_K_M",
    16: "Q5_K_S",
    17: "Q5_K_M",
    18: "Q6_K",
    19: "IQ2_XXS",
    20: "IQ2_XS",
    21: "Q2_K_S",
    22: "IQ3_XS",
    23: "IQ3_XXS",
    24: "IQ1_S",
    25: "IQ4_NL",
    26: "IQ3_S",
    27: "IQ3_M",
    28: "IQ2_S",
    29: "IQ2_M",
    30: "IQ4_XS",
    31: "IQ1_M",
    32: "BF16",
    36: "TQ1_0",
    37: "TQ2_0",
    38: "MXFP4_MOE",
}

_MAX_STRING = 64 * 1024 * 1024  # a chat template is kilobytes; refuse absurd lengths
_MAX_COUNT = 1 << 32


@dataclass
class TensorInfo:
    name: str
    shape: tuple[int, ...]
    type_id: int
    offset: int

    @property
    def n_elements(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def n_bytes(self) -> int | None:
        t = GGML_TYPES.get(self.type_id)
        if t is None:
            return None
        _, block, size = t
        return self.n_elements // block * size


@dataclass
class GGUFInfo:
    path: Path
    version: int
    file_size: int
    metadata: dict[str, Any]
    tensors: list[TensorInfo] = field(default_factory=list)
    data_offset: int = 0
    array_lengths: dict[str, int] = field(default_factory=dict)  # skipped arrays: key -> length

    def get(self, key: str, default: Any = None) -> Any:
        return self.metadata.get(key, default)

    @property
    def architecture(self) -> str:
        return str(self.get("general.architecture", "unknown"))

    @property
    def name(self) -> str:
        return str(self.get("general.name") or self.path.stem)

    @property
    def context_length(self) -> int | None:
        v = self.get(f"{self.architecture}.context_length")
        return int(v) if v is not None else None

    @property
    def chat_template(self) -> str | None:
        v = self.get("tokenizer.chat_template")
        return str(v) if v else None

    @property
    def chat_templates(self) -> dict[str, str]:
        """Named template variants (tokenizer.chat_template.<name>), e.g. tool_use."""
        prefix = "tokenizer.chat_template."
        return {k[len(prefix) :]: str(v) for k, v in self.metadata.items() if k.startswith(prefix)}

    @property
    def quantization(self) -> str:
        ft = self.get("general.file_type")
        if ft is not None and int(ft) in FILE_TYPES:
            return FILE_TYPES[int(ft)]
        counts: dict[str, int] = {}
        for t in self.tensors:
            name = GGML_TYPES.get(t.type_id, (f"type{t.type_id}", 0, 0))[0]
            counts[name] = counts.get(name, 0) + t.n_elements
        return max(counts, key=lambda k: counts[k]) if counts else "unknown"

    @property
    def parameter_count(self) -> int:
        return sum(t.n_elements for t in self.tensors)

    @property
    def vocab_size(self) -> int | None:
        return self.array_lengths.get("tokenizer.ggml.tokens") or (
            len(self.metadata["tokenizer.ggml.tokens"])
            if isinstance(self.metadata.get("tokenizer.ggml.tokens"), list)
            else None
        )

    @property
    def expected_size(self) -> int | None:
        """Bytes the file must have to hold every tensor, if all types are known."""
        end = self.data_offset
        for t in self.tensors:
            n = t.n_bytes
            if n is None:
                return None
            end = max(end, self.data_offset + t.offset + n)
        return end

    @property
    def split_count(self) -> int:
        return int(self.get("split.count", 1) or 1)


class _Reader:
    def __init__(self, f: BinaryIO, size: int) -> None:
        self.f = f
        self.size = size

    def read(self, n: int) -> bytes:
        b = self.f.read(n)
        if len(b) != n:
            raise BadModelFile("The file is truncated: its header ends early.")
        return b

    def scalar(self, t: int) -> Any:
        return struct.unpack(_SCALAR[t], self.read(_SCALAR_SIZE[t]))[0]

    def string(self) -> str:
        n = self.scalar(_U64)
        if n > _MAX_STRING or self.f.tell() + n > self.size:
            raise BadModelFile("The file's header is damaged (a string runs past the end).")
        return self.read(n).decode("utf-8", errors="replace")

    def skip_strings(self, count: int) -> None:
        # Read in big chunks and walk the lengths: fast even for a 262k-token vocabulary.
        pos = self.f.tell()
        buf = b""
        base = pos
        i = 0
        while i < count:
            rel = pos - base
            if rel + 8 > len(buf):
                self.f.seek(pos)
                buf = self.f.read(1 << 20)
                base = pos
                rel = 0
                if len(buf) < 8:
                    raise BadModelFile("The file is truncated inside its vocabulary.")
            (n,) = struct.unpack_from("<Q", buf, rel)
            if n > _MAX_STRING:
                raise BadModelFile("The file's header is damaged (bad token string).")
            pos += 8 + n
            i += 1
        if pos > self.size:
            raise BadModelFile("The file is truncated inside its vocabulary.")
        self.f.seek(pos)

    def value(self, t: int, key: str, info: GGUFInfo, keep_arrays: bool) -> Any:
        if t in _SCALAR:
            return self.scalar(t)
        if t == _STR:
            return self.string()
        if t == _ARR:
            et = self.scalar(_U32)
            count = self.scalar(_U64)
            if count > _MAX_COUNT:
                raise BadModelFile("The file's header is damaged (an array is impossibly long).")
            if not keep_arrays and count > 64:
                info.array_lengths[key] = count
                if et == _STR:
                    self.skip_strings(count)
                elif et in _SCALAR:
                    skip = count * _SCALAR_SIZE[et]
                    if self.f.tell() + skip > self.size:
                        raise BadModelFile("The file is truncated inside its metadata.")
                    self.f.seek(skip, os.SEEK_CUR)
                else:
                    raise BadModelFile("The file's header is damaged (nested arrays).")
                return None
            if et in _SCALAR:
                fmt = "<" + _SCALAR[et][1] * count
                return list(struct.unpack(fmt, self.read(_SCALAR_SIZE[et] * count)))
            if et == _STR:
                return [self.string() for _ in range(count)]
            raise BadModelFile("The file's header is damaged (nested arrays).")
        raise BadModelFile(f"The file's header is damaged (unknown value type {t}).")


def read_gguf(path: str | os.PathLike[str], *, keep_arrays: bool = False) -> GGUFInfo:
    """Parse the header; raise BadModelFile with a clear message if the file is not usable."""
    p = Path(path)
    if not p.exists():
        raise BadModelFile(f"No such file: {p}")
    if p.is_dir():
        raise BadModelFile(f"{p} is a folder, not a model file.")
    size = p.stat().st_size
    try:
        with open(p, "rb") as f:
            if f.read(4) != MAGIC:
                raise BadModelFile(
                    f"{p.name} is not a GGUF model file.",
                    hint="chatapp runs quantized .gguf files (llama.cpp's format).",
                )
            r = _Reader(f, size)
            version = r.scalar(_U32)
            if version not in (2, 3):
                raise BadModelFile(f"{p.name} uses GGUF version {version}, which is not supported.")
            n_tensors = r.scalar(_U64)
            n_kv = r.scalar(_U64)
            if n_tensors > 1_000_000 or n_kv > 1_000_000:
                raise BadModelFile(f"{p.name} has a damaged header.")
            info = GGUFInfo(path=p, version=version, file_size=size, metadata={})
            for _ in range(n_kv):
                key = r.string()
                t = r.scalar(_U32)
                info.metadata[key] = r.value(t, key, info, keep_arrays)
            for _ in range(n_tensors):
                name = r.string()
                n_dims = r.scalar(_U32)
                if n_dims > 8:
                    raise BadModelFile(f"{p.name} has a damaged tensor table.")
                shape = tuple(r.scalar(_U64) for _ in range(n_dims))
                info.tensors.append(TensorInfo(name, shape, r.scalar(_U32), r.scalar(_U64)))
            align = int(info.metadata.get("general.alignment", 32) or 32)
            pos = f.tell()
            info.data_offset = pos + (-pos % align)
    except OSError as e:
        raise BadModelFile(f"Cannot read {p}: {e.strerror or e}") from e
    return info


def check_model_file(path: str | os.PathLike[str]) -> GGUFInfo:
    """read_gguf plus the checks that matter before handing the file to llama.cpp."""
    info = read_gguf(path)
    if not info.tensors:
        raise BadModelFile(f"{info.path.name} holds no tensors: it is not a usable model.")
    expected = info.expected_size
    if info.split_count <= 1 and expected is not None and info.file_size < expected:
        have = info.file_size / 1e6
        need = expected / 1e6
        raise BadModelFile(
            f"{info.path.name} is truncated: {have:.1f} MB of {need:.1f} MB.",
            hint="The download probably stopped early; download it again.",
        )
    return info
