"""Read a GGUF file's header and metadata without loading its weights.

Used to check a file before llama.cpp sees it (llama.cpp may abort the whole process on
some malformed files) and to show model details. Large arrays (a 262k-token vocabulary)
are skipped, not decoded, unless asked for, so reading stays fast.

Format: https://github.com/ggml-org/ggml/blob/master/docs/gguf.md
"""

from __future__ import annotations

import math
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

MAX_LAYERS = 512  # llama.cpp's LLAMA_MAX_LAYERS: it asserts (aborts) past it
_MAX_STRING = 64 * 1024 * 1024  # a chat template is kilobytes; refuse absurd lengths
# Arrays of strings are walked one length at a time; decoded arrays are held in memory.
# The largest real vocabularies hold ~262k tokens, so these caps are 16 times that.
_MAX_STRING_ARRAY = 1 << 22
_MAX_DECODED_ARRAY = 1 << 22
_MAX_TENSORS = 1_000_000
_MAX_KV = 1_000_000
_MAX_DIMS = 8
_TYPE_NAMES = {
    _U8: "u8",
    _I8: "i8",
    _U16: "u16",
    _I16: "i16",
    _U32: "u32",
    _I32: "i32",
    _F32: "f32",
    _BOOL: "bool",
    _STR: "string",
    _ARR: "array",
    _U64: "u64",
    _I64: "i64",
    _F64: "f64",
}


def _damaged(key: str, problem: str) -> BadModelFile:
    return BadModelFile(f"The file's header is damaged: {_key_text(key)} {problem}.")


def _key_text(key: str) -> str:
    shown = key if len(key) <= 80 else key[:77] + "..."
    return repr(shown)


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int):
        return "a whole number"
    if isinstance(value, float):
        return f"the decimal {value:g}"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    return "nothing" if value is None else type(value).__name__


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


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
    """A GGUF header. Every metadata value chatapp reads goes through the typed getters
    (int_value, str_value, ...), which raise BadModelFile naming the key for a value of
    the wrong type; read_gguf reads each known key once, so a file it returns is sound."""

    path: Path
    version: int
    file_size: int
    metadata: dict[str, Any]
    tensors: list[TensorInfo] = field(default_factory=list)
    data_offset: int = 0
    array_lengths: dict[str, int] = field(default_factory=dict)  # skipped arrays: key -> length
    array_types: dict[str, int] = field(default_factory=dict)  # every array: key -> element type

    def get(self, key: str, default: Any = None) -> Any:
        return self.metadata.get(key, default)

    # -- typed getters --------------------------------------------------------------

    def _what(self, key: str) -> str:
        return "a list" if key in self.array_types else _kind(self.metadata.get(key))

    def int_value(self, key: str, minimum: int = 0) -> int | None:
        """An integer value (any integer type), or None if the key is absent."""
        if key not in self.metadata:
            return None
        v = self.metadata[key]
        if key in self.array_types or not _is_int(v):
            raise _damaged(key, f"should be a whole number, not {self._what(key)}")
        n = int(v)
        if n < minimum:
            raise _damaged(key, f"is {n}, below {minimum}")
        return n

    def str_value(self, key: str) -> str | None:
        if key not in self.metadata:
            return None
        v = self.metadata[key]
        if key in self.array_types or not isinstance(v, str):
            raise _damaged(key, f"should be text, not {self._what(key)}")
        return v

    def bool_value(self, key: str) -> bool | None:
        if key not in self.metadata:
            return None
        v = self.metadata[key]
        if key in self.array_types or not isinstance(v, bool):
            raise _damaged(key, f"should be true/false, not {self._what(key)}")
        return v

    def int_or_ints(self, key: str) -> int | list[int] | None:
        """A number, or one per layer (some architectures vary head counts by layer)."""
        v = self.metadata.get(key)
        if key in self.array_types:
            if self.array_types[key] not in _INT_TYPES:
                raise _damaged(key, "should be whole numbers")
            return list(v) if isinstance(v, list) else None  # None: a long, skipped list
        return self.int_value(key)

    def check_array(self, key: str, element_types: frozenset[int], what: str) -> None:
        if key in self.metadata:
            if key not in self.array_types:
                raise _damaged(key, f"should be a list of {what}, not {_kind(self.get(key))}")
            if self.array_types[key] not in element_types:
                name = _TYPE_NAMES.get(self.array_types[key], "unknown")
                raise _damaged(key, f"should be a list of {what}, not of {name}")

    # -- what chatapp reads ---------------------------------------------------------

    @property
    def architecture(self) -> str:
        return self.str_value("general.architecture") or "unknown"

    @property
    def name(self) -> str:
        return self.str_value("general.name") or self.path.stem

    @property
    def context_length(self) -> int | None:
        return self.int_value(f"{self.architecture}.context_length") or None

    @property
    def chat_template(self) -> str | None:
        return self.str_value("tokenizer.chat_template") or None

    @property
    def chat_templates(self) -> dict[str, str]:
        """Named template variants (tokenizer.chat_template.<name>), e.g. tool_use."""
        prefix = "tokenizer.chat_template."
        return {
            k[len(prefix) :]: self.str_value(k) or "" for k in self.metadata if k.startswith(prefix)
        }

    @property
    def alignment(self) -> int:
        align = self.int_value("general.alignment", minimum=1)
        if align is None:
            return 32
        if align & (align - 1) or align > 1 << 30:
            raise _damaged("general.alignment", f"is {align}, not a power of two")
        return align

    @property
    def file_type(self) -> int | None:
        return self.int_value("general.file_type")

    @property
    def quantization(self) -> str:
        ft = self.file_type
        if ft is not None and ft in FILE_TYPES:
            return FILE_TYPES[ft]
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
        return self.int_value("split.count") or 1

    def validate(self) -> None:
        """Read every key chatapp uses once, so a wrong type fails here, naming the key."""
        arch = self.architecture
        for key in ("general.name", "general.basename", "general.finetune", "general.license"):
            self.str_value(key)
        for key in self.metadata:
            if key.startswith("tokenizer.chat_template") and key not in self.array_types:
                self.str_value(key)
        self.alignment  # noqa: B018 - checked for its error
        self.file_type  # noqa: B018
        self.split_count  # noqa: B018
        for key in ("split.no", "split.tensors.count"):
            self.int_value(key)
        for name in ("context_length", "block_count", "embedding_length"):
            self.int_value(f"{arch}.{name}")
        for name in ("key_length", "value_length"):
            self.int_value(f"{arch}.attention.{name}")
        for name in ("head_count", "head_count_kv", "feed_forward_length"):
            v = self.int_or_ints(f"{arch}.{'' if name.startswith('feed') else 'attention.'}{name}")
            if isinstance(v, list) and any(x < 0 for x in v):
                raise _damaged(f"{arch}.attention.{name}", "holds a negative number")
        for name in ("bos", "eos", "eot", "eom", "unknown", "padding", "separator"):
            self.int_value(f"tokenizer.ggml.{name}_token_id")
        for name in ("add_bos_token", "add_eos_token"):
            self.bool_value(f"tokenizer.ggml.{name}")
        self.check_array("tokenizer.ggml.tokens", frozenset({_STR}), "texts")
        self.check_array("tokenizer.ggml.merges", frozenset({_STR}), "texts")
        self.check_array("tokenizer.ggml.token_type", _INT_TYPES, "whole numbers")
        self.check_array("tokenizer.ggml.scores", frozenset({_F32, _F64}), "numbers")


