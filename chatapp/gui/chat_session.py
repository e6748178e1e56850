"""The window's chat controller, on the GUI thread: what the user asks for goes to the
chat service; what the service reports comes back as signals for the views.

It runs no turn and writes no answer itself: the service saves the question, streams
and saves the answer (time-based, at most about half a second of text unsaved if the
process is killed) and records its receipt. This object keeps only the window's state:
the conversation shown, the model loaded, the turn in flight.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from chatapp.core.backend import ModelRef, PreparedPrompt
from chatapp.core.conversation import FinishReason, Message, Role
from chatapp.core.errors import FailureKind, UserError
from chatapp.core.settings import Settings
from chatapp.core.store import Store
from chatapp.core.store.trash import TrashEntry
from chatapp.core.templates import ChatTemplate
from chatapp.core.token_engine import ModelInfo
from chatapp.gui.worker import ServiceBridge
from chatapp.service import (
    BackendFactory,
    ChatService,
    LoadedModel,
    TurnHandle,
    TurnOptions,
    default_backend_factory,
)
from chatapp.service.events import (
    ConversationsChanged,
    TurnFailed,
    TurnFinished,
    TurnFitting,
    TurnPrompt,
    TurnStarted,
    TurnToolCall,
    TurnToolResult,
)
from chatapp.service.tools import ToolRunner

log = logging.getLogger(__name__)


def _ignore(_result: Any) -> None:
    pass


# the context meter follows a streaming answer this often: each move relays the status
# bar out, GUI time taken from the model (the answer's end sets the exact count)
METER_INTERVAL_S = 0.25


@dataclass
class _Streaming:
    handle: TurnHandle
    conversation_id: str | None = None
    message_id: str | None = None
    text: str = ""
    thinking: str = ""
    fitting: int = -1  # the percentage of fitting the context last shown (-1: none)
    prompt_tokens: int = 0  # the context meter while the answer streams
    n_ctx: int = 0
    generated: int = 0
    meter_at: float = 0.0  # when the meter was last moved (time.monotonic())


class ChatSession(QObject):
    # model
    model_loading = Signal(str)  # path
    model_loaded = Signal(object)  # LoadedModel
    model_failed = Signal(str)  # message
    # conversations
    conversation_selected = Signal(str)  # id ("" for a new, empty chat)
    conversations_changed = Signal()
    # replies
    reply_started = Signal(str, str)  # conversation id, message id
    reply_delta = Signal(str, str, str)  # message id, whole answer and thinking so far
    reply_tokens = Signal(str, object)  # message id, the new chunks (token id, probabilities)
    reply_finished = Signal(str)  # message id
    tool_call = Signal(object)  # TurnToolCall of the turn in flight (before it runs)
    tool_result = Signal(object)  # TurnToolResult (the result and the next answer are saved)
    busy_changed = Signal(bool)
    context_changed = Signal(int, int)  # used, n_ctx
    speed_changed = Signal(float)  # tokens/s of the last answer
    input_restored = Signal(str)  # a message that could not be saved, back to the input
    images_taken = Signal()  # the composer's images went with a message (gui.image_attach)
    images_restored = Signal()  # ...and came back with its text: it was not kept
    status_message = Signal(str)  # a passing note for the status line
    error = Signal(str)
    notice = Signal(str)

    def __init__(
        self,
        store: Store,
        settings: Settings,
        backend_factory: BackendFactory = default_backend_factory,
        *,
        service: ChatService | None = None,
        tools: ToolRunner | None = None,
    ) -> None:
        super().__init__()
        self.store = store
        self.settings = settings
        self.service = service or ChatService(store.path, settings, backend_factory, tools=tools)
        self.model: LoadedModel | None = None
        self.loading_path: str | None = None
        self._chosen_mmproj: tuple[str, str] | None = None  # (model path, projector)
        self.conversation_id: str | None = None
        self._streaming: _Streaming | None = None
        self._closed = False
        # what the window's extensions add to a turn (retrieved documents...):
        # hook(options, kind, message_id) -> options; kind "send" (message_id None),
        # "regenerate" (the answer replaced, None: the last) or "edit" (the question edited)
        self.option_hooks: list[Callable[[TurnOptions, str, str | None], TurnOptions]] = []
        self.pending_images: tuple[Any, ...] = ()  # core.images.ImageFile (gui.image_attach)
        self._sent_images: tuple[Any, ...] = ()

        self.bridge = ServiceBridge()
        self._unsubscribe = self.service.subscribe(self.bridge.on_service_event)
        b = self.bridge
        b.model_loading.connect(self._on_loading)
        b.model_loaded.connect(self._on_loaded)
        b.model_failed.connect(self._on_load_failed)
        b.model_unloaded.connect(self._on_unloaded)
        b.store_waiting.connect(self._on_store_waiting)
        b.conversations_edited.connect(self._on_conversations_edited)
        b.turn_started.connect(self._on_started)
        b.turn_fitting.connect(self._on_fitting)
        b.turn_prompt.connect(self._on_prompt)
        b.turn_delta.connect(self._on_delta)
        b.turn_tokens.connect(self._on_tokens)
        b.turn_tool_call.connect(self._on_tool_call)
        b.turn_tool_result.connect(self._on_tool_result)
        b.turn_finished.connect(self._on_finished)
        b.turn_failed.connect(self._on_failed)

    # -- model ------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        return self._streaming is not None

    @property
    def model_info(self) -> ModelInfo | None:
        return self.model.info if self.model else None

    @property
    def template(self) -> ChatTemplate | None:
        return self.model.template if self.model else None

    def open_model(self, path: str, mmproj: str | None = None) -> None:
        """Load a model file; mmproj: its vision projector (None: one beside it, if any)."""
        if self.busy:
            self.error.emit(self.tr("Stop the answer in progress before switching models."))
            return
        p = Path(path).expanduser()
        if not p.exists():
            self.error.emit(self.tr("No such file: {path}").format(path=p))
            return
        # the app's hardware settings, then this model's own (service.resolver)
        try:
            request = self.service.load_request(ModelRef.local(p))
        except UserError as e:  # e.g. speculation "draft" with no draft model for this one
            self.error.emit(str(e))
            return
        self.loading_path = str(p.resolve())
        # a projector the user picked: loading this model again keeps it
        self._chosen_mmproj = (self.loading_path, mmproj) if mmproj else None
        self.model_loading.emit(self.loading_path)
        self.service.load(replace(request, mmproj=mmproj) if mmproj else request)

    def chosen_projector(self, path: str) -> str | None:
        """The projector the user picked when this model file was last opened (None: the
        one beside it, if any)."""
        chosen = self._chosen_mmproj
        if chosen is not None and chosen[0] == str(Path(path).expanduser().resolve()):
            return chosen[1]
        return None

    def set_user_template(self, text: str | None) -> None:
        """The saved template is read by the service for every request, so it applies
        to the next message as it is; this only refreshes what the window shows."""
        if self.model is None:
            return
        self.bridge.when_done(self.service.template_now(text or None), self._on_template)

    def _on_template(self, template: ChatTemplate) -> None:
        if self.model is not None:
            self.model = replace(self.model, template=template)
            self.model_loaded.emit(self.model)

    def _on_loading(self, ref: ModelRef) -> None:
        if ref.is_local and self.loading_path != ref.name:
            self.loading_path = ref.name
            self.model_loading.emit(ref.name)

    def _on_loaded(self, loaded: LoadedModel) -> None:
        self.model = loaded
        self.loading_path = None
        self.settings.last_model = loaded.info.path
        self.model_loaded.emit(loaded)
        if loaded.template.warning:
            self.notice.emit(loaded.template.warning)
        self._emit_context()

    def _on_load_failed(self, _ref: ModelRef, message: str) -> None:
        self.loading_path = None
        # the service closed the previous model before trying the new one
        self.model = None
        self.model_failed.emit(message)
        self.error.emit(message)

    def _on_unloaded(self) -> None:
        self.model = None

    def _on_store_waiting(self, message: str, done: bool) -> None:
        self.notice.emit(message)

    # -- prompts --------------------------------------------------------------------

    def prepare_prompt(
        self,
        on_done: Callable[[PreparedPrompt], None],
        on_error: Callable[[BaseException], None],
        *,
        draft: str = "",
        user_template: str | None = None,
        use_saved: bool = True,
    ) -> None:
        """The exact prompt of the next answer here (with the draft as the next message):
        the same function a send runs, delivered on the GUI thread."""
        kwargs: dict[str, Any] = {} if use_saved else {"user_template": user_template}
        try:
            if draft.strip() and self.pending_images:  # the composer's images (image_attach)
                kwargs["draft_images"] = self.pending_images
            fut = self.service.prepare_conversation(
                self.conversation_id, draft=draft, options=self.turn_options(), **kwargs
            )
        except RuntimeError as e:  # the service is shut down (the window is closing)
            on_error(e)
            return
        self.bridge.when_done(fut, on_done, on_error)

    def tokenize(
        self,
        text: str,
        on_done: Callable[[list[tuple[int, bytes]]], None],
        on_error: Callable[[BaseException], None],
    ) -> None:
        try:
            fut = self.service.tokenize(text)
        except RuntimeError as e:  # the service is shut down (a timer fired as it closed)
            on_error(e)
            return
        self.bridge.when_done(fut, on_done, on_error)

    # -- conversations ------------------------------------------------------------

    def select_conversation(self, conversation_id: str | None) -> None:
        self.conversation_id = conversation_id or None
        self.conversation_selected.emit(conversation_id or "")
        self._emit_context()
        conv = self.store.get_conversation(conversation_id) if conversation_id else None
        if conv is not None:
            self._switch_model_to(conv.model_path)

    def new_conversation(self) -> None:
        """An empty chat; it uses the default model, if one is set, else the loaded one."""
        self.select_conversation(None)
        self._switch_model_to(self.settings.default_model)

    def _switch_model_to(self, path: str | None) -> None:
        """Load `path` unless it is the model already loaded or loading (or is gone)."""
        if not path or ModelRef.parse(path).endpoint:
            return
        if (
            not self.busy
            and (self.model is None or Path(path) != Path(self.model.info.path))
            and self.loading_path != path
            and Path(path).exists()
        ):
            self.open_model(path)

    # edits go through the service (service.conversations), which tells every view when
    # they are saved (_on_conversations_edited)

    def rename_conversation(self, conversation_id: str, title: str) -> None:
        self.when_saved(self.service.conversations.rename(conversation_id, title))

    def delete_conversations(
        self, conversation_ids: list[str], on_done: Callable[[list[TrashEntry]], None]
    ) -> None:
        """Move the chats to the trash; on_done(entries) can offer to undo it."""
        st = self._streaming
        if st and st.conversation_id in conversation_ids:
            st.handle.cancel()
            st.handle.result(timeout=30)  # the answer ends within a token; then delete
            self._streaming = None
            self.busy_changed.emit(False)
        self.when_saved(self.service.conversations.delete(conversation_ids), on_done)

    def restore_deleted(
        self,
        trash_ids: list[str],
        on_done: Callable[[list[TrashEntry]], None] | None = None,
    ) -> None:
        """Undo deletes (chats or messages): every row comes back as it was."""
        self.when_saved(self.service.conversations.restore_all(trash_ids), on_done)

    def when_saved(self, future: Future[Any], on_done: Callable[[Any], None] | None = None) -> None:
        """on_done(result) on the GUI thread once a service command is saved; a failure
        is shown to the user in one line."""
        self.bridge.when_done(future, on_done or _ignore, self._on_edit_failed)

    def _on_edit_failed(self, e: BaseException) -> None:
        if not isinstance(e, UserError):
            log.error("a conversation edit failed", exc_info=e)
        self.error.emit(self.tr("Could not save the change: {error}").format(error=e))

    def _on_conversations_edited(self, event: ConversationsChanged) -> None:
        if event.what == "delete" and self.conversation_id in event.conversation_ids:
            self.select_conversation(None)
        self.conversations_changed.emit()

    def thread(self) -> list[Message]:  # type: ignore[override]  # (not QObject.thread)
        return self.store.active_thread(self.conversation_id) if self.conversation_id else []

    # -- chatting -----------------------------------------------------------------

    def still_streaming_text(self) -> str:
        """The refusal while an answer streams (the window hides it when the answer ends)."""
        return self.tr("An answer is still streaming: stop it first (Esc).")

    def _can_start(self) -> bool:
        if self.busy:
            self.error.emit(self.still_streaming_text())
            return False
        if self.model is None:
            self.error.emit(
                self.tr("No model is loaded yet.")
                if not self.loading_path
                else self.tr("The model is still loading.")
            )
            return False
        return True

    def turn_options(
        self, kind: str = "preview", message_id: str | None = None
    ) -> TurnOptions | None:
        """What the window's extensions add to the next turn of the current conversation
        (option_hooks); kind "preview" is what Show prompt renders. None: nothing."""
        opts = TurnOptions()
        for hook in self.option_hooks:
            opts = hook(opts, kind, message_id)
        return None if opts == TurnOptions() else opts

    def stop_requested(self) -> bool:
        """Whether the turn in flight was stopped (read from any thread: a tool's
        approval waits on the inference thread and gives up when this turns true)."""
        st = self._streaming
        return st is None or st.handle.cancel_event.is_set()

    def _track(self, handle: TurnHandle) -> None:
        self._streaming = _Streaming(handle, self.conversation_id)
        self.busy_changed.emit(True)

    def send(self, text: str) -> bool:
        text = text.strip()
        if not text or not self._can_start():
            return False
        # the images waiting in the composer (gui.image_attach) go with the message
        images, self.pending_images = self.pending_images, ()
        self._sent_images = images  # back to the composer if the message is not kept
        self._track(
            self.service.send(
                self.conversation_id,
                text,
                options=_with_images(self.turn_options("send"), images),
                listener=self.bridge.turn_listener(),
            )
        )
        if images:
            self.images_taken.emit()
        return True

    def regenerate(self, message_id: str | None = None) -> bool:
        """A new answer to the question of `message_id` (an answer; default: the last
        one), kept as a sibling branch of the old one."""
        if self.conversation_id is None or not self._can_start():
            return False
        if message_id is None and not any(m.role is Role.USER for m in self.thread()):
            return False
        self._track(
            self.service.regenerate(
                self.conversation_id,
                message_id,
                options=self.turn_options("regenerate", message_id),
                listener=self.bridge.turn_listener(),
            )
        )
        return True

    def edit_message(self, message_id: str, text: str) -> bool:
        """A new version of a question, answered; the original stays as a branch."""
        text = text.strip()
        if not text or self.busy:
            if self.busy:
                self.error.emit(self.still_streaming_text())
            return False
        self._track(
            self.service.edit(
                message_id,
                text,
                options=self.turn_options("edit", message_id),
                listener=self.bridge.turn_listener(),
            )
        )
        return True

    def continue_answer(self, message_id: str) -> bool:
        """Carry on a cut-off or stopped answer in place."""
        if self.conversation_id is None or not self._can_start():
            return False
        self._track(
            self.service.continue_answer(
                message_id,
                options=self.turn_options("continue", message_id),
                listener=self.bridge.turn_listener(),
            )
        )
        return True

    def stop(self) -> None:
        if self._streaming:
            self._streaming.handle.cancel()

    def _current(self, turn_id: str) -> _Streaming | None:
        st = self._streaming
        return st if st is not None and st.handle.turn_id == turn_id else None

    def _on_started(self, ev: TurnStarted) -> None:
        st = self._current(ev.turn_id)
        if st is None:
            return
        st.conversation_id, st.message_id = ev.conversation_id, ev.reply.id
        st.text, st.thinking = ev.reply.content, ev.reply.thinking  # Continue starts with text
        if ev.new_conversation or self.conversation_id != ev.conversation_id:
            self.conversation_id = ev.conversation_id
            self.conversations_changed.emit()
            self.conversation_selected.emit(ev.conversation_id)
        self.reply_started.emit(ev.conversation_id, ev.reply.id)
        self.conversations_changed.emit()

    def _on_fitting(self, ev: TurnFitting) -> None:
        st = self._current(ev.turn_id)
        percent = int(ev.fraction * 100)
        if st is not None and percent != st.fitting:
            st.fitting = percent
            self.notice.emit(
                self.tr("Fitting the conversation into the context… {percent}% (Esc stops)").format(
                    percent=percent
                )
            )

    def _on_prompt(self, ev: TurnPrompt) -> None:
        st = self._current(ev.turn_id)
        if st is None:
            return
        st.prompt_tokens, st.n_ctx, st.generated = len(ev.prompt.tokens), ev.n_ctx, 0
        self.context_changed.emit(st.prompt_tokens, ev.n_ctx)
        if st.fitting >= 0:
            self.notice.emit(
                self.tr("{n} older messages were left out to fit the context.").format(
                    n=len(ev.dropped)
                )
            )

    def _on_delta(self, turn_id: str, message_id: str, text: str, thinking: str) -> None:
        st = self._current(turn_id)
        if st is None:
            return
        if message_id != st.message_id:  # the answer after a tool's result
            st.message_id, st.text, st.thinking = message_id, "", ""
        st.text += text
        st.thinking += thinking
        self.reply_delta.emit(message_id, st.text, st.thinking)

    def _on_tokens(self, turn_id: str, message_id: str, chunks: list[Any]) -> None:
        st = self._current(turn_id)
        if st is not None:
            self.reply_tokens.emit(message_id, chunks)
            if st.n_ctx:  # the meter moves with the answer, a few times a second
                st.generated += len(chunks)
                now = time.monotonic()
                if now - st.meter_at >= METER_INTERVAL_S:
                    st.meter_at = now
                    self.context_changed.emit(st.prompt_tokens + st.generated, st.n_ctx)

    def _on_tool_call(self, ev: TurnToolCall) -> None:
        if self._current(ev.turn_id) is not None:
            self.tool_call.emit(ev)

    def _on_tool_result(self, ev: TurnToolResult) -> None:
        if self._current(ev.turn_id) is not None:
            self.tool_result.emit(ev)

    def _on_finished(self, ev: TurnFinished) -> None:
        st = self._current(ev.turn_id)
        if st is None:
            return
        self._streaming = None
        msg, stats = ev.message, ev.stats
        if self._drop_if_empty(msg):
            self.busy_changed.emit(False)
            self.conversation_selected.emit(self.conversation_id or "")  # shown without it
            self._emit_context()
            self.status_message.emit(
                self.tr("Stopped before the first token: there was no answer to keep.")
            )
            return
        self.reply_delta.emit(msg.id, msg.content, msg.thinking)
        if ev.warning:
            self.notice.emit(ev.warning)
        self.reply_finished.emit(msg.id)
        self.busy_changed.emit(False)
        self.speed_changed.emit(stats.tokens_per_second)
        self.context_changed.emit(stats.context_used, ev.n_ctx)
        if stats.finish_reason is FinishReason.LENGTH:
            self.notice.emit(
                self.tr("The answer stopped at the length limit (max tokens or context).")
            )

    def _drop_if_empty(self, msg: Message) -> bool:
        """An answer stopped before its first token is not kept as an empty version: it is
        deleted, and the chat shows the version it showed before (if there was one)."""
        if msg.finish_reason is not FinishReason.CANCELLED or msg.content or msg.thinking:
            return False
        links = self.store.message_links(msg.conversation_id)
        others = [x for x in links if x.parent_id == msg.parent_id and x.id != msg.id]
        self.store.delete_message(msg.id)
        if others:  # back to the newest other version, down to its newest reply
            leaf = others[-1].id
            while True:
                below = [x for x in links if x.parent_id == leaf]
                if not below:
                    break
                leaf = below[-1].id
            self.store.set_current_leaf(msg.conversation_id, leaf)
        return True

    def _on_failed(self, ev: TurnFailed) -> None:
        st = self._current(ev.turn_id)
        if st is None:
            self.error.emit(ev.error)
            return
        self._streaming = None
        self.busy_changed.emit(False)
        if st.message_id:
            self.reply_finished.emit(st.message_id)
        if ev.conversation_id and ev.conversation_id != self.conversation_id:
            self.conversation_id = ev.conversation_id
            self.conversations_changed.emit()
        self.conversation_selected.emit(self.conversation_id or "")
        if ev.restore_input:
            self.input_restored.emit(ev.restore_input)
            if self._sent_images and not self.pending_images:  # back to the composer too
                self.pending_images = self._sent_images
                self.images_restored.emit()
        self._sent_images = ()
        self._emit_context()  # what the chat holds now, not the refused prompt
        if ev.kind is FailureKind.CANCELLED and ev.error == "stopped":  # Stop during a tool
            self.status_message.emit(self.tr("Stopped."))
            return
        self.error.emit(ev.error)

    def _emit_context(self) -> None:
        if self.model is None:
            return
        branch = self.thread()
        used = 0
        for m in reversed(branch):
            if m.role is Role.ASSISTANT and m.prompt_tokens is not None:
                used = m.prompt_tokens + (m.completion_tokens or 0)
                break
        self.context_changed.emit(used, self.model.info.n_ctx)

    # -- shutdown -----------------------------------------------------------------

    def shutdown(self) -> None:
        """Cancel, stop the service's threads, then free the model (the service closes
        it only once nothing can touch it); a streaming answer is kept as cancelled."""
        if self._closed:
            return
        self._closed = True
        self._unsubscribe()
        self._streaming = None
        self.service.shutdown()
        if self.service.tools is not None:  # MCP servers and a running Python child stop
            self.service.tools.close()


__all__ = ["ChatSession", "PreparedPrompt"]


def _with_images(opts: TurnOptions | None, images: tuple[Any, ...]) -> TurnOptions | None:
    """A send's options with the composer's images (gui.image_attach), if any."""
    if not images:
        return opts
    return replace(opts or TurnOptions(), images=images)
