"""View > Tokenizer playground in the real window with the real SmolLM2, compared with
the real Gemma 3 270M's tokenizer (vocabulary-only load)."""

from __future__ import annotations

import pytest

from chatapp.app import build_window
from chatapp.core import tokenview as tv
from chatapp.gui.tokenizer_playground import TokenizerPlayground

pytestmark = pytest.mark.model
TEXT = "Tokenizers split 東京 and 🦙 differently <|im_end|>"


def test_playground_shows_live_tokens_and_compares_two_models(qtbot, smollm2_path, gemma_path):
    w = build_window(model=str(smollm2_path))
    qtbot.addWidget(w)
    w.show()
    try:
        qtbot.waitUntil(lambda: w.session.model is not None, timeout=120000)
        action = w.tokenizer_playground_action
        assert action in w.menus["view"].actions()
        action.trigger()
        dlg = next(c for c in w.findChildren(TokenizerPlayground))
        qtbot.waitUntil(lambda: dlg.model_box.count() >= 1, timeout=10000)
        dlg.input.setPlainText(TEXT)  # typing: the count follows after a short pause
        qtbot.waitUntil(lambda: dlg.left.count.text().split()[:1] != [], timeout=60000)
        qtbot.waitUntil(lambda: bool(dlg.left.tokens), timeout=60000)
        left = dlg.left.tokens
        assert b"".join(d for _, d in left).decode() == TEXT
        assert dlg.left.count.text().startswith(f"{len(left)} tokens")
        assert "holding part of a character" in dlg.left.count.text()  # 🦙 is split
        im_end = [t for t, d in left if d == b"<|im_end|>"]
        assert len(im_end) == 1 and im_end[0] in dlg.left.special
        html = dlg.left.view.toHtml()
        assert "\\xf0\\x9f" in html  # the split emoji shown as its bytes
        # a second model's tokenizer beside it
        dlg.set_other_model(gemma_path)
        qtbot.waitUntil(lambda: bool(dlg.right.tokens), timeout=120000)
        right = dlg.right.tokens
        assert b"".join(d for _, d in right).decode() == TEXT
        assert len(right) != len(left) or right != left
        runs = tv.compare_tokenizations(left, right)
        assert runs and f"in {len(runs)} place" in dlg.diff.text()
        assert dlg.right.count.text().startswith(f"{len(right)} tokens")
        # the text changes: both sides follow
        dlg.input.setPlainText("Hello")
        qtbot.waitUntil(lambda: dlg.left.count.text().startswith("1 token"), timeout=60000)
        qtbot.waitUntil(lambda: dlg.right.count.text().startswith("1 token"), timeout=60000)
        assert "the same way" in dlg.diff.text()
        dlg.close()
    finally:
        w.close()
        w.store.close()