_INT_TYPES = frozenset({_U8, _I8, _U16, _I16, _U32, _I32, _U64, _I64})


class _Reader:
    def __init__(self, f: BinaryIO, size: int) -> None:
        self.f = f
        self.size = size

    def left(self) -> int:
        return self.size - self.f.tell()

    def read(self, n: int) -> bytes:
        if n > self.left():
            raise BadModelFile("The file is truncated: its header ends early.")
        b = self.f.read(n)
        if len(b) != n:
            raise BadModelFile("The file is truncated: its header ends early.")
        return b

    def scalar(self, t: int) -> Any:
        return struct.unpack(_SCALAR[t], self.read(_SCALAR_SIZE[t]))[0]

    def string(self, key: str = "") -> str:
        n = self.scalar(_U64)
        if n > _MAX_STRING or n > self.left():
            where = f"{_key_text(key)} holds a string that" if key else "a string"
            raise BadModelFile(f"The file's header is damaged: {where} runs past the end.")
        return self.read(n).decode("utf-8", errors="replace")

    def skip_strings(self, count: int, key: str) -> None:
        # Read in big chunks and walk the lengths: fast even for a 262k-token vocabulary.
        # Every string takes at least its 8-byte length, and the count is capped, so the
        # walk is bounded by the file's real size (checked before the first step).
        unpack = struct.Struct("<Q").unpack_from
        pos = self.f.tell()
        end = self.size
        buf = b""
        base = pos
        for _ in range(count):
            rel = pos - base
            if rel + 8 > len(buf):
                if pos + 8 > end:
                    raise BadModelFile("The file is truncated inside its vocabulary.")
                self.f.seek(pos)
                buf = self.f.read(1 << 20)
                base = pos
                rel = 0
                if len(buf) < 8:
                    raise BadModelFile("The file is truncated inside its vocabulary.")
            (n,) = unpack(buf, rel)
            if n > _MAX_STRING:
                raise _damaged(key, "holds a string of impossible length")
            pos += 8 + n
        if pos > end:
            raise BadModelFile("The file is truncated inside its vocabulary.")
        self.f.seek(pos)

    def value(self, t: int, key: str, info: GGUFInfo, keep_arrays: bool) -> Any:
        if t in _SCALAR:
            v = self.scalar(t)
            if isinstance(v, float) and math.isnan(v):
                raise _damaged(key, "is NaN (not a number)")
            return v
        if t == _STR:
            return self.string(key)
        if t == _ARR:
            et = self.scalar(_U32)
            count = self.scalar(_U64)
            info.array_types[key] = et
            if et == _ARR:
                raise _damaged(key, "is an array of arrays (not supported)")
            if et not in _SCALAR and et != _STR:
                raise _damaged(key, f"is an array of unknown value type {et}")
            smallest = 8 if et == _STR else _SCALAR_SIZE[et]
            if count * smallest > self.left():
                raise _damaged(key, f"declares {count:,} items, more than the file can hold")
            if et == _STR and count > _MAX_STRING_ARRAY:
                raise _damaged(key, f"is an array of {count:,} strings (impossibly many)")
            if not keep_arrays and count > 64:
                info.array_lengths[key] = count
                if et == _STR:
                    self.skip_strings(count, key)
                else:
                    self.f.seek(count * _SCALAR_SIZE[et], os.SEEK_CUR)
                return None
            if count > _MAX_DECODED_ARRAY:
                raise _damaged(key, f"is an array of {count:,} items (impossibly many)")
            if et == _STR:
                return [self.string(key) for _ in range(count)]
            return list(struct.unpack(f"<{count}{_SCALAR[et][1]}", self.read(smallest * count)))
        raise _damaged(key, f"has an unknown value type {t}")


