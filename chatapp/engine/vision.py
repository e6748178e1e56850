"""Images into a llama.cpp context through libmtmd (llama.cpp's multimodal library).

A vision model is two files: the text model and its projector (`mmproj-*.gguf`: an image
encoder and the layers that map its output into the text model's embedding space).
VisionEncoder owns the mtmd context of one loaded model and does two things:

- image_tokens(): an image (already decoded, checked and downscaled by core.images,
  so llama.cpp never parses the file) becomes what it takes in the prompt: the text
  tokens the model's format puts around an image (Gemma 3's <start_of_image>, none for
  llava) and a run of PLACEHOLDER ids, one per context position the image takes
  (mtmd's own count). The run's id is derived from the image's sha256, so a prompt's
  token list stays a list of ints: the engine's prefix match sees "the same image at the
  same place" as equal and reuses the KV cache past it without encoding it again.
- eval_image(): encode the image and decode its embeddings into the context at a
  position (mtmd_helper_eval_chunk_single).

The preprocessed image (mtmd's chunk) is kept per sha256 for the model's lifetime (a few
recent ones), so a prompt built for Show prompt is the same prompt the send evaluates.
"""

from __future__ import annotations

import ctypes
import logging
import math
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import llama_cpp
import llama_cpp.mtmd_cpp as mtmd

from chatapp.core.catalog import projector_beside
from chatapp.core.catalog.gguf import check_model_file
from chatapp.core.errors import BadModelFile, ModelLoadError
from chatapp.core.images import DecodedImage, placeholder_id
from chatapp.engine import llama_log

log = logging.getLogger(__name__)

MARKER = mtmd.mtmd_default_marker().decode("utf-8")  # "<__media__>"
KEPT_IMAGES = 16  # preprocessed images kept per model
DEFAULT_MAX_SIDE = 896  # a projector that does not say its input size

_log_installed = False


def _install_log() -> None:
    """mtmd's own log (the projector loader is chatty) into ours, like llama.cpp's."""
    global _log_installed
    if _log_installed:
        return
    lib = mtmd._libmtmd
    for name in ("mtmd_log_set", "mtmd_helper_log_set"):
        fn = getattr(lib, name, None)
        if fn is not None:
            fn.argtypes = [llama_cpp.llama_log_callback, ctypes.c_void_p]
            fn.restype = None
            fn(llama_log._callback, None)
    _log_installed = True


@dataclass(frozen=True)
class ProjectorInfo:
    path: str
    projector_type: str
    image_size: int  # the encoder's input side in pixels (0: unknown)
    max_side: int  # images are downscaled so their longest side is at most this


def check_projector(path: str | Path) -> ProjectorInfo:
    """Read the projector's header before llama.cpp sees it: a GGUF of architecture
    "clip" with a vision encoder. Raises BadModelFile with one line otherwise."""
    info = check_model_file(path)
    name = Path(path).name
    if info.architecture != "clip":
        raise BadModelFile(
            f"{name} is not a vision projector (its architecture is "
            f"'{info.architecture or 'unknown'}', a projector's is 'clip')."
        )
    meta = info.metadata
    if meta.get("clip.has_vision_encoder") is False:
        raise BadModelFile(f"{name} has no vision encoder (an audio-only projector?).")
    ptype = str(meta.get("clip.projector_type") or meta.get("clip.vision.projector_type") or "")
    size = int(meta.get("clip.vision.image_size") or 0)
    sides = [size]
    pinpoints = meta.get("clip.vision.image_grid_pinpoints")
    if isinstance(pinpoints, list) and pinpoints:
        sides.append(max(int(p) for p in pinpoints))
    max_pixels = meta.get("clip.vision.image_max_pixels")
    if isinstance(max_pixels, int) and max_pixels > 0:
        sides.append(int(math.sqrt(max_pixels)))
    max_side = max(sides) if max(sides) > 0 else DEFAULT_MAX_SIDE
    return ProjectorInfo(str(Path(path).resolve()), ptype, size, max_side)


@dataclass
class _Kept:
    chunk: Any  # mtmd_input_chunk_p (a copy we own)
    n_pos: int
    n_tokens: int
    ids: tuple[int, ...] = ()  # what image_tokens() gave for it


