"""Token displays inside the message view (View > Messages as, a message's Show as): the
heat map of an answer, live while it streams, a click on a token opening its candidates
and branching from one; typed messages and the input box as the real model's tokens."""

from __future__ import annotations

import re

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox, QToolTip

from chatapp.core import tokenview as tv
from chatapp.core.conversation import Role
from chatapp.gui.answer_tokens import AnswerTokensDialog
from chatapp.gui.chatview.tokens import CONFIDENCE, RAW, TEXT, TOKENS

EXT = (
    "chatapp.gui.answer_tokens",
    "chatapp.gui.message_tokens",
    "chatapp.gui.input_tokens",
    "chatapp.gui.branch_actions",
)


def _send(qtbot, w, text, timeout=20000):
    with qtbot.waitSignal(w.session.reply_finished, timeout=timeout):
        w.input.setPlainText(text)
        qtbot.keyClick(w.input, Qt.Key.Key_Return)


def _rows(w, role):
    return [r for r in w.message_view.widgets() if r.role is role]


def _shown_tokens(lay) -> list[str]:
    """Each token's text as the row's document holds it, found by the offsets the view
    uses to tell which token is under the mouse."""
    text = lay.body.toPlainText()
    base, off = lay.token_base, lay.token_offsets
    return [text[base + off[i] : base + off[i + 1]] for i in range(len(off) - 1)]


def _expected(spans) -> list[str]:
    return [(s.label or "\u00a0") + ("\n" if s.data.endswith(b"\n") else "") for s in spans]


def _answered(qtbot, make_window, model_file, **engine_kw):
    """The real window over the scripted engine, after one question and its answer."""
    w = make_window(extensions=EXT, **engine_kw)
    with qtbot.waitSignal(w.session.model_loaded, timeout=10000):
        w.open_model(str(model_file))
    _send(qtbot, w, "Hello")
    return w


def test_the_heat_map_of_an_answer_in_the_message_view(qtbot, make_window, fake_model_file):
    w = _answered(qtbot, make_window, fake_model_file, reply="abcd")
    view = w.message_view
    answer = _rows(w, Role.ASSISTANT)[-1]
    assert view.row_layout(answer.message_id).html.count("tok:") == 0  # text by default

    w.message_display_actions[CONFIDENCE].trigger()  # View > Messages as > Confidence
    assert view.default_display == CONFIDENCE
    qtbot.waitUntil(lambda: answer.spans is not None, timeout=5000)
    lay = view.row_layout(answer.message_id)
    assert _shown_tokens(lay) == ["a", "b", "c", "d"]  # found by position, token by token
    assert "probability as sampled" in lay.html and "shaped by" in lay.html
    assert "temperature 0.7" in lay.html  # the settings that shaped the probabilities
    # the scripted engine reports the raw distribution only (the real model's sampled
    # one is checked with SmolLM2 below)
    assert all(s.raw_probability is not None for s in answer.spans)
    assert tv.spans_text(answer.spans) == "abcd"
    # the raw distribution beside the sampled one
    view.set_display(answer.message_id, RAW)
    assert "raw probability" in view.row_layout(answer.message_id).html
    # hovering a token names its id, bytes, probability and candidates
    pt = view.token_point(answer.message_id, 1)
    assert pt is not None
    qtbot.mouseMove(view.viewport(), pt)
    qtbot.waitUntil(lambda: QToolTip.isVisible(), timeout=3000)
    tip = QToolTip.text()
    assert tip == view.token_tooltip(answer, "tok:1")
    assert "id 99" in tip and "raw probability 50.0%" in tip and "raw top: 'b' 50.0%" in tip
    # a typed message has no probabilities: the fake model's file has no vocabulary
    # to read, so the view says why there are no tokens instead of showing nothing
    question = _rows(w, Role.USER)[-1]
    qtbot.waitUntil(lambda: bool(question.spans_note) or question.spans is not None)
    assert "vocabulary" in question.spans_note
    # back to text
    w.message_display_actions[TEXT].trigger()
    assert view.row_layout(answer.message_id).token_offsets == []


def test_a_click_on_a_token_opens_its_candidates_and_branches(qtbot, make_window, fake_model_file):
    w = _answered(qtbot, make_window, fake_model_file, reply="abcd")
    view = w.message_view
    first = _rows(w, Role.ASSISTANT)[-1]
    view.set_display(first.message_id, TOKENS)  # the answer's own Show as
    qtbot.waitUntil(lambda: first.spans is not None, timeout=5000)
    assert "4 tokens" in view.row_layout(first.message_id).html
    pt = view.token_point(first.message_id, 1)
    assert pt is not None and view.viewport().rect().contains(pt)
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=pt)
    dlg = w.findChildren(AnswerTokensDialog)[-1]
    assert dlg.position == 1 and "'b'" in dlg.picked.text()
    dlg.alternatives.setCurrentRow(1)  # the fake's runner-up after "b" is "c"
    with qtbot.waitSignal(w.session.reply_finished, timeout=20000):
        dlg.branch_button.click()
    answer = _rows(w, Role.ASSISTANT)[-1]
    assert answer.message_id != first.message_id
    assert answer.text == "ac" + "abcd"  # kept "a", forced "c", then the fake's reply
    # the new branch is shown as tokens too (the display belongs to the row), and its
    # first two tokens are marked as kept from the answer it came from
    view.set_display(answer.message_id, TOKENS)
    qtbot.waitUntil(lambda: answer.spans is not None, timeout=5000)
    assert [s.forced for s in answer.spans[:3]] == [True, True, False]


