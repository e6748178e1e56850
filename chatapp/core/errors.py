"""Errors meant for the user, as opposed to bugs, and the kinds a failed turn can have.

A UserError carries a one-line message a person can act on; the window shows it in a
message bar, the CLI prints it and exits non-zero. Anything else is a bug and is logged.

Every error has a FailureKind. A failed turn carries its kind across the service
boundary (TurnFailed.kind), so the API server picks its HTTP status, the CLI its exit
code and the window its message from the kind, never by reading the message's text.
"""

from __future__ import annotations

from enum import Enum


class FailureKind(str, Enum):
    """Why a turn (or a request for one) failed."""

    CONTEXT_FULL = "context_full"  # the prompt does not fit the model's context window
    NO_MODEL = "no_model"  # no model loaded, or another one than the turn needs
    BAD_REQUEST = "bad_request"  # the caller asked for something impossible or malformed
    NOT_FOUND = "not_found"  # no such conversation or message
    BAD_MODEL = "bad_model"  # the model file cannot be used
    TEMPLATE = "template"  # the chat template failed to render
    BACKEND_UNREACHABLE = "backend_unreachable"  # a remote server is down or refused
    BACKEND_FAILED = "backend_failed"  # a remote server answered with an error or garbage
    DISK_FULL = "disk_full"
    STORAGE = "storage"  # the database cannot be written (locked, damaged, newer)
    CANCELLED = "cancelled"
    INTERNAL = "internal"  # a bug: logged with its traceback


# the CLI's exit code for the kinds a script may want to tell apart; 1 for every other
# error (2 stays argparse's: a mistake in the command line), 130 an interrupt as in shells
EXIT_CODES: dict[FailureKind, int] = {
    FailureKind.CONTEXT_FULL: 3,
    FailureKind.NO_MODEL: 4,
    FailureKind.DISK_FULL: 6,
    FailureKind.CANCELLED: 130,
    FailureKind.INTERNAL: 70,  # EX_SOFTWARE
}


def exit_code(kind: FailureKind) -> int:
    return EXIT_CODES.get(kind, 1)


class UserError(Exception):
    """Something the user can fix: a bad file, no network, a full disk."""

    kind: FailureKind = FailureKind.BAD_REQUEST

    def __init__(self, message: str, *, hint: str = "", kind: FailureKind | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        if kind is not None:
            self.kind = kind

    def __str__(self) -> str:
        return f"{self.message} {self.hint}".strip()


class BadModelFile(UserError):
    """The file is missing, not GGUF, truncated, or of an unknown architecture."""

    kind = FailureKind.BAD_MODEL


class ModelLoadError(UserError):
    """llama.cpp refused to load a file that looked valid."""

    kind = FailureKind.BAD_MODEL


class NoModelError(UserError):
    """No model is loaded (or not the one the turn needs)."""

    kind = FailureKind.NO_MODEL


class NotFoundError(UserError):
    """No conversation or message with that id."""

    kind = FailureKind.NOT_FOUND


class TemplateError(UserError):
    """A chat template failed to parse or render."""

    kind = FailureKind.TEMPLATE


class StoreError(UserError):
    """The database cannot be used (e.g. written by a newer chatapp)."""

    kind = FailureKind.STORAGE


class NetworkError(UserError):
    """The network is unreachable or the server answered with an error."""

    kind = FailureKind.BACKEND_UNREACHABLE


class DiskFullError(UserError):
    """No space left to write a file."""

    kind = FailureKind.DISK_FULL


class ContextFullError(UserError):
    """The conversation no longer fits in the model's context window."""

    kind = FailureKind.CONTEXT_FULL
