"""The window's chat controller, on the GUI thread: sends, streams, persists.

It turns user actions into store writes and worker requests, and worker results into
store writes and signals for the views. Persistence while streaming: the answer row is
written when generation starts and updated at most every SAVE_INTERVAL, so a killed
process loses at most that much of the answer; a stopped answer is kept as far as it got.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, QThread, Signal

from chatapp.core.chat import begin_reply
from chatapp.core.conversation import FinishReason, Message, Role, title_from
from chatapp.core.engine import ModelInfo
from chatapp.core.prompting import conversation_messages
from chatapp.core.settings import Settings
from chatapp.core.store import Store
from chatapp.core.templates import ChatTemplate
from chatapp.gui.worker import (
    EngineFactory,
    GenerateRequest,
    InferenceWorker,
    LoadedModel,
    LoadRequest,
    ReplyDone,
    default_engine_factory,
)

log = logging.getLogger(__name__)

SAVE_INTERVAL = 0.5  # seconds between saves of a streaming answer


@dataclass
class _Streaming:
    request_id: str
    message_id: str
    conversation_id: str
    text: str = ""
    thinking: str = ""
    saved_at: float = 0.0
    started_at: float = 0.0
    prompt_tokens: int = 0


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
    reply_finished = Signal(str)  # message id
    busy_changed = Signal(bool)
    context_changed = Signal(int, int)  # used, n_ctx
    speed_changed = Signal(float)  # tokens/s of the last answer
    error = Signal(str)
    notice = Signal(str)

    # requests to the worker (queued across threads)
    _load = Signal(object)
    _generate = Signal(object)
    _set_template = Signal(str)

    def __init__(
        self,
        store: Store,
        settings: Settings,
        engine_factory: EngineFactory = default_engine_factory,
    ) -> None:
        super().__init__()
        self.store = store
        self.settings = settings
        self.model: LoadedModel | None = None
        self.loading_path: str | None = None
        self.conversation_id: str | None = None
        self._streaming: _Streaming | None = None
        self._seq = 0

        self._thread = QThread()
        self._thread.setObjectName("inference")
        self.worker = InferenceWorker(engine_factory)
        self.worker.moveToThread(self._thread)
        self._load.connect(self.worker.load)
        self._generate.connect(self.worker.generate)
        self._set_template.connect(self.worker.set_user_template)
        self.worker.loaded.connect(self._on_loaded)
        self.worker.load_failed.connect(self._on_load_failed)
        self.worker.started.connect(self._on_started)
        self.worker.delta.connect(self._on_delta)
        self.worker.finished.connect(self._on_finished)
        self.worker.failed.connect(self._on_failed)
        self._thread.start()

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

    def open_model(self, path: str) -> None:
        if self.busy:
            self.error.emit("Stop the answer in progress before switching models.")
            return
        p = Path(path).expanduser()
        if not p.exists():
            self.error.emit(f"No such file: {p}")
            return
        self.loading_path = str(p.resolve())
        self.model_loading.emit(self.loading_path)
        s = self.settings
        self._load.emit(
            LoadRequest(
                path=self.loading_path,
                context_limit=s.context_limit,
                n_gpu_layers=s.n_gpu_layers,
                n_threads=s.n_threads,
                user_template=s.user_templates.get(p.name),
            )
        )

    def set_user_template(self, text: str | None) -> None:
        self._set_template.emit(text or "")

    def _on_loaded(self, loaded: LoadedModel) -> None:
        self.model = loaded
        self.loading_path = None
        self.settings.last_model = loaded.info.path
        self.model_loaded.emit(loaded)
        if loaded.template.warning:
            self.notice.emit(loaded.template.warning)
        self._emit_context()

    def _on_load_failed(self, path: str, message: str) -> None:
        self.loading_path = None
        # the worker closed the previous model before trying the new one
        self.model = None
        self.model_failed.emit(message)
        self.error.emit(message)

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
        if (
            path
            and not self.busy
            and (self.model is None or Path(path) != Path(self.model.info.path))
            and self.loading_path != path
            and Path(path).exists()
        ):
            self.open_model(path)

    def rename_conversation(self, conversation_id: str, title: str) -> None:
        self.store.rename_conversation(conversation_id, title)
        self.conversations_changed.emit()

    def delete_conversation(self, conversation_id: str) -> None:
        if self._streaming and self._streaming.conversation_id == conversation_id:
            self.stop()
            self._streaming = None
            self.busy_changed.emit(False)
        self.store.delete_conversation(conversation_id)
        if self.conversation_id == conversation_id:
            self.select_conversation(None)
        self.conversations_changed.emit()

    def thread(self) -> list[Message]:
        return self.store.active_thread(self.conversation_id) if self.conversation_id else []

    # -- chatting -----------------------------------------------------------------

    def send(self, text: str) -> bool:
        text = text.strip()
        if not text:
            return False
        if self.busy:
            self.error.emit("An answer is still streaming: stop it first (Esc).")
            return False
        if self.model is None:
            self.error.emit(
                "No model is loaded yet." if not self.loading_path else "The model is still loading."
            )
            return False
        if self.conversation_id is None:
            conv = self.store.create_conversation(
                title_from(text),
                model_path=self.model.info.path,
                system_prompt=self.settings.system_prompt,
            )
            self.conversation_id = conv.id
            self.conversations_changed.emit()
            self.conversation_selected.emit(conv.id)
        conv = self.store.get_conversation(self.conversation_id)
        assert conv is not None
        user = self.store.add_message(conv.id, Role.USER, text, parent_id=conv.current_leaf_id)
        self._start_reply(user)
        return True

    def stop(self) -> None:
        if self._streaming:
            self.worker.cancel()

    def _start_reply(self, parent: Message) -> None:
        assert self.model is not None and self.conversation_id is not None
        conv = self.store.get_conversation(self.conversation_id)
        assert conv is not None
        branch = self.store.active_thread(conv.id)
        upto = branch[: [m.id for m in branch].index(parent.id) + 1]
        template = self.model.template
        messages = conversation_messages(upto, template)
        params = self.settings.sampling()
        info = self.model.info
        reply = begin_reply(self.store, conv.id, parent.id, info.path, template, params)
        if conv.model_path != info.path:
            self.store.update_conversation(conv.id, model_path=info.path)
        self._seq += 1
        now = time.monotonic()
        self._streaming = _Streaming(
            f"r{self._seq}", reply.id, conv.id, saved_at=now, started_at=now
        )
        self.busy_changed.emit(True)
        self.reply_started.emit(conv.id, reply.id)
        self.conversations_changed.emit()
        self._generate.emit(
            GenerateRequest(self._streaming.request_id, messages, conv.system_prompt, params)
        )

    def _current(self, request_id: str) -> _Streaming | None:
        st = self._streaming
        return st if st is not None and st.request_id == request_id else None

    def _on_started(self, request_id: str, prompt_tokens: int, n_ctx: int) -> None:
        st = self._current(request_id)
        if st:
            st.prompt_tokens = prompt_tokens
            self.context_changed.emit(prompt_tokens, n_ctx)

    def _on_delta(self, request_id: str, text: str, thinking: str) -> None:
        st = self._current(request_id)
        if st is None:
            return
        st.text += text
        st.thinking += thinking
        now = time.monotonic()
        if now - st.saved_at >= SAVE_INTERVAL:
            self.store.update_message(st.message_id, content=st.text, thinking=st.thinking)
            st.saved_at = now
        self.reply_delta.emit(st.message_id, st.text, st.thinking)

    def _on_finished(self, done: ReplyDone) -> None:
        st = self._current(done.request_id)
        if st is None:
            return
        self._streaming = None
        stats = done.stats
        msg = self.store.get_message(st.message_id)
        meta = dict(msg.meta) if msg else {}
        meta["prompt_seconds"] = round(stats.prompt_seconds, 4)
        meta["generation_seconds"] = round(stats.generation_seconds, 4)
        if done.prompt.warning:
            meta["prompt_warning"] = done.prompt.warning
        self.store.update_message(
            st.message_id,
            content=done.text,
            thinking=done.thinking,
            finish_reason=stats.finish_reason,
            prompt_tokens=stats.prompt_tokens,
            completion_tokens=stats.completion_tokens,
            tokens_per_second=round(stats.tokens_per_second, 2),
            meta=meta,
        )
        self.reply_delta.emit(st.message_id, done.text, done.thinking)
        if done.prompt.warning:
            self.notice.emit(done.prompt.warning)
        self.reply_finished.emit(st.message_id)
        self.busy_changed.emit(False)
        self.speed_changed.emit(stats.tokens_per_second)
        self.context_changed.emit(stats.context_used, done.n_ctx)
        if stats.finish_reason is FinishReason.LENGTH:
            self.notice.emit("The answer stopped at the length limit (max tokens or context).")

    def _on_failed(self, request_id: str, message: str) -> None:
        st = self._current(request_id)
        if st is None:
            self.error.emit(message)
            return
        self._streaming = None
        if st.text or st.thinking:
            self.store.update_message(
                st.message_id,
                content=st.text,
                thinking=st.thinking,
                finish_reason=FinishReason.ERROR,
            )
        else:  # nothing was generated: drop the empty answer, keep the question
            self.store.delete_message(st.message_id)
        self.busy_changed.emit(False)
        self.reply_finished.emit(st.message_id)
        self.conversation_selected.emit(self.conversation_id or "")
        self.error.emit(message)

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
        """Cancel, stop the thread, then free the model (a Llama used after close()
        segfaults, so it is closed only once nothing can touch it)."""
        st = self._streaming
        self.worker.cancel()
        self._thread.quit()
        self._thread.wait()
        if st is not None:
            self.store.update_message(
                st.message_id,
                content=st.text,
                thinking=st.thinking,
                finish_reason=FinishReason.CANCELLED,
            )
            self._streaming = None
        self.worker.close_model()

    # h-view: branch actions (lead merges into the service) ---------------------------
    # Minimal versions of edit / regenerate-any / continue for the message view's
    # actions; regenerate() moved here from above and takes an optional answer id.

    def _can_answer(self) -> bool:
        if self.busy:
            self.error.emit("An answer is still streaming: stop it first (Esc).")
            return False
        if self.model is None:
            self.error.emit("No model is loaded.")
            return False
        return self.conversation_id is not None

    def regenerate(self, message_id: str | None = None) -> bool:
        """A new answer kept as a sibling of the old one: to the question of answer
        `message_id`, or (no id: the Regenerate button) to the thread's last question."""
        if not self._can_answer():
            return False
        if not message_id:  # a button's clicked(bool) may pass False
            users = [m for m in self.thread() if m.role is Role.USER]
            if not users:
                return False
            self._start_reply(users[-1])
            return True
        answer = self.store.get_message(message_id)
        question = self.store.get_message(answer.parent_id) if answer and answer.parent_id else None
        if answer is None or question is None or answer.conversation_id != self.conversation_id:
            self.error.emit("That answer is no longer there.")
            return False
        self.store.set_current_leaf(question.conversation_id, question.id)
        self._start_reply(question)
        return True

    def edit_message(self, message_id: str, text: str) -> bool:
        """Save an edited user message as a new version (a sibling: the original stays)
        and answer it. Without a model the edit is still saved, and the error says why
        there is no answer."""
        text = text.strip()
        orig = self.store.get_message(message_id)
        conv_id = self.conversation_id
        if orig is None or orig.role is not Role.USER or orig.conversation_id != conv_id:
            self.error.emit("Only your own messages in this chat can be edited.")
            return False
        if not text:
            self.error.emit("An empty message cannot be sent: the edit was not saved.")
            return False
        if self.busy:
            self.error.emit("An answer is still streaming: stop it first (Esc).")
            return False
        edited = self.store.add_message(
            orig.conversation_id, Role.USER, text, parent_id=orig.parent_id
        )
        self.conversations_changed.emit()
        if self.model is None:
            self.conversation_selected.emit(orig.conversation_id)
            conv = self.store.get_conversation(orig.conversation_id)
            used = ""
            if conv and conv.model_path:
                used = f" (this chat used {Path(conv.model_path).name})"
            self.error.emit(
                f"The edit is saved as a new version, but no model is loaded to answer it{used}."
            )
            return False
        self._start_reply(edited)
        return True

    def continue_answer(self, message_id: str) -> bool:
        """Carry on a cut-off (length limit or stopped) answer in place: the model gets
        the prompt with the answer so far as the start of its turn, and what it writes
        is appended."""
        if not self._can_answer():
            return False
        msg = self.store.get_message(message_id)
        branch = self.thread()
        if msg is None or msg.role is not Role.ASSISTANT or not branch or branch[-1].id != msg.id:
            self.error.emit("Only the last answer of the shown thread can be continued.")
            return False
        assert self.model is not None and self.conversation_id is not None
        conv = self.store.get_conversation(self.conversation_id)
        assert conv is not None
        template = self.model.template
        messages = conversation_messages(branch[:-1], template)
        params = self.settings.sampling()
        self.store.update_message(msg.id, finish_reason=FinishReason.STREAMING)
        self._seq += 1
        now = time.monotonic()
        self._streaming = _Streaming(
            f"r{self._seq}",
            msg.id,
            conv.id,
            text=msg.content,
            thinking=msg.thinking,
            saved_at=now,
            started_at=now,
        )
        self.busy_changed.emit(True)
        self.reply_started.emit(conv.id, msg.id)
        self._generate.emit(
            GenerateRequest(
                self._streaming.request_id,
                messages,
                conv.system_prompt,
                params,
                prefill=msg.content,
                prefill_thinking=msg.thinking,
            )
        )
        return True
