"""Template editor, "Show prompt" view and their menu actions, with real data."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtWidgets import QMainWindow, QMenu

from chatapp.core.catalog.gguf import read_gguf
from chatapp.core.conversation import Role
from chatapp.core.settings import Settings
from chatapp.core.store import Store
from chatapp.core.token_engine import ModelInfo
from chatapp.gui import template_actions
from chatapp.gui.prompt_view import PromptView, TokenTableModel, special_spans
from chatapp.gui.template_editor import TemplateEditor

QWEN_META = {
    "general.architecture": "qwen2",
    "tokenizer.chat_template": (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
        "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    ),
}
MESSAGES = [{"role": "user", "content": "Hi"}]


def _editor(qtbot: Any, settings: Settings, saves: list[int], **kw: Any) -> TemplateEditor:
    editor = TemplateEditor(
        "model.gguf",
        kw.pop("metadata", QWEN_META),
        settings,
        lambda: saves.append(1),
        messages=MESSAGES,
        system_prompt="Be brief.",
        **kw,
    )
    qtbot.addWidget(editor)
    return editor


def test_special_spans() -> None:
    text = "<bos><start_of_turn>user\nHi<end_of_turn>\n<|im_start|>[INST]x</s>"
    found = [text[a : a + n] for a, n in special_spans(text, ["<bos>"])]
    assert found == ["<bos>", "<start_of_turn>", "<end_of_turn>", "<|im_start|>", "[INST]", "</s>"]


def test_token_table_model(qtmodeltester: Any) -> None:
    model = TokenTableModel([(1, "<|im_start|>"), (2, "user"), (3, "\n")])
    qtmodeltester.check(model)
    assert model.rowCount() == 3 and model.columnCount() == 3
    assert model.index(2, 2).data() == "\\n"
    model.set_tokens([])
    qtmodeltester.check(model)


def test_prompt_view_shows_text_and_tokens(qtbot: Any) -> None:
    view = PromptView("<|im_start|>user\nHi<|im_end|>\n", warning="merged", template_name="chatml")
    qtbot.addWidget(view)
    assert view.text_view.toPlainText() == "<|im_start|>user\nHi<|im_end|>\n"
    assert view.warning.text() == "merged"
    assert "Tokenizing" in view.tokens_status.text()
    view.set_tokens([(1, "<|im_start|>"), (2, "user")])
    assert view.token_model.rowCount() == 2 and "2 tokens" in view.summary.text()
    # the highlighter marks the special tokens in the first line
    layout = view.text_view.document().firstBlock().layout()
    qtbot.waitUntil(lambda: bool(layout.formats()))
    ranges = [(r.start, r.length) for r in layout.formats()]
    assert ranges == [(0, len("<|im_start|>"))]


def test_editor_live_preview_and_token_count(qtbot: Any) -> None:
    saves: list[int] = []
    editor = _editor(qtbot, Settings(), saves)
    assert editor.preview.toPlainText() == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    assert "tokens" in editor.status.text() and not editor.error
    editor.editor.setPlainText("{% for m in messages %}[{{ m['content'] }}]{% endfor %}")
    qtbot.waitUntil(lambda: editor.preview.toPlainText() == "[Be brief.][Hi]")
    assert "using your own" in editor.source_label.text().lower()


def test_syntax_error_shows_line_and_keeps_last_preview(qtbot: Any) -> None:
    editor = _editor(qtbot, Settings(), [])
    good = editor.preview.toPlainText()
    editor.set_text("line one\n{% for m in messages %}\n{{ m.content }\n")
    assert "line 3" in editor.status.text() or "line 2" in editor.status.text()
    assert editor.preview.toPlainText() == good
    assert not editor.save_button.isEnabled()
    assert editor.editor.extraSelections()  # the bad line is marked


def test_save_stores_per_model_and_broken_edits_are_never_saved(qtbot: Any) -> None:
    settings = Settings(user_templates={"model.gguf": "{{ 'old' }}"})
    saves: list[int] = []
    editor = _editor(qtbot, settings, saves)
    assert editor.text() == "{{ 'old' }}"
    editor.set_text("{% for i in range(10**12) %}{% endfor %}")
    editor.save()
    assert settings.user_templates["model.gguf"] == "{{ 'old' }}" and not saves
    assert "stopped" in editor.status.text()
    editor.set_text("{{ raise_exception('no') }}")
    editor.save()
    assert settings.user_templates["model.gguf"] == "{{ 'old' }}" and not saves
    editor.set_text("{{ messages|length }}")
    editor.save()
    assert settings.user_templates["model.gguf"] == "{{ messages|length }}" and saves == [1]


def test_reset_to_the_models_template_removes_the_override(qtbot: Any) -> None:
    settings = Settings(user_templates={"model.gguf": "{{ 'mine' }}"})
    editor = _editor(qtbot, settings, [])
    assert "file's" in editor.reset_button.text()
    editor.reset_to_default()
    assert editor.text() == QWEN_META["tokenizer.chat_template"]
    editor.save()
    assert "model.gguf" not in settings.user_templates


def test_reset_to_preset_for_a_model_without_template(qtbot: Any) -> None:
    editor = _editor(
        qtbot, Settings(), [], metadata={"general.architecture": "gemma3"}, bos_token="<bos>"
    )
    assert "gemma preset" in editor.reset_button.text()
    assert editor.preview.toPlainText().startswith("<bos><start_of_turn>user\nBe brief.\n\nHi")


# --- menu actions on a stand-in window ------------------------------------------------------


class FakeWindow(QMainWindow):
    """The main window's public surface, backed by real parts."""

    def __init__(self, store: Store, info: ModelInfo | None, metadata: dict[str, Any]) -> None:
        super().__init__()
        self.store = store
        self.settings = Settings(system_prompt="Be brief.")
        self.saved = 0
        self.errors: list[str] = []
        self.menus = {k: QMenu(k, self) for k in ("file", "chat", "models", "view", "help")}
        self._info = info
        self._metadata = metadata
        self.conversation_id: str | None = None

    def save_settings(self) -> None:
        self.saved += 1

    def current_conversation_id(self) -> str | None:
        return self.conversation_id

    def model_info(self) -> ModelInfo | None:
        return self._info

    def model_metadata(self) -> dict[str, Any]:
        return self._metadata

    def show_error(self, text: str) -> None:
        self.errors.append(text)

    def run_in_background(
        self,
        fn: Callable[[], Any],
        on_done: Callable[[Any], None],
        on_error: Callable[[Exception], None],
    ) -> None:
        try:
            result = fn()
        except Exception as e:  # noqa: BLE001 - handed to the caller like the real one
            on_error(e)
        else:
            on_done(result)