def test_the_heat_map_follows_a_streaming_answer(qtbot, make_window, fake_model_file):
    w = make_window(reply="x" * 60, delay=0.02, extensions=EXT)
    with qtbot.waitSignal(w.session.model_loaded, timeout=10000):
        w.open_model(str(fake_model_file))
    view = w.message_view
    view.set_default_display(CONFIDENCE)
    seen: list[int] = []

    def painted_while_streaming() -> bool:
        """The tokens laid out in the streaming row, each time it is looked at."""
        rows = _rows(w, Role.ASSISTANT)
        if not rows or not rows[-1].streaming:
            return False
        lay = view.row_layout(rows[-1].message_id)
        shown = _shown_tokens(lay) if lay.token_offsets else []
        assert shown == ["x"] * len(shown)  # in order, none missing
        if shown and (not seen or len(shown) != seen[-1]):
            seen.append(len(shown))
        return len(seen) >= 2

    w.input.setPlainText("Go")
    with qtbot.waitSignal(w.session.reply_finished, timeout=20000):
        qtbot.keyClick(w.input, Qt.Key.Key_Return)
        qtbot.waitUntil(painted_while_streaming, timeout=10000)
        answer = _rows(w, Role.ASSISTANT)[-1]
    assert 0 < seen[0] < seen[1] < 60  # the heat map grew with the answer
    # saved: the stored trace replaces the stream's
    qtbot.waitUntil(lambda: answer.spans is not None and len(answer.spans) == 60, timeout=5000)
    assert _shown_tokens(view.row_layout(answer.message_id)) == ["x"] * 60


def test_explanations_open_beside_the_views(qtbot, make_window, fake_model_file):
    w = make_window(extensions=EXT)
    box = w.message_view.explain("probabilities")
    assert isinstance(box, QMessageBox) and "top-k" in box.text()
    box.close()
    box = w.message_view.explain("tokens")
    assert "byte-pair" in box.text()
    box.close()


@pytest.mark.model
def test_typed_text_as_the_real_models_tokens(qtbot, make_window, smollm2_path):
    from chatapp.engine.vocab import VocabTokenizer
    from chatapp.service import default_backend_factory

    w = make_window(engine_factory=default_backend_factory, extensions=EXT)
    w.settings.max_tokens = 8
    w.settings.seed = 1
    with qtbot.waitSignal(w.message_tokens.tokenizer.ready, timeout=120000):
        w.open_model(str(smollm2_path))
    qtbot.waitUntil(lambda: w.message_tokens.tokenizer.available, timeout=30000)
    text = "Llamas 🦙 eat grass; café, naïve, 日本語."
    vocab = VocabTokenizer(smollm2_path)
    try:
        expected = vocab.tokenize(text)
    finally:
        vocab.close()

    # the input box: a live count, and its tokens on demand
    box = w.input_tokens
    w.input.setPlainText(text)
    qtbot.waitUntil(lambda: box.count == len(expected), timeout=5000)
    assert box.label.text() == f"{len(expected)} tokens"
    box.toggle.click()
    assert box.preview.isVisible()
    assert len(re.findall(r'name="tok\d+"', box.preview.toHtml())) == len(expected)
    # the service (the model itself) cuts it the same way
    assert w.session.service.tokenize(text).result(timeout=30) == expected

    _send(qtbot, w, text, timeout=120000)
    question = _rows(w, Role.USER)[-1]
    w.message_view.set_display(question.message_id, TOKENS)
    qtbot.waitUntil(lambda: question.spans is not None, timeout=5000)
    spans = question.spans
    assert [(s.token_id, s.data) for s in spans] == expected
    # the token view round-trips to the same text, multi-byte characters included, and
    # a character split across tokens is shown as its bytes, honestly
    assert tv.spans_text(spans) == text
    assert b"".join(tv.label_bytes(s.label) for s in spans) == text.encode("utf-8")
    split = [s for s in spans if s.note]
    assert split, "the emoji or the Japanese is split across tokens by SmolLM2"
    assert all("\\x" in s.label for s in split)
    lay = w.message_view.row_layout(question.message_id)
    assert _shown_tokens(lay) == _expected(spans)  # emoji count twice in Qt's positions
    # the mouse finds each token where it is drawn
    for i in range(len(spans)):
        r = lay.token_rect(i)
        assert r is not None and lay.token_at(r.center()) == i

    # the real answer's heat map: probabilities from the sampler, one per token
    answer = _rows(w, Role.ASSISTANT)[-1]
    w.message_view.set_display(answer.message_id, CONFIDENCE)
    qtbot.waitUntil(lambda: answer.spans is not None, timeout=5000)
    assert answer.spans and all(0 < s.probability <= 1 for s in answer.spans)
    assert tv.spans_text(answer.spans).startswith(answer.text)


