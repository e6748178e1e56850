"""Errors meant for the user, as opposed to bugs.

A UserError carries a one-line message a person can act on; the window shows it in a
message bar, the CLI prints it and exits non-zero. Anything else is a bug and is logged.
"""

from __future__ import annotations


class UserError(Exception):
    """Something the user can fix: a bad file, no network, a full disk."""

    def __init__(self, message: str, *, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} {self.hint}".strip()


class BadModelFile(UserError):
    """The file is missing, not GGUF, truncated, or of an unknown architecture."""


class ModelLoadError(UserError):
    """llama.cpp refused to load a file that looked valid."""


class TemplateError(UserError):
    """A chat template failed to parse or render."""


class StoreError(UserError):
    """The database cannot be used (e.g. written by a newer chatapp)."""


class NetworkError(UserError):
    """The network is unreachable or the server answered with an error."""


class DiskFullError(UserError):
    """No space left to write a file."""


class ContextFullError(UserError):
    """The conversation no longer fits in the model's context window."""
