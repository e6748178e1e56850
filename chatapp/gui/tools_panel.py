"""The Tools section of the chat settings panel: what this chat lets the model call.

Per chat: which tools are on (the built-ins, and the MCP servers' tools of mcp.json once
listed), each one's permission (always / ask / never), the folders the file tools may
read, the tool choice (auto, none, required, or one named tool), how many calls a turn
answers, and structured output (any JSON, or a JSON schema). Each change is saved in
the conversation (gui.chat_tools) and used by the next send and by Show prompt.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QGridLayout,
    QLabel,
    QPlainTextEdit,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from chatapp.core.errors import UserError
from chatapp.core.json_grammar import schema_grammar
from chatapp.gui.chat_tools import MAX_STEPS, ToolOptions
from chatapp.gui.chatview.toolcards import source_of
from chatapp.gui.wrapping import WrapButton
from chatapp.tools.permissions import read_chat_tools, set_enabled, set_permission
from chatapp.tools.spec import PERMISSIONS

if TYPE_CHECKING:
    from chatapp.gui.tools_window import ToolsController

OUTPUTS = ("text", "json", "schema")


def _caption(text: str, buddy: QWidget | None = None, *, bold: bool = False) -> QLabel:
    label = QLabel(text)
    label.setWordWrap(True)
    if buddy is not None:
        label.setBuddy(buddy)
    if bold:
        f = label.font()
        f.setBold(True)
        label.setFont(f)
    return label


class ToolsSection(QWidget):
    def __init__(self, controller: ToolsController) -> None:
        super().__init__()
        self.controller = controller
        self.setObjectName("chat_tools")
        self.conversation_id: str | None = None
        self.specs: list[Any] = list(controller.builtin_specs())
        self._filling = False
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(_caption(self.tr("Tools"), bold=True))
        self.note = _caption("")
        lay.addWidget(self.note)
        self.grid = QGridLayout()
        self.grid.setColumnStretch(0, 1)
        lay.addLayout(self.grid)
        self.checks: dict[str, QCheckBox] = {}
        self.permissions: dict[str, QComboBox] = {}
        self.mcp_button = WrapButton(self.tr("List the MCP servers' tools"))
        self.mcp_button.setToolTip(self.tr("Starts the servers of mcp.json to ask for their tools"))
        self.mcp_button.clicked.connect(self.list_mcp)
        lay.addWidget(self.mcp_button)
        self.mcp_note = _caption("")
        self.mcp_note.hide()
        lay.addWidget(self.mcp_note)

        self.folders = _caption("")
        self.folders.setObjectName("chat_tools_folders")
        self.folders.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.folders.setAccessibleName(self.tr("Folders granted to the file tools"))
        lay.addWidget(_caption(self.tr("Folders the file tools may read")))
        lay.addWidget(self.folders)
        self.grant = WrapButton(self.tr("Grant a folder…"))
        self.grant.clicked.connect(self._choose_folder)
        self.revoke = WrapButton(self.tr("Remove the granted folders"))
        self.revoke.clicked.connect(lambda: self._save_options(folders=()))
        lay.addWidget(self.grant)
        lay.addWidget(self.revoke)

        self.choice = QComboBox()
        self.choice.setObjectName("chat_tool_choice")
        self.choice.setAccessibleName(self.tr("Tool choice"))
        self.choice.activated.connect(self._choice_chosen)
        lay.addWidget(_caption(self.tr("The model may call tools"), self.choice))
        lay.addWidget(self.choice)
        self.steps = QSpinBox()
        self.steps.setObjectName("chat_tool_steps")
        self.steps.setRange(0, MAX_STEPS)
        self.steps.setAccessibleName(self.tr("Tool calls answered per turn"))
        self.steps.valueChanged.connect(self._steps_changed)
        lay.addWidget(_caption(self.tr("Tool calls per turn"), self.steps))
        lay.addWidget(self.steps)

        self.output = QComboBox()
        self.output.setObjectName("chat_output")
        self.output.setAccessibleName(self.tr("Structured output"))
        for key, text in zip(
            OUTPUTS,
            (self.tr("Free text"), self.tr("JSON (any object)"), self.tr("JSON matching a schema")),
            strict=True,
        ):
            self.output.addItem(text, key)
        self.output.activated.connect(self._output_chosen)
        lay.addWidget(_caption(self.tr("Answers as"), self.output))
        lay.addWidget(self.output)
        self.schema = QPlainTextEdit()
        self.schema.setObjectName("chat_schema")
        self.schema.setAccessibleName(self.tr("JSON schema of the answer"))
        self.schema.setPlaceholderText(self.tr('{"type": "object", "properties": {…}}'))
        self.schema.setMaximumHeight(self.fontMetrics().height() * 7)
        self.save_schema = WrapButton(self.tr("Save the schema"))
        self.save_schema.clicked.connect(self._schema_done)
        self.schema_error = _caption("")
        self.schema_error.setObjectName("chat_schema_error")
        self.schema_error.hide()
        lay.addWidget(self.schema)
        lay.addWidget(self.save_schema)
        lay.addWidget(self.schema_error)
        for combo in (self.choice, self.output):
            combo.setSizeAdjustPolicy(
                QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
            )
            combo.setMinimumContentsLength(8)
        self._build_rows()
        self.show_conversation(None)

    # -- the tool list ---------------------------------------------------------------

    def _build_rows(self) -> None:
        while self.grid.count():
            item = self.grid.takeAt(0)
            w = item.widget() if item is not None else None
            if w is not None:
                w.deleteLater()
        self.checks.clear()
        self.permissions.clear()
        labels = {
            "always": self.tr("Always"),
            "ask": self.tr("Ask"),
            "never": self.tr("Never"),
        }
        for i, spec in enumerate(self.specs):
            check = QCheckBox(spec.name)
            check.setObjectName(f"tool_{spec.name}")
            check.setToolTip(f"{source_of(spec.name)}: {spec.description}")
            check.setAccessibleName(self.tr("Offer the tool {name}").format(name=spec.name))
            check.toggled.connect(lambda on, n=spec.name: self._enabled_changed(n, on))
            perm = QComboBox()
            perm.setObjectName(f"tool_{spec.name}_permission")
            perm.setAccessibleName(self.tr("Permission of {name}").format(name=spec.name))
            for key in PERMISSIONS:
                perm.addItem(labels[key], key)
            perm.activated.connect(lambda _i, n=spec.name: self._permission_chosen(n))
            self.grid.addWidget(check, i, 0)
            self.grid.addWidget(perm, i, 1)
            self.checks[spec.name], self.permissions[spec.name] = check, perm

    def list_mcp(self) -> None:
        """Start the MCP servers (off the GUI thread) and add their tools to the list."""
        self.mcp_button.setEnabled(False)
        self.mcp_note.setText(self.tr("Starting the MCP servers…"))
        self.mcp_note.show()
        self.controller.list_all(self._listed, self._list_failed)

    def _listed(self, result: tuple[Sequence[Any], list[str]]) -> None:
        specs, problems = result
        self.specs = list(specs)
        self._build_rows()
        self.mcp_button.setEnabled(True)
        mcp = [s for s in self.specs if "__" in s.name]
        lines = [self.tr("{n} tools from MCP servers.").format(n=len(mcp))]
        lines += problems
        self.mcp_note.setText("\n".join(lines))
        self.show_conversation(self.conversation_id)

    def _list_failed(self, e: BaseException) -> None:
        self.mcp_button.setEnabled(True)
        self.mcp_note.setText(self.tr("Could not list the MCP tools: {error}").format(error=e))

    # -- showing ------------------------------------------------------------------------

    def show_conversation(self, conversation_id: str | None) -> None:
        self.conversation_id = conversation_id
        meta = self.controller.meta_of(conversation_id) if conversation_id else {}
        chat = read_chat_tools(meta)
        opts = ToolOptions.from_meta(meta)
        has_chat = conversation_id is not None
        runner = self.controller.registry is not None
        self.note.setText(
            self.tr("No tools are available in this window.")
            if not runner
            else self.tr("Tools this chat lets the model call (none until you switch some on).")
            if has_chat
            else self.tr("Start the chat first: then choose the tools it may use.")
        )
        self._filling = True
        try:
            known = {s.name: s for s in self.specs}
            for name, check in self.checks.items():
                check.setChecked(name in chat.enabled)
                check.setEnabled(has_chat and runner)
                perm = self.permissions[name]
                perm.setCurrentIndex(max(0, perm.findData(chat.permission(known[name]))))
                perm.setEnabled(has_chat and runner)
            self.choice.clear()
            self.choice.addItem(self.tr("When it chooses (auto)"), "auto")
            self.choice.addItem(self.tr("Never (tools not offered)"), "none")
            self.choice.addItem(self.tr("Must call a tool (required)"), "required")
            for name in chat.enabled:
                self.choice.addItem(self.tr("Must call {name}").format(name=name), name)
            self.choice.setCurrentIndex(max(0, self.choice.findData(opts.choice)))
            self.steps.setValue(
                opts.max_steps
                if opts.max_steps is not None
                else self.controller.window.settings.tool_max_steps
            )
            output = "text" if opts.output is None else "json" if opts.output is True else "schema"
            self.output.setCurrentIndex(self.output.findData(output))
            if isinstance(opts.output, dict):
                self.schema.setPlainText(json.dumps(opts.output, indent=2, ensure_ascii=False))
            self.folders.setText(
                "\n".join(opts.folders) if opts.folders else self.tr("No folder granted.")
            )
        finally:
            self._filling = False
        for w in (self.choice, self.steps, self.grant, self.mcp_button):
            w.setEnabled(has_chat and runner)
        self.output.setEnabled(has_chat)
        self.revoke.setEnabled(has_chat and bool(opts.folders))
        self.mcp_button.setVisible(runner and self.controller.has_mcp_servers())
        schema_shown = output == "schema"
        for part in (self.schema, self.save_schema):
            part.setVisible(schema_shown)
            part.setEnabled(has_chat)
        if not schema_shown:
            self.schema_error.hide()

    # -- editing ------------------------------------------------------------------------

    def _meta(self) -> dict[str, Any]:
        return dict(self.controller.meta_of(self.conversation_id)) if self.conversation_id else {}

    def _save(self, change: Callable[[dict[str, Any]], object]) -> None:
        if self.conversation_id is None or self._filling:
            return
        meta = self._meta()
        change(meta)
        self.controller.save(self.conversation_id, meta)
        self.show_conversation(self.conversation_id)

    def _enabled_changed(self, name: str, on: bool) -> None:
        self._save(lambda meta: set_enabled(meta, name, on))

    def _permission_chosen(self, name: str) -> None:
        value = self.permissions[name].currentData()
        self._save(lambda meta: set_permission(meta, name, value))

    def _save_options(self, **changes: Any) -> None:
        def change(meta: dict[str, Any]) -> None:
            from chatapp.gui.chat_tools import OPTIONS_KEY

            meta[OPTIONS_KEY] = ToolOptions.from_meta(meta).with_(**changes).to_json()

        self._save(change)

    def _choice_chosen(self, index: int) -> None:
        self._save_options(choice=self.choice.itemData(index))

    def _steps_changed(self, value: int) -> None:
        if not self._filling:
            self._save_options(max_steps=value)

    def grant_folder(self, path: str) -> None:
        opts = ToolOptions.from_meta(self._meta())
        if path and path not in opts.folders:
            self._save_options(folders=(*opts.folders, path))

    def _choose_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, self.tr("Grant a folder to the file tools"))
        if path:
            self.grant_folder(path)

    def _output_chosen(self, index: int) -> None:
        key = self.output.itemData(index)
        if key == "text":
            self._save_options(output=None)
        elif key == "json":
            self._save_options(output=True)
        else:  # a schema: saved once it is given and valid
            for w in (self.schema, self.save_schema):
                w.setVisible(True)
            if self.schema.toPlainText().strip():
                self._schema_done()

    def _schema_done(self) -> None:
        text = self.schema.toPlainText().strip()
        try:
            schema = json.loads(text)
            if not isinstance(schema, dict):
                raise ValueError(self.tr("a schema is a JSON object"))
            schema_grammar(schema)  # refused here, naming what it cannot express
        except (ValueError, UserError) as e:
            self.schema_error.setText(self.tr("Not saved: {reason}").format(reason=e))
            self.schema_error.show()
            return
        self.schema_error.hide()
        self._save_options(output=schema)
