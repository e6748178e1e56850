"""Speculative decoding: draft tokens cheaply, verify them with the model in one batch.

A drafter proposes the next few tokens: PromptLookup copies them from an earlier place in
the context where the last few tokens occurred (quoting, rewriting, code edits), DraftModel
lets a small model with the same vocabulary write them greedily. The model evaluates the
last token and the drafts in one batch (one pass over the weights instead of one per
token) and its sampler draws each next token from the rows in order: while the drawn token
is the draft, the next row is already computed; the first token that differs is kept and
the rest of the batch is dropped from the KV cache.

Why the output is the one plain decoding gives:
- Each token is drawn by the same sampler chain (repeat penalty, top-k/p, min-p,
  temperature, the grammar, the same seeded RNG, one draw per token kept) from a row of
  logits that equals, bit for bit, what evaluating that token alone gives. The last point
  is not true of every llama.cpp configuration (docs/chat-service.md, "Speculative
  decoding"): with the KV cache's attention done by matrix products (flash attention off)
  two rows in one batch already differ from two single tokens, and with repacked 4-bit
  weights (Gemma 3's Q4_K on AVX2) batches of 4 rows or more do. The engine loads with
  flash attention and measures, once per load, the largest batch that is exact
  (exact_batch_limit); drafts are cut to fit it, and with no exact batch speculation is
  off, with that reason in the answer's statistics.
- With drafts that are a fixed function of the context (both drafters here: lookup, and
  the draft model's greedy choice) the standard acceptance rule (accept draft d with
  probability min(1, p(d)/q(d)), otherwise draw from max(0, p - q) normalised) has
  q(d) = 1: accept d with probability p(d), otherwise draw from p without d. Drawing x
  from p and keeping the draft when x == d is that rule, and it is what plain decoding
  would have drawn at the same seed: the answer at any temperature and seed is the plain
  one, so receipts replay whether speculation was on or not.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import llama_cpp
import numpy as np

log = logging.getLogger(__name__)

LOOKUP_DRAFT = 8  # tokens a lookup drafts at most
MODEL_DRAFT = 4  # tokens a draft model writes at most
MAX_NGRAM = 4  # the longest context suffix looked up
MIN_NGRAM = 2  # a single token matches too often to be worth a batch row
PROBE_BATCH = 9  # the batch exact_batch_limit tries first (the last token and 8 drafts)
# Flash attention on llama.cpp's CPU backend (0.3.36's build, ggml-cpu/ops.cpp) computes a
# single query row over an F16/F32 KV cache of 512 cells or more (the cache is padded to
# 256: from KV position 256 on) by splitting the cells among the threads and merging the
# partial softmaxes, while a batch's rows each run over all cells in one pass: the logits
# differ (by up to 1.5). With another cache type (BF16) neither the split nor the tiled
# batch kernel applies and one token and a batch row agree at any position, so a CPU load
# with speculation keeps its KV cache in BF16 (EXACT_KV_TYPE, the size of F16). Where the
# cache is not on the CPU (GPU layers) the F16 cache stays and drafts are verified only
# below EXACT_POSITIONS (docs/chat-service.md, "Speculative decoding")
EXACT_POSITIONS = 256
GGML_TYPE_BF16 = 30  # ggml.h; llama_cpp does not export it
EXACT_KV_TYPE = GGML_TYPE_BF16
INITIAL_HIT_RATE = 0.7  # lookup starts out drafting
MIN_HIT_RATE = 0.6  # below this lookup's drafts cost more batch rows than they save
HIT_RATE_WEIGHT = 0.15  # the moving average's weight of the latest draft
PROBE_TEXT = "The lighthouse keeper counted the ships: one, two, three, four, five, six."
MODES = ("off", "lookup", "draft")


@dataclass(frozen=True)
class SpecStats:
    """One answer's speculation: how (mode, or "" if off), why not (note), tokens drafted
    and drafts the model accepted."""

    mode: str = ""
    drafted: int = 0
    accepted: int = 0
    note: str = ""

    @property
    def acceptance(self) -> float:
        return self.accepted / self.drafted if self.drafted else 0.0


class Drafter(Protocol):
    mode: str

    def propose(self, context: Sequence[int], k: int) -> list[int]:
        """Up to k tokens likely to follow context (the whole prompt and answer so far)."""

    def reset(self) -> None:
        """A new generation starts (the context may be another conversation)."""


class PromptLookup:
    """Drafts the tokens that followed the most recent earlier occurrence of the
    context's last MAX_NGRAM..MIN_NGRAM tokens. The index grows with the context, so a
    step costs a few dictionary look-ups, not a scan."""

    mode = "lookup"

    def __init__(self, max_ngram: int = MAX_NGRAM, min_ngram: int = MIN_NGRAM) -> None:
        self.max_ngram = max_ngram
        self.min_ngram = min_ngram
        self.reset()

    def reset(self) -> None:
        self._ids: list[int] = []
        # n-gram -> the position after its latest occurrence that has a continuation
        self._index: dict[tuple[int, ...], int] = {}

    def _sync(self, context: Sequence[int]) -> None:
        """Index the tokens added since the last call (within one generation the
        context only grows; reset() starts the next)."""
        ids = self._ids
        if len(context) < len(ids):
            self.reset()
            ids = self._ids
        n = len(ids)
        for t in context[n:]:
            end = len(ids)  # ids[end] will be t: each n-gram ending before it continues
            for g in range(self.min_ngram, self.max_ngram + 1):
                if end >= g:
                    self._index[tuple(ids[end - g : end])] = end
            ids.append(int(t))

    def propose(self, context: Sequence[int], k: int) -> list[int]:
        self._sync(context)
        ids = self._ids
        for g in range(self.max_ngram, self.min_ngram - 1, -1):
            if len(ids) < g:
                continue
            at = self._index.get(tuple(ids[-g:]))
            if at is not None:
                return ids[at : at + k]
        return []


def vocabulary_difference(
    draft_name: str,
    draft_n_vocab: int,
    draft_piece: Callable[[int], bytes],
    n_vocab: int,
    piece: Callable[[int], bytes],
) -> str:
    """Why a draft model's vocabulary is not the model's (one line), or "": the same
    size and the same bytes for a sample of 2,000 token ids spread over it."""
    if draft_n_vocab != n_vocab:
        return (
            f"{draft_name} has {draft_n_vocab} tokens, the model {n_vocab}: a draft model "
            "must share the model's vocabulary."
        )
    step = max(1, n_vocab // 2000)
    for t in range(0, n_vocab, step):
        if draft_piece(t) != piece(t):
            return (
                f"{draft_name}'s token {t} is not the model's: a draft model must share "
                "the model's vocabulary."
            )
    return ""


class DraftModel:
    """A small model with the same vocabulary drafts greedily; its KV cache follows the
    context (the common prefix is kept between steps and turns)."""

    mode = "draft"

    def __init__(self, path: str | Path, *, n_ctx: int, n_threads: int, lookup: bool = True):
        self.path = str(Path(path).resolve())
        self.llm = llama_cpp.Llama(
            model_path=self.path,
            n_ctx=n_ctx,
            n_batch=min(512, n_ctx),
            n_threads=n_threads,
            n_threads_batch=n_threads,
            flash_attn=True,
            swa_full=True,
            verbose=False,
        )
        self.n_vocab = self.llm.n_vocab()
        # lookup first (free), the model where the context has nothing to copy
        self.lookup = PromptLookup() if lookup else None
        self.cancel: threading.Event | None = None

    def check_vocabulary(self, n_vocab: int, piece: Callable[[int], bytes]) -> None:
        """Refuse a draft model whose tokens are not the model's (its drafts would be
        another language's ids)."""
        why = vocabulary_difference(
            Path(self.path).name,
            self.n_vocab,
            lambda t: self.llm.detokenize([t], special=True),
            n_vocab,
            piece,
        )
        if why:
            raise ValueError(why)

    def reset(self) -> None:
        if self.lookup is not None:
            self.lookup.reset()

    def propose(self, context: Sequence[int], k: int) -> list[int]:
        if self.lookup is not None:
            found = self.lookup.propose(context, k)
            if found:
                return found
        llm = self.llm
        ctx = list(context)
        room = llm.n_ctx() - 1
        if len(ctx) + k > room:
            return []
        common = 0
        for a, b in zip(llm.input_ids[: llm.n_tokens].tolist(), ctx):
            if a != b:
                break
            common += 1
        common = min(common, len(ctx) - 1)  # at least one token evaluated: fresh logits
        llm.n_tokens = common
        for a in range(common, len(ctx), llm.n_batch):
            if self.cancel is not None and self.cancel.is_set():
                return []
            llm.eval(ctx[a : a + llm.n_batch])
        out: list[int] = []
        c = llm._ctx.ctx
        for _ in range(k):
            logits = np.ctypeslib.as_array(
                llama_cpp.llama_get_logits_ith(c, -1), shape=(self.n_vocab,)
            )
            t = int(np.argmax(logits))
            out.append(t)
            if len(out) == k:
                break
            llm.eval([t])
        return out

    def close(self) -> None:
        self.llm.close()


