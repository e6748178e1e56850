"""Entry point: `chatapp` / `python -m chatapp`.

A known command name runs the headless CLI (no Qt import); anything else opens the window.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--pdf-worker"]:  # a frozen build's stand-in for -m chatapp.gui.pdf
        from chatapp.gui.pdf import main as pdf_main

        return pdf_main(args[1:])
    if args[:1] == ["--template-worker"]:  # the chat template renderer's child process
        from chatapp.core.template_worker import main as template_worker_main

        return template_worker_main(args[1:])
    from chatapp import cli

    first = next((a for a in args if not a.startswith("-")), None)
    if first is not None and first in cli.command_names():
        return cli.run(args)
    if any(a in ("-h", "--help", "--version") for a in args) and "--model" not in args:
        return cli.run(args) if "--version" in args else _gui_help(args)
    from chatapp.app import run_app

    return run_app(args)


def _gui_help(args: list[str]) -> int:
    from chatapp import cli

    cli._parser().print_help()
    print("\nWindow options:\n  --model PATH   open this .gguf file in the window")
    return 0


if __name__ == "__main__":
    sys.exit(main())
