"""The main window: conversation list, message view, input, model bar and status line.

It holds no data of its own: the store and the ChatSession do. Other parts of the app
(model manager, export, templates) add their menu entries through `install(window)`
using the small surface documented on MainWindow.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QEvent, QModelIndex, QPoint, QRectF, QSettings, QSize, Qt
from PySide6.QtGui import (
    QAction,
    QCloseEvent,
    QKeySequence,
    QPainter,
    QPaintEvent,
    QPalette,
    QScreen,
)
from PySide6.QtWidgets import (
    QBoxLayout,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QListView,
    QMainWindow,
    QMenu,
    QProgressBar,
    QPushButton,
    QSplitter,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from chatapp.core.settings import Settings
from chatapp.core.store import Store
from chatapp.core.store.trash import TrashEntry
from chatapp.core.token_engine import ModelInfo
from chatapp.gui.background import BackgroundRunner
from chatapp.gui.chat_session import ChatSession
from chatapp.gui.chatview.view import MessageView
from chatapp.gui.conversation_list import ConversationListModel, ConversationRole
from chatapp.gui.input_box import InputBox
from chatapp.gui.offload_text import offload_text
from chatapp.gui.store_watch import StoreWatcher
from chatapp.gui.theme import notice_colours
from chatapp.gui.wrapping import ElidedLabel
from chatapp.paths import AppPaths
from chatapp.service import LoadedModel

if TYPE_CHECKING:  # the extensions' parts, typed; each module imports the window, not the reverse
    from chatapp.gui.chat_settings_panel import ChatSettingsPanel
    from chatapp.gui.completion_view import CompletionWindow
    from chatapp.gui.conversation_actions import ConversationActions
    from chatapp.gui.documents_actions import DocumentsActions
    from chatapp.gui.input_tokens import InputTokens
    from chatapp.gui.message_tokens import MessageTokens
    from chatapp.gui.model_drop import ModelDrop
    from chatapp.gui.model_picker import ModelPicker
    from chatapp.gui.models_actions import ModelsController
    from chatapp.gui.remote_actions import RemoteDialog
    from chatapp.gui.search_panel import SearchPanel
    from chatapp.gui.server_actions import ServerSwitch
    from chatapp.gui.settings_dialog import SettingsActions
    from chatapp.gui.shortcuts import Shortcuts
    from chatapp.gui.template_actions import TemplateActions
    from chatapp.gui.tools_window import ToolsController
    from chatapp.gui.welcome import Welcome

log = logging.getLogger(__name__)

GUI_EXTENSIONS = (
    "chatapp.gui.about",  # Help > About chatapp
    "chatapp.gui.models_actions",
    "chatapp.gui.export_actions",
    "chatapp.gui.template_actions",
    "chatapp.gui.model_picker",
    "chatapp.gui.chat_settings_panel",
    "chatapp.gui.tools_window",  # issue 18: the Tools section, approval and tool cards
    # issue 12: appearance, settings, keyboard, accessibility, first run, drop a .gguf
    "chatapp.gui.theme",
    "chatapp.gui.settings_dialog",
    "chatapp.gui.shortcuts",
    "chatapp.gui.conversation_actions",  # grouped two-line rows, pins, tags, Delete key
    "chatapp.gui.search_panel",  # search all chats (Ctrl+F), above the conversation list
    "chatapp.gui.accessibility",
    "chatapp.gui.welcome",
    "chatapp.gui.model_drop",
    # h-inside, issue 10: View > Tokenizer playground, Chat > Answer tokens and probabilities
    "chatapp.gui.tokenizer_playground",
    "chatapp.gui.answer_tokens",
    "chatapp.gui.message_tokens",  # View > Messages as: tokens, confidence (live)
    "chatapp.gui.input_tokens",  # the input's live token count and token view
    "chatapp.gui.prefill_typing",  # issue 20: the next send's prompt evaluated while typing
    "chatapp.gui.settings_speed",  # issue 20: Settings > Speed (states on disk, speculation)
    "chatapp.gui.completion_view",  # View > Completion mode (base models)
    "chatapp.gui.server_actions",  # Models > Serve the loaded model (the local API)
    "chatapp.gui.remote_actions",  # Models > Use a model on a server…
    "chatapp.gui.branch_actions",
    # issue 19: attachments, citations, knowledge collections (after the settings panel)
    "chatapp.gui.documents_actions",
    "chatapp.gui.image_attach",  # images in the composer: paste, drop, attach; full size
)


def display_name(info: ModelInfo) -> str:
    """What the window calls a model: its file's name, which the user chose, found and
    sees in the library and the picker (a GGUF's own general.name is often a training
    run's label); a model on a server by its name there."""
    if info.path.startswith("remote:") or not info.path:
        return info.name
    return Path(info.path).name


class MessageBar(QFrame):
    """A non-modal line above the input for errors and notices (colours from the palette)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(10, 6, 6, 6)
        self.error = False
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.label.setAccessibleName(self.tr("Notice"))
        self.label.setForegroundRole(QPalette.ColorRole.Text)  # drawn on a tint of Base
        close = QToolButton()
        close.setText("✕")
        close.setAutoRaise(True)
        close.clicked.connect(self.hide)
        self.action_button = QPushButton()  # a notice's one action, if it has one
        self.action_button.hide()
        self.action_button.clicked.connect(self._act)
        self._action: Callable[[], Any] | None = None
        lay.addWidget(self.label, 1)
        lay.addWidget(self.action_button)
        lay.addWidget(close)
        self.hide()

    def show_message(
        self, text: str, *, error: bool, action: tuple[str, Callable[[], Any]] | None = None
    ) -> None:
        self.error = error
        self.label.setText(text)
        self._action = action[1] if action else None
        self.action_button.setText(action[0] if action else "")
        self.action_button.setVisible(action is not None)
        self.update()
        self.show()

    def _act(self) -> None:
        if self._action is not None:
            self._action()
        self.hide()

    def paintEvent(self, event: QPaintEvent) -> None:
        background, border, _text = notice_colours(self.palette(), error=self.error)
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.setPen(border)
        p.setBrush(background)
        p.drawRoundedRect(QRectF(self.rect()).adjusted(0.5, 0.5, -0.5, -0.5), 6, 6)


def first_size(screen: QScreen | None, want: QSize | None = None) -> QSize:
    """The window's size (`want`, else 1100 x 760), never past 9/10 of the screen's free area."""
    want = want or QSize(1100, 760)
    if screen is None:
        return want
    free = screen.availableGeometry().size()
    return want.boundedTo(QSize(free.width() * 9 // 10, free.height() * 9 // 10))


class MainWindow(QMainWindow):
    def __init__(
        self,
        store: Store,
        settings: Settings,
        paths: AppPaths,
        session: ChatSession,
        *,
        extensions: tuple[str, ...] = GUI_EXTENSIONS,
    ) -> None:
        super().__init__()
        self.store = store
        self.settings = settings
        self.paths = paths
        self.session = session
        self.background = BackgroundRunner()
        self.conversation_list_menu_hooks: list[Callable[[QMenu, list[str]], None]] = []
        # What the extensions add, each set by its own install() and None where that one is
        # not installed: the one typed place where an extension finds another's part.
        self.about_action: QAction | None = None
        self.answer_tokens_action: QAction | None = None
        self.chat_settings_panel: ChatSettingsPanel | None = None
        self.completion_action: QAction | None = None
        self.completion_window: CompletionWindow | None = None
        self.conversation_actions: ConversationActions | None = None
        self.documents: DocumentsActions | None = None
        self.focus_search: Callable[[], None] | None = None
        self.input_tokens: InputTokens | None = None
        self.keyboard_help_action: QAction | None = None
        self.message_display_actions: Any = None
        self.message_tokens: MessageTokens | None = None
        self.model_drop: ModelDrop | None = None
        self.model_picker: ModelPicker | None = None
        self.models_controller: ModelsController | None = None
        self.remote_action: QAction | None = None
        self.remote_dialog: RemoteDialog | None = None
        self.search_action: QAction | None = None
        self.search_panel: SearchPanel | None = None
        self.server_switch: ServerSwitch | None = None
        self.settings_action: QAction | None = None
        self.settings_actions: SettingsActions | None = None
        self.settings_pages: list[Any] = []  # factories of the Settings dialog's pages
        self.shortcuts: Shortcuts | None = None
        self.template_actions: TemplateActions | None = None
        self.tokenizer_playground_action: QAction | None = None
        self.tools_controller: ToolsController | None = None
        self.welcome: Welcome | None = None
        self.setWindowTitle(self.tr("chatapp"))
        self.resize(first_size(self.screen()))

        self._build_widgets()
        self._build_menus()
        self._connect()
        # chats another process adds (an import, the CLI) appear in the list
        self.store_watcher = StoreWatcher(self.store.path, self)
        self.store_watcher.changed.connect(self._store_changed_elsewhere)
        self._restore_geometry()
        for name in extensions:
            self._install_extension(name)
        f = self.menus["file"]
        f.addSeparator()
        quit_action = QAction(
            self.tr("&Quit"), self, shortcut=QKeySequence(QKeySequence.StandardKey.Quit)
        )
        quit_action.triggered.connect(self.close)
        f.addAction(quit_action)
        self._update_buttons()

    # -- construction ---------------------------------------------------------------

    def _build_widgets(self) -> None:
        # left: conversations
        left = QWidget()
        left.setMinimumWidth(180)
        ll = QVBoxLayout(left)
        ll.setContentsMargins(8, 8, 4, 8)
        self.new_button = QPushButton(self.tr("New chat"))
        self.new_button.setShortcut(QKeySequence.StandardKey.New)
        self.conversations = ConversationListModel(self.store)
        self.conversation_view = QListView()
        self.conversation_view.setModel(self.conversations)
        self.conversation_view.setSelectionMode(QListView.SelectionMode.ExtendedSelection)
        self.conversation_view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.conversation_view.setUniformItemSizes(True)
        self.conversation_view.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.conversation_view.setTextElideMode(Qt.TextElideMode.ElideRight)
        ll.addWidget(self.new_button)
        ll.addWidget(self.conversation_view, 1)

        # right: model bar, messages, message bar, input
        right = QWidget()
        rl = QVBoxLayout(right)
        rl.setContentsMargins(4, 8, 8, 8)
        bar = QHBoxLayout()
        self.model_label = ElidedLabel(self.tr("No model loaded"))
        self.model_label.setStyleSheet("font-weight: bold;")
        self.model_label.setMinimumWidth(self.fontMetrics().height() * 4)
        self.model_progress = QProgressBar()
        self.model_progress.setRange(0, 0)
        self.model_progress.setMaximumWidth(140)
        self.model_progress.setTextVisible(False)
        self.model_progress.hide()
        self.open_button = QPushButton(self.tr("Open model…"))
        bar.addWidget(self.model_label, 1)
        bar.addWidget(self.model_progress)
        bar.addWidget(self.open_button)
        rl.addLayout(bar)
        self.model_bar = bar  # extensions add to it (the model picker)
        self.message_view = MessageView()
        rl.addWidget(self.message_view, 1)
        self.message_bar = MessageBar()
        rl.addWidget(self.message_bar)
        row = QHBoxLayout()
        self.input = InputBox()
        buttons = QVBoxLayout()
        self.send_button = QPushButton(self.tr("Send"))
        self.send_button.setDefault(True)
        self.stop_button = QPushButton(self.tr("Stop"))
        self.stop_button.setToolTip(self.tr("Stop the answer (Esc)"))
        self.regenerate_button = QPushButton(self.tr("Regenerate"))
        self.regenerate_button.setToolTip(
            self.tr("A new answer to your last message (the old one is kept)")
        )
        buttons.addWidget(self.send_button)
        buttons.addWidget(self.stop_button)
        buttons.addWidget(self.regenerate_button)
        row.addWidget(self.input, 1)
        row.addLayout(buttons)
        rl.addLayout(row)
        self.chat_layout = rl  # extensions add around the input (its token count and view)

        split = QSplitter()
        split.addWidget(left)
        split.addWidget(right)
        split.setStretchFactor(1, 1)
        split.setSizes([260, 840])
        self.setCentralWidget(split)

        self.status_model = ElidedLabel(self.tr("No model"))
        self.status_speed = QLabel("")
        self.status_context = QLabel("")
        self._speed_text = ""  # the last answer's speed, shown when not generating
        # notices about the loaded model (no template, a base model): gone with the model
        self.model_notices: set[str] = set()
        sb = self.statusBar()
        sb.addWidget(self.status_model, 1)
        sb.addPermanentWidget(self.status_speed)
        sb.addPermanentWidget(self.status_context)

    def _build_menus(self) -> None:
        mb = self.menuBar()
        self.menus: dict[str, QMenu] = {
            "file": mb.addMenu(self.tr("&File")),
            "chat": mb.addMenu(self.tr("&Chat")),
            "models": mb.addMenu(self.tr("&Models")),
            "view": mb.addMenu(self.tr("&View")),
            "help": mb.addMenu(self.tr("&Help")),
        }
        f = self.menus["file"]
        self.open_action = QAction(
            self.tr("&Open model…"), self, shortcut=QKeySequence(QKeySequence.StandardKey.Open)
        )
        f.addAction(self.open_action)
        c = self.menus["chat"]
        self.new_action = QAction(self.tr("&New chat"), self)
        self.stop_action = QAction(
            self.tr("&Stop answer"), self, shortcut=QKeySequence(Qt.Key.Key_Escape)
        )
        self.stop_action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        self.regenerate_action = QAction(
            self.tr("&Regenerate answer"), self, shortcut=QKeySequence("Ctrl+R")
        )
        self.rename_action = QAction(self.tr("Re&name chat…"), self, shortcut=QKeySequence("F2"))
        self.delete_action = QAction(self.tr("&Delete chat"), self)
        for a in (
            self.new_action,
            self.stop_action,
            self.regenerate_action,
            self.rename_action,
            self.delete_action,
        ):
            c.addAction(a)
        self.addAction(self.stop_action)  # Esc works wherever focus is
        self.default_model_action = QAction(
            self.tr("Use this model for &new chats and at start-up"), self
        )
        self.default_model_action.setCheckable(True)
        self.default_model_action.setEnabled(False)
        self.default_model_action.toggled.connect(self._set_default_model)
        self.menus["models"].addAction(self.default_model_action)
        log_action = QAction(self.tr("Open &log folder"), self)
        log_action.triggered.connect(self._open_log_folder)
        self.menus["help"].addAction(log_action)

    def _connect(self) -> None:
        s = self.session
        self.open_button.clicked.connect(self.choose_model_file)
        self.open_action.triggered.connect(self.choose_model_file)
        self.new_button.clicked.connect(s.new_conversation)
        self.new_action.triggered.connect(s.new_conversation)
        self.send_button.clicked.connect(lambda: self._send(self.input.toPlainText()))
        self.input.submitted.connect(self._send)
        self.stop_button.clicked.connect(s.stop)
        self.stop_action.triggered.connect(s.stop)
        self.regenerate_button.clicked.connect(lambda: s.regenerate())
        self.regenerate_action.triggered.connect(lambda: s.regenerate())
        self.rename_action.triggered.connect(self._rename_selected)
        self.delete_action.triggered.connect(self._delete_selected)
        self.conversation_view.selectionModel().currentChanged.connect(self._on_current_changed)
        self.conversation_view.customContextMenuRequested.connect(self._conversation_menu)

        s.model_loading.connect(self._on_model_loading)
        s.model_loaded.connect(self._on_model_loaded)
        s.model_failed.connect(self._on_model_failed)
        s.conversation_selected.connect(self._on_conversation_selected)
        s.conversations_changed.connect(self.refresh_conversations)
        s.reply_started.connect(self._on_reply_started)
        s.reply_delta.connect(self.message_view.update_text)
        s.reply_finished.connect(self._on_reply_finished)
        s.busy_changed.connect(self._on_busy)
        s.context_changed.connect(self._on_context)
        s.speed_changed.connect(self._on_speed)
        s.error.connect(self.show_error)
        s.notice.connect(self.show_info)
        s.input_restored.connect(self._restore_input)
        s.status_message.connect(lambda text: self.statusBar().showMessage(text, 10000))

    def _install_extension(self, name: str) -> None:
        importlib.import_module(name).install(self)

    # -- the surface extensions use ---------------------------------------------------

    def list_layout(self) -> QBoxLayout:
        """The layout that holds the conversation list (extensions add above or below it)."""
        parent = self.conversation_view.parentWidget()
        layout = parent.layout() if parent is not None else None
        assert isinstance(layout, QBoxLayout), "the conversation list sits in a box layout"
        return layout

    def tokens(self) -> MessageTokens:
        """The message_tokens extension (its tokenizer and special-token check), which the
        input's token view and completion mode build on."""
        assert self.message_tokens is not None, "message_tokens installs before its users"
        return self.message_tokens

    def save_settings(self) -> None:
        try:
            self.settings.save(self.paths.settings)
        except Exception as e:  # a full disk must not take the window down  # noqa: BLE001
            self.show_error(self.tr("Could not save settings: {error}").format(error=e))

    def current_conversation_id(self) -> str | None:
        return self.session.conversation_id

    def selected_conversation_ids(self) -> list[str]:
        rows = sorted(i.row() for i in self.conversation_view.selectionModel().selectedRows())
        ids = [
            self.conversations.data(self.conversations.index(r), ConversationRole.ID) for r in rows
        ]
        return [i for i in ids if i]

    def _store_changed_elsewhere(self) -> None:
        current = self.session.conversation_id
        if self.conversations.reload_if_changed() and current:
            self._select_row_quietly(current)
        if current and not self.session.busy:
            # the open chat went on elsewhere (`chatapp chat --conversation` in a terminal)
            conv = self.store.get_conversation(current)
            shown = self.message_view.widgets()
            leaf = shown[-1].message_id if shown else None
            if conv is None:
                self.session.select_conversation(None)
            elif conv.current_leaf_id != leaf:
                self.message_view.show_thread(self.session.thread())
                self._update_buttons()

    def refresh_conversations(self) -> None:
        current = self.session.conversation_id
        self.conversations.reload()
        if current:
            self._select_row_quietly(current)

    def show_error(self, text: str) -> None:
        log.info("shown to the user: %s", text)
        self.message_bar.show_message(text, error=True)

    def show_info(self, text: str, action: tuple[str, Callable[[], Any]] | None = None) -> None:
        """A notice above the input; with `action` (label, callback), a button for it."""
        self.message_bar.show_message(text, error=False, action=action)

    def model_info(self) -> ModelInfo | None:
        return self.session.model_info

    def model_metadata(self) -> dict[str, Any]:
        info = self.session.model_info
        return dict(info.metadata) if info else {}

    def open_model(self, path: str) -> None:
        self.session.open_model(path)

    def run_in_background(
        self,
        fn: Callable[[], Any],
        on_done: Callable[[Any], None],
        on_error: Callable[[Exception], None],
    ) -> None:
        self.background.run(fn, on_done, on_error)

    # -- actions -----------------------------------------------------------------------

    def choose_model_file(self) -> None:
        start = self.settings.last_model or str(Path.home())
        path, _ = QFileDialog.getOpenFileName(
            self,
            self.tr("Open a GGUF model"),
            str(Path(start).parent),
            self.tr("GGUF models (*.gguf);;All files (*)"),
        )
        if path:
            self.open_model(path)

    def _send(self, text: str) -> None:
        if self.session.send(text):
            self.input.clear()
            self.message_bar.hide()

    def _restore_input(self, text: str) -> None:
        """A message that could not be saved goes back to the input, unless the user
        has already typed something new."""
        if not self.input.toPlainText().strip():
            self.input.setPlainText(text)

    def _rename_selected(self) -> None:
        ids = self.selected_conversation_ids() or (
            [self.session.conversation_id] if self.session.conversation_id else []
        )
        if not ids:
            return
        conv = self.store.get_conversation(ids[0])
        if conv is None:
            return
        title, ok = QInputDialog.getText(
            self, self.tr("Rename chat"), self.tr("Title:"), text=conv.title
        )
        if ok and title.strip():
            self.session.rename_conversation(conv.id, title)

    def _delete_selected(self) -> None:
        """Move the chats to the trash at once, and offer to undo it (the trash keeps
        them until the user empties it: Chat > Deleted chats)."""
        ids = self.selected_conversation_ids() or (
            [self.session.conversation_id] if self.session.conversation_id else []
        )
        if ids:
            self.session.delete_conversations(ids, self._offer_undo_delete)

    def _offer_undo_delete(self, entries: list[TrashEntry]) -> None:
        if not entries:
            return
        text = (
            self.tr("Deleted “{title}”.").format(title=entries[0].title)
            if len(entries) == 1
            else self.tr("Deleted {n} chats.").format(n=len(entries))
        )
        ids = [e.id for e in entries]
        self.show_info(text, action=(self.tr("Undo"), lambda: self.undo_delete(ids)))

    def undo_delete(self, trash_ids: list[str]) -> None:
        """Restore deleted chats (or messages) and open the first chat restored."""

        def done(entries: list[TrashEntry]) -> None:
            self.message_bar.hide()
            if entries:
                self.session.select_conversation(entries[0].conversation_id)

        self.session.restore_deleted(trash_ids, done)

    def _set_default_model(self, on: bool) -> None:
        info = self.session.model_info
        if info is None:
            return
        if on:
            self.settings.default_model = info.path
        elif self.settings.default_model == info.path:
            self.settings.default_model = None
        self.save_settings()

    def _conversation_menu(self, pos: QPoint) -> None:
        ids = self.selected_conversation_ids()
        if not ids:
            return
        menu = QMenu(self)
        menu.addAction(self.rename_action)
        menu.addAction(self.delete_action)
        for hook in self.conversation_list_menu_hooks:
            hook(menu, ids)
        menu.exec(self.conversation_view.viewport().mapToGlobal(pos))

    def _open_log_folder(self) -> None:
        from PySide6.QtCore import QUrl
        from PySide6.QtGui import QDesktopServices

        QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.paths.logs)))

    # -- reactions ----------------------------------------------------------------------

    def _on_current_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        cid = self.conversations.data(current, ConversationRole.ID) if current.isValid() else None
        if cid and cid != self.session.conversation_id:
            self.session.select_conversation(cid)

    def _select_row_quietly(self, conversation_id: str) -> None:
        row = self.conversations.row_of(conversation_id)
        sel = self.conversation_view.selectionModel()
        if row < 0:
            sel.clearSelection()
            return
        idx = self.conversations.index(row)
        if sel.currentIndex() != idx:
            sel.blockSignals(True)
            sel.setCurrentIndex(idx, sel.SelectionFlag.ClearAndSelect)
            sel.blockSignals(False)
            self.conversation_view.viewport().update()

    def _on_conversation_selected(self, conversation_id: str) -> None:
        if conversation_id:
            if self.conversations.row_of(conversation_id) < 0:  # added by another process
                self.conversations.reload_if_changed()
            self._select_row_quietly(conversation_id)
            self.message_view.show_thread(self.session.thread())
        else:
            self.conversation_view.selectionModel().clearSelection()
            self.message_view.clear()
        self._update_buttons()
        if not self.conversation_view.hasFocus():  # arrow keys keep browsing the list
            self.input.setFocus()

    def _on_reply_started(self, conversation_id: str, message_id: str) -> None:
        if conversation_id == self.session.conversation_id:
            thread = self.session.thread()
            shown = {w.message_id for w in self.message_view.widgets()}
            if [m.id for m in thread[:-1]] != [w.message_id for w in self.message_view.widgets()]:
                self.message_view.show_thread(thread)
            else:
                for m in thread:
                    if m.id not in shown:
                        self.message_view.add_message(m)
        self.status_speed.setText(self.tr("generating…"))

    def _on_reply_finished(self, message_id: str) -> None:
        msg = self.store.get_message(message_id)
        if msg is not None and msg.conversation_id == self.session.conversation_id:
            self.message_view.finish(msg)
        self._update_buttons()

    def _on_model_loading(self, path: str) -> None:
        self._speed_text = ""  # the last model's speed says nothing about this one
        self.status_speed.setText("")
        self.status_context.setText("")
        if self.message_bar.isVisible() and self.message_bar.label.text() in self.model_notices:
            self.message_bar.hide()
        self.model_notices.clear()
        self.model_label.setText(self.tr("Loading {name}…").format(name=Path(path).name))
        self.model_progress.show()
        self.status_model.setText(self.tr("Loading {name}…").format(name=Path(path).name))
        self._update_buttons()

    def _on_model_loaded(self, loaded: LoadedModel) -> None:
        info = loaded.info
        if loaded.template.warning:
            self.model_notices.add(loaded.template.warning)
        self.model_progress.hide()
        name = display_name(info)
        self.model_label.setText(name)
        self.model_label.setToolTip(
            self.tr("{file}\nName inside the file: {name}").format(file=info.path, name=info.name)
        )
        tpl = loaded.template
        self.status_model.setText(
            self.tr("{name} · {arch} · template: {template} ({source}) · {threads} threads").format(
                name=name,
                arch=info.architecture,
                template=tpl.name,
                source=tpl.source,
                threads=info.n_threads,
            )
            + self._where_text(info)
        )
        self.setWindowTitle(self.tr("chatapp — {name}").format(name=name))
        self.default_model_action.blockSignals(True)
        self.default_model_action.setEnabled(True)
        self.default_model_action.setChecked(self.settings.default_model == info.path)
        self.default_model_action.blockSignals(False)
        self.save_settings()
        self.message_view.set_placeholder(self.tr("{name} is ready. Say hello.").format(name=name))
        self._update_buttons()

    def _where_text(self, info: ModelInfo) -> str:
        """· GPU 24/31 layers (auto, 7.9 GiB free), · CPU (...): a local model's offload."""
        if info.offload is not None:
            return self.tr(" · {where}").format(where=offload_text(info.offload))
        return self.tr(" · GPU layers {n}").format(n=info.n_gpu_layers) if info.n_gpu_layers else ""

    def _on_model_failed(self, message: str) -> None:
        self.model_progress.hide()
        self.model_label.setText(self.tr("No model loaded"))
        self.status_model.setText(self.tr("No model"))
        self._update_buttons()

    def _on_speed(self, tps: float) -> None:
        self._speed_text = self.tr("{tps:.1f} tok/s").format(tps=tps)
        self.status_speed.setText(self._speed_text)

    def _on_busy(self, busy: bool) -> None:
        if not busy:
            # "generating…" ends with the answer, even a refused or failed one; the
            # speed shown is the last answer's of this model, if there was one
            self.status_speed.setText(self._speed_text)
            still = self.session.still_streaming_text()
            if self.message_bar.isVisible() and self.message_bar.label.text() == still:
                self.message_bar.hide()
        self._update_buttons()

    def _on_context(self, used: int, n_ctx: int) -> None:
        self.status_context.setText(
            self.tr("context {used} / {n_ctx} tokens").format(used=used, n_ctx=n_ctx)
        )

    def _update_buttons(self) -> None:
        busy = self.session.busy
        has_model = self.session.model is not None
        self.send_button.setEnabled(not busy and has_model)
        self.stop_button.setEnabled(busy)
        self.stop_action.setEnabled(busy)
        has_answer = any(w.role.value == "assistant" for w in self.message_view.widgets())
        self.regenerate_button.setEnabled(not busy and has_model and has_answer)
        self.regenerate_action.setEnabled(not busy and has_model and has_answer)
        self.open_button.setEnabled(not busy)

    # -- lifetime -------------------------------------------------------------------------

    def _qsettings(self) -> QSettings:
        return QSettings(str(self.paths.config / "window.ini"), QSettings.Format.IniFormat)

    def _restore_geometry(self) -> None:
        geo = self._qsettings().value("geometry")
        if geo is not None:
            self.restoreGeometry(geo)
            # saved on a bigger screen (a monitor since unplugged): fit this one
            self.resize(first_size(self.screen(), self.size()))

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.Type.ActivationChange and self.isActiveWindow():
            self.store_watcher.check()  # back from a terminal: show what it changed

    def closeEvent(self, event: QCloseEvent) -> None:
        self.store_watcher.close()
        self._qsettings().setValue("geometry", self.saveGeometry())
        self.save_settings()
        self.session.shutdown()
        self.background.wait(10000)
        super().closeEvent(event)
