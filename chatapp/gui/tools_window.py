"""Tools in the window: the chat settings panel's Tools section, the approval card, and
the call cards of a turn in flight.

The chat's tool settings (gui.chat_tools) become the options of its next turn through
ChatSession.option_hooks, so a send and Show prompt use the same tools. The service runs
the loop; this only relays: a call's card appears when the model made it (before it
runs), the result and the next answer's row when they are saved. install(window) adds
it (GUI_EXTENSIONS, after the chat settings panel).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QBoxLayout, QWidget

from chatapp.gui.chat_tools import OPTIONS_KEY, turn_fields
from chatapp.gui.tool_approval import ApprovalBroker, ApprovalCard, Pending
from chatapp.gui.tools_panel import ToolsSection
from chatapp.service.events import TurnToolCall, TurnToolResult
from chatapp.tools.permissions import META_KEY, set_permission

if TYPE_CHECKING:  # the window imports its extensions, not the reverse
    from chatapp.gui.mainwindow import MainWindow
    from chatapp.service.turn import TurnOptions

log = logging.getLogger(__name__)

KEYS = (META_KEY, OPTIONS_KEY)  # the meta keys this chat's tool settings live in


class ToolsController(QObject):
    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.session = s = window.session
        self.registry: Any = s.service.tools
        # what this window saved, by conversation: read before the store has it (a send
        # right after a change uses the change)
        self._saved: dict[str, dict[str, Any]] = {}
        self.broker = ApprovalBroker(s.stop_requested, self._allow_for_chat)
        self.card = ApprovalCard(self.broker)
        _insert_after(window.message_view, self.card)
        s.option_hooks.append(self.turn_hook)
        s.tool_call.connect(self._on_call)
        s.tool_result.connect(self._on_result)
        s.busy_changed.connect(self._on_busy)
        self.section: ToolsSection | None = None
        panel = window.chat_settings_panel
        if panel is not None:
            self.section = ToolsSection(self)
            inner = panel.scroll.widget()
            body = inner.layout() if inner is not None else None
            assert isinstance(body, QBoxLayout), "the panel's sections sit in a box layout"
            body.insertWidget(max(0, body.count() - 1), self.section)  # before its stretch
            s.conversation_selected.connect(lambda cid: self.section_show(cid or None))
            self.section_show(s.conversation_id)

    def section_show(self, conversation_id: str | None) -> None:
        if self.section is not None:
            self.section.show_conversation(conversation_id)

    # -- the chat's settings ------------------------------------------------------------

    def builtin_specs(self) -> list[Any]:
        builtins = getattr(self.registry, "builtins", None)
        return list(builtins()) if builtins is not None else []

    def has_mcp_servers(self) -> bool:
        config = getattr(self.registry, "mcp_config", None)
        return bool(config is not None and config.servers)

    def list_all(
        self,
        on_done: Callable[[tuple[Sequence[Any], list[str]]], None],
        on_error: Callable[[BaseException], None],
    ) -> None:
        """Every tool, the MCP servers' included (they start off the GUI thread)."""
        registry = self.registry

        def job() -> tuple[Sequence[Any], list[str]]:
            registry.refresh_mcp()
            return registry.specs(), list(registry.problems)

        self.window.background.run(job, on_done, on_error)

    def meta_of(self, conversation_id: str | None) -> Mapping[str, Any]:
        if not conversation_id:
            return {}
        if conversation_id in self._saved:
            return self._saved[conversation_id]
        conv = self.window.store.get_conversation(conversation_id)
        return {k: conv.meta[k] for k in KEYS if k in conv.meta} if conv is not None else {}

    def save(self, conversation_id: str, meta: Mapping[str, Any]) -> None:
        """Keep the chat's tool settings (the KEYS of `meta`) and save them."""
        changes = {k: meta[k] for k in KEYS if k in meta}
        self._saved[conversation_id] = {**self.meta_of(conversation_id), **changes}
        fut = self.session.service.set_chat_settings(conversation_id, meta=changes)
        self.session.when_saved(fut)

    def turn_hook(self, opts: TurnOptions, kind: str, message_id: str | None) -> TurnOptions:
        """The tools of a turn the window starts or previews (ChatSession.option_hooks)."""
        fields = self.turn_fields(self.session.conversation_id)
        return replace(opts, **fields) if fields else opts

    def turn_fields(self, conversation_id: str | None) -> dict[str, Any]:
        """The next turn's tool options (ChatSession.option_hooks)."""
        if not conversation_id:
            return {}
        known = {s.name for s in self.builtin_specs()}
        return turn_fields(
            self.meta_of(conversation_id),
            self.registry,
            self.broker.approver(conversation_id),
            known,
        )

    def _allow_for_chat(self, pending: Pending) -> None:
        cid = pending.conversation_id
        if cid:
            meta = dict(self.meta_of(cid))
            set_permission(meta, pending.call.name, "always")
            self.save(cid, meta)
            self.section_show(self.session.conversation_id)

    # -- a turn in flight --------------------------------------------------------------

    def _on_busy(self, busy: bool) -> None:
        if not busy:
            self.broker.turn_ended()

    def _on_call(self, ev: TurnToolCall) -> None:
        """The call's card, at once (the answer holding it is saved a moment later)."""
        view = self.window.message_view
        row = view.widget_for(ev.message_id)
        if row is None:
            return
        calls = [c for c in row.message.meta.get("tool_calls", []) if c.get("id") != ev.call.id]
        view.set_calls(ev.message_id, [*calls, ev.call.as_json()])

    def _on_result(self, ev: TurnToolResult) -> None:
        """The result and the next answer's row are saved: show them."""
        if self.session.conversation_id:
            self.window.message_view.show_thread(self.session.thread())


def _insert_after(widget: QWidget, new: QWidget) -> None:
    parent = widget.parentWidget()
    layout = parent.layout() if parent is not None else None
    assert isinstance(layout, QBoxLayout), "the messages sit in a box layout"
    layout.insertWidget(layout.indexOf(widget) + 1, new)


def install(window: MainWindow) -> ToolsController:
    controller = ToolsController(window)
    window.tools_controller = controller
    return controller


__all__ = ["ToolsController", "install"]
