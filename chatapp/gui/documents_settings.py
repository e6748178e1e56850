"""Settings > Documents: how questions search the knowledge collections.

- RAG-Fusion: the chat model rephrases each question this many times before a
  collection is searched; every rephrasing is searched too and the lists are fused by
  reciprocal rank. Saved in settings.json as extra.documents.query_rewrites, which the
  window's next send reads and `chatapp chat` reads too (--rewrite-queries overrides).
- The embedding model for attached files too long to go in whole, as a line: it is
  chosen in the model manager (Embedding models › Use for documents).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtWidgets import QFormLayout, QLabel, QSpinBox, QVBoxLayout, QWidget

from chatapp.core.settings import Settings
from chatapp.gui.settings_dialog import add_settings_page

if TYPE_CHECKING:  # the window imports its extensions, not the reverse
    from chatapp.gui.documents_actions import DocumentsActions

MAX_REWRITES = 8  # as DocumentsStep and `chatapp chat --rewrite-queries` accept


class DocumentsSettingsPage(QWidget):
    """The page and its SettingsPage protocol (title, widget, apply)."""

    def __init__(self, settings: Settings, docs: DocumentsActions) -> None:
        super().__init__()
        self.setObjectName("documents_settings_page")
        self.docs = docs
        self.title = self.tr("Documents")
        self.widget: QWidget = self

        self.rewrites = QSpinBox()
        self.rewrites.setObjectName("query_rewrites")
        self.rewrites.setRange(0, MAX_REWRITES)
        self.rewrites.setSpecialValueText(self.tr("Off"))
        self.rewrites.setSuffix(self.tr(" rephrasings"))
        self.rewrites.setAccessibleName(self.tr("Rephrase each question (RAG-Fusion)"))
        self.rewrites.setAccessibleDescription(
            self.tr(
                "Before the chat's collections are searched, the chat model writes this many "
                "rephrasings of the question; each is searched too and the results are fused."
            )
        )
        self.rewrites.setToolTip(self.rewrites.accessibleDescription())
        self.rewrites.setValue(docs.query_rewrites())
        rewrites_note = QLabel(
            self.tr(
                "Finds passages worded differently from the question, at the cost of one "
                "short answer from the chat model per question. Applies to collections, "
                "not to attached files. <tt>chatapp chat</tt> uses it too "
                "(<tt>--rewrite-queries</tt> overrides it)."
            )
        )
        rewrites_note.setWordWrap(True)
        rewrites_note.setEnabled(False)

        model = docs.default_embedding_model()
        self.embedding = QLabel(
            model
            or self.tr("none: the parts of a long attached file are found by their words only")
        )
        self.embedding.setObjectName("attach_embedding_model")
        self.embedding.setWordWrap(True)
        embedding_note = QLabel(
            self.tr("Chosen in Models › Model manager › Embedding models (Use for documents).")
        )
        embedding_note.setWordWrap(True)
        embedding_note.setEnabled(False)

        form = QFormLayout()
        form.addRow(self.tr("&Rephrase each question:"), self.rewrites)
        form.addRow("", rewrites_note)
        form.addRow(self.tr("Embedding model for attached files:"), self.embedding)
        form.addRow("", embedding_note)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addStretch(1)

    def apply(self, settings: Settings) -> None:
        key = "documents"  # documents_actions.SETTINGS_KEY
        saved = settings.extra.get(key)
        settings.extra[key] = {
            **(saved if isinstance(saved, dict) else {}),
            "query_rewrites": self.rewrites.value(),
        }


def install_page(docs: DocumentsActions) -> None:
    add_settings_page(docs.window, lambda settings: DocumentsSettingsPage(settings, docs))
