"""What several commands share: which model a command means."""

from __future__ import annotations

from pathlib import Path

from chatapp.core.backend import ModelRef
from chatapp.core.errors import UserError
from chatapp.core.settings import Settings


def model_ref(given: str | None, settings: Settings, *, must_exist: bool = False) -> ModelRef:
    """The model named on the command line (a path, or a stored "remote:" reference),
    else the default model, else the last one used."""
    model = given or settings.default_model or settings.last_model
    if not model:
        raise UserError("No model given: use --model PATH to a .gguf file.")
    ref = ModelRef.parse(model)
    if not ref.is_local:
        return ref
    if must_exist and not Path(ref.name).expanduser().exists():
        raise UserError(f"No such model file: {ref.name}")
    return ModelRef.local(ref.name)
