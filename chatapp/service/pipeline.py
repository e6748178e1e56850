"""The turn pipeline: the one place a turn runs, whatever started it.

    prepare the prompt once -> fit the context -> generate (stream) -> sink

A TurnSpec says what to run (the request, the model it needs, its resolved settings);
a Sink says what happens to the answer: the StoreSink saves it while it streams and
finishes it with statistics, tokens and a receipt (the window, the CLI, Continue,
regenerate, edit, branch, a recorded API request); the MemorySink keeps it in memory
(an API request that is not recorded, completion mode). A later step (retrieved
documents, a tool call and its result) joins here, once, for every kind of turn.

run_turn() runs on the inference thread; a sink's database work goes to the store thread.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from chatapp.core.backend import (
    Backend,
    Capabilities,
    ChatRequest,
    Chunk,
    ModelRef,
    PreparedPrompt,
)
from chatapp.core.context_fit import FitCancelled, FitResult, TokenCounts, counter, fit_context
from chatapp.core.continued import Part, combine
from chatapp.core.conversation import Conversation, FinishReason, Message, Role
from chatapp.core.errors import ContextFullError, FailureKind, NoModelError, UserError
from chatapp.core.logprobs import TokenTrace, TraceBuilder
from chatapp.core.receipt import Receipt, text_sha256, tokens_sha256, tool_names, tools_sha256
from chatapp.core.store import Store
from chatapp.core.toolcalls import ToolCall
from chatapp.core.vision_prompt import receipt_images
from chatapp.service.events import (
    TurnChunk,
    TurnFailed,
    TurnFinished,
    TurnFitting,
    TurnPrompt,
    TurnToolCall,
    TurnToolResult,
)
from chatapp.service.resolver import TurnSettings
from chatapp.service.store_thread import StoreThread
from chatapp.service.tool_loop import TOOL_CALL, ToolStream, run_calls, tool_family, with_tools
from chatapp.service.tools import ToolOutcome, TurnTools
from chatapp.service.turn import (
    CLIENT_LEFT,
    Failure,
    TurnHandle,
    failure_of,
    storage_failure,
)

log = logging.getLogger(__name__)

FIT_PROGRESS_AFTER_S = 0.3  # fitting a long chat shows its progress after this long


@dataclass
class TurnSpec:
    """One turn to run: what to send, with which model, under which settings."""

    handle: TurnHandle
    request: ChatRequest
    settings: TurnSettings
    ref: ModelRef | None = None  # the model the turn needs (None: whichever is loaded)
    raw_text: str | None = None  # an API raw completion: this text, special tokens parsed
    client: bool = False  # an API client's turn: not run if cancelled while queued
    tools: TurnTools | None = None  # the tools the model may call in this turn
    # the retrieval step (service.documents.DocumentsStep): (request, backend, cancel) ->
    # (the request with passages in its question, what to record with the answer)
    retrieval: Any = None


class MemorySink:
    """Keeps the answer in memory and saves nothing."""

    def __init__(self, spec: TurnSpec, prefill: tuple[str, str] = ("", "")) -> None:
        self.spec = spec
        self.answer: list[str] = [prefill[0]] if prefill[0] else []
        self.thinking: list[str] = [prefill[1]] if prefill[1] else []
        logprobs = spec.request.logprobs
        self.tokens = TraceBuilder(logprobs, spec.settings.sampling.as_dict()) if logprobs else None
        self.trace: TokenTrace | None = None
        self.message_id = ""
        self.dropped: tuple[str, ...] = ()
        self.notes: dict[str, Any] = {}
        self.sent: ChatRequest = spec.request  # the request as this step sent it

    def note(self, meta: dict[str, Any]) -> None:
        """Something a step found, recorded with the answer (retrieved passages)."""
        self.notes.update(meta)

    def prepared(self, fit: FitResult) -> None:
        self.dropped = fit.dropped
        self.sent = fit.request

    def streaming(self) -> None:
        pass

    def add(self, chunk: Chunk) -> None:
        if chunk.text and chunk.channel != TOOL_CALL:
            (self.thinking if chunk.channel == "thinking" else self.answer).append(chunk.text)
        if self.tokens is not None:
            self.tokens.add(chunk)

    def broken(self) -> bool:
        """True when the answer can no longer be kept (the disk failed): stop."""
        return False

    def build_trace(self, backend: Backend) -> None:
        if self.tokens is not None:  # the vocabulary is read here, on the model's thread
            if self.spec.request.forced:  # (a resumed trace keeps its own count)
                self.tokens.forced = len(self.spec.request.forced)
            self.trace = self.tokens.build(backend.token_bytes)

    def set_calls(self, calls: list[ToolCall]) -> None:
        """The answer holds these calls (saved with it)."""
        self.calls = list(calls)

    def next_step(
        self, message: Message, results: list[tuple[ToolCall, ToolOutcome]]
    ) -> tuple[MemorySink, list[Any]]:
        """The sink of the step after `message`'s calls, and what the next request's
        history gains (the answer with its calls, then each result)."""
        added: list[Any] = [
            {
                "role": "assistant",
                "content": message.content,
                "tool_calls": [_openai(c) for c in self.calls],
            }
        ]
        for call, outcome in results:
            added.append(
                {
                    "role": "tool",
                    "content": outcome.content,
                    "tool_call_id": call.id,
                    "name": call.name,
                }
            )
        return MemorySink(self.spec), added

    def finish(self, stream: Any, backend: Backend) -> Message:
        stats = stream.stats
        calls = getattr(self, "calls", [])
        return Message(
            id="",
            conversation_id="",
            parent_id=None,
            role=Role.ASSISTANT,
            # a raw completion is the tokens' text exactly (its leading space too)
            content="".join(self.answer) if self.verbatim else "".join(self.answer).strip(),
            created_at=time.time(),
            thinking="".join(self.thinking).strip(),
            model=backend.ref.label,
            finish_reason=stats.finish_reason,
            prompt_tokens=stats.prompt_tokens,
            completion_tokens=stats.completion_tokens,
            tokens_per_second=round(stats.tokens_per_second, 2),
            meta={"tool_calls": [c.as_json() for c in calls]} if calls else {},
        )

    @property
    def verbatim(self) -> bool:
        return self.spec.raw_text is not None or self.spec.request.raw_prompt is not None

    def fail(self, failure: Failure) -> str | None:
        """Record the failure; the id of the answer kept as far as it got, or None."""
        return None

    def stopped_before_start(self) -> str | None:
        """Stop while the context was being fitted: leave things as they were."""
        return None


class StoreSink(MemorySink):
    """Saves the answer while it streams (its row exists before the turn runs) and
    finishes it with its statistics, tokens, prompt token ids and receipt."""

    def __init__(
        self,
        spec: TurnSpec,
        db: StoreThread,
        conversation: Conversation,
        reply: Message,
        *,
        continued: Message | None = None,
        before_trace: TokenTrace | None = None,
        leaf_before: str | None = None,
    ) -> None:
        """continued: the answer as it was, for Continue (its text opens the model's
        turn, its trace and statistics are extended); leaf_before: the message the
        conversation showed before a regenerate (shown again if Stop comes first)."""
        prefill = (spec.request.prefill, spec.request.prefill_thinking)
        super().__init__(spec, prefill)
        self.db = db
        self.conversation = conversation
        self.reply = reply
        self.message_id = reply.id
        self.continued = continued
        self.leaf_before = leaf_before
        if continued is not None and self.tokens is not None:
            if before_trace is not None:
                self.tokens.resume(before_trace)  # one answer, one trace
            elif continued.content or continued.thinking:
                self.tokens = None  # no trace of half an answer

    def note(self, meta: dict[str, Any]) -> None:
        super().note(meta)
        self.reply = self.reply.with_(meta={**self.reply.meta, **meta})

    def prepared(self, fit: FitResult) -> None:
        super().prepared(fit)
        if fit.dropped:
            self.reply = self.reply.with_(
                meta={**self.reply.meta, "context_dropped": list(fit.dropped)}
            )

    def set_calls(self, calls: list[ToolCall]) -> None:
        super().set_calls(calls)
        self.reply = self.reply.with_(
            meta={**self.reply.meta, "tool_calls": [c.as_json() for c in calls]}
        )

    def next_step(
        self, message: Message, results: list[tuple[ToolCall, ToolOutcome]]
    ) -> tuple[MemorySink, list[Any]]:
        """Saves each result as a tool message under the answer, and the next answer's
        row under the last of them, in one transaction (a crash loses nothing)."""
        conv = self.conversation

        def save(store: Store) -> tuple[list[Message], Message]:
            with store.transaction():
                parent = message.id
                saved: list[Message] = []
                for call, outcome in results:
                    tool = store.add_message(
                        conv.id,
                        Role.TOOL,
                        outcome.content,
                        parent_id=parent,
                        meta=outcome.meta(call),
                    )
                    saved.append(tool)
                    parent = tool.id
                reply = store.add_message(
                    conv.id,
                    Role.ASSISTANT,
                    "",
                    parent_id=parent,
                    model=message.model,
                    finish_reason=FinishReason.STREAMING,
                    meta={
                        k: v
                        for k, v in self.reply.meta.items()
                        if k in ("model_path", "template", "sampling")
                    },
                )
            return saved, reply

        saved, reply = self.db.call(save)
        sink = StoreSink(self.spec, self.db, conv, reply)
        return sink, [message, *saved]

    def streaming(self) -> None:
        self.db.stream_watch(self.reply.id, self.answer, self.thinking)

    def broken(self) -> bool:
        return self.db.stream_error(self.reply.id) is not None

    def finish(self, stream: Any, backend: Backend) -> Message:
        failure = self.db.stream_error(self.reply.id)
        try:
            message = self.db.call(lambda store: self._save(store, stream, backend))
        except Exception as e:
            self.db.stream_end(self.reply.id)
            raise _Unsaved(storage_failure(e) or failure_of(e, "Could not save the answer")) from e
        if failure is not None:
            raise _Unsaved(storage_failure(failure) or Failure(FailureKind.STORAGE, str(failure)))
        return message

    def _save(self, store: Store, stream: Any, backend: Backend) -> Message:
        self.db.stream_end(self.reply.id)
        stats = stream.stats
        prompt: PreparedPrompt = stream.prompt
        sampling = dict(asdict(getattr(stream, "params", self.spec.settings.sampling)))
        sampling["seed"] = stats.seed
        template = prompt.template
        resolved = self.spec.settings
        receipt = Receipt(
            prompt_tokens=len(prompt.tokens),
            prompt_sha256=tokens_sha256(prompt.tokens),
            template=template.name,
            template_source=template.source,
            template_sha256=text_sha256(template.text),
            sampling=sampling,
            backend=getattr(backend, "version", ""),
            model=str(backend.ref),
            reused_tokens=stats.reused_tokens,
            evaluated_tokens=stats.evaluated_tokens,
            tokens_known=prompt.tokens_known,
            context_policy=resolved.context_policy,
            system_prompt_sha256=text_sha256(self.spec.request.system_prompt),
            sources=resolved.receipt_sources(),
            prefill_chars=len(self.spec.request.prefill),
            state_note=str(getattr(backend, "state_note", "")),
            **_tools_receipt(self.sent),
            disk_tokens=stats.disk_tokens,
            speculative=stats.speculation,
        )
        meta = dict(self.reply.meta)
        meta.update(
            template=template.name,
            template_source=template.source,
            sampling=sampling,
            prompt_seconds=round(stats.prompt_seconds, 4),
            generation_seconds=round(stats.generation_seconds, 4),
            receipt={
                **receipt.as_dict(),
                **_documents_receipt(meta),
                **receipt_images(prompt, stats),
            },
        )
        if prompt.warning:
            meta["prompt_warning"] = prompt.warning
        counts = (stats.prompt_tokens, stats.completion_tokens, stats.tokens_per_second)
        # Continue: one answer, its statistics over all its parts (core.continued)
        combined = combine(self.continued, Part.of(stats), meta) if self.continued else None
        if combined is not None:
            meta = combined.meta
            counts = (
                combined.prompt_tokens,
                combined.completion_tokens,
                combined.tokens_per_second,
            )
        with store.transaction():
            store.update_message(
                self.reply.id,
                content=stream.answer.strip(),
                thinking=stream.thinking,
                finish_reason=stats.finish_reason,
                prompt_tokens=counts[0],
                completion_tokens=counts[1],
                tokens_per_second=round(counts[2], 2),
                meta=meta,
            )
            # a later part's prompt is not the answer's: the first part's receipt stays
            if prompt.tokens_known and combined is None:
                store.save_prompt_tokens(self.reply.id, prompt.tokens)
            if self.trace is not None:
                store.save_token_trace(self.reply.id, self.trace)
        message = store.get_message(self.reply.id)
        assert message is not None
        return message

    def fail(self, failure: Failure) -> str | None:
        """Keep what was streamed (marked as failed); drop an answer that never began."""
        reply = self.reply
        self.db.stream_end(reply.id)
        answer, thinking = "".join(self.answer).strip(), "".join(self.thinking).strip()
        try:
            if answer or thinking:
                if failure.kind not in (FailureKind.DISK_FULL, FailureKind.STORAGE):
                    self.db.call(
                        lambda s: s.update_message(
                            reply.id,
                            content=answer,
                            thinking=thinking,
                            finish_reason=failure.finish,
                        )
                    )
                return reply.id
            self.db.call(lambda s: s.delete_message(reply.id))
        except Exception as e:  # a boundary: the turn fails with one line, the app runs on  # noqa: BLE001
            log.error("could not record the failed answer %s: %s", reply.id, e)
            return reply.id
        return None

    def stopped_before_start(self) -> str | None:
        """The conversation is left as it was before the turn: a continued answer keeps
        its state, a new answer's row goes, the view returns to the answer it showed."""
        reply, before, leaf = self.reply, self.continued, self.leaf_before
        self.db.stream_end(reply.id)

        def undo(store: Store) -> None:
            if before is not None:
                store.update_message(reply.id, finish_reason=before.finish_reason)
                return
            store.delete_message(reply.id)
            if leaf and store.get_message(leaf) is not None:
                store.set_current_leaf(self.conversation.id, leaf)

        try:
            self.db.call(undo)
        except Exception as e:  # a boundary: the turn fails with one line, the app runs on  # noqa: BLE001
            log.error("could not undo the stopped turn %s: %s", reply.id, e)
        return reply.id if before is not None else None