def read_gguf(path: str | os.PathLike[str], *, keep_arrays: bool = False) -> GGUFInfo:
    """Parse the header; raise BadModelFile with a clear message if the file is not usable.

    Time and memory are bounded by the file's real size: a declared count is checked
    against the bytes left before anything is read or allocated for it."""
    p = Path(path)
    if not p.exists():
        raise BadModelFile(f"No such file: {p}")
    if p.is_dir():
        raise BadModelFile(f"{p} is a folder, not a model file.")
    if not p.is_file():
        raise BadModelFile(f"{p} is not a regular file (a device or a pipe?), not a model file.")
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
            if n_tensors > _MAX_TENSORS or n_kv > _MAX_KV:
                raise BadModelFile(f"{p.name} has a damaged header.")
            info = GGUFInfo(path=p, version=version, file_size=size, metadata={})
            for _ in range(n_kv):
                key = r.string()
                if key in info.metadata:
                    raise _damaged(key, "appears twice")
                t = r.scalar(_U32)
                info.metadata[key] = r.value(t, key, info, keep_arrays)
            for _ in range(n_tensors):
                name = r.string()
                n_dims = r.scalar(_U32)
                if n_dims > _MAX_DIMS:
                    raise BadModelFile(f"{p.name} has a damaged tensor table.")
                shape = tuple(r.scalar(_U64) for _ in range(n_dims))
                info.tensors.append(TensorInfo(name, shape, r.scalar(_U32), r.scalar(_U64)))
            info.validate()
            pos = f.tell()
            info.data_offset = pos + (-pos % info.alignment)
    except OSError as e:
        raise BadModelFile(f"Cannot read {p}: {e.strerror or e}") from e
    except BadModelFile as e:
        if p.name not in e.message:
            e.message = f"{p.name}: {e.message}"
            e.args = (e.message,)
        raise
    return info


def check_model_file(path: str | os.PathLike[str]) -> GGUFInfo:
    """read_gguf plus the checks that matter before handing the file to llama.cpp."""
    info = read_gguf(path)
    layers_key = f"{info.architecture}.block_count"
    layers = info.int_value(layers_key)
    if layers is not None and not 1 <= layers <= MAX_LAYERS:  # llama.cpp aborts the process
        raise BadModelFile(
            f"{info.path.name}: The file's header is damaged: {layers_key!r} is {layers}; "
            f"a model has 1 to {MAX_LAYERS} layers."
        )
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
