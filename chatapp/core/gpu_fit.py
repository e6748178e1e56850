"""GPU offload: how many of a model's layers fit the GPU's free memory, and what was done.

The setting `n_gpu_layers` (app, per model, `--gpu-layers`) is one of
- "auto" (AUTO, the default): as many layers as fit the GPU's free memory (fit_layers);
  0 on a llama.cpp build without GPU offload, so a CPU build runs exactly as before;
- -1: every layer; 0: none (CPU only); N: that many layers.

llama.cpp counts a model's layers as its n_layer repeating blocks (blk.N.* tensors) plus
the output layer: "offloaded 31/31 layers to GPU" for SmolLM2's 30 blocks. n_gpu_layers=k
puts the LAST k blocks on the GPU, and the output layer (output_norm, output.weight or,
where the model ties it to the input embedding, a copy of token_embd) only once
k > n_layer. The input embedding (token_embd) always stays in RAM. A block on the GPU
holds its weights and its KV cache (llama-cpp-python offloads the KV cache with the
layer, offload_kqv): n_ctx x (n_embd_k_gqa + n_embd_v_gqa) x the KV type's bytes.

Pure: the GGUF header comes from core.catalog.gguf, the free memory from the caller.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

from chatapp.core.catalog.gguf import GGUFInfo, read_gguf
from chatapp.core.errors import BadModelFile

AUTO = "auto"
GpuLayers = int | str  # AUTO, -1 (all) or a count (0: CPU only)

MIB = 1024 * 1024
GIB = 1024 * MIB

# The safety reserve, kept free when fitting: the GPU context llama.cpp opens while loading
# (CUDA's own context and cuBLAS workspace take a few hundred MiB that nvidia-smi's free
# figure, read before loading, still counts as free) and other programs' growth ...
RESERVE_FIXED = 512 * MIB
# ... plus the compute buffers of one batch, which scale with the load (compute_reserve):
# the logits of a batch (n_batch x n_vocab x f32) and, without flash attention, one layer's
# attention scores (n_batch x n_ctx x n_head x f32).
F32 = 4

# Where a model's sliding-window layers are (llama.cpp's set_swa_pattern(n): layer il is
# sliding unless il % n == n - 1). Only used when the cache is not kept whole (swa_full
# False); chatapp's engine keeps it whole, so every layer holds n_ctx cells there.
SWA_PATTERNS = {"gemma2": 2, "gemma3": 6, "cohere2": 4}

# why a load runs on the CPU (Offload.reason)
OFF = "off"  # the setting is 0
NO_GPU_BUILD = "no-gpu-build"  # llama.cpp was built without GPU offload
NO_FREE_FIGURE = "no-free-figure"  # auto, but no free GPU memory figure (no nvidia-smi)
NOTHING_FITS = "nothing-fits"  # auto: not one layer fits the free memory
UNREADABLE = "unreadable"  # auto: the file's layer sizes could not be read


def parse_gpu_layers(value: Any) -> GpuLayers:
    """A GPU-layers value from a flag, a field or a file: "auto" (any case), "all", or a
    whole number from -1 up. ValueError with a one-line reason otherwise."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text == AUTO:
            return AUTO
        if text == "all":
            return -1
        try:
            value = int(text)
        except ValueError:
            raise ValueError(
                f"GPU layers must be auto, all, -1 (all) or a number of layers, not {value!r}"
            ) from None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("GPU layers must be auto, -1 (all) or a whole number of layers")
    if value < -1:
        raise ValueError(f"GPU layers must be auto, -1 (all) or 0 and up, not {value}")
    return value


def wants_gpu(value: GpuLayers) -> bool:
    """Whether this setting would put anything on a GPU (auto may)."""
    return value == AUTO or value != 0


# -- the model's layers ------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    """What a model's layers hold, from its GGUF header."""

    n_layer: int
    block_bytes: tuple[int, ...]  # weights of blk.0 .. blk.{n_layer-1}
    output_bytes: int  # the output layer's weights (norm + output matrix or the tied copy)
    kv_per_token: tuple[int, ...]  # per block: n_embd_k_gqa + n_embd_v_gqa (values per cell)
    swa: tuple[bool, ...]  # per block: a sliding-window layer
    n_swa: int  # the window, in tokens (0: none)
    n_head: int  # the most attention heads of any block
    n_vocab: int

    @property
    def total(self) -> int:
        """Layers as llama.cpp counts them for n_gpu_layers: the blocks plus the output."""
        return self.n_layer + 1