class _Batch:
    """A llama_batch whose rows all return logits."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.batch = llama_cpp.llama_batch_init(size, 0, 1)

    def decode(self, ctx: Any, tokens: Sequence[int], n_past: int) -> None:
        b = self.batch
        b.n_tokens = len(tokens)
        for i, t in enumerate(tokens):
            b.token[i] = t
            b.pos[i] = n_past + i
            b.seq_id[i][0] = 0
            b.n_seq_id[i] = 1
            b.logits[i] = True
        rc = llama_cpp.llama_decode(ctx, b)
        if rc != 0:
            raise RuntimeError(f"llama_decode returned {rc}")

    def close(self) -> None:
        if self.batch is not None:
            llama_cpp.llama_batch_free(self.batch)
            self.batch = None

    def __del__(self) -> None:
        self.close()


def _rows(ctx: Any, n: int, n_vocab: int) -> list[np.ndarray]:
    return [
        np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(ctx, i), shape=(n_vocab,)).copy()
        for i in range(n)
    ]


def exact_batch_limit(llm: Any, tokens: Sequence[int], sizes: Sequence[int]) -> int:
    """The largest of `sizes` (tried in order) for which evaluating tokens in batches of
    that size gives logits equal, bit for bit, to evaluating them one at a time; 0 if
    none. For an empty context (it is emptied again afterwards)."""
    ctx = llm._ctx.ctx
    mem = llama_cpp.llama_get_memory(ctx)
    n_vocab = llm.n_vocab()
    toks = list(tokens)
    batch = _Batch(max(len(toks), *sizes))
    try:
        llama_cpp.llama_memory_seq_rm(mem, -1, 0, -1)
        single: list[np.ndarray] = []
        for i, t in enumerate(toks):
            batch.decode(ctx, [t], i)
            single += _rows(ctx, 1, n_vocab)
        for size in sizes:
            llama_cpp.llama_memory_seq_rm(mem, -1, 1, -1)
            rows: list[np.ndarray] = []
            for a in range(1, len(toks), size):
                part = toks[a : a + size]
                batch.decode(ctx, part, a)
                rows += _rows(ctx, len(part), n_vocab)
            if all(np.array_equal(r, s) for r, s in zip(rows, single[1:])):
                return size
        return 0
    finally:
        llama_cpp.llama_memory_seq_rm(mem, -1, 0, -1)
        llm.n_tokens = 0
        batch.close()


class Speculation:
    """One generate() call's tokens, speculatively: an iterator of sampled token ids like
    Llama.generate's, after the prompt was evaluated (its logits are the last row).
    `row` is the logits row the latest token was drawn from (for the log-probability
    capture); `stats` counts drafts."""

    def __init__(
        self,
        llm: Any,
        drafter: Drafter,
        sampler: Any,
        prompt: Sequence[int],
        *,
        limit: int,
        n_ctx: int,
        cancel: threading.Event,
        positions: int | None = EXACT_POSITIONS,
    ) -> None:
        """positions: drafts are verified only below this KV position (None: anywhere)."""
        self.llm = llm
        self.drafter = drafter
        self.sampler = sampler
        self.context = [int(t) for t in prompt]
        self.limit = limit  # the largest exact batch: the last token and limit - 1 drafts
        self.n_ctx = n_ctx
        self.positions = positions
        self.cancel = cancel
        self.row = -1
        self.drafted = 0
        self.accepted = 0
        self._batch = _Batch(limit)
        k = LOOKUP_DRAFT if drafter.mode == "lookup" else MODEL_DRAFT
        self.max_draft = max(0, min(k, limit - 1))
        # drafts per batch: halved down to 1 after a miss, doubled after a batch fully
        # accepted (a wrong draft costs a batch row; lookup is often right for a while)
        self.k = self.max_draft
        # how often lookup's next token is the model's (a moving average over drafts
        # verified and, while not drafting, over proposals checked against the token
        # drawn, which costs nothing): a batch row costs about half a token on a CPU, so
        # lookup drafts only while it is right more often than MIN_HIT_RATE (in a chat
        # answer it is right about a third of the time: drafting there is a loss)
        self.hit_rate = INITIAL_HIT_RATE
        self.gated = drafter.mode == "lookup"  # a draft model is the user's explicit choice
        if isinstance(drafter, DraftModel):
            drafter.cancel = cancel

    @property
    def stats(self) -> SpecStats:
        return SpecStats(self.drafter.mode, self.drafted, self.accepted)

    def _seen(self, hit: bool) -> None:
        self.hit_rate += HIT_RATE_WEIGHT * (float(hit) - self.hit_rate)

    def __iter__(self) -> Iterator[int]:
        llm = self.llm
        ctx = llm._ctx
        mem = llama_cpp.llama_get_memory(ctx.ctx)
        rows = [-1]  # the prompt's last row
        drafts: list[int] = []
        shadow = -1  # lookup's guess when it was not drafted: checked against the token
        base = llm.n_tokens  # the position of the first token of the latest batch
        try:
            while True:
                token = -1
                for j, row in enumerate(rows):
                    # the tokens of the batch before this row are accepted: evaluated
                    llm.n_tokens = base + j + 1 if row >= 0 else base
                    token = self.sampler.sample(ctx, row)
                    self.row = row
                    self.context.append(token)
                    if shadow >= 0:
                        self._seen(token == shadow)
                        shadow = -1
                    if j < len(drafts) and token == drafts[j]:
                        self.accepted += 1
                        self._seen(True)
                        yield token
                        continue
                    if j < len(drafts):
                        self._seen(False)
                    if row >= 0 and j + 1 < len(rows):  # the rest of the batch is dropped
                        llama_cpp.llama_memory_seq_rm(mem, -1, llm.n_tokens, -1)
                    if drafts:
                        self.k = (
                            min(self.max_draft, self.k * 2)
                            if j == len(drafts)
                            else max(1, self.k // 2)
                        )
                    yield token
                    break
                if self.cancel.is_set():
                    return
                base = llm.n_tokens
                end = self.n_ctx - 2
                room = (end if self.positions is None else min(end, self.positions)) - base
                k = min(self.k, room - 1)
                drafts = self.drafter.propose(self.context, k) if k > 0 else []
                if self.gated and drafts and self.hit_rate < MIN_HIT_RATE:
                    shadow, drafts = drafts[0], []
                    self.k = 1  # drafting again, it starts with one
                self.drafted += len(drafts)
                batch = [token, *drafts]
                self._batch.decode(ctx.ctx, batch, base)
                llm.input_ids[base : base + len(batch)] = batch
                llm.n_tokens = base + len(batch)
                rows = list(range(len(batch)))
        finally:
            # the drafts after the last token kept are not part of the context
            llama_cpp.llama_memory_seq_rm(mem, -1, llm.n_tokens, -1)
            self._batch.close()


def load_draft_model(
    path: str | Path, *, n_ctx: int, n_threads: int, n_vocab: int, piece: Callable[[int], bytes]
) -> DraftModel:
    model = DraftModel(path, n_ctx=n_ctx, n_threads=n_threads)
    try:
        model.check_vocabulary(n_vocab, piece)
    except ValueError:
        model.close()
        raise
    return model


def probe_tokens(tokenize: Callable[[str], list[int]], n: int = PROBE_BATCH + 1) -> list[int]:
    ids = tokenize(PROBE_TEXT)
    while len(ids) < n:
        ids = ids + ids
    return ids[:n]


__all__ = [
    "EXACT_KV_TYPE",
    "MODES",
    "DraftModel",
    "PromptLookup",
    "SpecStats",
    "Speculation",
    "exact_batch_limit",
    "load_draft_model",
    "probe_tokens",
    "vocabulary_difference",
]
