"""Chat > Answer tokens and probabilities in the real window (scripted engine): the heat
map of the last answer, a token's candidates, and branching from one of them."""

from __future__ import annotations

import re

from PySide6.QtCore import Qt, QUrl

from chatapp.core.conversation import Role
from chatapp.gui.answer_tokens import AnswerTokensDialog


def _send(qtbot, w, text):
    with qtbot.waitSignal(w.session.reply_finished, timeout=20000):
        w.input.setPlainText(text)
        qtbot.keyClick(w.input, Qt.Key.Key_Return)


def test_heat_map_candidates_and_branch(qtbot, make_window, fake_model_file):
    w = make_window(reply="abcd", extensions=("chatapp.gui.answer_tokens",))
    with qtbot.waitSignal(w.session.model_loaded, timeout=10000):
        w.open_model(str(fake_model_file))
    _send(qtbot, w, "Hello")
    assert w.answer_tokens_action in w.menus["chat"].actions()
    w.answer_tokens_action.trigger()
    dlg = w.findChildren(AnswerTokensDialog)[-1]
    html = dlg.view.toHtml()
    assert len(re.findall(r'href="tok:\d+"', html)) == 4  # one link per generated token
    assert "probability as sampled" in dlg.legend.text()
    dlg.mode_group.button(2).click()  # the plain token view
    assert dlg.legend.text() == "4 tokens"
    dlg.view.anchorClicked.emit(QUrl("tok:1"))  # a click on the second token, "b"
    assert dlg.position == 1 and "'b'" in dlg.picked.text()
    texts = [dlg.alternatives.item(i).text() for i in range(dlg.alternatives.count())]
    assert len(texts) == 5 and "(chosen)" in texts[0]
    assert not dlg.branch_button.isEnabled()
    dlg.alternatives.setCurrentRow(0)
    assert not dlg.branch_button.isEnabled()  # the token already there: nothing to branch
    dlg.alternatives.setCurrentRow(1)  # the fake's runner-up after "b" is "c"
    assert dlg.branch_button.isEnabled()
    first = [m for m in w.session.thread() if m.role is Role.ASSISTANT][-1]
    with qtbot.waitSignal(w.session.reply_finished, timeout=20000):
        dlg.branch_button.click()
    answer = [m for m in w.session.thread() if m.role is Role.ASSISTANT][-1]
    assert answer.id != first.id and answer.parent_id == first.parent_id
    assert answer.content == "ac" + "abcd"  # kept "a", forced "c", then the fake's reply
    assert answer.meta["branched_from"]["position"] == 1


def test_an_answer_without_tokens_says_so(qtbot, make_window, fake_model_file):
    w = make_window(reply="ab", extensions=("chatapp.gui.answer_tokens",))
    errors = []
    w.show_error = errors.append  # type: ignore[method-assign]
    w.answer_tokens_action.trigger()
    assert errors == ["There is no answer in this conversation yet."]
