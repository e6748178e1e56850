"""What a turn needs to let the model act: the tools it is offered, who approves a call,
and how a result goes back to the model.

The service depends on this small ToolRunner protocol, not on chatapp.tools: the
composition root hands in the registry (chatapp.tools.registry.ToolRegistry fits it).
A call's permission is "always" (run), "ask" (the turn's approve callback decides) or
"never" (refused); a denied call is answered to the model with DENIED.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from chatapp.core.errors import UserError
from chatapp.core.toolcalls import DENIED, ToolCall

ALWAYS, ASK, NEVER = "always", "ask", "never"
PERMISSIONS = (ALWAYS, ASK, NEVER)
CHOICES = ("auto", "none", "required")
DEFAULT_MAX_STEPS = 5
RESULT_LIMIT = 16_000  # characters of a tool's result the model sees
STOPPED = "Stopped by the user."
NEVER_MESSAGE = "This tool may not be run (its permission is 'never')."

Approve = Callable[[ToolCall], bool]  # True: run the call


class ToolSpecLike(Protocol):
    name: str
    default_permission: str

    def openai(self) -> dict[str, Any]: ...


class ToolResultLike(Protocol):
    content: str
    is_error: bool
    truncated: bool
    seconds: float


class ToolRunner(Protocol):
    def specs(self, names: list[str] | None = None) -> Sequence[ToolSpecLike]: ...

    def run(
        self,
        name: str,
        arguments: dict[str, Any],
        *,
        cancel: threading.Event,
        timeout: float = 30.0,
    ) -> ToolResultLike: ...

    def close(self) -> None:
        """Stop what the tools started (MCP servers, a running tool's process)."""
        ...


@dataclass(frozen=True)
class ToolOutcome:
    """What the model is told about one call, and how it went."""

    content: str
    is_error: bool = False
    truncated: bool = False
    denied: bool = False
    seconds: float = 0.0

    def meta(self, call: ToolCall) -> dict[str, Any]:
        out: dict[str, Any] = {"tool_call_id": call.id, "name": call.name}
        for key in ("is_error", "truncated", "denied"):
            if getattr(self, key):
                out[key] = True
        out["seconds"] = round(self.seconds, 4)
        return out


@dataclass(frozen=True)
class TurnTools:
    """The tools of one turn.

    specs: OpenAI-shaped function specs offered to the template.
    choice: "auto", "none", "required", or a tool's name (a call to it is required).
    runner: runs the calls; None where the caller runs them (the API server): the turn
    then ends at the model's calls. permissions: tool name -> always|ask|never."""

    specs: list[dict[str, Any]]
    choice: str = "auto"
    runner: ToolRunner | None = None
    permissions: dict[str, str] = field(default_factory=dict)
    approve: Approve | None = None
    max_steps: int = DEFAULT_MAX_STEPS
    result_limit: int = RESULT_LIMIT
    parallel: bool | None = None  # parallel_tool_calls as the caller gave it (None: not said)

    @property
    def offered(self) -> list[dict[str, Any]] | None:
        return None if self.choice == "none" or not self.specs else self.specs

    @property
    def required_name(self) -> str | None:
        """The tool a call must go to (None: any, or no call required)."""
        return None if self.choice in CHOICES else self.choice

    @property
    def constrained(self) -> bool:
        return bool(self.specs) and self.choice not in ("auto", "none")

    def names(self) -> list[str]:
        return [str(s.get("function", s).get("name", "")) for s in self.specs]

    def run(self, call: ToolCall, cancel: threading.Event) -> ToolOutcome:
        """Decide, then run the call (never raises for the tool's own failure)."""
        if call.error:
            return ToolOutcome(f"{call.error} Write the call again as valid JSON.", is_error=True)
        if call.name not in self.names():
            return ToolOutcome(
                f"There is no tool named {call.name!r}; the tools are: {', '.join(self.names())}.",
                is_error=True,
            )
        permission = self.permissions.get(call.name, ASK)
        if permission == NEVER:
            return ToolOutcome(NEVER_MESSAGE, denied=True)
        if permission != ALWAYS and (self.approve is None or not self.approve(call)):
            if cancel.is_set():  # Stop while the user was asked: the turn ends here
                return ToolOutcome(STOPPED, is_error=True)
            return ToolOutcome(DENIED, denied=True)
        if self.runner is None:
            return ToolOutcome("This tool cannot be run here.", is_error=True)
        result = self.runner.run(call.name, call.arguments, cancel=cancel)
        content, cut = cap(result.content, self.result_limit)
        return ToolOutcome(
            content,
            is_error=bool(result.is_error),
            truncated=cut or bool(result.truncated),
            seconds=float(result.seconds),
        )


def cap(text: str, limit: int) -> tuple[str, bool]:
    """The text cut to `limit` characters, with the cut said at its end."""
    if len(text) <= limit:
        return text, False
    return f"{text[:limit]}\n[... cut: {limit:,} of {len(text):,} characters shown]", True


def turn_tools(
    runner: ToolRunner | None,
    names: Sequence[str],
    choice: str | None,
    approve: Approve | None,
    *,
    max_steps: int = DEFAULT_MAX_STEPS,
) -> TurnTools:
    """The TurnTools for a turn that offers the runner's tools `names` (raises UserError
    for an unknown tool or choice)."""
    if runner is None:
        raise UserError("No tools are available in this app.")
    specs = list(runner.specs(list(names)))
    found = {s.name for s in specs}
    for name in names:
        if name not in found:
            raise UserError(f"There is no tool named {name!r}.")
    choice = choice or "auto"
    if choice not in CHOICES and choice not in found:
        raise UserError(
            f"tool choice must be auto, none, required or one of the turn's tools, not {choice!r}"
        )
    return TurnTools(
        [s.openai() for s in specs],
        choice,
        runner,
        {s.name: s.default_permission for s in specs},
        approve,
        max_steps,
    )
