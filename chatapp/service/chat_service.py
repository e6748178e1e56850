"""The chat service: the one place a chat turn runs, for the window, the CLI and the server.

It composes the model host (the inference thread that owns the loaded model), a store
thread for every database write, the settings resolver and the turn pipeline. The turn
commands here (send, regenerate, edit, branch_from, continue_answer, continue_text,
complete) only build a TurnSpec: they resolve the turn's settings (service.resolver),
write the question and the answer's row where the turn is stored, and hand the spec to
the pipeline (service.pipeline), which prepares the prompt once, fits the context,
streams and saves.

Public methods may be called from any thread and never block on the model: they return
a Future or a TurnHandle. Events are plain data (service.events), delivered on the
service's threads.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar, cast

from chatapp.core.backend import (
    Backend,
    Capabilities,
    ChatRequest,
    Chunk,
    ModelRef,
    PreparedPrompt,
    TokensUnavailable,
)
from chatapp.core.chat_settings import ChatSettings
from chatapp.core.conversation import Conversation, FinishReason, Message, Role, thread, title_from
from chatapp.core.errors import NotFoundError, UserError
from chatapp.core.gpu_fit import GpuLayers
from chatapp.core.logprobs import forced_tokens
from chatapp.core.settings import Settings
from chatapp.core.store import Store
from chatapp.core.store.images import with_images
from chatapp.core.token_engine import SamplingParams
from chatapp.service.conversation_commands import ConversationCommands
from chatapp.service.documents import question_meta
from chatapp.service.events import (
    LoadedModel,
    StoreWaiting,
    TurnChunk,
    TurnFailed,
    TurnFinished,
    TurnStarted,
)
from chatapp.service.model_host import (
    BackendFactory,
    LoadRequest,
    ModelHost,
    default_backend_factory,
    speculation_for,
)
from chatapp.service.pipeline import MemorySink, Runner, StoreSink, TurnSpec
from chatapp.service.prefill import Prefiller
from chatapp.service.resolver import Given, LoadSettings, TurnSettings, resolve_load, resolve_turn
from chatapp.service.saved_states import state_folder
from chatapp.service.store_thread import StoreThread
from chatapp.service.tool_setup import offered_tools, tool_setup
from chatapp.service.tools import ToolRunner
from chatapp.service.turn import (
    ClientTurn,
    Completion,
    Listener,
    TurnHandle,
    TurnOptions,
    failure_of,
)
from chatapp.service.vision import images_for, refuse_blind

log = logging.getLogger(__name__)

T = TypeVar("T")

__all__ = [
    "BackendFactory",
    "ChatService",
    "ClientTurn",
    "Completion",
    "LoadRequest",
    "TurnHandle",
    "TurnOptions",
    "default_backend_factory",
]

_NOT_GIVEN: Any = object()
SETTLE_AFTER_S = 0.5  # an answer is settled once the inference thread was free this long
COMPLETION_CACHE_KEY = "completion-mode"  # continue_text's KV state (conversation ids are hex)


class ChatService:
    def __init__(
        self,
        store_path: Path,
        settings: Settings,
        backend_factory: BackendFactory = default_backend_factory,
        *,
        store_factory: Callable[[Path], Store] | None = None,
        tools: ToolRunner | None = None,
    ) -> None:
        self.settings = settings
        self.tools = tools  # what the model may call (chatapp.tools' registry)
        self._host = ModelHost(settings, backend_factory)
        if store_factory is None:
            # the service's writes wait for another process's lock off the GUI thread;
            # subscribers hear that they wait (the window says so)
            def store_factory(path: Path) -> Store:
                return Store(
                    path,
                    on_busy=lambda wait: self._host.publish(StoreWaiting(wait.message, wait.done)),
                )

        self._db = StoreThread(store_path, store_factory)
        self._infer = self._host.infer
        self._runner = Runner(lambda: self._host.backend, self._host.user_template)
        # rename, pin, tag, switch a branch, delete (to the trash), restore: for every caller
        self.conversations = ConversationCommands(self._db, self._host.publish, self._forget_states)
        self._turns: dict[str, TurnHandle] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._closed = False
        self._prefiller = Prefiller(self)

    # -- the model (model_host) ----------------------------------------------------------

    @property
    def loaded(self) -> LoadedModel | None:
        return self._host.loaded

    @property
    def _backend(self) -> Backend | None:
        return self._host.backend

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Model events (loading, loaded, failed, unloaded) go to every subscriber."""
        return self._host.subscribe(listener)

    def load(self, request: LoadRequest) -> Future[LoadedModel]:
        return self._infer.submit(self._host.load, request)

    def unload(self) -> Future[None]:
        return self._infer.submit(self._host.unload)

    def template_now(self, user_template: Any = _NOT_GIVEN) -> Future[Any]:
        """The template the next send uses (or would use with user_template)."""

        def job() -> Any:
            backend = self._host.require()
            text = (
                self._host.user_template(backend.ref)
                if user_template is _NOT_GIVEN
                else user_template
            )
            return backend.template(text)

        return self._infer.submit(job)

    # -- settings (resolver) -------------------------------------------------------------

    def load_settings(
        self,
        ref: ModelRef,
        *,
        context_limit: int | None = None,
        n_gpu_layers: GpuLayers | None = None,
        n_threads: int | None = None,
    ) -> LoadSettings:
        """A model's hardware settings: the app's, the model's own, then the caller's."""
        return resolve_load(
            self.settings,
            ref,
            context_limit=context_limit,
            n_gpu_layers=n_gpu_layers,
            n_threads=n_threads,
        )

    def load_request(
        self,
        ref: ModelRef,
        *,
        context_limit: int | None = None,
        n_gpu_layers: GpuLayers | None = None,
        n_threads: int | None = None,
        api_key: str = "",
        timeout: float | None = None,
        keep_states: bool = True,
        speculative: str | None = None,
        draft_model: str | None = None,
    ) -> LoadRequest:
        """What loading `ref` uses, resolved (every load site goes through here).
        keep_states: KV states are saved to the cache folder and restored across
        restarts (within settings.kv_state_disk_mb); a replay that must run cold says no.
        speculative/draft_model: the caller's, else the settings' (a draft model is
        looked up by the model's file name)."""
        hw = self.load_settings(
            ref, context_limit=context_limit, n_gpu_layers=n_gpu_layers, n_threads=n_threads
        )
        disk = self.settings.kv_state_disk_mb if keep_states and ref.is_local else 0
        mode, draft = speculation_for(self.settings, ref, speculative, draft_model)
        return LoadRequest(
            ref,
            hw.context_limit,
            hw.n_gpu_layers,
            hw.n_threads,
            api_key,
            timeout,
            state_dir=str(state_folder()) if disk else None,
            state_disk_mb=disk,
            speculative=mode,
            draft_model=draft,
        )

    def turn_settings(
        self,
        ref: ModelRef,
        conversation: Conversation | None,
        options: TurnOptions | None = None,
        *,
        answer_sampling: Mapping[str, Any] | None = None,
    ) -> TurnSettings:
        """The settings a turn in `conversation` uses, and the layer each came from."""
        given = (options or TurnOptions()).given()
        return resolve_turn(
            self.settings, ref, conversation, given, answer_sampling=answer_sampling
        )

    def sampling_for(self, ref: ModelRef, conv: Conversation | None) -> SamplingParams:
        """The sampling a turn in `conv` uses (no caller overrides)."""
        return resolve_turn(self.settings, ref, conv, Given()).sampling

    # -- prompts and tokens ----------------------------------------------------------------

    def prepare(
        self,
        history: Sequence[Message] | Sequence[dict[str, Any]],
        system_prompt: str = "",
        *,
        user_template: Any = _NOT_GIVEN,
        tools: list[dict[str, Any]] | None = None,
        add_generation_prompt: bool = True,
        prefill: str = "",
        images: Mapping[str, Any] | None = None,
        retrieval: Any = None,
    ) -> Future[PreparedPrompt]:
        """The exact prompt the loaded model would receive: the very function a send
        runs. user_template: a template text to try instead of the saved one (the
        template editor's preview); None means the model's own. prefill: the answer so
        far that opens the model's turn (Continue). retrieval: a send's retrieval step
        (TurnOptions.retrieval), run here as Runner.run runs it, before the prompt."""

        def job() -> PreparedPrompt:
            backend = self._host.require()
            text = (
                self._host.user_template(backend.ref)
                if user_template is _NOT_GIVEN
                else user_template
            )
            request = ChatRequest(
                list(cast(Sequence[Any], history)),
                system_prompt,
                user_template=text,
                tools=tools,
                add_generation_prompt=add_generation_prompt,
                prefill=prefill,
                images=images or {},
            )
            if retrieval is not None:  # the passages the send would insert (Show prompt)
                request, _found = retrieval(request, backend, threading.Event())
            return backend.prepare(request)

        return self._infer.submit(job)

    def prepare_conversation(
        self,
        conversation_id: str | None,
        *,
        draft: str = "",
        upto_message_id: str | None = None,
        user_template: Any = _NOT_GIVEN,
        prefill: str = "",
        question: str = "",
        options: TurnOptions | None = None,
        tools: list[dict[str, Any]] | None = None,
        draft_images: Sequence[Any] = (),
    ) -> Future[PreparedPrompt]:
        """The prompt of the next answer in a conversation: its active thread (up to
        upto_message_id, if given) plus the draft as the next user message, if any.
        question: the last question as it was sent (with retrieved passages); options:
        the next send's, whose tools the template renders as that send's first step
        and whose retrieval step fills the draft with its passages;
        tools: the tool definitions offered (OpenAI-shaped), given instead of options'."""
        result: Future[PreparedPrompt] = Future()

        images: dict[str, Any] = {}

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
            images.update(images_for(store, branch))
            return branch, conv.system_prompt

        def then(fut: Future[tuple[list[Message], str]]) -> None:
            try:
                branch, system = fut.result()
            except BaseException as e:  # a boundary: delivered to the caller  # noqa: BLE001
                result.set_exception(e)
                return
            history: list[Any] = list(branch)
            if question and history and history[-1].role is Role.USER:
                history[-1] = history[-1].with_(content=question)
            if draft.strip():
                draft_msg = _draft_message(conversation_id or "", draft.strip())
                if draft_images:  # the images waiting in the window's composer
                    draft_msg = draft_msg.with_(meta=with_images({}, draft_images))
                    images.update({i.sha256: i for i in draft_images})
                history.append(draft_msg)
            try:
                offered = tools
                if offered is None:
                    offered = offered_tools(options, self.tools, self.settings.tool_max_steps)
                prepared = self.prepare(
                    history,
                    system,
                    user_template=user_template,
                    tools=offered,
                    prefill=prefill,
                    images=images,
                    # the draft is the question a send's retrieval step would fill
                    retrieval=options.retrieval if options and draft.strip() else None,
                )
            except BaseException as e:  # a boundary: delivered to the caller  # noqa: BLE001
                result.set_exception(e)
                return
            _chain(prepared, result)

        self._db.submit(read).add_done_callback(then)
        return result

    def tokenize(self, text: str, *, special: bool = True) -> Future[list[tuple[int, bytes]]]:
        """Token ids and their bytes, by the loaded model's own tokenizer."""

        def job() -> list[tuple[int, bytes]]:
            backend = self._host.require()
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
            backend = self._host.require()
            return [(int(i), backend.token_bytes(int(i))) for i in token_ids]

        return self._infer.submit(job)

    def prefill(
        self, conversation_id: str | None, draft: str = "", *, options: TurnOptions | None = None
    ) -> Future[int]:
        """Evaluate, in the background, the prompt the next send in the conversation
        would have with `draft` as its question (service.prefill): call it when a chat
        is opened and, debounced, while the user types. A send, or any other job, takes
        the inference thread within one batch; what a send does is unchanged but faster.
        The future holds the tokens evaluated."""
        return self._prefiller.request(conversation_id, draft, options)

    def turns_in_flight(self) -> bool:
        with self._lock:
            return bool(self._turns)

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
            ref = self._host.loaded_ref()
            refuse_blind(self._host.loaded, opts.images)  # before anything is stored
            new = conversation_id is None
            if conversation_id is None:
                system = resolve_turn(self.settings, ref, None, opts.given()).system_prompt
                conv = store.create_conversation(
                    title_from(text), model_path=str(ref), system_prompt=system
                )
            else:
                conv = _conversation(store, conversation_id)
                if opts.system_prompt is not None and opts.system_prompt != conv.system_prompt:
                    raise UserError(
                        "A system prompt is given for a new conversation only; this one's "
                        "is set in its chat settings (chatapp conversations ID --set "
                        "system_prompt=...)."
                    )
            store.put_images(opts.images)
            user = store.add_message(
                conv.id,
                Role.USER,
                text,
                parent_id=conv.current_leaf_id,
                meta=with_images(question_meta(opts.retrieval), opts.images),
            )
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
            ref = self._host.loaded_ref()
            conv = _conversation(store, conversation_id)
            if answer_id is not None:
                answer = store.get_message(answer_id)
                if answer is None or answer.conversation_id != conv.id:
                    raise NotFoundError(f"No message with id {answer_id} in this conversation.")
                if answer.role is not Role.ASSISTANT:
                    raise UserError("Only an answer can be regenerated; edit a question instead.")
                question = store.get_message(answer.parent_id) if answer.parent_id else None
            else:
                users = [m for m in store.active_thread(conv.id) if m.role is Role.USER]
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
                raise NotFoundError(f"No message with id {message_id}.")
            if original.role is not Role.USER:
                raise UserError("Only your own messages can be edited; regenerate an answer.")
            conv = _conversation(store, original.conversation_id)
            kept = {"images": original.meta["images"]} if original.meta.get("images") else {}
            user = store.add_message(  # a new version of the question keeps its images
                conv.id,
                Role.USER,
                text,
                parent_id=original.parent_id,
                meta={**kept, **question_meta(opts.retrieval)},
            )
            try:
                ref = self._host.loaded_ref()
            except UserError as e:  # the edit is kept; say what is missing
                handle.conversation_id = conv.id
                raise type(e)(f"Your edit is saved. {e}") from e
            self._begin(store, handle, conv, user, user, ref, opts, False)

        self._setup(handle, setup)
        return handle

    def set_chat_settings(
        self,
        conversation_id: str,
        chat: ChatSettings | None = None,
        *,
        system_prompt: str | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> Future[Conversation]:
        """Save a conversation's own settings (and system prompt; `meta`: these keys of
        its meta, such as the window's tool settings); the next turn uses them."""

        def job(store: Store) -> Conversation:
            conv = _conversation(store, conversation_id)
            changes: dict[str, Any] = {}
            if chat is not None or meta:
                changes["meta"] = {**conv.meta, **(meta or {})}
            if chat is not None:
                changes["meta"]["chat_settings"] = chat.to_json()
            if system_prompt is not None:
                changes["system_prompt"] = system_prompt
            return store.update_conversation(conversation_id, **changes) if changes else conv

        return self._db.submit(job)

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
        rest with the answer's recorded sampling. Needs the answer's recorded tokens and
        the model that wrote it."""
        opts = options or TurnOptions()
        handle = self._new_handle(listener)

        def setup(store: Store) -> None:
            ref = self._host.loaded_ref()
            answer = store.get_message(answer_id)
            if answer is None or answer.role is not Role.ASSISTANT:
                raise NotFoundError(f"No answer with id {answer_id}.")
            trace = store.token_trace(answer.id)
            if trace is None:
                raise UserError("This answer has no recorded tokens to branch from.")
            if answer.meta.get("model_path") not in (None, str(ref)):
                raise UserError(
                    f"This answer was written by {answer.model}; load that model to branch from it."
                )
            loaded = self._host.loaded
            n_vocab = loaded.info.n_vocab if loaded else 0
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
            recorded = answer.meta.get("sampling")
            self._begin(
                store,
                handle,
                conv,
                question,
                None,
                ref,
                opts,
                False,
                forced=forced_tokens(trace, position, token_id),
                extra_meta={
                    "branched_from": {
                        "message_id": answer.id,
                        "position": position,
                        "token_id": token_id,
                    }
                },
                answer_sampling=recorded if isinstance(recorded, dict) else None,
            )

        self._setup(handle, setup)
        return handle

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
            ref = self._host.loaded_ref()
            answer = store.get_message(answer_id)
            if answer is None or answer.role is not Role.ASSISTANT or not answer.parent_id:
                raise NotFoundError(f"No answer with id {answer_id}.")
            conv = _conversation(store, answer.conversation_id)
            question = store.get_message(answer.parent_id)
            assert question is not None
            history = thread(store.messages(conv.id), question.id)
            store.mark_streaming(answer.id)
            store.set_current_leaf(conv.id, answer.id)
            handle.conversation_id, handle.message_id = conv.id, answer.id
            resolved = self.turn_settings(ref, conv, opts)
            before = store.token_trace(answer.id)
            text = answer.content
            spelled = before.text() if before is not None and not answer.thinking else ""
            if spelled.strip() == text:  # the text as its tokens spell it: a trailing
                text = spelled.lstrip()  # newline or space stays where the model put it
            spec = self._spec(handle, conv, history, resolved, ref, opts=opts)
            spec.request = replace(
                spec.request,
                prefill=text,
                prefill_thinking=answer.thinking,
                images=images_for(store, history),
            )
            sink = StoreSink(spec, self._db, conv, answer, continued=answer, before_trace=before)
            handle.emit(TurnStarted(handle.turn_id, conv.id, None, answer, False))
            self._queue(spec, sink)

        self._setup(handle, setup)
        return handle

    def _setup(
        self, handle: TurnHandle, fn: Callable[[Store], None], restore_input: str = ""
    ) -> None:
        def done(fut: Future[None]) -> None:
            e = fut.exception()
            if e is None:
                return
            failure = failure_of(e, "Could not start the answer")
            kept = handle.message_id is not None or restore_input == ""
            handle.emit(
                TurnFailed(
                    handle.turn_id,
                    handle.conversation_id,
                    None,
                    failure.message,
                    restore_input="" if kept else restore_input,
                    kind=failure.kind,
                )
            )

        try:
            self._db.submit(fn).add_done_callback(done)
        except RuntimeError as e:  # shut down
            handle.emit(TurnFailed(handle.turn_id, None, None, str(e), restore_input=restore_input))

    def _spec(
        self,
        handle: TurnHandle,
        conv: Conversation,
        history: list[Message],
        resolved: TurnSettings,
        ref: ModelRef,
        forced: tuple[Any, ...] = (),
        client: ClientTurn | None = None,
        opts: TurnOptions | None = None,
    ) -> TurnSpec:
        request = ChatRequest(
            history,
            resolved.system_prompt,
            resolved.sampling,
            logprobs=resolved.logprobs,
            cache_key=(client and client.cache_key) or conv.id,
            forced=forced,
        )
        raw = client.prompt_text if client is not None else None
        spec = TurnSpec(handle, request, resolved, ref, raw, client is not None)
        return self._tooled(spec, opts)

    def _tooled(self, spec: TurnSpec, opts: TurnOptions | None) -> TurnSpec:
        """The spec with the turn's tools and output constraint (service.tool_setup)."""
        return tool_setup(spec, opts, self.tools, self.settings.tool_max_steps)

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
        *,
        forced: tuple[Any, ...] = (),
        extra_meta: dict[str, Any] | None = None,
        answer_sampling: Mapping[str, Any] | None = None,
        client: ClientTurn | None = None,
    ) -> None:
        """On the store thread: resolve the turn's settings, write the answer's row, then
        queue the turn on the pipeline."""
        handle.conversation_id = conv.id
        leaf_before = conv.current_leaf_id if user is None else None  # a regenerate's
        if user is not None:
            handle.message_id = user.id
        branch = store.active_thread(conv.id) if user is not None else None
        if branch is None or parent.id not in [m.id for m in branch]:
            branch = thread(store.messages(conv.id), parent.id)
        ids = [m.id for m in branch]
        history = branch[: ids.index(parent.id) + 1]
        resolved = self.turn_settings(ref, conv, opts, answer_sampling=answer_sampling)
        self._tooled(TurnSpec(handle, ChatRequest([]), resolved), opts)  # refused before any row
        loaded = self._host.loaded
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
                "sampling": resolved.sampling.as_dict(),
                **(extra_meta or {}),
            },
        )
        if conv.model_path != str(ref):
            conv = store.update_conversation(conv.id, model_path=str(ref))
        handle.message_id = reply.id
        spec = self._spec(handle, conv, history, resolved, ref, forced, client, opts)
        spec.request = replace(spec.request, images=images_for(store, history, opts.images))
        spec.retrieval = opts.retrieval
        sink = StoreSink(spec, self._db, conv, reply, leaf_before=leaf_before)
        handle.emit(TurnStarted(handle.turn_id, conv.id, user, reply, new))
        self._queue(spec, sink)

    # -- turns outside the store (the API server, completion mode) ------------------------

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
        handle = self._new_handle(listener)
        try:
            ref = self._host.loaded_ref()
            resolved = self.turn_settings(ref, None, opts)
            # an API client asks for alternatives explicitly
            logprobs = opts.logprobs or 0
            refuse_blind(self._host.loaded, opts.images)
            request = ChatRequest(
                list(messages),
                system_prompt,
                resolved.sampling,
                logprobs=logprobs,
                cache_key=cache_key,
                images={i.sha256: i for i in opts.images},
            )
            spec = self._tooled(
                TurnSpec(handle, request, resolved, None, prompt_text, client=True), opts
            )
            self._queue(spec, MemorySink(spec))
        except Exception as e:  # no model, a bad value, or shut down  # noqa: BLE001
            failure = failure_of(e)
            handle.emit(TurnFailed(handle.turn_id, None, None, failure.message, kind=failure.kind))
        return handle

    def record(
        self,
        messages: Sequence[dict[str, Any]],
        system_prompt: str = "",
        options: TurnOptions | None = None,
        listener: Listener | None = None,
        *,
        client: ClientTurn | None = None,
    ) -> TurnHandle:
        """Like complete(), but kept: `messages` (user/assistant role/content dicts) are
        saved as a new conversation at once, queued or not, and the answer is saved
        while it streams, exactly as the window's turns are (the API's --record)."""
        opts = options or TurnOptions()
        client = client or ClientTurn()
        handle = self._new_handle(listener)
        first = next((m["content"] for m in messages if m["role"] == "user"), "")

        def setup(store: Store) -> None:
            ref = self._host.loaded_ref()
            with store.transaction():
                conv = store.create_conversation(
                    title_from(first or client.prompt_text or "API request"),
                    model_path=str(ref),
                    system_prompt=system_prompt,
                    meta=client.meta,
                )
                parent: Message | None = None
                store.put_images(opts.images)
                for m in messages:
                    role = Role.ASSISTANT if m["role"] == "assistant" else Role.USER
                    parent = store.add_message(
                        conv.id,
                        role,
                        m["content"],
                        parent_id=parent.id if parent else None,
                        meta={"images": m["images"]} if m.get("images") else {},
                    )
            assert parent is not None, "a recorded turn needs a message"
            user = parent if parent.role is Role.USER else None
            self._begin(store, handle, conv, parent, user, ref, opts, True, client=client)

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
        options: TurnOptions | None = None,
    ) -> Future[Completion]:
        """Completion mode: the model continues `text` as written (no chat template,
        only the BOS token its vocabulary asks for). Nothing is saved."""
        result: Future[Completion] = Future()

        def relay(event: Any) -> None:
            if isinstance(event, TurnChunk) and listener is not None:
                listener(event.chunk)
            elif isinstance(event, TurnFinished):
                text_out = "".join(sink.answer)
                result.set_result(Completion(prompt[0], text_out, event.stats))
            elif isinstance(event, TurnFailed):
                result.set_exception(UserError(event.error, kind=event.kind))
            elif hasattr(event, "prompt"):
                prompt[0] = event.prompt

        prompt: list[Any] = [None]
        opts = options or TurnOptions(sampling=sampling)
        handle = self._new_handle(relay)
        if cancel is not None:
            handle.cancel_event = cancel
        try:
            ref = self._host.loaded_ref()
        except UserError as e:
            result.set_exception(e)
            return result
        resolved = self.turn_settings(ref, None, opts)
        # a KV state of its own, kept while chats run in between, so the same text again
        # (Regenerate in the completion view) is not evaluated again
        request = ChatRequest(
            [],
            sampling=resolved.sampling,
            logprobs=logprobs,
            raw_prompt=text,
            cache_key=COMPLETION_CACHE_KEY,
        )
        spec = TurnSpec(handle, request, resolved)
        sink = MemorySink(spec)
        self._infer.submit(self._runner.run, spec, sink)
        return result

    def _queue(self, spec: TurnSpec, sink: MemorySink) -> None:
        """Run the turn on the inference thread, then settle what it generated."""
        self._infer.submit(self._runner.run, spec, sink)
        self._settle_later()

    def _settle_later(self) -> None:
        """After a turn, while the user reads: the backend re-evaluates the answer's
        tokens as a batch (engine.llama.GRID), so the next turn starts from the state a
        fresh process would compute. Background: any job waiting goes first, and one
        that arrives meanwhile stops it between batches. It is queued only after
        SETTLE_AFTER_S, so a send that follows at once (a script, a quick reply) does not
        wait behind it: that send evaluates the answer's cells itself, just as exactly."""

        def settle() -> None:
            fn = getattr(self._host.backend, "settle", None)
            if fn is not None and not self._infer.preempted():
                fn(self._infer.preempted)

        def queue() -> None:
            with contextlib.suppress(RuntimeError):  # shut down
                self._infer.submit_background(settle)

        timer = threading.Timer(SETTLE_AFTER_S, queue)
        timer.daemon = True
        timer.start()

    # -- lifetime ------------------------------------------------------------------------

    def cancel_all(self) -> None:
        with self._lock:
            handles = list(self._turns.values())
        for h in handles:
            h.cancel()

    def read(self, fn: Callable[[Store], T]) -> Future[T]:
        """Run fn(store) on the service's store thread (for callers with no store)."""
        return self._db.submit(fn)

    def _forget_states(self, conversation_ids: list[str]) -> None:
        """After a delete (on the store thread): the KV states kept for these chats go,
        the files of every model now and the loaded model's copies in memory next."""
        if not conversation_ids:
            return
        from chatapp.service.machine import forget_saved_states

        try:
            forget_saved_states(state_folder(), conversation_ids)
        except OSError as e:  # a cache: the delete itself stands
            log.warning("could not delete the saved KV states of a deleted chat: %s", e)
        backend = self._host.backend
        forget = getattr(backend, "forget_states", None)
        if forget is not None:
            self._infer.submit_background(forget, list(conversation_ids))

    def shutdown(self) -> None:
        """Cancel, stop the inference thread, join, then close the model (a Llama used
        after close() segfaults), then flush and close the database."""
        if self._closed:
            return
        self._closed = True
        self.cancel_all()
        self._infer.shutdown()
        self._host.close()
        from chatapp.engine.state_disk import wait_for_writes

        wait_for_writes()  # the KV states saved at close (engine.state_disk)
        self._db.shutdown()


def _conversation(store: Store, conversation_id: str) -> Conversation:
    conv = store.get_conversation(conversation_id)
    if conv is None:
        raise NotFoundError(f"No conversation with id {conversation_id}.")
    return conv


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
