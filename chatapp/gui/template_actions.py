"""Menu entries for templates: "Chat > Show prompt…" and "Models > Edit chat template…".

install(window) is called once by the main window. Both ask the chat service for the
prompt (session.prepare_prompt): the very function the next send runs, on the loaded
model's own tokenizer, so what they show is exactly what is sent. The dialogs themselves
take plain data.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QCoreApplication, QObject, Signal
from PySide6.QtGui import QAction

from chatapp.core.backend import PreparedPrompt
from chatapp.core.errors import UserError
from chatapp.core.prompting import conversation_messages
from chatapp.core.templates import ChatTemplate
from chatapp.gui.prompt_view import PromptView
from chatapp.gui.template_editor import TemplateEditor

if TYPE_CHECKING:  # the window imports its extensions, not the reverse
    from chatapp.gui.mainwindow import MainWindow

log = logging.getLogger(__name__)


def current_template(window: MainWindow) -> tuple[ChatTemplate | None, Any] | None:
    """(template, model info) for the loaded model, as the next send will use it."""
    info = window.model_info()
    if info is None:
        window.show_error(
            QCoreApplication.translate(
                "TemplateActions", "Load a model first: the prompt depends on the model's template."
            )
        )
        return None
    return window.session.template, info


def _system_prompt(window: MainWindow, conversation: Any) -> str:
    if conversation is not None and conversation.system_prompt:
        return str(conversation.system_prompt)
    return str(window.settings.system_prompt or "")


def _decode(pairs: list[tuple[int, bytes]]) -> list[tuple[int, str]]:
    return [(i, b.decode("utf-8", errors="replace")) for i, b in pairs]


class TemplateActions(QObject):
    prompt_view_opened = Signal(object)  # PromptView, once the prompt is prepared

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.show_prompt_action = QAction(self.tr("Show prompt…"), window)
        self.show_prompt_action.setShortcut("Ctrl+Shift+P")
        self.show_prompt_action.triggered.connect(lambda: self.show_prompt())
        self.edit_template_action = QAction(self.tr("Edit chat template…"), window)
        self.edit_template_action.triggered.connect(lambda: self.edit_template())
        window.menus["chat"].addAction(self.show_prompt_action)
        window.menus["models"].addAction(self.edit_template_action)
        self.dialogs: list[Any] = []  # keep open dialogs alive

    def show_prompt(self) -> bool:
        """Prepare the next answer's prompt exactly as a send would (with the text in the
        input box as the next message, if any) and show it with its token ids."""
        resolved = current_template(self.window)
        if resolved is None:
            return False
        _template, info = resolved
        session = self.window.session
        draft = self.window.input.toPlainText() if hasattr(self.window, "input") else ""

        def shown(prepared: PreparedPrompt) -> None:
            template = prepared.template
            view = PromptView(
                prepared.text,
                warning=prepared.warning,
                template_name=f"{template.name} ({template.source})",
                special_tokens=(info.bos_token, info.eos_token, *template.stop_markers),
                text_spans=prepared.text_spans,
                parent=self.window,
            )
            self._keep(view)
            if prepared.tokens_known:
                session.bridge.when_done(
                    session.service.describe_tokens(prepared.tokens),
                    # the dialog may be closed (and deleted) before the tokens come
                    lambda pairs: view.set_tokens(_decode(pairs)) if view in self.dialogs else None,
                    lambda e: view.set_tokens_error(str(e)) if view in self.dialogs else None,
                )
            else:
                view.set_tokens_error(
                    self.tr("The remote server does not report the prompt's tokens.")
                )
            view.show()
            self.prompt_view_opened.emit(view)

        session.prepare_prompt(shown, self._error, draft=draft)
        return True

    def _error(self, e: BaseException) -> None:
        if isinstance(e, UserError):
            self.window.show_error(str(e))
        else:
            log.error("preparing the prompt failed", exc_info=e)
            self.window.show_error(self.tr("Could not prepare the prompt: {error}").format(error=e))

    def edit_template(self) -> TemplateEditor | None:
        info = self.window.model_info()
        if info is None:
            self.window.show_error(
                self.tr("Load a model first: templates are kept per model file.")
            )
            return None
        conv_id = self.window.current_conversation_id()
        conversation = self.window.store.get_conversation(conv_id) if conv_id else None
        branch = self.window.store.active_thread(conv_id) if conv_id else []
        session = self.window.session

        messages = conversation_messages(branch) or [{"role": "user", "content": "Hello!"}]
        system = _system_prompt(self.window, conversation)

        def prepare(text: str, on_done: Any, on_error: Any) -> None:
            # the very function the next send runs, with this text as the user template
            if conv_id:
                session.prepare_prompt(on_done, on_error, user_template=text, use_saved=False)
            else:
                fut = session.service.prepare(messages, system, user_template=text)
                session.bridge.when_done(fut, on_done, on_error)

        editor = TemplateEditor(
            Path(info.path).name,
            self.window.model_metadata() or info.metadata,
            self.window.settings,
            self._saved,
            messages=messages,
            system_prompt=system,
            bos_token=info.bos_token,
            eos_token=info.eos_token,
            prepare=prepare,
            parent=self.window,
        )
        self._keep(editor)
        editor.show()
        return editor

    def _saved(self) -> None:
        self.window.save_settings()
        model = self.window.model_info()
        if model is not None:
            self.window.session.set_user_template(
                self.window.settings.user_templates.get(Path(model.path).name)
            )

    def _keep(self, dialog: Any) -> None:
        self.dialogs.append(dialog)
        dialog.finished.connect(lambda _result, d=dialog: self._forget(d))

    def _forget(self, dialog: Any) -> None:
        if dialog in self.dialogs:
            self.dialogs.remove(dialog)
        dialog.deleteLater()


def install(window: MainWindow) -> TemplateActions:
    """Add the template menu entries to the main window (called once at start-up)."""
    actions = TemplateActions(window)
    window.template_actions = actions
    return actions
