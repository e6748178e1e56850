"""The inference worker: one QObject on its own QThread, the only owner of the model.

The GUI thread never waits on inference. Requests arrive as queued signals carrying plain
data; results leave as signals carrying plain data. Streamed text is coalesced so the
window gets at most one update per ~30 ms however fast tokens come.
Cancel is a threading.Event the GUI thread sets directly (the worker's event loop is busy
while generating, so a queued "stop" would arrive too late).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from PySide6.QtCore import QObject, Signal, Slot

from chatapp.core.chat import PreparedPrompt, prepare_prompt, template_for_model
from chatapp.core.engine import Engine, ModelInfo, SamplingParams
from chatapp.core.errors import UserError
from chatapp.core.generation import THINKING, ReplyStats, ReplyStream
from chatapp.core.templates import ChatTemplate

log = logging.getLogger(__name__)

EMIT_INTERVAL = 0.05  # seconds between coalesced text updates

EngineFactory = Callable[["LoadRequest"], Engine]


@dataclass(frozen=True)
class LoadRequest:
    path: str
    context_limit: int = 4096
    n_gpu_layers: int = 0
    n_threads: int | None = None
    user_template: str | None = None


@dataclass(frozen=True)
class LoadedModel:
    info: ModelInfo
    template: ChatTemplate
    seconds: float


@dataclass(frozen=True)
class GenerateRequest:
    request_id: str
    messages: list[dict[str, Any]]  # role/content dicts of the history, no system message
    system_prompt: str = ""
    params: SamplingParams = field(default_factory=SamplingParams)
    # continue a cut-off answer: the model's turn starts with `prefill`, and the reply's
    # text (thinking) is `prefill` (`prefill_thinking`) followed by what the model adds
    prefill: str = ""
    prefill_thinking: str = ""


@dataclass(frozen=True)
class ReplyDone:
    request_id: str
    text: str
    thinking: str
    stats: ReplyStats
    prompt: PreparedPrompt
    n_ctx: int


def default_engine_factory(req: LoadRequest) -> Engine:
    from chatapp.engine.llama import LlamaEngine

    return LlamaEngine(
        req.path,
        context_limit=req.context_limit,
        n_gpu_layers=req.n_gpu_layers,
        n_threads=req.n_threads,
    )


class InferenceWorker(QObject):
    loading = Signal(str)  # path
    loaded = Signal(object)  # LoadedModel
    load_failed = Signal(str, str)  # path, message
    unloaded = Signal()
    started = Signal(str, int, int)  # request_id, prompt tokens, n_ctx
    delta = Signal(str, str, str)  # request_id, new answer text, new thinking text
    finished = Signal(object)  # ReplyDone
    failed = Signal(str, str)  # request_id, message

    def __init__(self, engine_factory: EngineFactory = default_engine_factory) -> None:
        super().__init__()
        self._factory = engine_factory
        self._engine: Engine | None = None
        self._template: ChatTemplate | None = None
        self._cancel = threading.Event()

    # called from the GUI thread --------------------------------------------------

    def cancel(self) -> None:
        self._cancel.set()

    def close_model(self) -> None:
        """Only after the worker's thread has stopped (shutdown), or from its own slots."""
        if self._engine is not None:
            engine, self._engine = self._engine, None
            engine.close()

    # slots, run on the worker thread ---------------------------------------------

    @Slot(object)
    def load(self, req: LoadRequest) -> None:
        self.loading.emit(req.path)
        self.close_model()  # the old model's memory goes before the new one loads
        t0 = time.perf_counter()
        try:
            engine = self._factory(req)
            template = template_for_model(engine.info, req.user_template)
        except UserError as e:
            self.load_failed.emit(req.path, str(e))
            return
        except Exception as e:  # a bug, or llama.cpp failing in a new way
            log.exception("loading %s failed", req.path)
            self.load_failed.emit(req.path, f"Could not load the model: {e}")
            return
        self._engine, self._template = engine, template
        self.loaded.emit(LoadedModel(engine.info, template, time.perf_counter() - t0))

    @Slot(str)
    def set_user_template(self, text: str) -> None:
        if self._engine is not None:
            self._template = template_for_model(self._engine.info, text or None)

    @Slot()
    def unload(self) -> None:
        self.close_model()
        self.unloaded.emit()

    @Slot(object)
    def generate(self, req: GenerateRequest) -> None:
        engine, template = self._engine, self._template
        if engine is None or template is None:
            self.failed.emit(req.request_id, "No model is loaded. Open a .gguf model first.")
            return
        self._cancel.clear()
        try:
            prompt = prepare_prompt(engine, template, req.system_prompt, req.messages)
            if req.prefill:
                prompt = replace(
                    prompt,
                    text=prompt.text + req.prefill,
                    tokens=prompt.tokens + engine.tokenize(req.prefill, special=False),
                )
            self.started.emit(req.request_id, len(prompt.tokens), engine.info.n_ctx)
            stream = ReplyStream(
                engine,
                prompt.tokens,
                req.params,
                self._cancel,
                template.stop_markers,
                template.think_tags,
                start_inside_thinking=prompt.starts_inside_thinking,
            )
            if req.prefill or req.prefill_thinking:
                # h-view (continue): the reply so far is already in its channels, so what
                # follows is appended as it comes (not stripped as a reply's start is)
                stream._out.splitter.answer = req.prefill
                stream._out.splitter.thinking = req.prefill_thinking
            answer: list[str] = []
            thinking: list[str] = []
            last = time.perf_counter()
            for channel, piece in stream:
                (thinking if channel == THINKING else answer).append(piece)
                now = time.perf_counter()
                if now - last >= EMIT_INTERVAL:
                    self.delta.emit(req.request_id, "".join(answer), "".join(thinking))
                    answer.clear()
                    thinking.clear()
                    last = now
            if answer or thinking:
                self.delta.emit(req.request_id, "".join(answer), "".join(thinking))
        except UserError as e:
            self.failed.emit(req.request_id, str(e))
            return
        except Exception as e:
            log.exception("generation failed")
            self.failed.emit(req.request_id, f"Generation failed: {e}")
            return
        self.finished.emit(
            ReplyDone(
                req.request_id,
                stream.answer,
                stream.thinking,
                stream.stats,
                prompt,
                engine.info.n_ctx,
            )
        )
