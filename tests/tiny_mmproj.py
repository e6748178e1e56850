"""A tiny vision projector GGUF for the tests: a one-block CLIP ViT and a llava "mlp"
projector whose output matches SmolLM2-135M's embedding size (576).

No small vision model is among the test models, so the tests build this one with the
`gguf` package into the model cache (outside the repo, never committed). The weights are
deterministic noise: the answers about an image mean nothing, the plumbing is real
(llama.cpp's libmtmd loads it, encodes an image into N_POSITIONS embeddings, and the text
model decodes them).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

IMAGE_SIZE = 56
PATCH_SIZE = 14
N_POSITIONS = (IMAGE_SIZE // PATCH_SIZE) ** 2  # 16 patches, no class embedding
N_EMBD_TEXT = 576  # SmolLM2-135M
N_EMBD_V = 32
N_FF_V = 64
N_HEAD_V = 4
N_LAYER_V = 2  # llava runs n_layer - 1 blocks (the second-to-last layer's features)
FILE_NAME = "mmproj-tiny-smollm2-f32.gguf"


def build(
    path: Path,
    *,
    image_size: int = IMAGE_SIZE,
    n_embd_v: int = N_EMBD_V,
    n_ff_v: int = N_FF_V,
    n_head_v: int = N_HEAD_V,
    n_layer_v: int = N_LAYER_V,
) -> Path:
    """Write the projector to `path` atomically; returns the path. The defaults make the
    tests' tiny one; bench/vision.py asks for a bigger encoder (a realistic encode time)."""
    import gguf

    n_positions = (image_size // PATCH_SIZE) ** 2

    rng = np.random.default_rng(21)

    def w(*shape: int, scale: float = 0.02) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    def ones(n: int) -> np.ndarray:
        return np.ones(n, dtype=np.float32)

    def zeros(n: int) -> np.ndarray:
        return np.zeros(n, dtype=np.float32)

    tmp = path.with_suffix(".part")
    writer = gguf.GGUFWriter(str(tmp), "clip")
    writer.add_name("chatapp tiny test projector")
    writer.add_file_type(0)  # all F32
    writer.add_clip_projector_type("mlp")
    writer.add_clip_has_vision_encoder(True)
    writer.add_bool("clip.use_gelu", True)
    writer.add_uint32("clip.vision.image_size", image_size)
    writer.add_uint32("clip.vision.patch_size", PATCH_SIZE)
    writer.add_uint32("clip.vision.embedding_length", n_embd_v)
    writer.add_uint32("clip.vision.feed_forward_length", n_ff_v)
    writer.add_uint32("clip.vision.projection_dim", N_EMBD_TEXT)
    writer.add_uint32("clip.vision.block_count", n_layer_v)
    writer.add_uint32("clip.vision.attention.head_count", n_head_v)
    writer.add_float32("clip.vision.attention.layer_norm_epsilon", 1e-5)
    writer.add_array("clip.vision.image_mean", [0.5, 0.5, 0.5])
    writer.add_array("clip.vision.image_std", [0.5, 0.5, 0.5])

    # numpy shapes are ggml's ne reversed
    writer.add_tensor("v.patch_embd.weight", w(n_embd_v, 3, PATCH_SIZE, PATCH_SIZE))
    writer.add_tensor("v.patch_embd.bias", zeros(n_embd_v))
    writer.add_tensor("v.position_embd.weight", w(n_positions, n_embd_v))
    writer.add_tensor("v.pre_ln.weight", ones(n_embd_v))
    writer.add_tensor("v.pre_ln.bias", zeros(n_embd_v))
    for i in range(n_layer_v):
        p = f"v.blk.{i}"
        for name in ("attn_q", "attn_k", "attn_v", "attn_out"):
            writer.add_tensor(f"{p}.{name}.weight", w(n_embd_v, n_embd_v))
            writer.add_tensor(f"{p}.{name}.bias", zeros(n_embd_v))
        for name in ("ln1", "ln2"):
            writer.add_tensor(f"{p}.{name}.weight", ones(n_embd_v))
            writer.add_tensor(f"{p}.{name}.bias", zeros(n_embd_v))
        writer.add_tensor(f"{p}.ffn_up.weight", w(n_ff_v, n_embd_v))
        writer.add_tensor(f"{p}.ffn_up.bias", zeros(n_ff_v))
        writer.add_tensor(f"{p}.ffn_down.weight", w(n_embd_v, n_ff_v))
        writer.add_tensor(f"{p}.ffn_down.bias", zeros(n_embd_v))
    writer.add_tensor("mm.0.weight", w(N_EMBD_TEXT, n_embd_v, scale=0.2))
    writer.add_tensor("mm.0.bias", zeros(N_EMBD_TEXT))
    writer.add_tensor("mm.2.weight", w(N_EMBD_TEXT, N_EMBD_TEXT, scale=0.05))
    writer.add_tensor("mm.2.bias", zeros(N_EMBD_TEXT))

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    os.replace(tmp, path)
    return path
