"""The llama-cpp-python adapter: load, tokenize, stream, cancel, close.

One LlamaEngine is owned by one thread (the chat service's inference thread).
Cancel: a threading.Event checked between tokens, and llama_set_abort_callback while the
prompt is evaluated (a long prompt takes seconds). The abort callback is installed only
for prompt evaluation: it is called for every graph node, and leaving it on during
token-by-token generation would cost several percent of speed.

Log-probabilities are read from the last logits at each step (llama_get_logits_ith),
never through logits_all (context x vocabulary floats): the raw distribution (softmax of
the logits) and the one the sampler actually drew from (after repeat penalty, top-k,
top-p, min-p and temperature, recomputed by engine.sampled_dist from the same logits). The KV state of the most recent conversations is kept in a bounded cache
(StateCache), so switching A -> B -> A evaluates only A's new tokens.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import gc
import io
import logging
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import llama_cpp
import numpy as np

from chatapp.core.catalog.embedding_models import is_embedding_model
from chatapp.core.catalog.gguf import GGUFInfo, check_model_file
from chatapp.core.errors import BadModelFile, ContextFullError, ModelLoadError
from chatapp.core.gpu_fit import GpuLayers
from chatapp.core.images import DecodedImage
from chatapp.core.token_engine import Cancelled, ModelInfo, PromptEval, Sampled, SamplingParams
from chatapp.engine import llama_guard, llama_log
from chatapp.engine.gpu_offload import plan_offload
from chatapp.engine.grammar_sampler import GrammarFirstSampler
from chatapp.engine.hardware import physical_cores
from chatapp.engine.sampled_dist import SampledDistribution
from chatapp.engine.speculative import (
    EXACT_KV_TYPE,
    EXACT_POSITIONS,
    PROBE_BATCH,
    DraftModel,
    PromptLookup,
    SpecStats,
    Speculation,
    exact_batch_limit,
    load_draft_model,
    probe_tokens,
)
from chatapp.engine.state_disk import DiskState, StateDisk, llama_key
from chatapp.engine.vision import VisionEncoder

log = logging.getLogger(__name__)

DEFAULT_CONTEXT_LIMIT = 4096
STATE_CACHE_BYTES = 768 * 1024 * 1024  # KV states of recent conversations kept in memory
STATE_CACHE_ENTRIES = 8
# Exact answers (docs/chat-service.md): a token's KV depends on the batch it was computed
# in (one token alone, or its place in a group of 4 rows for repacked weights). Prompts are
# evaluated in batches that start at multiples of GRID and are whole multiples of GRID
# long, except the last, which runs from the last multiple of GRID to the end; positions in
# whole GRID cells are then the same however the prompt got there, and are reused. The
# rest (the last cell, tokens generated one at a time) is evaluated again next time, or
# settled while the user reads (settle()).
GRID = 16
SETTLE_CHUNK = 128  # settle() checks between batches of this many tokens whether to stop
VERSION = f"llama-cpp-python {llama_cpp.__version__}"


@dataclass
class _SavedState:
    input_ids: np.ndarray  # the evaluated tokens
    data: Any  # the ctypes buffer llama_state_get_data filled: the KV cache of those tokens
    n_bytes: int  # how much of it holds the state
    exact: int  # leading positions whose KV was computed on the GRID (see GRID)

    @property
    def size(self) -> int:
        return ctypes.sizeof(self.data) + self.input_ids.nbytes


class StateCache:
    """The KV states of the most recently used conversations, least recent evicted
    first, bounded in entries and bytes."""

    def __init__(self, max_bytes: int = STATE_CACHE_BYTES, max_entries: int = STATE_CACHE_ENTRIES):
        self.max_bytes = max_bytes
        self.max_entries = max_entries
        self._items: OrderedDict[str, _SavedState] = OrderedDict()
        # called with each state that leaves the cache to make room (the disk keeps it)
        self.on_evict: Callable[[str, _SavedState], None] | None = None

    def __contains__(self, key: str) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)

    @property
    def size(self) -> int:
        return sum(v.size for v in self._items.values())

    def put(self, key: str, state: _SavedState) -> None:
        self._items.pop(key, None)
        if state.size > self.max_bytes:
            self._evicted(key, state)
            return
        self._items[key] = state
        while len(self._items) > self.max_entries or self.size > self.max_bytes:
            self._evicted(*self._items.popitem(last=False))

    def _evicted(self, key: str, state: _SavedState) -> None:
        if self.on_evict is not None:
            self.on_evict(key, state)

    def items(self) -> list[tuple[str, _SavedState]]:
        """Least recently used first."""
        return list(self._items.items())

    def take(self, key: str) -> _SavedState | None:
        return self._items.pop(key, None)

    def clear(self) -> None:
        self._items.clear()


class _StderrToLog(io.TextIOBase):
    """llama-cpp-python prints some load-time details with print(file=sys.stderr)."""

    def write(self, s: str) -> int:
        if s.strip():
            log.debug("llama-cpp-python: %s", s.rstrip())
        return len(s)


def _grid_batches(start: int, end: int, size: int) -> list[tuple[int, int]]:
    """[start, end) in batches of at most `size` (a multiple of GRID) starting at
    multiples of GRID (start is one); the positions after the last multiple of GRID are
    a batch of their own, so they are computed the same way from any start."""
    cut = max(start, end // GRID * GRID)
    out = [(a, min(a + size, cut)) for a in range(start, cut, size)]
    if cut < end:
        out.append((cut, end))
    return out


def _reuse_point(prompt: list[int], limit: int) -> int:
    """Where a prompt that matches the KV cache up to `limit` starts to be evaluated:
    the last multiple of GRID, or the end of an image after it (text after an image
    starts its batches there), never inside an image (it is evaluated whole)."""
    at = limit // GRID * GRID
    for i in range(limit, at, -1):
        if prompt[i - 1] < 0 and (i == len(prompt) or prompt[i] != prompt[i - 1]):
            return i  # an image ends at i
    return _image_start(prompt, at)


def _text_batches(start: int, end: int, size: int) -> list[tuple[int, int]]:
    """_grid_batches for text that may start after an image, off the GRID: its first
    batch runs to the next multiple of GRID, so any later evaluation from the image's
    end computes the same batches."""
    first = min(end, -(-start // GRID) * GRID)
    head = [(start, first)] if first > start else []
    return head + _grid_batches(first, end, size)


def _image_start(prompt: list[int], at: int) -> int:
    """`at`, or the start of the image whose positions it falls inside (an image is
    evaluated whole)."""
    if 0 < at < len(prompt) and prompt[at] < 0:
        while at > 0 and prompt[at - 1] == prompt[at]:
            at -= 1
    return at


def _segments(prompt: list[int], start: int) -> list[tuple[int, int, int | None]]:
    """prompt[start:] as runs: (a, b, None) for text tokens, (a, b, id) for an image's
    placeholder positions (engine.vision)."""
    out: list[tuple[int, int, int | None]] = []
    a = start
    n = len(prompt)
    while a < n:
        b = a + 1
        if prompt[a] < 0:
            while b < n and prompt[b] == prompt[a]:
                b += 1
            out.append((a, b, prompt[a]))
        else:
            while b < n and prompt[b] >= 0:
                b += 1
            out.append((a, b, None))
        a = b
    return out


def _return_freed_memory() -> None:
    """glibc keeps freed heap pages for reuse; after unloading a model hand them back to
    the OS, so switching models does not ratchet the process size up."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        pass


