"""Every user-visible string in chatapp/gui goes through Qt's translation.

An ast walk over chatapp/gui/**/*.py: a string literal with letters (or an f-string, or
"...".format(...), or a concatenation holding one) passed straight to a call that puts
text on screen fails the test with file:line. Text must come from self.tr("..."),
QCoreApplication.translate("Context", "..."), or a variable (which the walk cannot
judge; the literal it came from is caught where it is passed, or marked with
QT_TRANSLATE_NOOP and translated at use time). A tr() call whose text is not a plain
literal is flagged too: pyside6-lupdate extracts only literals.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

GUI = Path(__file__).resolve().parents[2] / "chatapp" / "gui"

# constructors whose positional string arguments are all text (QAction(icon, text, parent),
# QLabel(text, parent), QMenu(title, parent), QGroupBox(title) ...)
CONSTRUCTORS = {
    "QAction", "QLabel", "QPushButton", "QCheckBox", "QRadioButton", "QGroupBox",
    "QToolButton", "QMenu", "QMessageBox", "QCommandLinkButton", "QListWidgetItem",
    "QDockWidget",
}  # fmt: skip

# method -> the positional indexes that carry text (None: every positional argument)
METHODS: dict[str, tuple[int, ...] | None] = {
    "setText": (0,),
    "setWindowTitle": (0,),
    "setToolTip": (0,),
    "setStatusTip": (0,),
    "setWhatsThis": (0,),
    "setPlaceholderText": (0,),
    "setAccessibleName": (0,),
    "setAccessibleDescription": (0,),
    "setTitle": (0,),
    "setInformativeText": (0,),
    "setDetailedText": (0,),
    "setLabelText": (0,),
    "setSpecialValueText": (0,),
    "setSuffix": (0,),
    "setPrefix": (0,),
    "setTabText": (1,),
    "setTabToolTip": (1,),
    "setItemText": (1,),
    "addMenu": None,
    "addAction": None,  # addAction(text) / addAction(icon, text); a slot is not a string
    "addButton": (0,),
    "addTab": (1, 2),
    "insertTab": (2, 3),
    "addRow": (0,),
    "addItem": (0,),  # QComboBox.addItem(text, data): the data is not text
    "insertItem": (1,),
    "show_error": None,
    "show_info": None,
    "showMessage": (0,),
    "setHorizontalHeaderLabels": None,
    # static QMessageBox.question(parent, title, text) ... and the file/input dialogs
    "question": (1, 2),
    "information": (1, 2),
    "warning": (1, 2),
    "critical": (1, 2),
    "about": (1, 2),
    "getOpenFileName": (1, 3),
    "getOpenFileNames": (1, 3),
    "getSaveFileName": (1, 3),
    "getExistingDirectory": (1,),
    "getText": (1, 2),
    "getItem": (1, 2),
    "getInt": (1, 2),
    "getMultiLineText": (1, 2),
    "set_placeholder": (0,),  # MessageView's empty-chat text
    # the modules' own helpers that set a widget's text
    "_named": (1, 2),  # settings_dialog: accessible name, description
    "_spin": (2, 3, 4),  # settings_dialog: name, description, special value text
    "_double": (3, 4),
    "_action": (1,),  # shortcuts: the action's text
    "set_tokens_error": (0,),  # prompt_view
    "say": (0,),  # model manager, welcome: the status line
    "_give_up": (0,),  # welcome
    "Column": (0,),  # model_manager_models: a table's column title
}
KEYWORDS = {
    "text", "title", "tooltip", "toolTip", "caption", "filter", "label", "message", "special",
}  # fmt: skip

TRANSLATORS = {"tr", "translate", "QT_TRANSLATE_NOOP", "QT_TR_NOOP"}

# not words: symbols and separators that need no translation (strings without letters,
# such as "…", "‹", "✕", pass anyway; HTML tags around a translated text are no words either)
ALLOWED: set[str] = set()
_TAG = re.compile(r"</?[a-zA-Z][a-zA-Z0-9]*[^<>]*>")


def _has_letters(s: str) -> bool:
    return any(c.isalpha() for c in _TAG.sub("", s)) and s not in ALLOWED


def _name(func: ast.expr) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def _untranslated(node: ast.expr) -> bool:
    """A literal with letters reaches the screen without a translator call."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str) and _has_letters(node.value)
    if isinstance(node, ast.JoinedStr):
        return any(isinstance(v, ast.Constant) and _has_letters(str(v.value)) for v in node.values)
    if isinstance(node, ast.BinOp):
        return _untranslated(node.left) or _untranslated(node.right)
    if isinstance(node, ast.IfExp):
        return _untranslated(node.body) or _untranslated(node.orelse)
    if isinstance(node, ast.BoolOp):
        return any(_untranslated(v) for v in node.values)
    if isinstance(node, ast.Call):
        func = node.func
        # "literal".format(...) / "sep".join([...]) on a literal with letters
        if isinstance(func, ast.Attribute) and func.attr in {"format", "join"}:
            return _untranslated(func.value) or any(_untranslated(a) for a in node.args)
    if isinstance(node, ast.List | ast.Tuple):
        return any(_untranslated(e) for e in node.elts)
    return False


