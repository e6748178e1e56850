"""A model's tokenizer alone: llama.cpp loads only the vocabulary (vocab_only), no
weights, so a second model's tokenization can be shown beside the loaded model's (the
tokenizer playground) without the memory of a second model. Safe to run off the
inference thread: it shares nothing with the loaded model."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import llama_cpp

from chatapp.core.catalog.gguf import check_model_file
from chatapp.core.errors import ModelLoadError
from chatapp.engine import llama_log
from chatapp.engine.llama import _StderrToLog

log = logging.getLogger(__name__)


class VocabTokenizer:
    def __init__(self, path: str | Path) -> None:
        llama_log.install()
        info = check_model_file(path)
        self.path = str(Path(path).resolve())
        self.name = info.name
        try:
            with contextlib.redirect_stderr(_StderrToLog()):
                self._llm = llama_cpp.Llama(model_path=self.path, vocab_only=True, verbose=False)
        except (ValueError, RuntimeError, OSError) as e:
            raise ModelLoadError(f"Could not read the vocabulary of {Path(path).name}: {e}") from e
        self._vocab = self._llm._model.vocab
        self.n_vocab = self._llm.n_vocab()

    def tokenize(self, text: str, *, special: bool = True) -> list[tuple[int, bytes]]:
        ids = self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=special)
        return [(t, self._llm.detokenize([t], special=True)) for t in ids]

    def is_special(self, token_id: int) -> bool:
        """Control and end-of-generation tokens (asked per token: a whole 262k-token
        vocabulary would take seconds through ctypes)."""
        attr = llama_cpp.llama_vocab_get_attr(self._vocab, token_id)
        return bool(attr & llama_cpp.LLAMA_TOKEN_ATTR_CONTROL) or bool(
            llama_cpp.llama_vocab_is_eog(self._vocab, token_id)
        )

    def piece(self, token_id: int) -> bytes:
        """A token's bytes, special tokens as their text."""
        return bytes(self._llm.detokenize([token_id], special=True))

    def close(self) -> None:
        self._llm.close()


def tokenize_with(path: str | Path, text: str) -> tuple[str, list[tuple[int, bytes]], set[int]]:
    """(model name, tokens, special ids among them) by the model file's own tokenizer."""
    tok = VocabTokenizer(path)
    try:
        tokens = tok.tokenize(text)
        return tok.name, tokens, {t for t, _ in tokens if tok.is_special(t)}
    finally:
        tok.close()


def draft_refusal(model_path: str | Path, draft_path: str | Path) -> str:
    """Why `draft_path` cannot draft for `model_path` (one line), or "": the check a load
    with that draft model makes (engine.speculative), from the two vocabularies alone."""
    from chatapp.engine.speculative import vocabulary_difference

    model = VocabTokenizer(model_path)
    try:
        draft = VocabTokenizer(draft_path)
        try:
            return vocabulary_difference(
                Path(draft_path).name, draft.n_vocab, draft.piece, model.n_vocab, model.piece
            )
        finally:
            draft.close()
    finally:
        model.close()