_BLOCK = re.compile(r"blk\.(\d+)\.")


def _whole(info: GGUFInfo, key: str) -> int:
    n = info.int_value(key, minimum=1)
    if n is None:
        raise BadModelFile(f"{info.path.name}: the header has no {key!r}: its layers are unknown.")
    return n


def _per_block(info: GGUFInfo, key: str, n_layer: int, default: int) -> list[int]:
    v = info.int_or_ints(key) if key in info.metadata else default
    if isinstance(v, list):
        if len(v) != n_layer:
            raise BadModelFile(
                f"{info.path.name}: {key!r} has {len(v)} values for {n_layer} layers."
            )
        return [int(x) for x in v]
    if v is None:  # a long list that was skipped: assume the most for every layer
        raise BadModelFile(f"{info.path.name}: {key!r} could not be read.")
    return [int(v)] * n_layer


def layout_of(info: GGUFInfo) -> Layout:
    """The layer sizes of a model whose header was read (BadModelFile if they cannot be
    known: no block count, a block without weights, a tensor of an unknown type)."""
    name = info.path.name
    arch = info.architecture
    n_layer = _whole(info, f"{arch}.block_count")
    blocks = [0] * n_layer
    output = 0
    embd = None
    has_output = False
    n_vocab = info.vocab_size or 0
    for t in info.tensors:
        size = t.n_bytes
        if size is None:
            raise BadModelFile(
                f"{name}: the tensor {t.name!r} has a type this version cannot size."
            )
        m = _BLOCK.match(t.name)
        if m:
            i = int(m.group(1))
            if i >= n_layer:
                raise BadModelFile(
                    f"{name}: the tensor {t.name!r} is past the {n_layer} layers the header names."
                )
            blocks[i] += size
        elif t.name == "token_embd.weight":
            embd = size
            n_vocab = n_vocab or (t.shape[-1] if t.shape else 0)
        else:
            has_output = has_output or t.name == "output.weight"
            output += size  # output_norm, output.weight, and the like
    if not all(blocks):
        raise BadModelFile(f"{name}: layer {blocks.index(0)} holds no weights.")
    if not has_output and embd is not None:
        output += embd  # tied: the output layer on the GPU holds a copy of the embedding
    heads = _per_block(info, f"{arch}.attention.head_count", n_layer, 0)
    if not max(heads):
        raise BadModelFile(f"{name}: the header has no attention head count.")
    kv_heads = (
        _per_block(info, f"{arch}.attention.head_count_kv", n_layer, 0)
        if f"{arch}.attention.head_count_kv" in info.metadata
        else heads
    )
    n_embd = info.int_value(f"{arch}.embedding_length", minimum=1) or 0
    k_len = info.int_value(f"{arch}.attention.key_length", minimum=1) or n_embd // max(heads)
    v_len = info.int_value(f"{arch}.attention.value_length", minimum=1) or k_len
    if not k_len:
        raise BadModelFile(f"{name}: the header has neither key_length nor embedding_length.")
    n_swa = info.int_value(f"{arch}.attention.sliding_window") or 0
    pattern = SWA_PATTERNS.get(arch, 0)
    swa = tuple(bool(n_swa and pattern and i % pattern < pattern - 1) for i in range(n_layer))
    return Layout(
        n_layer=n_layer,
        block_bytes=tuple(blocks),
        output_bytes=output,
        kv_per_token=tuple(h * (k_len + v_len) for h in kv_heads),
        swa=swa,
        n_swa=n_swa,
        n_head=max(heads),
        n_vocab=n_vocab,
    )


def read_layout(path: str | os.PathLike[str]) -> Layout:
    """layout_of the GGUF at `path` (BadModelFile with a clear message if unreadable)."""
    return layout_of(read_gguf(path))


# -- the fit -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Fit:
    layers: int  # n_gpu_layers to ask llama.cpp for (0 .. total)
    total: int
    need: int  # estimated GPU bytes of those layers (weights + KV cache)
    need_all: int  # the same for every layer
    reserve: int  # bytes kept free for the GPU context and compute buffers


def compute_reserve(layout: Layout, n_ctx: int, *, n_batch: int = 512, flash_attn: bool) -> int:
    """RESERVE_FIXED plus one batch's logits and (without flash attention) one layer's
    attention scores."""
    batch = min(n_batch, n_ctx)
    scores = 0 if flash_attn else batch * n_ctx * layout.n_head * F32
    return RESERVE_FIXED + batch * layout.n_vocab * F32 + scores


