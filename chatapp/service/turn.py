"""A turn as its callers see it: the options they give, the handle they hold, and how a
failure is named (a kind and one line)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field, fields
from typing import Any

from chatapp.core.backend import PreparedPrompt, ReplyStats
from chatapp.core.conversation import FinishReason
from chatapp.core.errors import DiskFullError, FailureKind, StoreError, UserError
from chatapp.core.token_engine import SamplingParams
from chatapp.service.events import TurnEvent, TurnFailed, TurnFinished
from chatapp.service.resolver import Given

log = logging.getLogger(__name__)

Listener = Callable[[Any], None]


@dataclass(frozen=True)
class TurnOptions:
    """What a caller gives explicitly for a turn; everything else is resolved from the
    app's, the model's and the conversation's settings (service.resolver).

    sampling: a whole SamplingParams the caller chose (every field counts as given);
    overrides: only these sampling fields (a CLI flag, an API field)."""

    sampling: SamplingParams | None = None
    overrides: Mapping[str, Any] = field(default_factory=dict)
    system_prompt: str | None = None  # for a new conversation
    context_policy: str | None = None
    # alternatives kept per token (None: the settings' logprobs_top_n, 5 by default; 0: none)
    logprobs: int | None = None
    # tools the model may call: names of the app's tools (run in the turn, each approved
    # by its permission or `approve`), or OpenAI-shaped specs the caller runs (the API)
    tools: tuple[str, ...] = ()
    tool_specs: tuple[dict[str, Any], ...] = ()
    tool_choice: str | None = None  # auto | none | required | a tool's name
    parallel: bool | None = None  # parallel_tool_calls, passed to a remote server as given
    approve: Callable[[Any], bool] | None = None  # (core.toolcalls.ToolCall) -> run it?
    # the chat's own tool settings (the window's): permissions over the tools' defaults,
    # steps per turn (None: Settings.tool_max_steps), a runner for this turn (a view of
    # the app's tools with the chat's granted folders; None: the service's)
    tool_permissions: Mapping[str, str] = field(default_factory=dict)
    tool_max_steps: int | None = None
    tool_runner: Any = None
    # structured output: None free; True any JSON object; a dict: a JSON schema
    json_schema: Any = None
    # retrieved documents for this turn (service.documents.DocumentsStep), or None
    retrieval: Any = None
    # images with the new user message (core.images.ImageFile, read and checked): a send
    # stores them; an API turn's role dicts name them in "images" (service.vision)
    images: tuple[Any, ...] = ()

    def given(self) -> Given:
        values: dict[str, Any] = {}
        if self.sampling is not None:
            values = {f.name: getattr(self.sampling, f.name) for f in fields(SamplingParams)}
        values.update({k: v for k, v in self.overrides.items() if v is not None})
        return Given(values, self.system_prompt, self.context_policy, self.logprobs).checked()


CLIENT_LEFT = "The client went away before its turn came; it was not run."


@dataclass(frozen=True)
class ClientTurn:
    """What an API client's turn adds (ChatService.complete and record): its own KV-state
    key, a raw completion text instead of the template, the recorded conversation's meta.
    A client's turn cancelled while queued is never run (its client left)."""

    cache_key: str | None = None
    prompt_text: str | None = None  # /v1/completions: this text as-is, no chat template
    meta: dict[str, Any] = field(default_factory=dict)  # a recorded conversation's


@dataclass(frozen=True)
class Completion:
    """A finished completion-mode request (ChatService.continue_text)."""

    prompt: PreparedPrompt
    text: str
    stats: ReplyStats


class TurnHandle:
    """A turn in flight: cancel it, or wait for its last event."""

    def __init__(self, turn_id: str, listener: Listener | None) -> None:
        self.turn_id = turn_id
        self.cancel_event = threading.Event()
        self.future: Future[TurnFinished | TurnFailed] = Future()
        self.conversation_id: str | None = None
        self.message_id: str | None = None
        self._listener = listener

    def cancel(self) -> None:
        self.cancel_event.set()

    def result(self, timeout: float | None = None) -> TurnFinished | TurnFailed:
        return self.future.result(timeout)

    @property
    def done(self) -> bool:
        return self.future.done()

    def emit(self, event: TurnEvent) -> None:
        if self._listener is not None:
            try:
                self._listener(event)
            except Exception:
                log.exception("turn listener failed on %s", type(event).__name__)
        if isinstance(event, (TurnFinished, TurnFailed)) and not self.future.done():
            self.future.set_result(event)


@dataclass(frozen=True)
class Failure:
    kind: FailureKind
    message: str
    # how a partial answer is marked (a remote server's fault may say LENGTH, say)
    finish: FinishReason = FinishReason.ERROR


def failure_of(e: BaseException, doing: str = "Generation failed") -> Failure:
    """The kind and the one line for an exception that ended a turn. A UserError says
    its own kind; a storage problem is named; anything else is a bug (logged)."""
    if isinstance(e, UserError):
        finish = getattr(e, "finish_reason", FinishReason.ERROR)
        return Failure(
            e.kind, str(e), finish if isinstance(finish, FinishReason) else FinishReason.ERROR
        )
    storage = storage_failure(e)
    if storage is not None:
        return storage
    log.error("%s", doing, exc_info=e)
    return Failure(FailureKind.INTERNAL, f"{doing}: {e}" if str(e) else f"{doing}: {e!r}")


def storage_failure(e: BaseException) -> Failure | None:
    """A failed write as a Failure, or None if it is not a storage problem."""
    text = str(e).lower()
    if isinstance(e, DiskFullError) or "disk is full" in text or "no space" in text:
        return Failure(
            FailureKind.DISK_FULL,
            "The disk is full: the answer could not be saved. Free some space and try again.",
        )
    if isinstance(e, StoreError):
        return Failure(FailureKind.STORAGE, str(e))
    if "database is locked" in text or "database is busy" in text:
        return Failure(
            FailureKind.STORAGE,
            "The chat database is busy (another chatapp is writing to it); try again.",
        )
    if "malformed" in text or "not a database" in text:
        return Failure(FailureKind.STORAGE, f"The chat database is damaged: {e}")
    return None
