"""What several commands share: which model a command means."""

from __future__ import annotations

import argparse
from pathlib import Path

from chatapp.core.backend import ModelRef
from chatapp.core.errors import UserError
from chatapp.core.gpu_fit import GpuLayers, parse_gpu_layers
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


# C0 controls but newline and tab, DEL, C1 controls (0x9b is a CSI on some terminals)
_CONTROL = "".join(chr(c) for c in [*range(0x20), *range(0x7F, 0xA0)] if c not in (9, 10))
_ESCAPES = str.maketrans(
    {c: f"\\x{ord(c):02x}" for c in _CONTROL}
    | {"\x1b": "\\e", "\r": "\\r", "\x00": "\\0", "\x07": "\\a", "\x08": "\\b"}
)


def shown(text: str) -> str:
    """Stored text as the CLI prints it: control characters (escape sequences, carriage
    returns, bells) written out visibly, so a title or an answer cannot retitle the
    terminal, clear it or rewrite earlier lines. Newlines and tabs stay."""
    return text.replace("\r\n", "\n").translate(_ESCAPES)


_JSON_ESCAPES = str.maketrans({chr(c): f"\\u{c:04x}" for c in range(0x7F, 0xA0)})


def shown_json(text: str) -> str:
    """JSON text as the CLI prints it: json.dumps already escapes C0 controls; DEL and
    the C1 controls it leaves raw are escaped the JSON way, so the document stays the
    same document."""
    return text.translate(_JSON_ESCAPES)


def _gpu_layers(text: str) -> GpuLayers:
    try:
        return parse_gpu_layers(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_gpu_layers_flag(p: argparse.ArgumentParser) -> None:
    """--gpu-layers auto|all|-1|N (None when not given: the settings decide)."""
    p.add_argument(
        "--gpu-layers",
        type=_gpu_layers,
        default=None,
        metavar="N",
        help="layers to offload to the GPU: auto (as many as fit its free memory), "
        "-1 or all, 0 (CPU only), or a number",
    )


def add_speculation_flags(p: argparse.ArgumentParser) -> None:
    """--speculative and --draft-model (engine.speculative), for the commands that load."""
    p.add_argument(
        "--speculative",
        choices=("off", "lookup", "draft"),
        default=None,
        help="speculative decoding: drafts from the context (lookup) or a draft model",
    )
    p.add_argument("--draft-model", default=None, help="a small model with the same vocabulary")
