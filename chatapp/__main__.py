"""Entry point: `chatapp` / `python -m chatapp`.

A known command name runs the headless CLI (no Qt import); no command opens the window
(`chatapp model.gguf`, as a file manager starts it through the .desktop file, opens that
model). Anything else is a mistake: an unknown command exits 2 with a suggestion, and
with no display the window is not attempted (Qt would abort the process).
"""

from __future__ import annotations

import difflib
import os
import sys
from collections.abc import Sequence

USAGE_ERROR = 2


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--pdf-worker"]:  # a frozen build's stand-in for -m chatapp.gui.pdf
        from chatapp.gui.pdf import main as pdf_main

        return pdf_main(args[1:])
    if args[:1] == ["--template-worker"]:  # the chat template renderer's child process
        from chatapp.core.templates.worker import main as template_worker_main

        return template_worker_main(args[1:])
    from chatapp import cli

    positionals = _positionals(args)
    commands = cli.command_names()
    if positionals and positionals[0] in commands:
        return cli.run(args)
    if "--self-test" in args:
        from chatapp.selftest import main as selftest_main

        return selftest_main([a for a in args if a != "--self-test"])
    if positionals[:1] == ["help"]:
        return _gui_help(args)
    if any(a in ("-h", "--help", "--version") for a in args) and "--model" not in args:
        return cli.run(args) if "--version" in args else _gui_help(args)
    if positionals:
        if not _looks_like_model_file(positionals[0]):
            return _unknown_command(positionals[0], commands)
        if len(positionals) > 1:
            print(
                f"chatapp: error: the window opens one model file, not also {positionals[1]!r}",
                file=sys.stderr,
            )
            return USAGE_ERROR
        if "--model" not in args:  # `chatapp FILE.gguf`: the .desktop file's Exec=chatapp %f
            args = [a for a in args if a != positionals[0]] + ["--model", positionals[0]]
    unknown = [a for a in args if a.startswith("-") and a not in _WINDOW_FLAGS]
    unknown = [a for a in unknown if not a.startswith(("--model=", "-psn_"))]  # -psn: macOS
    if unknown:
        print(
            f"chatapp: error: unknown option {unknown[0]!r} (see chatapp --help)", file=sys.stderr
        )
        return USAGE_ERROR
    from chatapp.display import display_problem

    problem = display_problem()
    if problem:
        print(
            f"chatapp: cannot open the window: {problem}. Without a display use a command: "
            f"{', '.join(sorted(commands))} (chatapp --help), "
            "or set QT_QPA_PLATFORM=offscreen.",
            file=sys.stderr,
        )
        return 1
    from chatapp.app import run_app

    return run_app(args)


_WINDOW_FLAGS = {"--model", "-v", "--verbose"}


def _positionals(args: list[str]) -> list[str]:
    """The words that are not options or option values (`--model PATH`'s PATH)."""
    out: list[str] = []
    skip = False
    for a in args:
        if skip:
            skip = False
        elif a == "--model":
            skip = True
        elif a == "--":
            continue
        elif not a.startswith("-"):
            out.append(a)
        elif out:  # options after the command belong to the command
            break
    return out


def _looks_like_model_file(word: str) -> bool:
    return word.lower().endswith(".gguf") or os.sep in word or os.path.exists(word)


def _unknown_command(word: str, commands: set[str]) -> int:
    close = difflib.get_close_matches(word, sorted(commands), n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    print(
        f"chatapp: error: unknown command {word!r}{hint} "
        f"(commands: {', '.join(sorted(commands))}; chatapp --help)",
        file=sys.stderr,
    )
    return USAGE_ERROR


def _gui_help(args: list[str]) -> int:
    from chatapp import cli

    cli._parser().print_help()
    print(
        "\nWindow options:\n"
        "  --model PATH   open this .gguf file in the window (or: chatapp PATH.gguf)\n"
        "  --self-test    check this installation: load a model (--model PATH, or the\n"
        "                 smallest in the library), generate, check the database and folders"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