def _bad_translator_call(node: ast.Call) -> bool:
    """tr(f"...") / translate("Ctx", "a" + b): lupdate cannot extract it."""
    name = _name(node.func)
    if name not in {"tr", "translate"} or not node.args:
        return False
    text = node.args[-1] if name == "tr" else (node.args[1] if len(node.args) > 1 else None)
    if name == "tr" and len(node.args) > 1:
        text = node.args[0]  # tr(text, disambiguation)
    return isinstance(text, ast.JoinedStr | ast.BinOp)


def violations(path: Path) -> Iterator[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = _name(node.func)
        if name is None:
            continue
        if _bad_translator_call(node):
            yield node.lineno, f"{name}() with a non-literal text (lupdate cannot extract it)"
            continue
        if name in CONSTRUCTORS:
            indexes: tuple[int, ...] | None = None
        elif name in METHODS:
            indexes = METHODS[name]
        else:
            continue
        args = list(enumerate(node.args))
        if indexes is not None:
            args = [(i, a) for i, a in args if i in indexes]
        for _, arg in args:
            if _untranslated(arg):
                yield arg.lineno, f"{name}(): {ast.unparse(arg)[:60]}"
        for kw in node.keywords:
            if kw.arg in KEYWORDS and _untranslated(kw.value):
                yield kw.value.lineno, f"{name}({kw.arg}=): {ast.unparse(kw.value)[:60]}"


def all_violations() -> list[str]:
    found = []
    for path in sorted(GUI.rglob("*.py")):
        rel = path.relative_to(GUI.parents[1])
        for line, what in violations(path):
            found.append(f"{rel}:{line}: {what}")
    return found


def test_every_user_visible_literal_is_translated() -> None:
    found = all_violations()
    assert not found, "untranslated user-visible strings:\n" + "\n".join(found)


def _check(src: str, tmp_path: Path) -> list[tuple[int, str]]:
    p = tmp_path / "m.py"
    p.write_text(src, encoding="utf-8")
    return list(violations(p))


def test_the_walk_catches_what_it_must(tmp_path: Path) -> None:
    """The checker can fail: each pattern here is an untranslated visible string."""
    bad = [
        'QLabel("Hello")',
        'w.setToolTip(f"Loaded {name}")',
        'self.setWindowTitle("Settings")',
        'QMessageBox.question(self, "Title", self.tr("Text"))',
        'menu.addAction("&Quit")',
        'self.window.show_error("Boom: {e}".format(e=e))',
        'tabs.addTab(widget, "General")',
        'form.addRow("Port:", spin)',
        'self.tr(f"Loaded {name}")',
        'QCoreApplication.translate("Ctx", "a" + b)',
        'QAction(icon, "Copy", self)',
        'edit.setPlaceholderText("Search" if x else "Find")',
        'QLabel("<b>Pick a model</b>")',
    ]
    for src in bad:
        assert _check(src, tmp_path), src
    good = [
        'QLabel(self.tr("Hello"))',
        'w.setToolTip(self.tr("Loaded {name}").format(name=name))',
        'QMessageBox.question(self, self.tr("Title"), self.tr("Text"))',
        'menu.addAction(self.tr("&Quit"), self.close)',
        'QCoreApplication.translate("Ctx", "Text")',
        'button.setText("…")',
        'combo.addItem(self.tr("Dark"), "dark")',
        "label.setText(name)",
        'QLabel(f"<h2>{self.tr(TITLE)}</h2>")',
    ]
    for src in good:
        assert not _check(src, tmp_path), src
