"""Grammar-constrained sampling at close to free speed.

llama-cpp-python puts the grammar into its sampler chain, where it checks every token of
the vocabulary at every step (SmolLM2: ~9 ms a token, more than the model itself). As
llama.cpp's own common sampler does, this samples with the ordinary chain first and asks
the grammar about that one token; only when the grammar refuses it is the whole
vocabulary filtered by the grammar and the chain applied again. The result is a token the
grammar allows, drawn from the same sampling as before, at the cost of one check in the
usual case.

GrammarFirstSampler stands in for llama-cpp-python's sampler object (`sample(ctx, idx)`)
for the length of one generate() call (LlamaEngine installs and removes it).
"""

from __future__ import annotations

import ctypes
import math
from typing import Any

import llama_cpp
import numpy as np


class GrammarFirstSampler:
    def __init__(self, chain: Any, vocab: Any, grammar: Any, n_vocab: int) -> None:
        self.chain = chain  # llama-cpp-python's LlamaSampler without the grammar
        self.grammar = llama_cpp.llama_sampler_init_grammar(
            vocab, grammar._grammar.encode("utf-8"), grammar._root.encode("utf-8")
        )
        if not self.grammar:
            raise RuntimeError("llama.cpp refused the grammar")
        self.n_vocab = n_vocab
        self._buf = (llama_cpp.llama_token_data * n_vocab)()
        self._view = np.ctypeslib.as_array(self._buf).view(
            np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)])
        )
        self._ids = np.arange(n_vocab, dtype=np.int32)
        self._arr = llama_cpp.llama_token_data_array(
            ctypes.cast(self._buf, llama_cpp.llama_token_data_p), n_vocab, -1, False
        )
        self._one = (llama_cpp.llama_token_data * 1)()
        self._one_arr = llama_cpp.llama_token_data_array(
            ctypes.cast(self._one, llama_cpp.llama_token_data_p), 1, -1, False
        )
        self.refused = 0  # tokens the chain drew that the grammar refused (for benchmarks)
        self.steps = 0

    def _candidates(self, ctx: Any, idx: int) -> Any:
        logits = np.ctypeslib.as_array(
            llama_cpp.llama_get_logits_ith(ctx.ctx, idx), shape=(self.n_vocab,)
        )
        view = self._view.reshape(-1)
        view["id"] = self._ids
        view["logit"] = logits
        view["p"] = 0.0
        arr = self._arr
        arr.data = ctypes.cast(self._buf, llama_cpp.llama_token_data_p)  # type: ignore[assignment]
        arr.size = self.n_vocab
        arr.selected = -1
        arr.sorted = False
        return arr

    def _allowed(self, token: int) -> bool:
        one: Any = self._one[0]
        one.id, one.logit, one.p = token, 1.0, 0.0
        arr = self._one_arr
        arr.data = ctypes.cast(self._one, llama_cpp.llama_token_data_p)  # type: ignore[assignment]
        arr.size, arr.selected, arr.sorted = 1, -1, False
        llama_cpp.llama_sampler_apply(self.grammar, ctypes.byref(arr))
        return not math.isinf(self._one[0].logit)

    def sample(self, ctx: Any, idx: int = -1) -> int:
        self.steps += 1
        arr = self._candidates(ctx, idx)
        llama_cpp.llama_sampler_apply(self.chain.sampler, ctypes.byref(arr))
        token = int(arr.data[arr.selected].id)
        if not self._allowed(token):
            self.refused += 1
            arr = self._candidates(ctx, idx)
            llama_cpp.llama_sampler_apply(self.grammar, ctypes.byref(arr))
            llama_cpp.llama_sampler_apply(self.chain.sampler, ctypes.byref(arr))
            token = int(arr.data[arr.selected].id)
        llama_cpp.llama_sampler_accept(self.grammar, token)
        llama_cpp.llama_sampler_accept(self.chain.sampler, token)
        return token

    def close(self) -> None:
        if self.grammar:
            llama_cpp.llama_sampler_free(self.grammar)
            self.grammar = None
