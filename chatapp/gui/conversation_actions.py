"""The conversation list's look and actions: two-line rows grouped by date (with the
chat's model), pinned chats on top, tags and a tag filter, the Delete key, the deleted
chats (restore, empty). Edits go through the chat service (service.conversations); the
list reloads on its events, and on coming back to the window when the database was
changed elsewhere (the CLI).

Installed through the window's GUI_EXTENSIONS: `install(window)` adds the actions to
the Chat menu and to the list's context menu, and a "Show" filter under the list.
"""

from __future__ import annotations

import logging
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING

from PySide6.QtCore import QEvent, QObject, Qt, Slot
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QComboBox, QInputDialog, QMenu, QMessageBox

from chatapp.core.store.trash import CONVERSATION
from chatapp.gui.conversation_list import setup_view
from chatapp.gui.wrapping import shortened

if TYPE_CHECKING:  # the window imports its extensions, not the reverse
    from chatapp.gui.mainwindow import MainWindow

log = logging.getLogger(__name__)

ALL = ""  # the filter's "all chats" entry
TRASH_MENU_ITEMS = 15


def install(window: MainWindow) -> ConversationActions:
    window.conversation_actions = ConversationActions(window)
    return window.conversation_actions


class ConversationActions(QObject):
    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        view = window.conversation_view
        setup_view(view)

        # Delete deletes the selected chats (asking first) while the list has the focus;
        # the menu shows the key. Elsewhere (the input box) Delete edits text as usual.
        delete = window.delete_action
        delete.setShortcut(QKeySequence(QKeySequence.StandardKey.Delete))
        delete.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        view.addAction(delete)

        # Ctrl+N belongs to the menu's New chat action, so the menu shows it (on the button
        # as well it would be an ambiguous shortcut that fires neither)
        new_chat = QKeySequence(QKeySequence.StandardKey.New)
        if window.new_button.shortcut() == new_chat and window.new_action.shortcut().isEmpty():
            window.new_button.setShortcut(QKeySequence())
            window.new_action.setShortcut(new_chat)
            window.new_button.setToolTip(
                self.tr("New chat ({keys})").format(keys=new_chat.toString())
            )

        self.pin_action = QAction(self.tr("&Pin chat"), window)
        self.pin_action.setToolTip(self.tr("Keep the chat on top of the list"))
        self.pin_action.triggered.connect(self.toggle_pin)
        self.tags_action = QAction(self.tr("&Tags…"), window)
        self.tags_action.setToolTip(
            self.tr("Group chats under tags; filter the list by tag below it")
        )
        self.tags_action.triggered.connect(self.edit_tags)
        chat = window.menus["chat"]
        chat.insertActions(delete, [self.pin_action, self.tags_action])
        # what was deleted stays in the trash until emptied: restore it after a restart too
        self.trash_menu = QMenu(self.tr("De&leted chats"), window)
        self.trash_menu.setToolTipsVisible(True)
        self.trash_menu.aboutToShow.connect(self._fill_trash_menu)
        chat.insertMenu(delete, self.trash_menu)
        chat.insertSeparator(self.trash_menu.menuAction())
        self.empty_trash_action = QAction(self.tr("&Empty deleted chats…"), window)
        self.empty_trash_action.triggered.connect(self.empty_trash)
        chat.aboutToShow.connect(self._update_pin_text)
        window.conversation_list_menu_hooks.append(self._add_to_menu)

        self.filter = QComboBox()
        self.filter.setObjectName("conversation_tag_filter")
        self.filter.setAccessibleName(self.tr("Show chats with tag"))
        self.filter.setToolTip(self.tr("Show only the chats with this tag"))
        self.filter.activated.connect(self._filter_chosen)
        layout = window.list_layout()
        layout.insertWidget(layout.indexOf(view) + 1, self.filter)
        window.session.conversations_changed.connect(self.refresh_filter)
        self.refresh_filter()
        # edits made elsewhere (`chatapp conversations` in a terminal) show when the user
        # comes back to the window
        self._seen_version = window.store.data_version()
        window.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        window: MainWindow = self.window
        if (
            event.type() == QEvent.Type.ActivationChange
            and window.isActiveWindow()
            and watched is window
        ):
            self.reload_if_changed()
        return False

    def reload_if_changed(self) -> None:
        store = self.window.store
        try:
            version = store.data_version()
        except Exception as e:  # a closed or damaged database: nothing to reload  # noqa: BLE001
            log.info("cannot check the chat database for changes: %s", e)
            return
        if version == self._seen_version:
            return
        self._seen_version = version
        session = self.window.session
        cid = self.window.current_conversation_id()
        if cid and store.get_conversation(cid) is None:  # deleted elsewhere
            session.select_conversation(None)
        elif cid and not session.busy:
            # another branch made current, or messages deleted or restored: show it (only
            # then, so the view keeps its place when nothing changed in this chat)
            shown = [r.message_id for r in self.window.message_view.widgets()]
            if [m.id for m in session.thread()] != shown:
                session.select_conversation(cid)
        self.window.refresh_conversations()
        self.refresh_filter()

    # -- what the actions act on ------------------------------------------------------

    def _targets(self) -> list[str]:
        ids = self.window.selected_conversation_ids()
        cid = self.window.current_conversation_id()
        return ids or ([cid] if cid else [])

    def _update_pin_text(self) -> None:
        ids = self._targets()
        pinned = self.window.store.pinned_ids()
        all_pinned = bool(ids) and all(i in pinned for i in ids)
        self.pin_action.setText(self.tr("Un&pin chat") if all_pinned else self.tr("&Pin chat"))
        self.pin_action.setEnabled(bool(ids))
        self.tags_action.setEnabled(bool(ids))

    def _add_to_menu(self, menu: QMenu, ids: list[str]) -> None:
        self._update_pin_text()
        first = menu.actions()[0] if menu.actions() else None
        menu.insertActions(first, [self.pin_action, self.tags_action])  # type: ignore[arg-type]
        menu.insertSeparator(first)  # type: ignore[arg-type]

    # -- actions ------------------------------------------------------------------------

    @Slot()
    def toggle_pin(self) -> None:
        ids = self._targets()
        if not ids:
            return
        pin = not all(i in self.window.store.pinned_ids() for i in ids)
        session = self.window.session
        # the service saves it and tells every view (the list reloads)
        session.when_saved(session.service.conversations.set_pinned(ids, pin))

    @Slot()
    def edit_tags(self) -> None:
        ids = self._targets()
        if not ids:
            return
        store = self.window.store
        current = store.tags(ids[0])
        text, ok = QInputDialog.getText(
            self.window,
            self.tr("Tags"),
            self.tr("Tags for this chat, separated by commas:")
            if len(ids) == 1
            else self.tr("Tags for these {n} chats, separated by commas:").format(n=len(ids)),
            text=", ".join(current),
        )
        if not ok:
            return
        tags = [t for t in text.split(",") if t.strip()]
        session = self.window.session
        session.when_saved(session.service.conversations.set_tags(ids, tags))

    # -- the trash ----------------------------------------------------------------------

    def _fill_trash_menu(self) -> None:
        menu = self.trash_menu
        menu.clear()
        entries = self.window.store.trash_entries(limit=TRASH_MENU_ITEMS + 1)
        if not entries:
            none = menu.addAction(self.tr("Nothing deleted"))
            none.setEnabled(False)
        for e in entries[:TRASH_MENU_ITEMS]:
            if e.kind == CONVERSATION:
                label = self.tr("Restore “{title}”").format(title=shortened(e.title))
            else:
                label = self.tr("Restore {n} message(s) in “{title}”").format(
                    n=e.message_count, title=shortened(e.title)
                )
            action = menu.addAction(label)
            when = datetime.fromtimestamp(e.deleted_at).strftime("%Y-%m-%d %H:%M")
            action.setToolTip(self.tr("Deleted {when}: {what}").format(when=when, what=e.preview))
            action.triggered.connect(partial(self._restore, e.id))
        if len(entries) > TRASH_MENU_ITEMS:
            more = menu.addAction(self.tr("(older ones: chatapp conversations --deleted)"))
            more.setEnabled(False)
        menu.addSeparator()
        menu.addAction(self.empty_trash_action)
        self.empty_trash_action.setEnabled(bool(entries))

    def _restore(self, trash_id: str, _checked: bool = False) -> None:
        self.window.undo_delete([trash_id])

    @Slot()
    def empty_trash(self) -> None:
        entries = self.window.store.trash_entries()
        if not entries:
            return
        chats = sum(e.kind == CONVERSATION for e in entries)
        messages = sum(e.message_count for e in entries if e.kind != CONVERSATION)
        answer = QMessageBox.question(
            self.window,
            self.tr("Empty deleted chats"),
            self.tr(
                "Delete {chats} chat(s) and {messages} more message(s) for good? "
                "This cannot be undone."
            ).format(chats=chats, messages=messages),
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Cancel,
        )
        if answer == QMessageBox.StandardButton.Yes:
            session = self.window.session
            session.when_saved(session.service.conversations.purge_deleted())

    # -- the tag filter -----------------------------------------------------------------

    @Slot()
    def refresh_filter(self) -> None:
        tags = self.window.store.all_tags()
        chosen = self.window.conversations.tag
        self.filter.blockSignals(True)
        self.filter.clear()
        self.filter.addItem(self.tr("All chats"), ALL)
        for tag, n in tags:
            self.filter.addItem(f"#{tag}  ({n})", tag)
        i = self.filter.findData(chosen) if chosen else 0
        if chosen and i < 0:  # the last chat with that tag lost it: show all again
            self.window.conversations.set_tag(None)
            i = 0
        self.filter.setCurrentIndex(max(i, 0))
        self.filter.blockSignals(False)
        self.filter.setVisible(bool(tags))

    def set_tag_filter(self, tag: str | None) -> None:
        self.window.conversations.set_tag(tag)
        cid = self.window.current_conversation_id()
        if cid:
            self.window.refresh_conversations()  # re-selects the open chat if it is listed
        self.refresh_filter()

    def _filter_chosen(self, index: int) -> None:
        self.set_tag_filter(self.filter.itemData(index) or None)