def test_streamed_spans_match_the_whole_answer_however_the_chunks_fall():
    """The live spans are built a batch at a time; characters split across tokens at a
    batch boundary get the same notes as when the whole answer is looked at once."""
    import random

    from chatapp.core.backend import Chunk, TokenAlternative
    from chatapp.gui.message_tokens import _Live

    text = "Llamas 🦙 eat grass; café, naïve, 日本語 🦙🦙."
    raw = text.encode("utf-8")
    datas, i = [], 0
    rng = random.Random(5)
    while i < len(raw):  # tokens of 1-3 bytes, cutting characters anywhere
        n = rng.randint(1, 3)
        datas.append(raw[i : i + n])
        i += n
    chunks = [
        Chunk(
            text="",
            token_id=1000 + k,
            logprob=-0.5,
            top=(TokenAlternative(1000 + k, "x", -0.5),),
            sampled_logprob=-0.25,
            sampled_top=(TokenAlternative(1000 + k, "x", -0.25),),
            data=d,
        )
        for k, d in enumerate(datas)
    ]
    expected = tv.split_characters(datas)
    assert sum(1 for n in expected if n) >= 6  # the test really splits characters
    for seed in range(20):
        live, k, r = _Live(), 0, random.Random(seed)
        while k < len(chunks):
            n = r.randint(1, 4)
            live.add(chunks[k : k + n])
            live.spans  # looked at between batches, as the view does  # noqa: B018
            k += n
        assert [s.note for s in live.spans] == expected
        assert [s.index for s in live.spans] == list(range(len(chunks)))
    assert tv.spans_text(live.spans) == text
    assert live.spans[0].probability == pytest.approx(0.7788, abs=1e-4)


def test_a_2000_message_chat_as_tokens_reads_only_what_is_on_screen(
    qtbot, make_window, fake_model_file
):
    """Switching a long chat to a token display asks for the tokens of the rows near the
    screen, not of all 2,000 messages; scrolling to the top asks for those there."""
    from tests.gui.helpers_view import fill, open_conversation

    w = make_window(extensions=EXT)
    w.resize(1000, 700)
    cid = fill(w.store, 1000)
    open_conversation(w, cid)
    view = w.message_view
    asked: list[str] = []
    view.spans_requested.connect(asked.append)
    view.set_default_display(TOKENS)
    rows = view.widgets()
    assert len(rows) == 2000
    qtbot.waitUntil(lambda: rows[-1].spans is not None or bool(rows[-1].spans_note))
    assert 0 < len(asked) < 100  # the rows near the bottom, where the view is
    assert rows[-1].message_id in asked and rows[0].message_id not in asked
    view.scroll_to_message(rows[0].message_id)
    qtbot.waitUntil(lambda: rows[0].message_id in asked)
    assert len(asked) < 200


def test_a_continued_answer_streams_on_after_its_first_tokens(qtbot, make_window, fake_model_file):
    """Continue (issue 23.3): while the rest streams, the heat map starts at the answer's
    start, not mid-answer; saved, it holds both parts' tokens."""
    w = make_window(reply="x" * 40, delay=0.02, extensions=EXT)
    with qtbot.waitSignal(w.session.model_loaded, timeout=10000):
        w.open_model(str(fake_model_file))
    view = w.message_view
    view.set_default_display(CONFIDENCE)
    w.input.setPlainText("Go")
    with qtbot.waitSignal(w.session.reply_finished, timeout=20000):
        qtbot.keyClick(w.input, Qt.Key.Key_Return)
        qtbot.waitUntil(lambda: len(w.session._streaming.text) >= 8, timeout=10000)
        w.session.stop()
    answer_id = _rows(w, Role.ASSISTANT)[-1].message_id
    first = w.store.token_trace(answer_id)
    assert first is not None and 8 <= len(first.steps) < 40
    painted: list[int] = []

    def streaming_rest() -> bool:
        row = view.widget_for(answer_id)
        if row is None or not row.streaming:
            return False
        lay = view.row_layout(answer_id)
        if lay.token_offsets:
            painted.append(len(_shown_tokens(lay)))
        return len(painted) >= 2 and painted[-1] > painted[0]

    with qtbot.waitSignal(w.session.reply_finished, timeout=20000):
        assert w.session.continue_answer(answer_id)
        qtbot.waitUntil(streaming_rest, timeout=10000)
    assert all(n >= len(first.steps) for n in painted), (
        painted,
        len(first.steps),
    )  # first part first
    whole = w.store.token_trace(answer_id)
    assert whole is not None and len(whole.steps) == len(first.steps) + 40
    row = view.widget_for(answer_id)
    qtbot.waitUntil(lambda: row.spans is not None and len(row.spans) == len(whole.steps))