def _info(path: Path, metadata: dict[str, Any], bos: str, eos: str) -> ModelInfo:
    return ModelInfo(
        path=str(path),
        name=path.stem,
        architecture=str(metadata.get("general.architecture")),
        n_ctx=512,
        n_ctx_train=8192,
        n_vocab=0,
        bos_token=bos,
        eos_token=eos,
        eog_token_ids=frozenset(),
        add_bos=False,
        metadata=metadata,
    )


@pytest.fixture
def gemma_window(qtbot: Any, gemma_path: Path, tmp_path: Path) -> FakeWindow:
    meta = read_gguf(gemma_path).metadata
    store = Store(tmp_path / "chat.db")
    window = FakeWindow(store, _info(gemma_path, meta, "<bos>", "<eos>"), meta)
    qtbot.addWidget(window)
    conv = store.create_conversation("t")
    u = store.add_message(conv.id, Role.USER, "Hi")
    store.add_message(conv.id, Role.ASSISTANT, "Hello!", parent_id=u.id)
    window.conversation_id = conv.id
    return window


@pytest.mark.model
def test_install_adds_the_menu_entries(gemma_window: FakeWindow) -> None:
    actions = template_actions.install(gemma_window)
    assert actions.show_prompt_action in gemma_window.menus["chat"].actions()
    assert actions.edit_template_action in gemma_window.menus["models"].actions()


# Show prompt and the editor's preview through the real chat service and model:
# tests/gui/test_exact_prompt.py


def test_actions_without_a_model_say_so(qtbot: Any, tmp_path: Path) -> None:
    window = FakeWindow(Store(tmp_path / "c.db"), None, {})
    qtbot.addWidget(window)
    actions = template_actions.install(window)
    assert actions.show_prompt() is False and actions.edit_template() is None
    assert len(window.errors) == 2 and "Load a model first" in window.errors[0]


def test_prompt_view_can_show_whitespace(qtbot: Any) -> None:
    from PySide6.QtGui import QTextOption

    view = PromptView("a b\n")
    qtbot.addWidget(view)
    flag = QTextOption.Flag.ShowLineAndParagraphSeparators
    assert not view.text_view.document().defaultTextOption().flags() & flag
    view.whitespace_box.setChecked(True)
    assert view.text_view.document().defaultTextOption().flags() & flag
    view.whitespace_box.setChecked(False)
    assert not view.text_view.document().defaultTextOption().flags() & flag
