"""Chat > Answer tokens and probabilities…: the last answer of the conversation on screen,
coloured by how sure the model was of each token (a heat map with a legend, sampled or
raw probabilities, or the plain token view); click a token for the candidates it was
drawn from, pick one and branch: the answer is regenerated from there as a new branch.

A dialog of its own until the message view shows the same inline (core.tokenview renders
both). It takes plain data: the answer's TokenTrace and a branch callback.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QCoreApplication, QEvent, Qt, QTimer, QUrl
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QButtonGroup,
    QDialog,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QRadioButton,
    QSplitter,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from chatapp.core import tokenview as tv
from chatapp.core.conversation import Message, Role
from chatapp.core.logprobs import TokenTrace
from chatapp.gui.tokenizer_playground import palette_colors

if TYPE_CHECKING:  # the window imports its extensions, not the reverse
    from chatapp.gui.mainwindow import MainWindow

log = logging.getLogger(__name__)

BranchFn = Callable[[int, int], None]  # (position, token id)


class AnswerTokensDialog(QDialog):
    def __init__(
        self,
        trace: TokenTrace,
        special: Callable[[int], bool] = lambda _t: False,
        on_branch: BranchFn | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle(self.tr("Answer tokens and probabilities"))
        self.resize(980, 620)
        self.trace = trace
        self.spans = tv.spans_from_trace(trace, special)
        self._on_branch = on_branch
        self.position: int | None = None

        lay = QVBoxLayout(self)
        explain = QLabel(tv.EXPLAIN_PROBABILITIES + "\n\n" + tv.EXPLAIN_SAMPLING)
        explain.setWordWrap(True)
        lay.addWidget(explain)
        modes = QHBoxLayout()
        self.mode_group = QButtonGroup(self)
        for i, name in enumerate(
            (self.tr("Sampled probability"), self.tr("Raw probability"), self.tr("Tokens"))
        ):
            b = QRadioButton(name)
            self.mode_group.addButton(b, i)
            modes.addWidget(b)
        self.mode_group.button(0).setChecked(True)
        modes.addStretch(1)
        lay.addLayout(modes)
        self.legend = QLabel()
        lay.addWidget(self.legend)

        split = QSplitter(Qt.Orientation.Horizontal)
        self.view = QTextBrowser()
        self.view.setOpenLinks(False)
        self.view.anchorClicked.connect(self._clicked)
        split.addWidget(self.view)
        side = QWidget()
        sl = QVBoxLayout(side)
        sl.setContentsMargins(0, 0, 0, 0)
        self.picked = QLabel(self.tr("Click a token to see the candidates it was drawn from."))
        self.picked.setWordWrap(True)
        sl.addWidget(self.picked)
        self.alternatives = QListWidget()
        self.alternatives.setAccessibleName(self.tr("Candidates for this token"))
        # two short lines per candidate, wrapped to the list: nothing cut on the right
        self.alternatives.setWordWrap(True)
        self.alternatives.setTextElideMode(Qt.TextElideMode.ElideNone)
        self.alternatives.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.alternatives.setResizeMode(QListWidget.ResizeMode.Adjust)
        fm = self.alternatives.fontMetrics()
        side.setMinimumWidth(fm.horizontalAdvance("raw 100.0% · sampled 100.0%") + 4 * fm.height())
        sl.addWidget(self.alternatives, 1)
        self.branch_button = QPushButton(self.tr("Branch from here with this token"))
        self.branch_button.setEnabled(False)
        self.branch_button.clicked.connect(self._branch)
        sl.addWidget(self.branch_button)
        if on_branch is None:
            self.branch_button.setToolTip(
                self.tr("Load the model that wrote this answer to branch.")
            )
        split.addWidget(side)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 1)
        lay.addWidget(split, 1)
        self.alternatives.currentItemChanged.connect(self._alt_changed)
        self.mode_group.idClicked.connect(lambda _i: self.redraw())
        self.redraw()

    @property
    def mode(self) -> int:
        return self.mode_group.checkedId()

    def redraw(self) -> None:
        colors = palette_colors(self)
        # tokens are links so a click can pick one (the href carries the index)
        if self.mode == 2:
            body = tv.token_view_html(self.spans, colors, links=True)
            self.legend.setText(self.tr("{n} tokens").format(n=len(self.spans)))
        else:
            raw = self.mode == 1
            body = tv.heatmap_html(self.spans, colors, raw=raw, links=True)
            self.legend.setText(tv.legend_html(colors, dict(self.trace.sampling), raw=raw))
        self.view.setHtml(body)

    def _clicked(self, url: QUrl) -> None:
        text = url.toString()
        if text.startswith("tok:"):
            self.pick(int(text[4:]))

    def pick(self, position: int) -> None:
        """Show the candidates at a token position (raw top N with sampled probability)."""
        self.position = position
        step = self.trace.steps[position]
        span = self.spans[position]
        self.picked.setText(
            self.tr("Token {n}: {label}").format(n=position + 1, label=repr(span.label))
            + (
                self.tr(", {p:.1f}% as sampled").format(p=100 * span.probability)
                if span.probability is not None
                else ""
            )
        )
        self.alternatives.clear()
        sampled = dict(step.sampled_top)
        for token_id, lp in step.top:
            p_s = sampled.get(token_id)
            s_text = f"{100 * math.exp(p_s):.1f}%" if p_s is not None else self.tr("cut")
            label = tv.token_label(self.trace.data(token_id))
            item = QListWidgetItem(
                repr(label)
                + (self.tr("  (chosen)") if token_id == step.token_id else "")
                + "\n"
                + self.tr("raw {p:.1f}% · sampled {sampled}").format(
                    p=100 * math.exp(lp), sampled=s_text
                )
            )
            item.setData(Qt.ItemDataRole.UserRole, token_id)
            self.alternatives.addItem(item)

    def _alt_changed(self, item: QListWidgetItem | None, _prev: Any) -> None:
        ok = item is not None and self._on_branch is not None and self.position is not None
        if ok and item is not None and self.position is not None:
            ok = item.data(Qt.ItemDataRole.UserRole) != self.trace.steps[self.position].token_id
        self.branch_button.setEnabled(bool(ok))

    def _branch(self) -> None:
        item = self.alternatives.currentItem()
        if item is None or self.position is None or self._on_branch is None:
            return
        self._on_branch(self.position, int(item.data(Qt.ItemDataRole.UserRole)))
        self.accept()

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        # a theme switch: the token colours come from the palette, so draw them again
        # (later: the children get the new palette after this window)
        if event.type() == QEvent.Type.PaletteChange and hasattr(self, "branch_button"):
            QTimer.singleShot(0, self, self.redraw)


def install(window: MainWindow) -> QAction:
    action = QAction(
        QCoreApplication.translate("AnswerTokensDialog", "Answer &tokens and probabilities…"),
        window,
    )
    action.triggered.connect(lambda: open_for_last_answer(window))
    window.menus["chat"].addAction(action)
    window.answer_tokens_action = action
    return action


def open_for_last_answer(window: MainWindow) -> AnswerTokensDialog | None:
    session = window.session
    answers = [m for m in session.thread() if m.role is Role.ASSISTANT]
    if not answers:
        window.show_error(
            QCoreApplication.translate(
                "AnswerTokensDialog", "There is no answer in this conversation yet."
            )
        )
        return None
    return open_for_answer(window, answers[-1])


def open_for_answer(
    window: MainWindow, answer: Message, position: int | None = None
) -> AnswerTokensDialog | None:
    """An answer's tokens and probabilities; with `position`, that token's candidates
    shown (a click on a token in the message view)."""
    session = window.session
    trace = window.store.token_trace(answer.id)
    if trace is None:
        window.show_error(
            QCoreApplication.translate(
                "AnswerTokensDialog",
                "This answer has no recorded tokens (made before chatapp kept them).",
            )
        )
        return None
    info = window.model_info()
    same_model = info is not None and answer.meta.get("model_path") in (None, info.path)

    def special(token_id: int) -> bool:
        return tv.is_special_token(info, token_id, trace.data(token_id))

    def branch(position: int, token_id: int) -> None:
        if session.busy:
            window.show_error(
                QCoreApplication.translate(
                    "AnswerTokensDialog", "An answer is still streaming: stop it first (Esc)."
                )
            )
            return
        handle = session.service.branch_from(
            answer.id, position, token_id, listener=session.bridge.turn_listener()
        )
        session._track(handle)  # as regenerate does: the view follows the new branch

    dlg = AnswerTokensDialog(trace, special, branch if same_model else None, parent=window)
    dlg.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    if position is not None and 0 <= position < len(trace.steps):
        dlg.pick(position)
    dlg.show()
    return dlg
