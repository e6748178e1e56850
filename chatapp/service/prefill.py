"""Prefill while typing: evaluate the prompt a send will probably have before Enter.

When a chat is opened, and while the user types (the window calls it debounced), the
service builds the prompt the next send would have (the conversation's active thread, the
draft as the new question, the same settings, template and tools as a send with the same
options) and hands it to the backend's prefill() as a background job on the inference
thread. The engine evaluates only whole GRID cells, batch by batch, exactly as a turn
evaluates them (engine.llama), so a turn that follows reuses them and its answer is what
it would have been without: the prompt a send runs is built by the send itself, the
prefill only warms the KV cache it compares its tokens against.

A background job runs only while no other job waits and stops between batches as soon as
one arrives (executor.preempted). A prefill that has not started when a newer one is
asked for (the user typed on) is skipped; one that runs goes on: what it evaluates is
the history the newer one shares (stopping it cost a bench run most of its progress).
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future
from dataclasses import replace
from typing import TYPE_CHECKING

from chatapp.core.backend import ChatRequest
from chatapp.core.conversation import Message
from chatapp.core.store import Store
from chatapp.service.pipeline import TurnSpec
from chatapp.service.tool_loop import with_tools
from chatapp.service.turn import TurnHandle, TurnOptions

if TYPE_CHECKING:
    from chatapp.service.chat_service import ChatService

log = logging.getLogger(__name__)


class Prefiller:
    """The service's prefill jobs: the latest one asked for runs, older queued ones are
    skipped."""

    def __init__(self, service: ChatService) -> None:
        self._service = service
        self._seq = 0
        self._lock = threading.Lock()

    def request(
        self, conversation_id: str | None, draft: str, options: TurnOptions | None
    ) -> Future[int]:
        """Prefill the next send's prompt in `conversation_id` with `draft` typed. The
        future holds the tokens evaluated (0: nothing to do, no model, or superseded)."""
        svc = self._service
        result: Future[int] = Future()
        with self._lock:
            self._seq += 1
            seq = self._seq
        if not conversation_id or svc.loaded is None or svc.turns_in_flight():
            # a turn under way: its answer is not in the store yet, the prompt would differ
            result.set_result(0)
            return result

        def read(store: Store) -> TurnSpec | None:
            from chatapp.service.chat_service import _draft_message

            conv = store.get_conversation(conversation_id)
            if conv is None:
                return None
            ref = svc._host.loaded_ref()
            history: list[Message] = list(store.active_thread(conv.id))
            if draft.strip():
                history.append(_draft_message(conv.id, draft.strip()))
            resolved = svc.turn_settings(ref, conv, options)
            handle = TurnHandle("prefill", None)
            return svc._spec(handle, conv, history, resolved, ref, opts=options)

        def then(fut: Future[TurnSpec | None]) -> None:
            try:
                spec = fut.result()
                if spec is None or self._stale(seq):
                    result.set_result(0)
                    return
                svc._infer.submit_background(self._run, spec, seq).add_done_callback(
                    lambda f: _copy(f, result)
                )
            except BaseException as e:  # a boundary: delivered to the caller  # noqa: BLE001
                result.set_exception(e)

        svc._db.submit(read).add_done_callback(then)
        return result

    def _stale(self, seq: int) -> bool:
        with self._lock:
            return seq != self._seq

    def _run(self, spec: TurnSpec, seq: int) -> int:
        """On the inference thread, as a background job."""
        svc = self._service
        infer = svc._infer
        backend = svc._host.backend
        prefill = getattr(backend, "prefill", None)
        if backend is None or prefill is None or self._stale(seq) or infer.preempted():
            return 0
        if spec.ref is not None and backend.ref != spec.ref:
            return 0
        request: ChatRequest = spec.request
        if request.user_template is None:
            request = replace(request, user_template=svc._host.user_template(backend.ref))
        if spec.tools is not None:
            request = with_tools(request, spec.tools, backend, 0)
        prompt = backend.prepare(request)
        if not prompt.tokens_known or len(prompt.tokens) >= backend.info.n_ctx:
            return 0  # a send fits the context first: its prompt would differ
        done = int(
            prefill(
                list(prompt.tokens),
                request.cache_key,
                infer.preempted,
            )
        )
        if done:
            log.debug("prefilled %d tokens of %s", done, request.cache_key)
        return done


def _copy(source: Future[int], target: Future[int]) -> None:
    if source.cancelled():
        target.set_result(0)
        return
    e = source.exception()
    if e is not None:
        target.set_exception(e)
    else:
        target.set_result(source.result())