class VisionEncoder:
    """The mtmd context beside one llama_cpp.Llama (which must outlive it)."""

    def __init__(self, llm: llama_cpp.Llama, projector: str | Path, *, n_threads: int) -> None:
        _install_log()
        self.projector = check_projector(projector)
        self._llm = llm
        params = mtmd.mtmd_context_params_default()
        params.use_gpu = bool(llama_cpp.llama_supports_gpu_offload())
        params.n_threads = n_threads
        params.print_timings = False
        mark = llama_log.mark()
        ctx = mtmd.mtmd_init_from_file(self.projector.path.encode(), llm.model, params)
        if not ctx:
            said = llama_log.errors_since(mark)
            raise ModelLoadError(
                f"llama.cpp could not load the projector {Path(projector).name}"
                + (f": {said[-1]}" if said else ".")
                + " Is it the projector made for this model?"
            )
        self._ctx = ctx
        if not mtmd.mtmd_support_vision(ctx):
            self.close()
            raise BadModelFile(f"{Path(projector).name} does not read images.")
        self._kept: OrderedDict[str, _Kept] = OrderedDict()
        self._by_placeholder: dict[int, str] = {}
        self.encoded = 0  # images encoded since load (the cache tests and details count)
        log.info("projector %s (%s) loaded", self.projector.path, self.projector.projector_type)

    # -- prompt ---------------------------------------------------------------

    def image_tokens(self, image: DecodedImage) -> list[int]:
        """The ids an image takes in a prompt: text tokens around it as the model's
        format wants, and one placeholder per context position."""
        text = MARKER.encode()
        bitmap = mtmd.mtmd_bitmap_init(
            image.width, image.height, (ctypes.c_uint8 * len(image.rgb)).from_buffer_copy(image.rgb)
        )
        if not bitmap:
            raise ModelLoadError("llama.cpp could not take the image (out of memory?).")
        chunks = mtmd.mtmd_input_chunks_init()
        try:
            mtmd.mtmd_bitmap_set_id(bitmap, image.sha256.encode())
            inp = mtmd.mtmd_input_text()
            inp.text = text
            inp.text_len = len(text)
            inp.add_special = False
            inp.parse_special = True
            arr = (mtmd.mtmd_bitmap_p_ctypes * 1)(bitmap)
            rc = mtmd.mtmd_tokenize(self._ctx, chunks, ctypes.byref(inp), arr, 1)
            if rc != 0:
                raise ModelLoadError(f"llama.cpp could not prepare the image (error {rc}).")
            out: list[int] = []
            pid = placeholder_id(image.sha256)
            for i in range(mtmd.mtmd_input_chunks_size(chunks)):
                chunk = mtmd.mtmd_input_chunks_get(chunks, i)
                kind = mtmd.mtmd_input_chunk_get_type(chunk)
                if kind == mtmd.MTMD_INPUT_CHUNK_TYPE_TEXT:
                    n = ctypes.c_size_t()
                    ptr = mtmd.mtmd_input_chunk_get_tokens_text(chunk, ctypes.byref(n))
                    out += [int(ptr[j]) for j in range(n.value)]
                elif kind == mtmd.MTMD_INPUT_CHUNK_TYPE_IMAGE:
                    n_pos = int(mtmd.mtmd_input_chunk_get_n_pos(chunk))
                    n_tok = int(mtmd.mtmd_input_chunk_get_n_tokens(chunk))
                    self._keep(image.sha256, pid, mtmd.mtmd_input_chunk_copy(chunk), n_pos, n_tok)
                    out += [pid] * n_pos
            kept = self._kept.get(image.sha256)
            if kept is not None:
                kept.ids = tuple(out)
            return out
        finally:
            mtmd.mtmd_input_chunks_free(chunks)
            mtmd.mtmd_bitmap_free(bitmap)

    def _keep(self, sha: str, pid: int, chunk: Any, n_pos: int, n_tok: int) -> None:
        old = self._kept.pop(sha, None)
        if old is not None:
            mtmd.mtmd_input_chunk_free(old.chunk)
        self._kept[sha] = _Kept(chunk, n_pos, n_tok)
        self._by_placeholder[pid] = sha
        while len(self._kept) > KEPT_IMAGES:
            _, gone = self._kept.popitem(last=False)
            mtmd.mtmd_input_chunk_free(gone.chunk)

    def kept_tokens(self, sha256: str) -> tuple[int, ...] | None:
        """image_tokens() of an image prepared before (not decoded again), or None."""
        kept = self._kept.get(sha256)
        return kept.ids if kept is not None and kept.ids else None

    def positions(self, placeholder: int) -> int:
        sha = self._by_placeholder.get(placeholder)
        kept = self._kept.get(sha) if sha else None
        return kept.n_pos if kept else 0

    # -- evaluation -----------------------------------------------------------

    def eval_image(self, placeholder: int, n_past: int, n_batch: int) -> int:
        """Encode the image a placeholder run stands for and decode it into the context
        at n_past; returns the new n_past."""
        sha = self._by_placeholder.get(placeholder)
        kept = self._kept.get(sha) if sha else None
        if kept is None:
            raise RuntimeError("an image in the prompt was not prepared by this model")
        self._kept.move_to_end(sha)  # type: ignore[arg-type]
        new_n_past = llama_cpp.llama_pos(0)
        rc = mtmd.mtmd_helper_eval_chunk_single(
            self._ctx,
            self._llm._ctx.ctx,
            kept.chunk,
            llama_cpp.llama_pos(n_past),
            llama_cpp.llama_seq_id(0),
            n_batch,
            False,
            ctypes.byref(new_n_past),
        )
        if rc != 0:
            raise RuntimeError(f"llama.cpp could not encode the image (error {rc})")
        self.encoded += 1
        return int(new_n_past.value)

    def close(self) -> None:
        for kept in self._kept.values():
            mtmd.mtmd_input_chunk_free(kept.chunk)
        self._kept.clear()
        if getattr(self, "_ctx", None):
            mtmd.mtmd_free(self._ctx)
            self._ctx = None


def find_projector(model_path: str | Path) -> Path | None:
    """The projector beside a model file (core.catalog.projector_beside), or None."""
    return projector_beside(model_path)