class LlamaEngine:
    """Engine protocol over llama_cpp.Llama."""

    def __init__(
        self,
        path: str | Path,
        *,
        context_limit: int = DEFAULT_CONTEXT_LIMIT,
        n_threads: int | None = None,
        n_gpu_layers: GpuLayers = 0,
        n_batch: int = 512,
        seed: int | None = None,
        state_dir: str | Path | None = None,
        state_disk_bytes: int = 0,
        mmproj: str | Path | None = None,
        speculative: str = "off",
        draft_model: str | Path | None = None,
    ) -> None:
        """state_dir: where KV states are kept across restarts (engine.state_disk), within
        state_disk_bytes; None or 0: not kept. mmproj: a vision model's projector.
        speculative: "off", "lookup" (drafts copied from the context) or "draft"
        (draft_model, a small model with the same vocabulary, where lookup finds
        nothing); engine.speculative. n_gpu_layers: "auto" (as many as fit the GPU's free
        memory), -1 (all) or a count; self.offload says what was done (engine.gpu_offload)."""
        llama_log.install()
        llama_guard.install()  # the GGUF's templates are rendered by us, under limits
        self._gguf: GGUFInfo = check_model_file(path)
        meta = self._gguf.metadata
        if is_embedding_model(meta):
            raise BadModelFile(
                f"{Path(path).name} is an embedding model: it does not chat. Use it for "
                "documents (chatapp docs add NAME PATH --embedding-model FILE)."
            )
        self.path = str(Path(path).resolve())
        trained = self._gguf.context_length or context_limit
        n_ctx = max(256, min(trained, context_limit))
        # llama.cpp pads the context to a multiple of 256; ask for that size ourselves so
        # the batch size and what the app reports agree with what llama.cpp allocates
        n_ctx = min(max(trained, 256), -(-n_ctx // 256) * 256)
        threads = n_threads or physical_cores()
        batch = min(n_batch, n_ctx)
        try:  # a projector goes to the GPU after the model (engine.vision): leave it room
            projector = Path(mmproj).stat().st_size if mmproj is not None else 0
        except OSError:
            projector = 0  # VisionEncoder says what is wrong with it
        self.offload = plan_offload(
            self._gguf,
            n_gpu_layers,
            n_ctx,
            n_batch=batch,
            flash_attn=speculative != "off",
            other_bytes=projector,
        )
        layers = self.offload.layers  # what llama.cpp is given, and what a state's key says
        # a CPU load with speculation keeps its KV cache in BF16, where a batch row's
        # attention equals one token's at any position (engine.speculative)
        self._exact_kv = speculative != "off" and layers == 0
        kv_type = EXACT_KV_TYPE if self._exact_kv else llama_cpp.GGML_TYPE_F16
        mark = llama_log.mark()
        log.info(
            "loading %s (n_ctx=%d of %d trained, threads=%d, gpu_layers=%d)",
            self.path,
            n_ctx,
            trained,
            threads,
            layers,
        )
        try:
            with contextlib.redirect_stderr(_StderrToLog()):
                self._llm = llama_cpp.Llama(
                    model_path=self.path,
                    n_ctx=n_ctx,
                    n_batch=batch,
                    n_threads=threads,
                    n_threads_batch=threads,
                    n_gpu_layers=layers,
                    seed=seed if seed is not None else llama_cpp.LLAMA_DEFAULT_SEED,
                    verbose=True,  # output goes to our log; verbose=False would mute the process
                    chat_format="chatml",  # unused: we render templates ourselves; skips guessing
                    # a sliding-window model (Gemma 3) keeps its whole KV cache, not just
                    # the window: a saved state then restores exactly, and a shorter
                    # prefix can be reused (docs/chat-service.md, "Exact answers")
                    swa_full=True,
                    # speculative decoding verifies drafts in a batch: with flash
                    # attention a batch's rows equal one token at a time (within limits,
                    # engine.speculative); without it even two rows differ
                    flash_attn=speculative != "off",
                    type_k=kv_type,
                    type_v=kv_type,
                )
        except (ValueError, RuntimeError, OSError) as e:
            raise self._load_error(e, mark) from e
        # verbose=True was for the load log (routed to our log); llama-cpp-python's own
        # prints during generation (prefix-cache notes) must not reach the terminal
        self._llm.verbose = False
        self._closed = False
        # a vision model's projector (engine.vision): images into the context
        self.vision: VisionEncoder | None = None
        if mmproj is not None:
            try:
                self.vision = VisionEncoder(self._llm, mmproj, n_threads=threads)
            except Exception:
                self._llm.close()
                raise
        self.last_prompt = PromptEval()
        self._states = StateCache()
        self._grammars: OrderedDict[str, llama_cpp.LlamaGrammar] = OrderedDict()
        # Gemma 3's sliding-window cache does not come back exactly from a saved state
        # once another conversation ran in between (logits differ past 1,000 tokens even
        # with swa_full): such a model keeps no states, a switch back evaluates the
        # conversation again (its receipt shows reused 0), and the answer stays exact
        self.sliding_window = int(llama_cpp.llama_model_n_swa(self._llm._model.model))
        if self.sliding_window > 0:
            self._states.max_entries = 0
        self._state_owner: str | None = None
        self._exact = 0  # leading KV positions computed on the GRID: reusable exactly
        self._disk_prefix = 0  # leading KV positions restored from disk, until a turn uses them
        self._disk: StateDisk | None = None
        if state_dir is not None and state_disk_bytes > 0 and self.sliding_window <= 0:
            try:
                key = llama_key(self._llm, self.path, layers)
            except OSError as e:
                log.warning("KV states will not be kept on disk: %s", e)
            else:
                self._disk = StateDisk(state_dir, key, state_disk_bytes)
                self._states.on_evict = self._to_disk
        self._cancel = threading.Event()  # replaced by each generate() call's event
        self._abort_cb = llama_cpp.ggml_abort_callback(lambda _data: self._cancel.is_set())
        self._no_abort_cb = llama_cpp.ggml_abort_callback()  # NULL: no callback
        vocab = self._llm._model.vocab
        n_vocab = self._llm.n_vocab()
        # one pass over the vocabulary: end-of-generation ids, control ids (they end a
        # turn if generated) and the special tokens' texts (for choosing a preset)
        eog: set[int] = set()
        control: set[int] = set()
        special: set[str] = set()
        control_texts: set[str] = set()
        marked = llama_cpp.LLAMA_TOKEN_ATTR_CONTROL | llama_cpp.LLAMA_TOKEN_ATTR_USER_DEFINED
        for t in range(n_vocab):
            if llama_cpp.llama_vocab_is_eog(vocab, t):
                eog.add(t)
            attr = llama_cpp.llama_vocab_get_attr(vocab, t)
            if attr & llama_cpp.LLAMA_TOKEN_ATTR_CONTROL:
                control.add(t)
                control_texts.add(
                    llama_cpp.llama_vocab_get_text(vocab, t).decode("utf-8", "replace")
                )
            if attr & marked:
                special.add(llama_cpp.llama_vocab_get_text(vocab, t).decode("utf-8", "replace"))
        self._control = frozenset(control)
        bos_id, eos_id = self._llm.token_bos(), self._llm.token_eos()
        self.info = ModelInfo(
            path=self.path,
            name=self._gguf.name,
            architecture=self._gguf.architecture,
            n_ctx=self._llm.n_ctx(),
            n_ctx_train=trained,
            n_vocab=n_vocab,
            bos_token=self._piece(bos_id) if bos_id >= 0 else "",
            eos_token=self._piece(eos_id) if eos_id >= 0 else "",
            eog_token_ids=frozenset(eog),
            special_tokens=frozenset(special),
            control_tokens=frozenset(control_texts) - {""},
            add_bos=bool(llama_cpp.llama_vocab_get_add_bos(vocab)),
            metadata=dict(meta),
            n_threads=threads,
            n_gpu_layers=layers,
            offload=self.offload,
        )
        log.info("loaded %s: %s, %d tokens context", self.info.name, self.info.architecture, n_ctx)
        self._drafter: PromptLookup | DraftModel | None = None
        self._spec: Speculation | None = None
        self._spec_skipped = ""  # why the latest generate() did not speculate ("" if it could)
        self.speculation_note = ""  # why speculation is off for this model ("" if on or asked off)
        self.exact_batch = 0  # the largest batch whose logits equal one token at a time
        self.speculation_enabled = True  # False: plain decoding on this load (tests, benchmarks)
        self.version = VERSION + (
            (" (flash attention, BF16 KV cache)" if self._exact_kv else " (flash attention)")
            if speculative != "off"
            else ""
        )
        self._setup_speculation(speculative, draft_model, threads)

    def _load_error(self, e: Exception, mark: int) -> Exception:
        said = llama_log.errors_since(mark)
        reasons = [
            s.split("error loading model:", 1)[1].strip()
            for s in said
            if "error loading model:" in s
        ]
        detail = reasons[0] if reasons else (said[-1] if said else str(e))
        if "unknown model architecture" in detail:
            return BadModelFile(
                f"This llama.cpp does not know the model architecture "
                f"'{self._gguf.architecture}' of {Path(self._gguf.path).name}.",
                hint="Update chatapp (and llama-cpp-python) or choose another model.",
            )
        return ModelLoadError(f"llama.cpp could not load {Path(self._gguf.path).name}: {detail}")

    # -- tokens ---------------------------------------------------------------

    def _piece(self, token_id: int) -> str:
        return self.token_bytes(token_id).decode("utf-8", errors="replace")

    def tokenize(self, text: str, *, special: bool = True) -> list[int]:
        self._check_open()
        return self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=special)

    def token_bytes(self, token_id: int) -> bytes:
        if token_id < 0:  # an image's position (engine.vision): no text
            return b""
        return self._llm.detokenize([token_id], special=True)

    # -- images -----------------------------------------------------------------

    @property
    def can_see(self) -> bool:
        return self.vision is not None

    @property
    def image_max_side(self) -> int:
        """Images are downscaled to this longest side before encoding (0: no vision)."""
        return self.vision.projector.max_side if self.vision is not None else 0

    def kept_image_tokens(self, sha256: str) -> tuple[int, ...] | None:
        return self.vision.kept_tokens(sha256) if self.vision is not None else None

    def image_tokens(self, image: DecodedImage) -> list[int]:
        """What the image takes in a prompt (engine.vision.VisionEncoder.image_tokens)."""
        self._check_open()
        if self.vision is None:
            raise RuntimeError("image_tokens() on a model without a projector")
        return self.vision.image_tokens(image)

    def is_special(self, token_id: int) -> bool:
        return token_id in self._control or token_id in self.info.eog_token_ids

    # -- generation -----------------------------------------------------------

    def generate(
        self,
        prompt: list[int],
        params: SamplingParams,
        cancel: threading.Event,
        *,
        logprobs: int = 0,
        cache_key: str | None = None,
        grammar: str | None = None,
    ) -> Iterator[Sampled]:
        self._check_open()
        compiled = self._grammar(grammar) if grammar else None
        n_ctx = self.info.n_ctx
        if len(prompt) >= n_ctx:
            raise ContextFullError(
                f"The conversation is {len(prompt)} tokens long; this model's context holds "
                f"{n_ctx}. Start a new chat or shorten the conversation."
            )
        if params.seed is not None:
            self._llm.set_seed(params.seed)
        self._switch_state(cache_key, prompt)
        self._cancel = cancel
        ctx = self._llm._ctx.ctx
        llama_cpp.llama_set_abort_callback(ctx, self._abort_cb, None)
        abort_on = True
        produced = 0
        top_n = max(0, min(int(logprobs), 20))
        # h-inside: the sampler's own distribution, followed step by step beside the raw one
        dist = SampledDistribution(params, self._llm.last_n_tokens_size) if top_n else None
        fast: list[GrammarFirstSampler] = []
        if compiled is not None:
            self._install_grammar_sampler(fast)
        try:
            self.last_prompt = self._evaluate(prompt)
            self._disk_prefix = 0  # this turn's receipt counts them; the next one's will not
            # the whole prompt is in the KV cache with fresh logits: generate() samples
            # the first token at once
            sampling: dict[str, Any] = {
                "top_k": params.top_k,
                "top_p": params.top_p,
                "min_p": params.min_p,
                "temp": params.temperature,
                "repeat_penalty": params.repeat_penalty,
                "grammar": compiled,
            }
            self._spec_skipped = ""
            spec = self._spec = self._speculation(prompt, sampling, cancel)
            gen = spec if spec is not None else self._llm.generate(prompt, **sampling)
            for token in gen:
                if abort_on:  # prompt evaluated: generation is cancelled between tokens
                    llama_cpp.llama_set_abort_callback(ctx, self._no_abort_cb, None)
                    abort_on = False
                if cancel.is_set():
                    raise Cancelled()
                if token in self.info.eog_token_ids:
                    return
                if dist is not None:
                    yield self._sampled(ctx, token, top_n, dist, spec.row if spec else -1)
                    dist.accept(token)
                else:
                    yield Sampled(token)
                produced += 1
                if params.max_tokens is not None and produced >= params.max_tokens:
                    return
                if self._llm.n_tokens + 1 >= n_ctx:
                    return
        except RuntimeError as e:
            if cancel.is_set():
                self._llm.n_tokens = 0  # KV cache state is unknown after an abort
                self._exact = 0
                raise Cancelled() from e
            raise
        finally:
            if abort_on:
                llama_cpp.llama_set_abort_callback(ctx, self._no_abort_cb, None)
            if compiled is not None:
                self._llm.__dict__.pop("_init_sampler", None)
                self._llm._sampler = None
                for f in fast:
                    f.close()

    # -- speculative decoding (engine.speculative) ------------------------------------

    def _setup_speculation(self, mode: str, draft_model: str | Path | None, threads: int) -> None:
        if mode == "off":
            return
        if mode not in ("lookup", "draft"):
            raise ValueError(f"speculative decoding is off, lookup or draft, not {mode!r}")
        if mode == "draft" and not draft_model:
            raise ValueError("speculative decoding with a draft model needs the draft model")
        self.exact_batch = exact_batch_limit(
            self._llm, probe_tokens(lambda t: self.tokenize(t, special=False)), (PROBE_BATCH, 3, 2)
        )
        log.info("the largest exact batch of %s: %d tokens", self.info.name, self.exact_batch)
        if self.exact_batch < 2:
            self.speculation_note = (
                "off: this model's logits for a batch of tokens differ from one token at "
                "a time here, so verified drafts would change the answer"
            )
            return
        if mode == "lookup":
            self._drafter = PromptLookup()
            return
        assert draft_model is not None
        try:
            self._drafter = load_draft_model(
                draft_model,
                n_ctx=self.info.n_ctx,
                n_threads=threads,
                n_vocab=self.info.n_vocab,
                piece=self.token_bytes,
            )
        except (ValueError, RuntimeError, OSError) as e:
            self.close()
            raise ModelLoadError(f"The draft model {Path(draft_model).name}: {e}") from e

    def _speculation(
        self, prompt: list[int], sampling: dict[str, Any], cancel: threading.Event
    ) -> Speculation | None:
        if self._drafter is None or not self.speculation_enabled:
            return None
        if any(t < 0 for t in prompt):  # an image's positions: no text to draft from
            self._spec_skipped = "off for this answer: its prompt holds an image"
            return None
        self._drafter.reset()
        return Speculation(
            self._llm,
            self._drafter,
            self._llm._init_sampler(**sampling),
            prompt,
            limit=self.exact_batch,
            n_ctx=self.info.n_ctx,
            cancel=cancel,
            positions=None if self._exact_kv else EXACT_POSITIONS,
        )

    @property
    def last_speculation(self) -> SpecStats:
        """Drafts and accepted drafts of the latest generate() call (counted live)."""
        if self._spec is not None:
            return self._spec.stats
        return SpecStats(note=self._spec_skipped or self.speculation_note)

    def _install_grammar_sampler(self, made: list[GrammarFirstSampler]) -> None:
        """For one generate() call: llama-cpp-python's sampler chain without the grammar,
        wrapped so the grammar is asked about the drawn token first (grammar_sampler)."""
        llm = self._llm
        plain = type(llm)._init_sampler

        def init(**kw: Any) -> GrammarFirstSampler:
            grammar = kw.pop("grammar", None)
            chain = plain(llm, **kw)
            sampler = GrammarFirstSampler(chain, llm._model.vocab, grammar, self.info.n_vocab)
            made.append(sampler)
            return sampler

        llm._init_sampler = init  # type: ignore[method-assign,assignment]

    def _grammar(self, text: str) -> llama_cpp.LlamaGrammar:
        """The compiled grammar (the last few kept: a tool set or schema is reused turn
        after turn). A grammar llama.cpp cannot parse is a bug in its builder."""
        cached = self._grammars.pop(text, None)
        if cached is None:
            with contextlib.redirect_stderr(_StderrToLog()):
                cached = llama_cpp.LlamaGrammar.from_string(text, verbose=False)
        self._grammars[text] = cached
        while len(self._grammars) > 4:
            self._grammars.popitem(last=False)
        return cached

    def _sampled(
        self, ctx: Any, token: int, top_n: int, dist: SampledDistribution, row: int = -1
    ) -> Sampled:
        """The token with its log-probability and the top_n alternatives, from the logits
        the sampler just drew from (the last row of the context's logits, or a row of a
        speculative batch): raw (softmax of the logits) and sampled (the distribution
        after the sampler chain)."""
        ptr = llama_cpp.llama_get_logits_ith(ctx, row)
        logits = np.ctypeslib.as_array(ptr, shape=(self.info.n_vocab,))
        raw_lp, raw_top, sampled_lp, sampled_top = dist.capture(logits, token, top_n)
        return Sampled(token, raw_lp, raw_top, sampled_lp, sampled_top)

    def _evaluate(self, prompt: list[int]) -> PromptEval:
        """Evaluate the prompt on the GRID, reusing the exact part of the KV cache that
        it starts with; at least one token is evaluated, for fresh logits."""
        llm = self._llm
        n = len(prompt)
        common = 0
        for a, b in zip(llm.input_ids[: llm.n_tokens].tolist(), prompt):
            if a != b:
                break
            common += 1
        reuse = _reuse_point(prompt, min(common, self._exact, n - 1))
        llm.n_tokens = reuse  # eval() drops the KV cache from here on
        self._exact = reuse
        self._disk_prefix = min(self._disk_prefix, reuse)
        size = max(GRID, llm.n_batch // GRID * GRID)
        encoded = 0
        for a, b, image in _segments(prompt, reuse):
            if image is None:
                for c, d in _text_batches(a, b, size):
                    llm.eval(prompt[c:d])
                continue
            if self.vision is None:
                raise RuntimeError("an image in the prompt of a model without a projector")
            llm._ctx.kv_cache_seq_rm(-1, a, -1)
            end = self.vision.eval_image(image, a, llm.n_batch)
            if end != b:
                raise RuntimeError(f"the image took {end - a} positions, {b - a} were expected")
            llm.input_ids[a:b] = image
            llm.n_tokens = b
            encoded += 1
        self._exact = _reuse_point(prompt, n)
        return PromptEval(reuse, n - reuse, self._disk_prefix, images_encoded=encoded)

    def prefill(
        self,
        prompt: list[int],
        cache_key: str | None,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> int:
        """Evaluate a prompt that a turn will probably start with (the user is typing),
        so that the turn reuses it. Only whole GRID cells, in batches of SETTLE_CHUNK
        that start on the GRID, exactly as a turn evaluates them; it stops between
        batches when should_stop() says so (a send waits). Returns the tokens evaluated."""
        self._check_open()
        if len(prompt) >= self.info.n_ctx:
            return 0
        self._switch_state(cache_key, prompt)
        llm = self._llm
        common = 0
        for a, b in zip(llm.input_ids[: llm.n_tokens].tolist(), prompt):
            if a != b:
                break
            common += 1
        text = next((i for i, t in enumerate(prompt) if t < 0), len(prompt))  # not images
        start, end = min(common, self._exact) // GRID * GRID, text // GRID * GRID
        done = 0
        for a, b in _grid_batches(start, end, SETTLE_CHUNK):
            if should_stop():
                break
            if a == start:  # eval() drops the KV cache from here on
                llm.n_tokens = start
                self._exact = start
                self._disk_prefix = min(self._disk_prefix, start)
            llm.eval(prompt[a:b])
            self._exact = b
            done += b - a
        return done

    def settle(self, should_stop: Callable[[], bool] = lambda: False) -> int:
        """Evaluate again, on the GRID, the whole GRID cells of the context that were not
        (an answer's tokens, generated one at a time), so the next turn reuses them
        exactly instead of evaluating them again. For a quiet moment: it stops between
        batches when should_stop() says so. Returns the tokens evaluated."""
        self._check_open()
        llm = self._llm
        start, end = self._exact, llm.n_tokens // GRID * GRID
        if end <= start:
            return 0
        ids = llm.input_ids[:end].tolist()
        images = [i for i in range(start, end) if ids[i] < 0]
        if images:  # an image's positions are not evaluated again: settle after it
            start = images[-1] + 1
            if end <= start:
                return 0
        llm.n_tokens = start
        done = 0
        for a, b in _text_batches(start, end, SETTLE_CHUNK):
            if should_stop():
                break
            llm.eval(ids[a:b])
            self._exact = b
            done += b - a
        return done

    # -- KV state per conversation ------------------------------------------------

    def saved_states(self) -> StateDisk | None:
        """The folder of this model's KV states on disk (None: not kept); inference thread."""
        return None if getattr(self, "_closed", True) else self._disk

    def forget_states(self, keys: Iterable[str]) -> None:
        """Drop these conversations' KV states, in memory and this model's files on disk
        (the chats were deleted: their tokens are their text)."""
        if getattr(self, "_closed", True):
            return
        for key in keys:
            self._states.take(key)
            if self._disk is not None:
                self._disk.forget(key)
            if key == self._state_owner:
                self._state_owner = None  # the context's tokens are not kept for it

    def _switch_state(self, key: str | None, prompt: list[int] | None = None) -> None:
        """Keep the state of the conversation in the context now, and bring back the
        one `key` names if it is cached (in memory, else on disk if its tokens start
        like `prompt`)."""
        if key == self._state_owner:
            return
        llm = self._llm
        if self._state_owner is not None and llm.n_tokens > 0:
            try:
                self._states.put(self._state_owner, self._save_state())
            except (RuntimeError, MemoryError) as e:
                log.warning("could not keep the KV state of %s: %s", self._state_owner, e)
        self._state_owner = key
        self._disk_prefix = 0
        saved: _SavedState | DiskState | None = None
        if key is not None:
            saved = self._states.take(key)
            if saved is None and prompt is not None:
                saved = self._from_disk(key, prompt)
        if saved is not None:
            try:
                self._load_state(saved)
            except RuntimeError as e:
                log.warning("could not restore the KV state of %s: %s", key, e)
                llm.reset()
                self._exact = 0
                if isinstance(saved, DiskState) and self._disk is not None and key:
                    self._disk.discard(key, "llama.cpp refused it")
            else:
                if isinstance(saved, DiskState):
                    self._disk_prefix = saved.exact

    def _from_disk(self, key: str, prompt: list[int]) -> DiskState | None:
        """The state saved on disk for `key` if its tokens share an exact prefix with
        the prompt (its ids are read first: a state that would not be used is not read)."""
        if self._disk is None:
            return None
        ids = self._disk.tokens(key)
        if ids is None:
            return None
        common = 0
        for a, b in zip(ids, prompt):
            if a != b:
                break
            common += 1
        if min(common, len(prompt) - 1) // GRID * GRID == 0:
            log.info(
                "KV state of %s on disk: differs from the prompt at token %d, not used", key, common
            )
            return None
        state = self._disk.load(key)
        if state is not None:
            log.info("KV state of %s restored from disk: %d tokens", key, len(state.input_ids))
        return state

    def _to_disk(self, key: str, saved: _SavedState) -> None:
        if self._disk is not None:
            self._disk.save(key, saved.input_ids, saved.data, saved.n_bytes, saved.exact)

    def save_states(self) -> None:
        """Write the states in memory and the one in the context to disk (on quit)."""
        if self._disk is None:
            return
        for key, saved in self._states.items():  # least recent first: last out of the budget
            self._to_disk(key, saved)
        if self._state_owner is not None and self._llm.n_tokens > 0 and self._exact > 0:
            try:
                self._to_disk(self._state_owner, self._save_state())
            except (RuntimeError, MemoryError) as e:
                log.warning("could not save the KV state of %s: %s", self._state_owner, e)

    def _save_state(self) -> _SavedState:
        ctx = self._llm._ctx.ctx
        size = llama_cpp.llama_state_get_size(ctx)
        buf = (ctypes.c_uint8 * int(size))()
        n = llama_cpp.llama_state_get_data(ctx, buf, size)
        if int(n) > int(size):
            raise RuntimeError("llama_state_get_data wrote past its buffer")
        ids = self._llm.input_ids[: self._llm.n_tokens].copy()
        # the buffer itself is kept (no second copy of what may be hundreds of MB)
        return _SavedState(ids, buf, int(n), self._exact)

    def _load_state(self, saved: _SavedState | DiskState) -> None:
        ctx = self._llm._ctx.ctx
        size = saved.n_bytes
        if llama_cpp.llama_state_set_data(ctx, saved.data, size) != size:
            raise RuntimeError("llama_state_set_data refused the saved state")
        n = len(saved.input_ids)
        self._llm.input_ids[:n] = saved.input_ids
        self._llm.n_tokens = n
        self._llm._requires_eval = True
        self._exact = saved.exact

    @property
    def exact_tokens(self) -> int:
        """Leading positions of the KV cache that a next turn reuses exactly."""
        return self._exact

    @property
    def context_used(self) -> int:
        return int(self._llm.n_tokens)

    # -- lifetime -------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("engine used after close()")

    def close(self) -> None:
        """Free the weights and the KV cache. A Llama used after close() segfaults,
        so the engine refuses any further use."""
        if getattr(self, "_closed", True):
            return
        if self._disk is not None:
            try:
                self.save_states()
            except Exception:  # the states are a cache: closing goes on
                log.exception("saving the KV states failed")
            self._disk.close(wait=False)  # the writer finishes on its own (state_disk)
        self._closed = True
        self._states.clear()
        if self.vision is not None:
            self.vision.close()  # before the model it was made for
            self.vision = None
        if isinstance(getattr(self, "_drafter", None), DraftModel):
            self._drafter.close()  # type: ignore[union-attr]
        self._llm.close()
        del self._llm
        gc.collect()  # llama-cpp-python's numpy buffers can sit in reference cycles
        _return_freed_memory()
        log.info("closed %s", self.path)

    def metadata(self) -> dict[str, Any]:
        return dict(self._gguf.metadata)
