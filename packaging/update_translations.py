"""Extract the GUI's translatable strings into resources/i18n/chatapp_en.ts.

    python packaging/update_translations.py [OUT.ts]

Runs pyside6-lupdate (it ships with PySide6-Essentials) over chatapp/gui/**/*.py: every
self.tr("..."), QCoreApplication.translate("Context", "...") and QT_TRANSLATE_NOOP("Context",
"...") (a constant translated where it is shown) becomes a <message> in
the .ts file, which Qt Linguist edits and pyside6-lrelease compiles to the .qm that
chatapp.gui.i18n loads. chatapp_en.ts is the source-language file: the template that a
translation starts from.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TS = ROOT / "resources" / "i18n" / "chatapp_en.ts"


def lupdate_command() -> list[str] | None:
    exe = shutil.which("pyside6-lupdate")
    if exe:
        return [exe]
    try:  # the entry point is missing from PATH in some venvs; the binary is in the package
        import PySide6
    except ImportError:
        return None
    binary = Path(PySide6.__file__).parent / (
        "lupdate.exe" if sys.platform == "win32" else "lupdate"
    )
    return [str(binary)] if binary.exists() else None


def gui_sources() -> list[Path]:
    return sorted((ROOT / "chatapp" / "gui").rglob("*.py"))


def extract(ts: Path = DEFAULT_TS) -> subprocess.CompletedProcess[str]:
    cmd = lupdate_command()
    if cmd is None:
        raise SystemExit("pyside6-lupdate not found: pip install PySide6-Essentials")
    ts.parent.mkdir(parents=True, exist_ok=True)
    sources = [str(p.relative_to(ROOT)) for p in gui_sources()]
    return subprocess.run(
        [*cmd, *sources, "-locations", "relative", "-no-obsolete", "-target-language", "en",
         "-ts", str(ts.resolve())],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )  # fmt: skip


if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_TS
    print(extract(out).stdout.strip())
