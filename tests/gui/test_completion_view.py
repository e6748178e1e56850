"""View > Completion mode with the real Gemma 3 270M base model: the app suggests it for a
model without a chat template, sends exactly BOS + the document's tokens, streams the
continuation into the document, shows it as tokens and by confidence, and keeps it."""

from __future__ import annotations

import re

import pytest

from chatapp.gui.chatview.tokens import CONFIDENCE, TOKENS
from chatapp.gui.completion_view import CompletionWindow, open_completion

pytestmark = pytest.mark.model

EXT = (
    "chatapp.gui.message_tokens",
    "chatapp.gui.completion_view",
)


def _set_display(win: CompletionWindow, key: str) -> None:
    win.display.setCurrentIndex(win.display.findData(key))


def test_completion_mode_with_the_base_model(qtbot, make_window, gemma_path):
    from chatapp.engine.vocab import VocabTokenizer
    from chatapp.service import default_backend_factory

    w = make_window(engine_factory=default_backend_factory, extensions=EXT)
    w.settings.seed = 7
    with qtbot.waitSignal(w.session.model_loaded, timeout=120000):
        w.open_model(str(gemma_path))
    # the window suggests completion mode for a model without a chat template
    bar = w.message_bar
    assert bar.isVisible() and "base model" in bar.label.text()
    assert bar.action_button.isVisible()
    bar.action_button.click()
    win = w.completion_window
    assert isinstance(win, CompletionWindow) and win.isVisible()
    assert "base model" in win.model_line.text()

    text = "The three primary colours are red, yellow and"
    win.editor.setPlainText(text)
    win.max_tokens.setValue(12)
    win.temperature.setValue(0.0)
    with qtbot.waitSignal(win.finished, timeout=120000):
        assert win.run()
        assert win.editor.isReadOnly()  # no edits while the model writes into it
    result = win.last_result
    assert result is not None and result.stats.completion_tokens > 0
    assert not win.editor.isReadOnly()

    # exactly BOS + the text's own tokens, nothing else
    vocab = VocabTokenizer(gemma_path)
    try:
        ids = [t for t, _ in vocab.tokenize(text)]
        bos = vocab._llm.token_bos()
    finally:
        vocab.close()
    assert list(result.prompt.tokens) == [bos, *ids]
    assert "BOS + your text" in win.status.text()
    # the continuation streamed into the document, after the text as written
    assert win.editor.toPlainText() == text + result.text

    # as tokens: the sent tokens (BOS marked special), then the generated ones
    qtbot.waitUntil(lambda: win._sent_ready, timeout=30000)
    _set_display(win, TOKENS)
    spans, lead = win.spans()
    assert lead == len(ids) + 1 and spans[0].special
    assert len(spans) == lead + result.stats.completion_tokens
    html = win.tokens_view.toHtml()
    assert len(re.findall(r"<a name=", html)) == len(spans)
    # by confidence: at temperature 0 every generated token was the sampler's only choice,
    # and the raw probability is there beside it
    _set_display(win, CONFIDENCE)
    generated = spans[lead:]
    assert all(s.probability is not None and s.raw_probability is not None for s in generated)
    assert all(s.probability == pytest.approx(1.0) for s in generated)
    assert "probability as sampled" in win.legend.text()
    assert "temperature 0" in win.legend.text()  # the settings that shaped them

    # the document is kept for next time
    win.close()
    again = CompletionWindow(w)
    assert again.editor.toPlainText() == text + result.text
    again.close()


def test_completion_mode_without_a_model_says_so(qtbot, make_window):
    w = make_window(extensions=EXT)
    win = open_completion(w)
    win.editor.setPlainText("Once upon a time")
    assert not win.run()
    assert "Load a model" in win.status.text()
    assert "No model loaded" in win.model_line.text()
