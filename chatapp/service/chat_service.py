"""The chat service: the one place a chat turn runs, for the window, the CLI and the server.

It owns the loaded model on one inference thread (a SerialExecutor: jobs run one at a
time in arrival order, so requests from the window and from API clients queue fairly)
and makes its database writes on a store thread of its own. A turn runs end to end
here: save the question and the answer's row, prepare the exact prompt, stream, save
while streaming, and finish with the answer's statistics and receipt.

Public methods may be called from any thread and never block on the model: they return
a Future or a TurnHandle. Events are plain data (service.events), delivered on the
service's threads.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar, cast

from chatapp.core.backend import (
    Backend,
    Capabilities,
    ChatRequest,
    Chunk,
    ModelRef,
    PreparedPrompt,
    ReplyStats,
    TokensUnavailable,
)
from chatapp.core.chat_settings import (
    DROP_OLDEST,
    ChatSettings,
    model_defaults,
    resolve_sampling,
)
from chatapp.core.conversation import Conversation, FinishReason, Message, Role, title_from
from chatapp.core.engine import SamplingParams
from chatapp.core.errors import ContextFullError, DiskFullError, StoreError, UserError
from chatapp.core.logprobs import TokenTrace, TraceBuilder, forced_tokens, top_n_setting
from chatapp.core.receipt import Receipt, text_sha256, tokens_sha256
from chatapp.core.settings import Settings
from chatapp.core.store import Store
from chatapp.service.events import (
    LoadedModel,
    ModelLoaded,
    ModelLoadFailed,
    ModelLoading,
    ModelUnloaded,
    StoreWaiting,
    TurnChunk,
    TurnEvent,
    TurnFailed,
    TurnFinished,
    TurnPrompt,
    TurnStarted,
)
from chatapp.service.executor import SerialExecutor
from chatapp.service.store_thread import StoreThread

log = logging.getLogger(__name__)

T = TypeVar("T")

Listener = Callable[[Any], None]


@dataclass(frozen=True)
class LoadRequest:
    ref: ModelRef
    context_limit: int = 4096
    n_gpu_layers: int = 0
    n_threads: int | None = None
    api_key: str = ""  # a remote server's key (never stored with the conversation)


BackendFactory = Callable[[LoadRequest], Backend]


def default_backend_factory(req: LoadRequest) -> Backend:
    if not req.ref.is_local:
        from chatapp.engine.remote import RemoteBackend

        return RemoteBackend(req.ref.endpoint, req.ref.name, api_key=req.api_key)
    from chatapp.engine.llama import VERSION, LlamaEngine
    from chatapp.engine.local import LocalBackend

    engine = LlamaEngine(
        req.ref.name,
        context_limit=req.context_limit,
        n_gpu_layers=req.n_gpu_layers,
        n_threads=req.n_threads,
    )
    return LocalBackend(engine, version=VERSION)


@dataclass(frozen=True)
class TurnOptions:
    """How to run a turn. sampling: None takes the settings' sampling."""

    sampling: SamplingParams | None = None
    system_prompt: str | None = None  # for a new conversation (None: the settings')
    # alternatives kept per token (None: the settings' logprobs_top_n, 5 by default; 0: none)
    logprobs: int | None = None


_NOT_GIVEN: Any = object()


@dataclass(frozen=True)
class Completion:
    """A finished completion-mode request (ChatService.complete)."""

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


@dataclass
class _Turn:
    handle: TurnHandle
    conversation: Conversation
    reply: Message
    history: list[Message]
    sampling: SamplingParams
    ref: ModelRef
    logprobs: int = 0
    context_policy: str = "stop"
    answer: list[str] = field(default_factory=list)
    thinking: list[str] = field(default_factory=list)
    # h-inside (issue 10): the answer's tokens and probabilities, saved by _finish
    tokens: TraceBuilder | None = None
    trace: TokenTrace | None = None
    forced: tuple[Any, ...] = ()  # branch_from: tokens the answer starts with
    prefill: tuple[str, str] = ("", "")  # continue_answer: the answer and thinking so far


