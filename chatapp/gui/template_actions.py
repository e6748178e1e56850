"""Menu entries for templates: "Chat > Show prompt…" and "Models > Edit chat template…".

install(window) is called once by the main window. Everything here goes through the
window's small public surface (store, settings, model_info/model_metadata, menus,
run_in_background, show_error); the dialogs themselves take plain data.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from PySide6.QtGui import QAction

from chatapp.core.chat import template_for_model
from chatapp.core.errors import UserError
from chatapp.core.prompting import PromptResult, conversation_messages, prompt_for_thread
from chatapp.core.templates import ChatTemplate
from chatapp.gui.prompt_view import PromptView
from chatapp.gui.template_editor import TemplateEditor

log = logging.getLogger(__name__)


class Vocabularies:
    """Vocabulary-only llama.cpp loads, one per model file, for counting and listing
    tokens without touching the inference worker's model. Loaded off the GUI thread.

    To be replaced by the engine's tokenize() once the worker offers it to the GUI."""

    def __init__(self) -> None:
        self._loaded: dict[str, Any] = {}
        self._lock = threading.Lock()

    def get(self, path: str) -> Any | None:
        with self._lock:
            return self._loaded.get(path)

    def load(self, path: str) -> Any:
        """Blocking: call from a background thread."""
        existing = self.get(path)
        if existing is not None:
            return existing
        import llama_cpp

        vocab = llama_cpp.Llama(model_path=path, vocab_only=True, verbose=False)
        with self._lock:
            self._loaded.setdefault(path, vocab)
            return self._loaded[path]

    def tokenize(self, path: str, text: str) -> list[tuple[int, str]]:
        vocab = self.load(path)
        with self._lock:
            ids = vocab.tokenize(text.encode("utf-8"), add_bos=False, special=True)
            return [
                (i, vocab.detokenize([i], special=True).decode("utf-8", errors="replace"))
                for i in ids
            ]

    def count(self, path: str, text: str) -> int | None:
        vocab = self.get(path)
        if vocab is None:
            return None
        with self._lock:
            return len(vocab.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    def close(self) -> None:
        with self._lock:
            for vocab in self._loaded.values():
                vocab.close()
            self._loaded.clear()


def current_template(window: Any) -> tuple[ChatTemplate, Any] | None:
    """(template, model info) for the loaded model, resolved as the chat does it."""
    info = window.model_info()
    if info is None:
        window.show_error("Load a model first: the prompt depends on the model's template.")
        return None
    model_file = Path(info.path).name
    template = template_for_model(info, window.settings.user_templates.get(model_file))
    return template, info


def _system_prompt(window: Any, conversation: Any) -> str:
    if conversation is not None and conversation.system_prompt:
        return str(conversation.system_prompt)
    return str(window.settings.system_prompt or "")


def prompt_for_window(window: Any) -> tuple[PromptResult, ChatTemplate, Any] | None:
    resolved = current_template(window)
    if resolved is None:
        return None
    template, info = resolved
    conv_id = window.current_conversation_id()
    conversation = window.store.get_conversation(conv_id) if conv_id else None
    branch = window.store.active_thread(conv_id) if conv_id else []
    result = prompt_for_thread(
        template,
        _system_prompt(window, conversation),
        branch,
        bos_token=info.bos_token,
        eos_token=info.eos_token,
    )
    return result, template, info


class TemplateActions:
    def __init__(self, window: Any) -> None:
        self.window = window
        self.vocabularies = Vocabularies()
        self.show_prompt_action = QAction("Show prompt…", window)
        self.show_prompt_action.triggered.connect(self.show_prompt)
        self.edit_template_action = QAction("Edit chat template…", window)
        self.edit_template_action.triggered.connect(self.edit_template)
        window.menus["chat"].addAction(self.show_prompt_action)
        window.menus["models"].addAction(self.edit_template_action)
        self.dialogs: list[Any] = []  # keep open dialogs alive

    def show_prompt(self) -> PromptView | None:
        try:
            built = prompt_for_window(self.window)
        except UserError as e:
            self.window.show_error(str(e))
            return None
        if built is None:
            return None
        result, template, info = built
        view = PromptView(
            result.text,
            warning=result.warning,
            template_name=f"{template.name} ({template.source})",
            special_tokens=(info.bos_token, info.eos_token, *template.stop_markers),
            parent=self.window,
        )
        self._keep(view)
        self.window.run_in_background(
            lambda: self.vocabularies.tokenize(info.path, result.text),
            view.set_tokens,
            lambda e: view.set_tokens_error(str(e)),
        )
        view.show()
        return view

    def edit_template(self) -> TemplateEditor | None:
        info = self.window.model_info()
        if info is None:
            self.window.show_error("Load a model first: templates are kept per model file.")
            return None
        conv_id = self.window.current_conversation_id()
        conversation = self.window.store.get_conversation(conv_id) if conv_id else None
        branch = self.window.store.active_thread(conv_id) if conv_id else []
        path = info.path
        editor = TemplateEditor(
            Path(path).name,
            self.window.model_metadata() or info.metadata,
            self.window.settings,
            self.window.save_settings,
            messages=conversation_messages(branch) or None,
            system_prompt=_system_prompt(self.window, conversation),
            bos_token=info.bos_token,
            eos_token=info.eos_token,
            count_tokens=lambda text: self.vocabularies.count(path, text),
            parent=self.window,
        )
        self._keep(editor)
        if self.vocabularies.get(path) is None:
            self.window.run_in_background(
                lambda: self.vocabularies.load(path),
                lambda _vocab: editor.refresh_preview() if editor in self.dialogs else None,
                lambda e: log.warning("no vocabulary for token counts: %s", e),
            )
        editor.show()
        return editor

    def _keep(self, dialog: Any) -> None:
        self.dialogs.append(dialog)
        dialog.finished.connect(lambda _result, d=dialog: self._forget(d))

    def _forget(self, dialog: Any) -> None:
        if dialog in self.dialogs:
            self.dialogs.remove(dialog)
        dialog.deleteLater()


def install(window: Any) -> TemplateActions:
    """Add the template menu entries to the main window (called once at start-up)."""
    actions = TemplateActions(window)
    window._template_actions = actions
    return actions