class _Unsaved(Exception):
    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.message)
        self.failure = failure


@dataclass
class Runner:
    """Runs TurnSpecs on the inference thread with the backend the service holds."""

    backend: Any  # () -> Backend | None
    user_template: Any  # (ModelRef) -> str | None
    token_counts: TokenCounts = field(default_factory=TokenCounts)  # per message, for fitting

    def run(self, spec: TurnSpec, sink: MemorySink) -> None:
        handle = spec.handle
        cancel = handle.cancel_event
        stream: Any = None
        backend: Backend | None = self.backend()
        if spec.client and cancel.is_set():  # never evaluated: its client is gone
            self._failed(spec, sink, Failure(FailureKind.CANCELLED, CLIENT_LEFT))
            return
        try:
            if backend is None:
                raise NoModelError("No model is loaded. Open a .gguf model first.")
            if spec.ref is not None and backend.ref != spec.ref:
                raise NoModelError("The model changed before this answer started.")
            request = spec.request
            if request.user_template is None:
                request = replace(request, user_template=self.user_template(backend.ref))
            if spec.retrieval is not None:  # retrieved passages join the question, once
                request, found = spec.retrieval(request, backend, cancel)
                sink.note(found)
            tools = spec.tools if spec.raw_text is None else None
            step = 0
            while True:  # a generation, and while the model calls tools, the next one
                if tools is not None:
                    request = with_tools(request, tools, backend, step)
                stream = self._step(spec, request, backend, sink, tools)
                calls: list[ToolCall] = stream.calls if tools is not None else []
                if calls:
                    sink.set_calls(calls)
                    for call in calls:
                        handle.emit(TurnToolCall(handle.turn_id, sink.message_id, call))
                sink.build_trace(backend)
                message = sink.finish(stream, backend)
                if (
                    tools is None
                    or not calls
                    or tools.runner is None
                    or cancel.is_set()
                    or step >= tools.max_steps
                ):
                    break
                step += 1
                results = run_calls(tools, calls, cancel)
                sink, added = sink.next_step(message, results)
                for (call, outcome), saved in zip(results, added[1:], strict=True):
                    saved_id = saved.id if isinstance(saved, Message) else ""
                    handle.emit(TurnToolResult(handle.turn_id, saved_id, call, outcome))
                handle.message_id = sink.message_id or handle.message_id
                request = replace(request, history=[*request.history, *added])
                if cancel.is_set():  # Stop during a tool: the next answer is not started
                    sink.fail(Failure(FailureKind.CANCELLED, "stopped"))
                    break
        except _Unsaved as e:
            self._failed(spec, sink, e.failure, save=False)
            return
        except FitCancelled:
            kept = sink.stopped_before_start()
            conversation = getattr(sink, "conversation", None)
            handle.emit(
                TurnFailed(
                    handle.turn_id,
                    conversation.id if conversation is not None else None,
                    kept,
                    "Stopped before the answer began.",
                    kind=FailureKind.CANCELLED,
                )
            )
            return
        except Exception as e:  # a boundary: the turn fails with one line, the app runs on  # noqa: BLE001
            self._failed(spec, sink, failure_of(e))
            return
        assert backend is not None
        handle.emit(
            TurnFinished(
                handle.turn_id,
                message.conversation_id,
                message,
                stream.stats,
                backend.info.n_ctx,
                stream.prompt.warning,
            )
        )

    def _step(
        self,
        spec: TurnSpec,
        request: ChatRequest,
        backend: Backend,
        sink: MemorySink,
        tools: TurnTools | None,
    ) -> Any:
        """One generation: prepare, fit, stream into the sink. The stream, iterated."""
        handle = spec.handle
        cancel = handle.cancel_event
        if spec.raw_text is not None:
            execute_text = getattr(backend, "execute_text", None)
            if execute_text is None:
                raise UserError(f"{backend.ref.label} does not take raw-text prompts.")
            stream = execute_text(spec.raw_text, request, cancel)
            _check_fits(stream.prompt, backend.info.n_ctx)
            fit = FitResult(request, (), stream.prompt)
        else:
            fit = self._fit(backend, request, spec, sink)
            stream = backend.execute(fit.request, cancel, fit.prompt)
        if tools is not None:
            choice = request.tool_choice or ""
            required = "" if choice in ("", "auto", "none") else choice
            stream = ToolStream(stream, tool_family(backend, request), required)
        sink.prepared(fit)
        handle.emit(
            TurnPrompt(
                handle.turn_id,
                sink.message_id,
                stream.prompt,
                backend.info.n_ctx,
                tuple(fit.dropped),
            )
        )
        sink.streaming()
        for chunk in stream:
            sink.add(chunk)
            handle.emit(TurnChunk(handle.turn_id, sink.message_id, chunk))
            if sink.broken():
                handle.cancel()  # the disk or database failed: stop, keep what we can
        return stream

    def _fit(
        self, backend: Backend, request: ChatRequest, spec: TurnSpec, sink: MemorySink
    ) -> FitResult:
        """The request fitted to the context (core.context_fit), with progress events
        once it takes more than a moment, and Stop honoured while it runs."""
        if not getattr(backend, "capabilities", Capabilities()).tokens:
            return FitResult(request, (), None)
        handle, t0 = spec.handle, time.monotonic()

        def progress(fraction: float) -> None:
            if time.monotonic() - t0 > FIT_PROGRESS_AFTER_S:
                handle.emit(TurnFitting(handle.turn_id, sink.message_id, fraction))

        return fit_context(
            request,
            backend.info.n_ctx,
            spec.settings.context_policy,
            backend.prepare,
            counter(self.token_counts, str(backend.ref), backend.tokenize),
            cancel=handle.cancel_event,
            progress=progress,
        )

    def _failed(
        self, spec: TurnSpec, sink: MemorySink, failure: Failure, *, save: bool = True
    ) -> None:
        kept = sink.fail(failure if save else Failure(FailureKind.STORAGE, failure.message))
        conversation = getattr(sink, "conversation", None)
        handle = spec.handle
        handle.emit(
            TurnFailed(
                handle.turn_id,
                conversation.id if conversation is not None else None,
                kept,
                failure.message,
                kind=failure.kind,
            )
        )


def _openai(call: ToolCall) -> dict[str, Any]:
    return {
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": call.arguments},
    }


def _tools_receipt(request: ChatRequest) -> dict[str, Any]:
    """The receipt's record of the tools this step offered, exactly as sent."""
    if not request.tools:
        return {}
    return {
        "tools_sha256": tools_sha256(request.tools),
        "tools": tool_names(request.tools),
        "tool_choice": request.tool_choice or "auto",
    }


def _documents_receipt(meta: dict[str, Any]) -> dict[str, Any]:
    """The receipt's record of retrieved documents: each file's sha256, the chunk ids."""
    docs = meta.get("documents")
    if not docs or not docs.get("passages"):
        return {}
    return {"documents": {"files": docs["files"], "chunk_ids": docs["chunk_ids"]}}


def _check_fits(prompt: PreparedPrompt, n_ctx: int) -> None:
    if n_ctx and prompt.tokens_known and len(prompt.tokens) >= n_ctx:
        raise ContextFullError(
            f"The prompt is {len(prompt.tokens)} tokens long; this model's context holds {n_ctx}."
        )