class ChatService:
    def __init__(
        self,
        store_path: Path,
        settings: Settings,
        backend_factory: BackendFactory = default_backend_factory,
        *,
        store_factory: Callable[[Path], Store] | None = None,
    ) -> None:
        self.settings = settings
        self._factory = backend_factory
        self._subscribers: list[Listener] = []
        if store_factory is None:
            # the service's writes wait for another process's lock off the GUI thread;
            # subscribers hear that they wait (the window says so)
            def store_factory(path: Path) -> Store:
                return Store(
                    path, on_busy=lambda wait: self._publish(StoreWaiting(wait.message, wait.done))
                )

        self._db = StoreThread(store_path, store_factory)
        self._infer = SerialExecutor("chat-inference")
        self._backend: Backend | None = None  # touched on the inference thread only
        self.loaded: LoadedModel | None = None
        self._turns: dict[str, TurnHandle] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._closed = False

    # -- subscribers -------------------------------------------------------------------

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Model events (loading, loaded, failed, unloaded) go to every subscriber."""
        self._subscribers.append(listener)
        return lambda: self._subscribers.remove(listener)

    def _publish(self, event: Any) -> None:
        for listener in list(self._subscribers):
            try:
                listener(event)
            except Exception:
                log.exception("subscriber failed on %s", type(event).__name__)

    # -- the model -----------------------------------------------------------------------

    def load(self, request: LoadRequest) -> Future[LoadedModel]:
        return self._infer.submit(self._load, request)

    def _load(self, request: LoadRequest) -> LoadedModel:
        self._publish(ModelLoading(request.ref))
        self._close_backend()  # the old model's memory goes before the new one loads
        t0 = time.perf_counter()
        try:
            backend = self._factory(request)
            template = backend.template(self._user_template(backend.ref))
        except UserError as e:
            self._publish(ModelLoadFailed(request.ref, str(e)))
            raise
        except Exception as e:  # a bug, or llama.cpp failing in a new way
            log.exception("loading %s failed", request.ref)
            message = f"Could not load the model: {e}"
            self._publish(ModelLoadFailed(request.ref, message))
            raise UserError(message) from e
        self._backend = backend
        loaded = LoadedModel(
            backend.ref,
            backend.info,
            template,
            getattr(backend, "capabilities", Capabilities()),
            time.perf_counter() - t0,
        )
        self.loaded = loaded
        self._publish(ModelLoaded(loaded))
        return loaded

    def unload(self) -> Future[None]:
        def job() -> None:
            self._close_backend()
            self._publish(ModelUnloaded())

        return self._infer.submit(job)

    def _close_backend(self) -> None:
        backend, self._backend = self._backend, None
        self.loaded = None
        if backend is not None:
            backend.close()

    def _user_template(self, ref: ModelRef) -> str | None:
        if not ref.is_local:
            return None
        return self.settings.user_templates.get(Path(ref.name).name) or None

    def template_now(self, user_template: Any = _NOT_GIVEN) -> Future[Any]:
        """The template the next send uses (or would use with user_template)."""

        def job() -> Any:
            backend = self._require_backend()
            text = (
                self._user_template(backend.ref) if user_template is _NOT_GIVEN else user_template
            )
            return backend.template(text)

        return self._infer.submit(job)

    def _require_backend(self) -> Backend:
        if self._backend is None:
            raise UserError("No model is loaded. Open a .gguf model first.")
        return self._backend

    # -- prompts and tokens ----------------------------------------------------------------

    def prepare(
        self,
        history: Sequence[Message] | Sequence[dict[str, Any]],
        system_prompt: str = "",
        *,
        user_template: Any = _NOT_GIVEN,
        tools: list[dict[str, Any]] | None = None,
        add_generation_prompt: bool = True,
    ) -> Future[PreparedPrompt]:
        """The exact prompt the loaded model would receive: the very function a send
        runs. user_template: a template text to try instead of the saved one (the
        template editor's preview); None means the model's own."""

        def job() -> PreparedPrompt:
            backend = self._require_backend()
            text = (
                self._user_template(backend.ref) if user_template is _NOT_GIVEN else user_template
            )
            request = ChatRequest(
                list(cast(Sequence[Any], history)),
                system_prompt,
                user_template=text,
                tools=tools,
                add_generation_prompt=add_generation_prompt,
            )
            return backend.prepare(request)

        return self._infer.submit(job)

    def prepare_conversation(
        self,
        conversation_id: str | None,
        *,
        draft: str = "",
        upto_message_id: str | None = None,
        user_template: Any = _NOT_GIVEN,
    ) -> Future[PreparedPrompt]:
        """The prompt of the next answer in a conversation: its active thread (up to
        upto_message_id, if given) plus the draft as the next user message, if any."""
        result: Future[PreparedPrompt] = Future()

        def read(store: Store) -> tuple[list[Message], str]:
            if not conversation_id:
                return [], self.settings.system_prompt
            conv = store.get_conversation(conversation_id)
            if conv is None:
                raise UserError(f"No conversation with id {conversation_id}.")
            branch = store.active_thread(conversation_id)
            if upto_message_id is not None:
                ids = [m.id for m in branch]
                if upto_message_id not in ids:
                    msg = store.get_message(upto_message_id)
                    if msg is None:
                        raise UserError(f"No message with id {upto_message_id}.")
                    from chatapp.core.conversation import thread

                    branch = thread(store.messages(conversation_id), upto_message_id)
                    ids = [m.id for m in branch]
                branch = branch[: ids.index(upto_message_id) + 1]
            return branch, conv.system_prompt

        def then(fut: Future[tuple[list[Message], str]]) -> None:
            try:
                branch, system = fut.result()
            except BaseException as e:
                result.set_exception(e)
                return
            history: list[Any] = list(branch)
            if draft.strip():
                history.append(_draft_message(conversation_id or "", draft.strip()))
            _chain(self.prepare(history, system, user_template=user_template), result)

        self._db.submit(read).add_done_callback(then)
        return result

    def tokenize(self, text: str, *, special: bool = True) -> Future[list[tuple[int, bytes]]]:
        """Token ids and their bytes, by the loaded model's own tokenizer."""

        def job() -> list[tuple[int, bytes]]:
            backend = self._require_backend()
            if not getattr(backend, "capabilities", Capabilities()).tokens:
                raise TokensUnavailable(
                    f"The server of {backend.ref.label} does not provide its tokenizer."
                )
            ids = backend.tokenize(text, special=special)
            return [(i, backend.token_bytes(i)) for i in ids]

        return self._infer.submit(job)

    def describe_tokens(self, token_ids: Sequence[int]) -> Future[list[tuple[int, bytes]]]:
        """Each token id with the bytes it stands for, by the loaded model's vocabulary."""

        def job() -> list[tuple[int, bytes]]:
            backend = self._require_backend()
            return [(int(i), backend.token_bytes(int(i))) for i in token_ids]

        return self._infer.submit(job)

    # -- turns -----------------------------------------------------------------------------

    def _new_handle(self, listener: Listener | None) -> TurnHandle:
        handle = TurnHandle(f"t{next(self._ids)}", listener)
        with self._lock:
            self._turns[handle.turn_id] = handle
        handle.future.add_done_callback(lambda _f: self._turns.pop(handle.turn_id, None))
        return handle

    def send(
        self,
        conversation_id: str | None,
        text: str,
        *,
        options: TurnOptions | None = None,
        listener: Listener | None = None,
    ) -> TurnHandle:
        """Save `text` as the next user message (in a new conversation if
        conversation_id is None) and answer it."""
        opts = options or TurnOptions()
        handle = self._new_handle(listener)

        def setup(store: Store) -> None:
            ref = self._loaded_ref()
            conv, new = None, conversation_id is None
            if conversation_id is None:
                system = opts.system_prompt
                conv = store.create_conversation(
                    title_from(text),
                    model_path=str(ref),
                    system_prompt=self.settings.system_prompt if system is None else system,
                )
            else:
                conv = store.get_conversation(conversation_id)
                if conv is None:
                    raise UserError(f"No conversation with id {conversation_id}.")
            user = store.add_message(conv.id, Role.USER, text, parent_id=conv.current_leaf_id)
            self._begin(store, handle, conv, user, user, ref, opts, new)

        self._setup(handle, setup, restore_input=text)
        return handle

    def regenerate(
        self,
        conversation_id: str,
        answer_id: str | None = None,
        *,
        options: TurnOptions | None = None,
        listener: Listener | None = None,
    ) -> TurnHandle:
        """A new answer to the question of answer_id (default: the last answer of the
        active branch, or the last question if it has none), kept as a sibling branch:
        the old answer is never erased."""
        opts = options or TurnOptions()
        handle = self._new_handle(listener)

        def setup(store: Store) -> None:
            ref = self._loaded_ref()
            conv = store.get_conversation(conversation_id)
            if conv is None:
                raise UserError(f"No conversation with id {conversation_id}.")
            branch = store.active_thread(conv.id)
            if answer_id is not None:
                answer = store.get_message(answer_id)
                if answer is None or answer.conversation_id != conv.id:
                    raise UserError(f"No message with id {answer_id} in this conversation.")
                if answer.role is not Role.ASSISTANT:
                    raise UserError("Only an answer can be regenerated; edit a question instead.")
                question = store.get_message(answer.parent_id) if answer.parent_id else None
            else:
                users = [m for m in branch if m.role is Role.USER]
                question = users[-1] if users else None
            if question is None:
                raise UserError("There is no question to answer in this conversation.")
            self._begin(store, handle, conv, question, None, ref, opts, False)

        self._setup(handle, setup)
        return handle

    def edit(
        self,
        message_id: str,
        text: str,
        *,
        options: TurnOptions | None = None,
        listener: Listener | None = None,
    ) -> TurnHandle:
        """A new version of a user message (a sibling: the original stays) and its answer."""
        opts = options or TurnOptions()
        handle = self._new_handle(listener)

        def setup(store: Store) -> None:
            original = store.get_message(message_id)
            if original is None:
                raise UserError(f"No message with id {message_id}.")
            if original.role is not Role.USER:
                raise UserError("Only your own messages can be edited; regenerate an answer.")
            conv = store.get_conversation(original.conversation_id)
            assert conv is not None
            user = store.add_message(conv.id, Role.USER, text, parent_id=original.parent_id)
            try:
                ref = self._loaded_ref()
            except UserError as e:  # the edit is kept; say what is missing
                handle.conversation_id = conv.id
                raise UserError(f"Your edit is saved. {e}") from e
            self._begin(store, handle, conv, user, user, ref, opts, False)

        self._setup(handle, setup)
        return handle

    def set_chat_settings(
        self,
        conversation_id: str,
        chat: ChatSettings | None = None,
        *,
        system_prompt: str | None = None,
    ) -> Future[Conversation]:
        """Save a conversation's own settings (and system prompt); the next turn uses them."""

        def job(store: Store) -> Conversation:
            conv = store.get_conversation(conversation_id)
            if conv is None:
                raise UserError(f"No conversation with id {conversation_id}.")
            changes: dict[str, Any] = {}
            if chat is not None:
                changes["meta"] = {**conv.meta, "chat_settings": chat.to_json()}
            if system_prompt is not None:
                changes["system_prompt"] = system_prompt
            return store.update_conversation(conversation_id, **changes) if changes else conv

        return self._db.submit(job)

    def sampling_for(self, ref: ModelRef, conv: Conversation | None) -> SamplingParams:
        """The sampling a turn in `conv` uses: the app's settings, the model's defaults,
        the conversation's own overrides."""
        chat = ChatSettings.from_meta(conv.meta if conv else None)
        model_file = Path(ref.name).name if ref.is_local else str(ref)
        return resolve_sampling(
            self.settings.sampling(), model_defaults(self.settings.extra, model_file), chat
        )

    def branch_from(
        self,
        answer_id: str,
        position: int,
        token_id: int,
        *,
        options: TurnOptions | None = None,
        listener: Listener | None = None,
    ) -> TurnHandle:
        """A new sibling of an answer that keeps its first `position` tokens exactly,
        puts token_id at `position` (one of the alternatives there), and samples the
        rest. Needs the answer's recorded tokens and the model that wrote it."""
        opts = options or TurnOptions()
        handle = self._new_handle(listener)

        def setup(store: Store) -> None:
            ref = self._loaded_ref()
            answer = store.get_message(answer_id)
            if answer is None or answer.role is not Role.ASSISTANT:
                raise UserError(f"No answer with id {answer_id}.")
            trace = store.token_trace(answer.id)
            if trace is None:
                raise UserError("This answer has no recorded tokens to branch from.")
            if answer.meta.get("model_path") not in (None, str(ref)):
                raise UserError(
                    f"This answer was written by {answer.model}; load that model to branch from it."
                )
            n_vocab = self.loaded.info.n_vocab if self.loaded else 0
            if not 0 <= token_id < n_vocab:  # llama.cpp would read out of bounds
                raise UserError(f"Token {token_id} is not in this model's vocabulary.")
            if not 0 <= position < len(trace.steps):
                raise UserError(
                    f"The answer has {len(trace.steps)} tokens; no position {position}."
                )
            conv = store.get_conversation(answer.conversation_id)
            question = store.get_message(answer.parent_id) if answer.parent_id else None
            if conv is None or question is None:
                raise UserError("There is no question to answer in this conversation.")
            forced = forced_tokens(trace, position, token_id)
            sampling = opts.sampling
            if sampling is None and isinstance(answer.meta.get("sampling"), dict):
                known = set(SamplingParams.__dataclass_fields__)
                kept = {k: v for k, v in answer.meta["sampling"].items() if k in known}
                sampling = replace(SamplingParams(**kept), seed=None)
            origin = {"message_id": answer.id, "position": position, "token_id": token_id}
            opts_now = replace(opts, sampling=sampling)
            meta = {"branched_from": origin}
            self._begin(store, handle, conv, question, None, ref, opts_now, False, forced, meta)

        self._setup(handle, setup)
        return handle

    def continue_text(
        self,
        text: str,
        *,
        sampling: SamplingParams | None = None,
        logprobs: int = 0,
        listener: Callable[[Chunk], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> Future[Completion]:
        """Completion mode: the model continues `text` as written (no chat template,
        only the BOS token its vocabulary asks for). Nothing is saved."""

        def job() -> Completion:
            backend = self._require_backend()
            request = ChatRequest(
                [],
                sampling=sampling or self.settings.sampling(),
                logprobs=logprobs,
                raw_prompt=text,
            )
            stream = backend.execute(request, cancel or threading.Event())
            pieces: list[str] = []
            for chunk in stream:
                if chunk.channel == "answer":
                    pieces.append(chunk.text)
                if listener is not None:
                    listener(chunk)
            return Completion(stream.prompt, "".join(pieces), stream.stats)

        return self._infer.submit(job)

    def continue_answer(
        self,
        answer_id: str,
        *,
        options: TurnOptions | None = None,
        listener: Listener | None = None,
    ) -> TurnHandle:
        """Carry on a cut-off (length limit) or stopped answer in place: the model's turn
        starts with the answer so far, and what it writes is appended to it."""
        opts = options or TurnOptions()
        handle = self._new_handle(listener)

        def setup(store: Store) -> None:
            ref = self._loaded_ref()
            answer = store.get_message(answer_id)
            if answer is None or answer.role is not Role.ASSISTANT or not answer.parent_id:
                raise UserError(f"No answer with id {answer_id}.")
            conv = store.get_conversation(answer.conversation_id)
            question = store.get_message(answer.parent_id)
            assert conv is not None and question is not None
            from chatapp.core.conversation import thread

            history = thread(store.messages(conv.id), question.id)
            store.mark_streaming(answer.id)
            store.set_current_leaf(conv.id, answer.id)
            handle.conversation_id, handle.message_id = conv.id, answer.id
            chat = ChatSettings.from_meta(conv.meta)
            sampling = opts.sampling or self.sampling_for(ref, conv)
            top_n = top_n_setting(self.settings) if opts.logprobs is None else opts.logprobs
            turn = _Turn(
                handle,
                conv,
                answer,
                history,
                sampling,
                ref,
                max(0, min(top_n, 20)),
                chat.context_policy,
            )
            turn.prefill = (answer.content, answer.thinking)
            turn.answer.append(answer.content)
            if answer.thinking:
                turn.thinking.append(answer.thinking)
            if turn.logprobs:
                turn.tokens = TraceBuilder(turn.logprobs, sampling.as_dict())
            handle.emit(TurnStarted(handle.turn_id, conv.id, None, answer, False))
            self._infer.submit(self._generate, turn)

        self._settle_later()

        self._setup(handle, setup)
        return handle

    def _loaded_ref(self) -> ModelRef:
        loaded = self.loaded
        if loaded is None:
            raise UserError("No model is loaded. Open a .gguf model first.")
        return loaded.ref

    def _setup(
        self, handle: TurnHandle, fn: Callable[[Store], None], restore_input: str = ""
    ) -> None:
        def done(fut: Future[None]) -> None:
            e = fut.exception()
            if e is None:
                return
            if isinstance(e, UserError):
                message = str(e)
            else:
                log.error("starting a turn failed", exc_info=e)
                message = _storage_message(e) or f"Could not start the answer: {e}"
            kept = handle.message_id is not None or restore_input == ""
            handle.emit(
                TurnFailed(
                    handle.turn_id,
                    handle.conversation_id,
                    None,
                    message,
                    restore_input="" if kept else restore_input,
                )
            )

        try:
            self._db.submit(fn).add_done_callback(done)
        except RuntimeError as e:  # shut down
            handle.emit(TurnFailed(handle.turn_id, None, None, str(e), restore_input=restore_input))

    def _begin(
        self,
        store: Store,
        handle: TurnHandle,
        conv: Conversation,
        parent: Message,
        user: Message | None,
        ref: ModelRef,
        opts: TurnOptions,
        new: bool,
        forced: tuple[Any, ...] = (),
        extra_meta: dict[str, Any] | None = None,
    ) -> None:
        """On the store thread: write the answer's row, then queue the generation."""
        handle.conversation_id = conv.id
        if user is not None:
            handle.message_id = user.id
        branch = store.active_thread(conv.id) if user is not None else None
        if branch is None or parent.id not in [m.id for m in branch]:
            from chatapp.core.conversation import thread

            branch = thread(store.messages(conv.id), parent.id)
        ids = [m.id for m in branch]
        history = branch[: ids.index(parent.id) + 1]
        chat = ChatSettings.from_meta(conv.meta)
        sampling = opts.sampling or self.sampling_for(ref, conv)
        loaded = self.loaded
        reply = store.add_message(
            conv.id,
            Role.ASSISTANT,
            "",
            parent_id=parent.id,
            model=ref.label,
            finish_reason=FinishReason.STREAMING,
            meta={
                "model_path": str(ref),
                "template": loaded.template.name if loaded else "",
                "sampling": sampling.as_dict(),
                **(extra_meta or {}),
            },
        )
        if conv.model_path != str(ref):
            conv = store.update_conversation(conv.id, model_path=str(ref))
        handle.message_id = reply.id
        top_n = top_n_setting(self.settings) if opts.logprobs is None else opts.logprobs
        turn = _Turn(
            handle,
            conv,
            reply,
            history,
            sampling,
            ref,
            max(0, min(top_n, 20)),
            chat.context_policy,
        )
        turn.forced = forced
        if turn.logprobs:
            turn.tokens = TraceBuilder(turn.logprobs, sampling.as_dict())
        handle.emit(TurnStarted(handle.turn_id, conv.id, user, reply, new))
        self._infer.submit(self._generate, turn)
        self._settle_later()

    def _generate(self, turn: _Turn) -> None:
        """On the inference thread: one reply, streamed, saved, finished."""
        handle, reply = turn.handle, turn.reply
        backend = self._backend
        stream = None
        try:
            if backend is None or backend.ref != turn.ref:
                raise UserError(
                    "The model changed before this answer started."
                    if backend is not None
                    else "No model is loaded. Open a .gguf model first."
                )
            request = ChatRequest(
                turn.history,
                turn.conversation.system_prompt,
                turn.sampling,
                user_template=self._user_template(backend.ref),
                logprobs=turn.logprobs,
                cache_key=turn.conversation.id,
                forced=turn.forced,
                prefill=turn.prefill[0],
                prefill_thinking=turn.prefill[1],
            )
            request, dropped = fit_context(backend, request, turn.context_policy)
            if dropped:
                turn.reply = reply = reply.with_(
                    meta={**reply.meta, "context_dropped": list(dropped)}
                )
            stream = backend.execute(request, handle.cancel_event)
            prompt: PreparedPrompt = stream.prompt
            handle.emit(
                TurnPrompt(handle.turn_id, reply.id, prompt, backend.info.n_ctx, tuple(dropped))
            )
            self._db.stream_watch(reply.id, turn.answer, turn.thinking)
            for chunk in stream:
                if chunk.text:
                    (turn.thinking if chunk.channel == "thinking" else turn.answer).append(
                        chunk.text
                    )
                if turn.tokens is not None:
                    turn.tokens.add(chunk)
                handle.emit(TurnChunk(handle.turn_id, reply.id, chunk))
                if self._db.stream_error(reply.id) is not None:
                    handle.cancel()  # the disk or database failed: stop, keep what we can
            if turn.tokens is not None:  # the vocabulary is read here, on the model's thread
                turn.tokens.forced = len(turn.forced)
                turn.trace = turn.tokens.build(backend.token_bytes)
        except UserError as e:
            self._fail(turn, str(e))
            return
        except Exception as e:
            log.exception("generation failed")
            self._fail(turn, f"Generation failed: {e}")
            return
        failure = self._db.stream_error(reply.id)
        try:
            message = self._db.call(lambda store: self._finish(store, turn, stream, backend))
        except Exception as e:
            log.error("saving the finished answer failed", exc_info=e)
            self._db.stream_end(reply.id)
            self._fail(turn, _storage_message(e) or f"Could not save the answer: {e}", save=False)
            return
        if failure is not None:
            self._fail(turn, _storage_message(failure) or str(failure), save=False)
            return
        handle.emit(
            TurnFinished(
                handle.turn_id,
                turn.conversation.id,
                message,
                stream.stats,
                backend.info.n_ctx,
                stream.prompt.warning,
            )
        )

    def _finish(self, store: Store, turn: _Turn, stream: Any, backend: Backend) -> Message:
        self._db.stream_end(turn.reply.id)
        stats = stream.stats
        prompt: PreparedPrompt = stream.prompt
        sampling = dict(asdict(getattr(stream, "params", turn.sampling)))
        sampling["seed"] = stats.seed
        template = prompt.template
        receipt = Receipt(
            prompt_tokens=len(prompt.tokens),
            prompt_sha256=tokens_sha256(prompt.tokens),
            template=template.name,
            template_source=template.source,
            template_sha256=text_sha256(template.text),
            sampling=sampling,
            backend=getattr(backend, "version", ""),
            model=str(turn.ref),
            reused_tokens=stats.reused_tokens,
            evaluated_tokens=stats.evaluated_tokens,
            tokens_known=prompt.tokens_known,
        )
        meta = dict(turn.reply.meta)
        meta.update(
            template=template.name,
            template_source=template.source,
            sampling=sampling,
            prompt_seconds=round(stats.prompt_seconds, 4),
            generation_seconds=round(stats.generation_seconds, 4),
            receipt=receipt.as_dict(),
        )
        if prompt.warning:
            meta["prompt_warning"] = prompt.warning
        with store.transaction():
            store.update_message(
                turn.reply.id,
                content=stream.answer,
                thinking=stream.thinking,
                finish_reason=stats.finish_reason,
                prompt_tokens=stats.prompt_tokens,
                completion_tokens=stats.completion_tokens,
                tokens_per_second=round(stats.tokens_per_second, 2),
                meta=meta,
            )
            if prompt.tokens_known:
                store.save_prompt_tokens(turn.reply.id, prompt.tokens)
            # h-inside (issue 10): per-token probabilities, one packed blob per answer
            if turn.trace is not None:
                store.save_token_trace(turn.reply.id, turn.trace)
        message = store.get_message(turn.reply.id)
        assert message is not None
        return message

    def _fail(self, turn: _Turn, error: str, *, save: bool = True) -> None:
        """Keep what was streamed (marked as failed); drop an answer that never began."""
        reply = turn.reply
        self._db.stream_end(reply.id)
        answer, thinking = "".join(turn.answer).strip(), "".join(turn.thinking).strip()
        kept: str | None = reply.id
        try:
            if answer or thinking:
                if save:
                    self._db.call(
                        lambda s: s.update_message(
                            reply.id,
                            content=answer,
                            thinking=thinking,
                            finish_reason=FinishReason.ERROR,
                        )
                    )
            else:
                self._db.call(lambda s: s.delete_message(reply.id))
                kept = None
        except Exception as e:
            log.error("could not record the failed answer %s: %s", reply.id, e)
        turn.handle.emit(TurnFailed(turn.handle.turn_id, turn.conversation.id, kept, error))

    # -- turns outside the store (the API server) ------------------------------------------

    def complete(
        self,
        messages: Sequence[dict[str, Any]],
        system_prompt: str = "",
        options: TurnOptions | None = None,
        listener: Listener | None = None,
        *,
        cache_key: str | None = None,
        prompt_text: str | None = None,
    ) -> TurnHandle:
        """Answer `messages` (role/content dicts) with the loaded model, saving nothing.

        For API clients: the turn queues on the inference thread with every other turn
        (arrival order). prompt_text: a raw completion of that text as-is, no chat
        template (the backend must offer execute_text). cache_key names the caller's
        conversation for KV-state reuse. Events: TurnPrompt, TurnChunk..., then
        TurnFinished (its message is not saved: id "") or TurnFailed."""
        opts = options or TurnOptions()
        sampling = opts.sampling or self.settings.sampling()
        handle = self._new_handle(listener)

        def job() -> None:
            answer: list[str] = []
            thinking: list[str] = []
            try:
                backend = self._require_backend()
                request = ChatRequest(
                    list(messages),
                    system_prompt,
                    sampling,
                    user_template=self._user_template(backend.ref),
                    logprobs=opts.logprobs or 0,  # an API client asks for them explicitly
                    cache_key=cache_key,
                )
                if prompt_text is None:
                    stream: Any = backend.execute(request, handle.cancel_event)
                else:
                    execute_text = getattr(backend, "execute_text", None)
                    if execute_text is None:
                        raise UserError(f"{backend.ref.label} does not take raw-text prompts.")
                    stream = execute_text(prompt_text, request, handle.cancel_event)
                handle.emit(TurnPrompt(handle.turn_id, "", stream.prompt, backend.info.n_ctx))
                for chunk in stream:
                    (thinking if chunk.channel == "thinking" else answer).append(chunk.text)
                    handle.emit(TurnChunk(handle.turn_id, "", chunk))
            except UserError as e:
                handle.emit(TurnFailed(handle.turn_id, None, None, str(e)))
                return
            except Exception as e:
                log.exception("generation failed")
                handle.emit(TurnFailed(handle.turn_id, None, None, f"Generation failed: {e}"))
                return
            stats = stream.stats
            message = Message(
                id="",
                conversation_id="",
                parent_id=None,
                role=Role.ASSISTANT,
                content="".join(answer).strip(),
                created_at=time.time(),
                thinking="".join(thinking).strip(),
                model=backend.ref.label,
                finish_reason=stats.finish_reason,
                prompt_tokens=stats.prompt_tokens,
                completion_tokens=stats.completion_tokens,
                tokens_per_second=round(stats.tokens_per_second, 2),
            )
            handle.emit(
                TurnFinished(
                    handle.turn_id, "", message, stats, backend.info.n_ctx, stream.prompt.warning
                )
            )

        try:
            self._infer.submit(job)
            self._settle_later()
        except RuntimeError as e:  # shut down
            handle.emit(TurnFailed(handle.turn_id, None, None, str(e)))
        return handle

    def _settle_later(self) -> None:
        """After a turn, while the user reads: the backend re-evaluates the answer's
        tokens as a batch (engine.llama.GRID), so the next turn starts from the state a
        fresh process would compute. Background: any job waiting goes first, and one
        that arrives meanwhile stops it between batches."""

        def settle() -> None:
            fn = getattr(self._backend, "settle", None)
            if fn is not None:
                fn(self._infer.preempted)

        try:
            self._infer.submit_background(settle)
        except RuntimeError:  # shut down
            pass

    # -- lifetime ------------------------------------------------------------------------

    def cancel_all(self) -> None:
        with self._lock:
            handles = list(self._turns.values())
        for h in handles:
            h.cancel()

    def read(self, fn: Callable[[Store], T]) -> Future[T]:
        """Run fn(store) on the service's store thread (for callers with no store)."""
        return self._db.submit(fn)

    def shutdown(self) -> None:
        """Cancel, stop the inference thread, join, then close the model (a Llama used
        after close() segfaults), then flush and close the database."""
        if self._closed:
            return
        self._closed = True
        self.cancel_all()
        self._infer.shutdown()
        backend, self._backend = self._backend, None
        self.loaded = None
        if backend is not None:
            backend.close()
        self._db.shutdown()


def answer_reserve(request: ChatRequest, n_ctx: int) -> int:
    """Room kept for the answer when older turns are left out to make space."""
    wanted = request.sampling.max_tokens or 512
    return max(16, min(wanted, n_ctx // 4))


def fit_context(
    backend: Backend, request: ChatRequest, policy: str
) -> tuple[ChatRequest, list[str]]:
    """The request as it will be sent, and the ids of the messages left out.

    Policy "stop": nothing is left out; a conversation longer than the context is a
    ContextFullError that says what to do. "drop_oldest": the oldest turns are left out
    (the system prompt stays) until the prompt leaves room for the answer. Never a
    silent cut: the dropped ids are reported and recorded with the answer."""
    n_ctx = backend.info.n_ctx
    if not n_ctx or not getattr(backend, "capabilities", Capabilities()).tokens:
        return request, []
    prompt = backend.prepare(request)
    history: list[Any] = list(request.history)
    if len(prompt.tokens) < n_ctx and (
        policy != DROP_OLDEST or len(prompt.tokens) + answer_reserve(request, n_ctx) <= n_ctx
    ):
        return request, []
    if policy != DROP_OLDEST:
        raise ContextFullError(
            f"The conversation is {len(prompt.tokens)} tokens long; this model's context "
            f"holds {n_ctx}. Start a new chat, or choose to leave out the oldest turns "
            "in the chat settings."
        )
    dropped: list[str] = []
    reserve = answer_reserve(request, n_ctx)
    while len(history) > 1:
        # leave out the oldest turn: a question and the answers before the next question
        cut = 1
        while cut < len(history) - 1 and _role(history[cut]) != Role.USER.value:
            cut += 1
        dropped += [str(getattr(m, "id", "")) for m in history[:cut] if getattr(m, "id", "")]
        history = history[cut:]
        request = replace(request, history=history)
        prompt = backend.prepare(request)
        if len(prompt.tokens) + reserve <= n_ctx:
            return request, dropped
    raise ContextFullError(
        f"Your message alone is {len(prompt.tokens)} tokens with the template; this model's "
        f"context holds {n_ctx} (and {reserve} are kept for the answer). Shorten it, or "
        "load the model with a larger context."
    )


def _role(m: Any) -> str:
    role = getattr(m, "role", None)
    if role is not None:
        return str(getattr(role, "value", role))
    return str(m.get("role", "")) if isinstance(m, dict) else ""


def _draft_message(conversation_id: str, text: str) -> Message:
    return Message(
        id="draft",
        conversation_id=conversation_id,
        parent_id=None,
        role=Role.USER,
        content=text,
        created_at=time.time(),
    )


def _chain(source: Future[T], target: Future[T]) -> None:
    def copy(f: Future[T]) -> None:
        e = f.exception()
        if e is not None:
            target.set_exception(e)
        else:
            target.set_result(f.result())

    source.add_done_callback(copy)


def _storage_message(e: BaseException) -> str:
    """A one-line message for a failed write, or "" if it is not a storage problem."""
    text = str(e).lower()
    if isinstance(e, DiskFullError) or "disk is full" in text or "no space" in text:
        return "The disk is full: the answer could not be saved. Free some space and try again."
    if isinstance(e, StoreError):
        return str(e)
    if "database is locked" in text or "database is busy" in text:
        return "The chat database is busy (another chatapp is writing to it); try again."
    if "malformed" in text or "not a database" in text:
        return f"The chat database is damaged: {e}"
    return ""