def layer_bytes(
    layout: Layout,
    n_ctx: int,
    *,
    kv_type_bytes: float = 2.0,
    n_batch: int = 512,
    swa_full: bool = True,
) -> list[int]:
    """GPU bytes of each layer in the order llama.cpp offloads them: the last block first,
    down to block 0, then the output layer. kv_type_bytes: 2 for f16 (llama.cpp's default),
    1.0625 for q8_0, 0.5625 for q4_0. swa_full False: a sliding-window layer keeps only
    its window (plus a batch, padded to 256 cells, as llama.cpp allocates it)."""
    window = min(n_ctx, -(-(layout.n_swa + n_batch) // 256) * 256)
    out = []
    for i in reversed(range(layout.n_layer)):
        cells = window if layout.swa[i] and not swa_full else n_ctx
        kv = int(cells * layout.kv_per_token[i] * kv_type_bytes)
        out.append(layout.block_bytes[i] + kv)
    out.append(layout.output_bytes)
    return out


def fit_layers(
    layout: Layout,
    n_ctx: int,
    free: int,
    *,
    kv_type_bytes: float = 2.0,
    n_batch: int = 512,
    flash_attn: bool = False,
    swa_full: bool = True,
) -> Fit:
    """The most layers that fit `free` GPU bytes less the reserve, in llama.cpp's order."""
    sizes = layer_bytes(
        layout, n_ctx, kv_type_bytes=kv_type_bytes, n_batch=n_batch, swa_full=swa_full
    )
    reserve = compute_reserve(layout, n_ctx, n_batch=n_batch, flash_attn=flash_attn)
    budget = free - reserve
    used = 0
    layers = 0
    for size in sizes:
        if used + size > budget:
            break
        used += size
        layers += 1
    return Fit(layers, layout.total, used, sum(sizes), reserve)


# -- what a load did ---------------------------------------------------------------------


@dataclass(frozen=True)
class Offload:
    """Where a loaded model runs: the setting, the layers llama.cpp was given, and why."""

    requested: GpuLayers  # the setting as resolved: AUTO, -1 or a count
    layers: int  # layers offloaded (0: CPU only); what the KV state key records
    total: int  # the model's layers as llama.cpp counts them (0: unknown)
    free: int | None = None  # the free GPU bytes an automatic fit used
    need: int = 0  # estimated GPU bytes of `layers` (automatic fit only)
    reason: str = ""  # why on the CPU: OFF, NO_GPU_BUILD, NO_FREE_FIGURE, NOTHING_FITS...

    @property
    def auto(self) -> bool:
        return self.requested == AUTO

    def describe(self) -> str:
        """One line: "GPU 24/31 layers (auto, 7.9 GiB free)", "CPU (...)"."""
        if self.layers < 0:  # every layer, of a count not known
            return "GPU all layers"
        if self.layers > 0:
            of = f"{self.layers}/{self.total}" if self.total else str(self.layers)
            free = f", {self.free / GIB:.1f} GiB free" if self.free is not None else ""
            return f"GPU {of} layers" + (f" (auto{free})" if self.auto else "")
        why = {
            NO_GPU_BUILD: "this llama.cpp build has no GPU support",
            NO_FREE_FIGURE: "auto: no free GPU memory figure",
            NOTHING_FITS: (
                f"auto: no layer fits {self.free / GIB:.1f} GiB free"
                if self.free is not None
                else "auto: no layer fits"
            ),
            UNREADABLE: "auto: the model's layer sizes could not be read",
        }.get(self.reason)
        return f"CPU ({why})" if why else "CPU"


def decide(
    requested: GpuLayers,
    *,
    supported: bool,
    total: int,
    free: int | None = None,
    fit: Fit | None = None,
    readable: bool = True,
) -> Offload:
    """The layers to load with: a number as given (-1: all, capped at total), 0 without a
    GPU build; auto: the fit to `free` (0 when the free memory is unknown)."""
    if not supported:
        return Offload(requested, 0, total, reason=NO_GPU_BUILD if wants_gpu(requested) else OFF)
    if requested != AUTO:
        n = int(requested)
        layers = n if not total else total if n < 0 else min(n, total)
        return Offload(requested, layers, total, reason="" if layers else OFF)
    if not readable:
        return Offload(AUTO, 0, total, free, reason=UNREADABLE)
    if free is None or fit is None:
        return Offload(AUTO, 0, total, reason=NO_FREE_FIGURE)
    return Offload(
        AUTO, fit.layers, total, free, fit.need, reason="" if fit.layers else NOTHING_FITS
    )
