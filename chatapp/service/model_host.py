"""The model host: the inference thread and the one loaded backend it owns.

Jobs run on the inference thread one at a time in arrival order (a SerialExecutor), so
requests from the window and from API clients queue fairly; nothing else touches the
model. Model events (loading, loaded, failed, unloaded) go to every subscriber.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chatapp.core.backend import Backend, Capabilities, ModelRef
from chatapp.core.errors import NoModelError, UserError
from chatapp.core.gpu_fit import GpuLayers
from chatapp.core.prompt_pieces import prepare_specials
from chatapp.core.settings import Settings
from chatapp.service.events import (
    LoadedModel,
    ModelLoaded,
    ModelLoadFailed,
    ModelLoading,
    ModelUnloaded,
)
from chatapp.service.executor import SerialExecutor

log = logging.getLogger(__name__)

Listener = Callable[[Any], None]


@dataclass(frozen=True)
class LoadRequest:
    ref: ModelRef
    context_limit: int = 4096
    n_gpu_layers: GpuLayers = 0  # "auto", -1 (all) or a count (core.gpu_fit)
    n_threads: int | None = None
    api_key: str = ""  # a remote server's key (never stored with the conversation)
    timeout: float | None = None  # a remote answer's total deadline in s (None: the default)
    # where KV states are kept across restarts, within state_disk_mb (None: not kept)
    state_dir: str | None = None
    state_disk_mb: int = 0
    # a vision model's projector file (None: an mmproj-*.gguf beside the model, if any;
    # "": none, text only)
    mmproj: str | None = None
    speculative: str = "off"  # engine.speculative: off, lookup or draft
    draft_model: str | None = None  # the draft model's path (speculative "draft")


BackendFactory = Callable[[LoadRequest], Backend]


def speculation_for(
    settings: Settings, ref: ModelRef, mode: str | None, draft_model: str | None
) -> tuple[str, str | None]:
    """Speculative decoding for loading `ref`: the caller's mode, else the settings'; a
    draft model given alone means "draft"; "draft" takes the caller's draft model or the
    one the settings name for this model file. Draft mode from the settings for a model
    with no draft model of its own is prompt lookup (what a draft model does first); a
    caller who asks for a draft model without naming one is refused. A remote model: off."""
    if not ref.is_local:
        return "off", None
    draft = draft_model or settings.draft_models.get(Path(ref.name).name)
    asked = mode or ("draft" if draft_model else None)
    mode = asked or settings.speculative
    if mode not in ("off", "lookup", "draft"):
        raise UserError(f"Speculative decoding is off, lookup or draft, not {mode!r}.")
    if mode != "draft":
        return mode, None
    if not draft:
        if asked is None:
            log.info(
                "no draft model is set for %s (Settings › Speed): prompt lookup drafts instead",
                Path(ref.name).name,
            )
            return "lookup", None
        raise UserError(
            f"Speculative decoding with a draft model: no draft model is set for "
            f"{Path(ref.name).name} (Settings › Speed, or --draft-model)."
        )
    return mode, str(Path(draft).expanduser())


def default_backend_factory(req: LoadRequest) -> Backend:
    if not req.ref.is_local:
        from chatapp.engine.remote import TOTAL_TIMEOUT, RemoteBackend

        return RemoteBackend(
            req.ref.endpoint,
            req.ref.name,
            api_key=req.api_key,
            total_timeout=req.timeout or TOTAL_TIMEOUT,
        )
    from chatapp.engine.llama import VERSION, LlamaEngine
    from chatapp.engine.local import LocalBackend
    from chatapp.engine.vision import find_projector

    mmproj = find_projector(req.ref.name) if req.mmproj is None else (req.mmproj or None)
    engine = LlamaEngine(
        req.ref.name,
        context_limit=req.context_limit,
        n_gpu_layers=req.n_gpu_layers,
        n_threads=req.n_threads,
        state_dir=req.state_dir,
        state_disk_bytes=req.state_disk_mb * 1024 * 1024,
        mmproj=mmproj,
        speculative=req.speculative,
        draft_model=req.draft_model,
    )
    return LocalBackend(engine, version=getattr(engine, "version", VERSION))


class ModelHost:
    def __init__(self, settings: Settings, factory: BackendFactory) -> None:
        self.settings = settings
        self._factory = factory
        self._subscribers: list[Listener] = []
        self.infer = SerialExecutor("chat-inference")
        self.backend: Backend | None = None  # touched on the inference thread only
        self.loaded: LoadedModel | None = None

    # -- subscribers -------------------------------------------------------------------

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        self._subscribers.append(listener)
        return lambda: self._subscribers.remove(listener)

    def publish(self, event: Any) -> None:
        for listener in list(self._subscribers):
            try:
                listener(event)
            except Exception:
                log.exception("subscriber failed on %s", type(event).__name__)

    # -- the model -----------------------------------------------------------------------

    def load(self, request: LoadRequest) -> LoadedModel:
        """On the inference thread."""
        self.publish(ModelLoading(request.ref))
        self.close()  # the old model's memory goes before the new one loads
        t0 = time.perf_counter()
        try:
            backend = self._factory(request)
            template = backend.template(self.user_template(backend.ref))
            prepare_specials(backend.info.control_tokens)  # not during the first send
        except UserError as e:
            self.publish(ModelLoadFailed(request.ref, str(e)))
            raise
        except Exception as e:  # a bug, or llama.cpp failing in a new way
            log.exception("loading %s failed", request.ref)
            message = f"Could not load the model: {e}"
            self.publish(ModelLoadFailed(request.ref, message))
            raise UserError(message) from e
        self.backend = backend
        loaded = LoadedModel(
            backend.ref,
            backend.info,
            template,
            getattr(backend, "capabilities", Capabilities()),
            time.perf_counter() - t0,
        )
        self.loaded = loaded
        self.publish(ModelLoaded(loaded))
        return loaded

    def unload(self) -> None:
        self.close()
        self.publish(ModelUnloaded())

    def close(self) -> None:
        backend, self.backend = self.backend, None
        self.loaded = None
        if backend is not None:
            backend.close()

    def user_template(self, ref: ModelRef) -> str | None:
        if not ref.is_local:
            return None
        return self.settings.user_templates.get(Path(ref.name).name) or None

    def require(self) -> Backend:
        if self.backend is None:
            raise NoModelError("No model is loaded. Open a .gguf model first.")
        return self.backend

    def loaded_ref(self) -> ModelRef:
        loaded = self.loaded
        if loaded is None:
            raise NoModelError("No model is loaded. Open a .gguf model first.")
        return loaded.ref
