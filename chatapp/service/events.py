"""What the chat service tells its clients: plain, immutable data.

Model events go to every subscriber (the window's adapter, the server); a turn's events
go to the listener given when the turn was started. Events are delivered on the
service's threads: a GUI adapter re-emits them as signals, the CLI prints them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from chatapp.core.backend import Capabilities, Chunk, ModelRef, PreparedPrompt, ReplyStats
from chatapp.core.conversation import Message
from chatapp.core.errors import FailureKind
from chatapp.core.templates import ChatTemplate
from chatapp.core.token_engine import ModelInfo


@dataclass(frozen=True)
class LoadedModel:
    ref: ModelRef
    info: ModelInfo
    template: ChatTemplate  # with the user's saved template at load time
    capabilities: Capabilities = field(default_factory=Capabilities)
    seconds: float = 0.0


@dataclass(frozen=True)
class ModelLoading:
    ref: ModelRef


@dataclass(frozen=True)
class ModelLoaded:
    model: LoadedModel


@dataclass(frozen=True)
class ModelLoadFailed:
    ref: ModelRef
    message: str


@dataclass(frozen=True)
class ModelUnloaded:
    pass


@dataclass(frozen=True)
class StoreWaiting:
    """A write waits for another process's lock on the database (or the wait ended)."""

    message: str
    done: bool = False


@dataclass(frozen=True)
class ConversationsChanged:
    """A conversation edit was saved (service.conversations): renamed, pinned, tagged, a
    branch switched, deleted to the trash, restored, or the trash emptied. Every view of
    the list or of these chats reloads what it shows."""

    what: str  # ConversationCommands' names: "rename", "pin", "tags", "branch", "delete"...
    conversation_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class TurnStarted:
    """The question (None for a regenerate) and the answer's row are saved."""

    turn_id: str
    conversation_id: str
    user: Message | None
    reply: Message
    new_conversation: bool = False


@dataclass(frozen=True)
class TurnFitting:
    """The oldest turns are being left out to fit the context (the chat settings say
    so), and that takes more than a moment: `fraction` of the work is done (0..1)."""

    turn_id: str
    message_id: str
    fraction: float


@dataclass(frozen=True)
class TurnPrompt:
    """The prompt is prepared and about to be evaluated."""

    turn_id: str
    message_id: str
    prompt: PreparedPrompt
    n_ctx: int
    dropped: tuple[str, ...] = ()  # messages left out to fit the context (the policy says so)


@dataclass(frozen=True)
class TurnChunk:
    turn_id: str
    message_id: str
    chunk: Chunk


@dataclass(frozen=True)
class TurnFinished:
    turn_id: str
    conversation_id: str
    message: Message  # as saved, with its receipt
    stats: ReplyStats
    n_ctx: int
    warning: str = ""  # e.g. the system prompt was merged into the first turn


@dataclass(frozen=True)
class TurnFailed:
    turn_id: str
    conversation_id: str | None
    message_id: str | None  # the answer kept as far as it got, or None if dropped
    error: str
    restore_input: str = ""  # the user's text, when it could not be saved
    kind: FailureKind = FailureKind.INTERNAL  # what went wrong (callers map it, never the text)


ModelEvent = ModelLoading | ModelLoaded | ModelLoadFailed | ModelUnloaded


@dataclass(frozen=True)
class TurnToolCall:
    """The model called a tool (message_id: the answer that holds the call); a call
    that could not be read has call.error set and is not run."""

    turn_id: str
    message_id: str
    call: Any  # core.toolcalls.ToolCall


@dataclass(frozen=True)
class TurnToolResult:
    """A call's result, as the model is told it (message_id: the tool message saved)."""

    turn_id: str
    message_id: str
    call: Any  # core.toolcalls.ToolCall
    outcome: Any  # service.tools.ToolOutcome


TurnEvent = (
    TurnStarted
    | TurnFitting
    | TurnPrompt
    | TurnChunk
    | TurnToolCall
    | TurnToolResult
    | TurnFinished
    | TurnFailed
)
