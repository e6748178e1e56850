"""The model library: GGUF files on disk and on the hub, grouped the way a person picks them.

Pure functions over plain data, shared by the hub adapter, the CLI and the window:
- quantization names from file names, split sets (name-00001-of-00003.gguf) as one entry,
  mmproj/imatrix files left out (they are not chat models);
- a fit estimate: weights plus the KV cache at a context length against free memory;
- what is on disk: the library folder, models registered where they are (a small JSON
  registry), the Hugging Face cache and LM Studio's folder (offered, never moved);
- GGUF details read from the header and cached by (path, size, mtime).
"""

from __future__ import annotations

import errno
import functools
import json
import logging
import math
import os
import re
import shutil
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from chatapp.core import atomic
from chatapp.core.catalog.embedding_models import is_embedding_model
from chatapp.core.catalog.gguf import check_model_file, read_gguf
from chatapp.core.errors import BadModelFile, DiskFullError, UserError

log = logging.getLogger(__name__)

SPLIT_RE = re.compile(r"^(?P<base>.+)-(?P<index>\d{5})-of-(?P<count>\d{5})\.gguf$", re.IGNORECASE)
_QUANT_RE = re.compile(
    r"(?:^|[-_.])("
    r"IQ\d_(?:XXS|XS|S|M|NL)|Q\d_K_(?:XL|S|M|L)|Q\d_K|Q\d_\d|TQ\d_\d|MXFP4(?:_MOE)?|"
    r"BF16|F16|FP16|F32|FP32"
    r")(?=[-_.]|$)",
    re.IGNORECASE,
)
# Smallest to largest; the order a repository page lists them in.
QUANT_ORDER = [
    "IQ1_S", "IQ1_M", "TQ1_0", "TQ2_0", "IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ2_M", "Q2_K",
    "Q2_K_S", "Q2_K_L", "Q2_K_XL", "IQ3_XXS", "IQ3_XS", "IQ3_S", "IQ3_M", "Q3_K_S", "Q3_K_M",
    "Q3_K", "Q3_K_L", "Q3_K_XL", "IQ4_XS", "IQ4_NL", "Q4_0", "Q4_1", "Q4_K_S", "Q4_K",
    "Q4_K_M", "Q4_K_L", "Q4_K_XL", "MXFP4", "MXFP4_MOE", "Q5_0", "Q5_1", "Q5_K_S", "Q5_K",
    "Q5_K_M", "Q5_K_L", "Q5_K_XL", "Q6_K", "Q6_K_L", "Q6_K_XL", "Q8_0", "Q8_K_XL", "BF16",
    "F16", "F32",
]  # fmt: skip
# Approximate bits per weight, to guess a parameter count from a file size.
_BITS = {"1": 1.8, "2": 2.8, "3": 3.7, "4": 4.7, "5": 5.6, "6": 6.6, "8": 8.5}

FIT_OK, FIT_TIGHT, FIT_NO = "fits", "tight", "will not fit"
_OVERHEAD = 300 * 1024 * 1024  # compute buffers, the app itself


def quant_of(filename: str) -> str:
    """The quantization named in a file name ("Q4_K_M"), or "" if it names none."""
    matches = list(_QUANT_RE.finditer(Path(filename).name))
    m = matches[-1] if matches else None  # the last wins: "Q8_0-model-Q4_K_M.gguf" is Q4_K_M
    if m is None:
        return ""
    q = m.group(1).upper()
    return {"FP16": "F16", "FP32": "F32"}.get(q, q)


def quant_rank(quant: str) -> int:
    return QUANT_ORDER.index(quant) if quant in QUANT_ORDER else len(QUANT_ORDER)


def is_chat_model_file(filename: str) -> bool:
    """A .gguf that holds a chat model: not a vision projector, not an importance matrix."""
    name = Path(filename).name.lower()
    if not name.endswith(".gguf"):
        return False
    return not any(word in name for word in ("mmproj", "imatrix", "imat.", "vocab-only"))


@dataclass(frozen=True)
class RemoteFile:
    """One file of a hub repository, as its model info lists it."""

    name: str  # path in the repository, may hold folders ("Q4_K_M/x-00001-of-00002.gguf")
    size: int | None = None
    sha256: str | None = None


@dataclass
class FileGroup:
    """What a person picks: one GGUF file, or every shard of a split model."""

    name: str  # display name: the file name, or "<base>.gguf" for a split set
    files: list[RemoteFile]
    quant: str
    complete: bool = True  # every shard of a split set is present
    # a vision model's projector in the same repository (pair_projector): downloaded with
    # the model, into the same folder, where loading finds it beside the model
    projector: RemoteFile | None = None

    @property
    def size(self) -> int | None:
        sizes = [f.size for f in self.files]
        return None if any(s is None for s in sizes) else sum(s or 0 for s in sizes)

    @property
    def total_size(self) -> int | None:
        """The model's files and its projector: what the download and the fit count."""
        size = self.size
        if size is None or self.projector is None:
            return size
        return None if self.projector.size is None else size + self.projector.size

    @property
    def first(self) -> RemoteFile:
        return self.files[0]

    @property
    def is_split(self) -> bool:
        return len(self.files) > 1 or SPLIT_RE.match(Path(self.first.name).name) is not None


def group_files(files: Iterable[RemoteFile]) -> list[FileGroup]:
    """Chat-model GGUF files grouped: one entry per file or split set, smallest quant first."""
    singles: list[FileGroup] = []
    sets: dict[tuple[str, str, int], list[tuple[int, RemoteFile]]] = {}
    files_list = list(files)
    for f in files_list:
        if not is_chat_model_file(f.name):
            continue
        folder, _, base = f.name.rpartition("/")
        m = SPLIT_RE.match(base)
        if m:
            key = (folder, m.group("base"), int(m.group("count")))
            sets.setdefault(key, []).append((int(m.group("index")), f))
        else:
            singles.append(FileGroup(f.name, [f], quant_of(f.name)))
    for (folder, base, count), shards in sets.items():
        shards.sort(key=lambda t: t[0])
        complete = [i for i, _ in shards] == list(range(1, count + 1))
        name = f"{folder}/{base}.gguf" if folder else f"{base}.gguf"
        quant = quant_of(base) or quant_of(folder + "/")
        singles.append(FileGroup(name, [f for _, f in shards], quant, complete))
    singles.sort(key=lambda g: (quant_rank(g.quant), g.size or 0, g.name))
    found = projector_files(files_list)
    for g in singles:
        g.projector = pair_projector(g, found)
    return singles


def is_projector_file(filename: str) -> bool:
    name = Path(filename).name.lower()
    return name.endswith(".gguf") and "mmproj" in name


def projector_files(files: Iterable[RemoteFile]) -> list[RemoteFile]:
    return [f for f in files if is_projector_file(f.name)]


_PROJECTOR_PREFERENCE = ["F16", "BF16", "Q8_0", "F32"]


def pair_projector(group: FileGroup, projectors: list[RemoteFile]) -> RemoteFile | None:
    """The projector that goes with a model in its repository: one in the model's own
    folder first (a repository may hold several models), then one at the top; of
    those, F16 (what llama.cpp's conversions make), then BF16, Q8_0, F32, the smallest."""
    folder = group.first.name.rpartition("/")[0]
    near = [p for p in projectors if p.name.rpartition("/")[0] == folder]
    pool = near or [p for p in projectors if "/" not in p.name]
    if not pool:
        return None

    def rank(p: RemoteFile) -> tuple[int, int]:
        q = quant_of(p.name)
        pref = _PROJECTOR_PREFERENCE.index(q) if q in _PROJECTOR_PREFERENCE else 9
        return (pref, p.size or 0)

    return min(pool, key=rank)


def projector_beside(model_path: str | os.PathLike[str]) -> Path | None:
    """A vision model's projector beside its file: a `*mmproj*.gguf` in the same folder
    (with several, the one whose name shares the most words with the model's, then the
    first by name). None for a text model."""
    model = Path(model_path)
    try:
        found = sorted(
            p for p in model.parent.iterdir() if is_projector_file(p.name) and p != model
        )
    except OSError:
        return None
    if not found:
        return None
    stem = model.stem.lower()

    def shared(p: Path) -> int:
        words = set(p.stem.lower().replace("_", "-").split("-")) - {"mmproj", "gguf"}
        return sum(1 for w in words if w and w in stem)

    return max(found, key=lambda p: (shared(p), -found.index(p)))


# --- fit -----------------------------------------------------------------------------------


def guess_kv_bytes_per_token(model_bytes: int, quant: str = "") -> int:
    """A rough f16 KV-cache size per token when only the file size is known.

    From the parameter count the file size implies: ~128 KiB/token at 8B (Llama 3, Mistral),
    ~32 KiB at 1B; never below 16 KiB.
    """
    digit = next((c for c in quant if c.isdigit()), "")
    bits = 16.0 if quant in ("F16", "BF16") else 32.0 if quant == "F32" else _BITS.get(digit, 4.7)
    params = model_bytes * 8 / bits
    return max(16 * 1024, int(128 * 1024 * math.sqrt(params / 8e9)))


def _count(v: Any) -> int | None:
    """A positive whole number from metadata, else None (never raises on odd values)."""
    return v if isinstance(v, int) and not isinstance(v, bool) and v > 0 else None


def _per_layer(v: Any, layers: int) -> list[int] | None:
    """A head count for every layer: one number for all, or a list with one per layer."""
    if isinstance(v, list):
        if len(v) != layers or not all(isinstance(x, int) and x >= 0 for x in v):
            return None
        return [int(x) for x in v]
    n = _count(v)
    return [n] * layers if n else None


def kv_bytes_per_token(metadata: dict[str, Any]) -> int | None:
    """The exact f16 KV-cache size per token from GGUF metadata, if it has the numbers
    (None when they are missing or odd: the caller then guesses from the file size)."""
    arch = metadata.get("general.architecture")
    if not isinstance(arch, str) or not arch:
        return None
    layers = _count(metadata.get(f"{arch}.block_count"))
    if not layers or layers > 100_000:
        return None
    heads = _per_layer(metadata.get(f"{arch}.attention.head_count"), layers)
    kv_raw = metadata.get(f"{arch}.attention.head_count_kv")
    kv_heads = _per_layer(kv_raw, layers) if kv_raw is not None else heads
    embd = _count(metadata.get(f"{arch}.embedding_length"))
    if not heads or not kv_heads or not max(heads):
        return None
    k_len = _count(metadata.get(f"{arch}.attention.key_length")) or (
        embd // max(heads) if embd else None
    )
    v_len = _count(metadata.get(f"{arch}.attention.value_length")) or k_len
    if not k_len or not v_len:
        return None
    return sum(kv_heads) * (k_len + v_len) * 2


@dataclass(frozen=True)
class Fit:
    label: str  # FIT_OK, FIT_TIGHT or FIT_NO; "" when free memory is unknown
    need: int  # bytes: weights + KV cache + overhead
    free: int | None

    def describe(self) -> str:
        gb = self.need / 1e9
        if self.free is None:
            return f"needs about {gb:.1f} GB"
        return f"{self.label}: needs about {gb:.1f} GB of {self.free / 1e9:.1f} GB free"


def estimate_fit(
    model_bytes: int,
    context_length: int,
    free_ram: int | None,
    *,
    free_vram: int | None = None,
    kv_per_token: int | None = None,
    quant: str = "",
) -> Fit:
    """Will a model of this size run at this context length with this much free memory?

    The budget is free RAM plus free VRAM when a GPU build reports it. "tight" means it
    fits only if little else runs (more than 80% of the budget).
    """
    per_token = kv_per_token or guess_kv_bytes_per_token(model_bytes, quant)
    need = model_bytes + per_token * max(0, context_length) + _OVERHEAD
    if free_ram is None:
        return Fit("", need, None)
    budget = free_ram + (free_vram or 0)
    label = FIT_OK if need <= 0.8 * budget else FIT_TIGHT if need <= budget else FIT_NO
    return Fit(label, need, budget)


# --- the library on disk -------------------------------------------------------------------

SOURCE_LIBRARY, SOURCE_REGISTERED = "library", "registered"
SOURCE_HF_CACHE, SOURCE_LMSTUDIO = "hf-cache", "lmstudio"
QUARANTINE = ".quarantine"


@dataclass
class LocalModel:
    """A model on disk; `path` is the file to open (the first shard of a split set)."""

    path: Path
    name: str
    size: int
    source: str
    quant: str = ""
    shards: list[Path] = field(default_factory=list)
    complete: bool = True

    @property
    def owned(self) -> bool:
        """chatapp may delete it: it lives in chatapp's own models folder."""
        return self.source == SOURCE_LIBRARY

    @functools.cached_property
    def projector(self) -> Path | None:
        """Its vision projector beside it (projector_beside): the model can see."""
        return projector_beside(self.path)


def hf_cache_dir() -> Path:
    """huggingface_hub's cache folder, computed the way it does (without importing it)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or Path(
        os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache", "huggingface"
    )
    return Path(home).expanduser() / "hub"


def lmstudio_dirs() -> list[Path]:
    home = Path.home()
    return [home / ".lmstudio" / "models", home / ".cache" / "lm-studio" / "models"]


def _collect(paths: Iterable[Path], source: str, name_of: Any) -> list[LocalModel]:
    """Group GGUF paths into models (split sets become one) of the given source."""
    by_key: dict[tuple[Path, str], list[Path]] = {}
    out: list[LocalModel] = []
    for p in sorted(paths):
        if not is_chat_model_file(p.name):
            continue
        m = SPLIT_RE.match(p.name)
        if m:
            by_key.setdefault((p.parent, f"{m.group('base')}|{m.group('count')}"), []).append(p)
            continue
        out.append(LocalModel(p, name_of(p), _size(p), source, quant_of(p.name), [p]))
    for (_, key), shards in by_key.items():
        count = int(key.rsplit("|", 1)[1])
        complete = len(shards) == count
        first = shards[0]
        out.append(
            LocalModel(
                first,
                name_of(first),
                sum(_size(s) for s in shards),
                source,
                quant_of(first.name),
                shards,
                complete and first.name.endswith(f"00001-of-{count:05d}.gguf"),
            )
        )
    return out


def _size(p: Path) -> int:
    try:
        return p.stat().st_size
    except OSError:
        return 0


def _walk_gguf(root: Path, *, skip_hidden: bool = True) -> list[Path]:
    found: list[Path] = []
    if not root.is_dir():
        return found
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        if skip_hidden:
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        found.extend(Path(dirpath, n) for n in filenames if n.lower().endswith(".gguf"))
    return found


def scan_library(models_dir: Path) -> list[LocalModel]:
    """chatapp's own models: .gguf files under models_dir (partials and quarantine skipped)."""
    return _collect(_walk_gguf(models_dir), SOURCE_LIBRARY, lambda p: _rel_name(p, models_dir))


def _rel_name(p: Path, root: Path) -> str:
    try:
        return p.relative_to(root).as_posix()
    except ValueError:
        return p.name


def scan_hf_cache(cache: Path | None = None) -> list[LocalModel]:
    """GGUF files in the Hugging Face cache (models--org--name/snapshots/<rev>/...)."""
    cache = cache or hf_cache_dir()
    paths: list[Path] = []
    if cache.is_dir():
        for repo in cache.glob("models--*"):
            paths.extend(_walk_gguf(repo / "snapshots"))

    def name_of(p: Path) -> str:
        parts = p.parts
        i = next((k for k, s in enumerate(parts) if s.startswith("models--")), None)
        repo = parts[i][len("models--") :].replace("--", "/") if i is not None else ""
        return f"{repo}/{p.name}" if repo else p.name

    return _collect(paths, SOURCE_HF_CACHE, name_of)


def scan_lmstudio(dirs: list[Path] | None = None) -> list[LocalModel]:
    out: list[LocalModel] = []
    for root in dirs if dirs is not None else lmstudio_dirs():
        out += _collect(_walk_gguf(root), SOURCE_LMSTUDIO, lambda p, r=root: _rel_name(p, r))
    return out


class Registry:
    """Models used where they are (not copied): a JSON list of paths in the data dir."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def paths(self) -> list[Path]:
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as e:
            log.warning("model registry %s unreadable (%s); ignoring it", self.path, e)
            return []
        return [Path(p) for p in raw.get("models", []) if isinstance(p, str)]

    def add(self, path: Path) -> None:
        items = self.paths()
        p = path.resolve()
        if p not in items:
            self._write([*items, p])

    def remove(self, path: Path) -> bool:
        items = self.paths()
        keep = [p for p in items if p != path.resolve() and p != path]
        if len(keep) != len(items):
            self._write(keep)
            return True
        return False

    def _write(self, items: list[Path]) -> None:
        atomic.write_text(self.path, json.dumps({"models": [str(p) for p in items]}, indent=1))

    def models(self) -> list[LocalModel]:
        out: list[LocalModel] = []
        for p in self.paths():
            shards = _split_siblings(p)
            out.append(
                LocalModel(
                    p,
                    p.name,
                    sum(_size(s) for s in shards),
                    SOURCE_REGISTERED,
                    quant_of(p.name),
                    shards,
                    all(s.exists() for s in shards),
                )
            )
        return out


def _split_siblings(first: Path) -> list[Path]:
    m = SPLIT_RE.match(first.name)
    if not m:
        return [first]
    count = int(m.group("count"))
    return [
        first.with_name(f"{m.group('base')}-{i:05d}-of-{count:05d}.gguf")
        for i in range(1, count + 1)
    ]


class Library:
    """Everything on disk that can be opened, and the operations on it."""

    def __init__(
        self,
        models_dir: Path,
        registry_path: Path,
        *,
        hf_cache: Path | None = None,
        lmstudio: list[Path] | None = None,
    ) -> None:
        self.models_dir = models_dir
        self.registry = Registry(registry_path)
        self.hf_cache = hf_cache
        self.lmstudio = lmstudio

    @property
    def quarantine_dir(self) -> Path:
        return self.models_dir / QUARANTINE

    def models(self, *, external: bool = True) -> list[LocalModel]:
        out = scan_library(self.models_dir) + self.registry.models()
        if external:
            out += scan_hf_cache(self.hf_cache) + scan_lmstudio(self.lmstudio)
        seen: set[Path] = set()
        unique = []
        for m in out:
            key = m.path.resolve() if m.path.exists() else m.path
            if key not in seen:
                seen.add(key)
                unique.append(m)
        return unique

    def find(self, name_or_path: str) -> LocalModel | None:
        """A model by path, library name or file name (exact, then unique substring)."""
        models = self.models()
        p = Path(name_or_path).expanduser()
        for m in models:
            if p.exists() and m.path.exists() and m.path.resolve() == p.resolve():
                return m
        exact = [m for m in models if name_or_path in (m.name, m.path.name)]
        if len(exact) >= 1:
            return exact[0]
        partial = [m for m in models if name_or_path.lower() in m.name.lower()]
        return partial[0] if len(partial) == 1 else None

    def disk_use(self) -> int:
        """Bytes used by chatapp's own models (partials included: they hold disk too)."""
        total = 0
        for dirpath, _, filenames in os.walk(self.models_dir):
            total += sum(_size(Path(dirpath, n)) for n in filenames)
        return total

    def import_file(self, src: Path, *, copy: bool = True) -> LocalModel:
        """Copy a GGUF (all shards of a split set) into the library, or register it in place."""
        src = src.expanduser()
        check_model_file(src)
        shards = _split_siblings(src)
        missing = [s.name for s in shards if not s.exists()]
        if missing:
            raise BadModelFile(
                f"{src.name} is part of a split model; missing: {', '.join(missing)}."
            )
        if not copy:
            self.registry.add(src)
            return next(m for m in self.registry.models() if m.path == src.resolve())
        dest_dir = self.models_dir / "imported"
        dest_dir.mkdir(parents=True, exist_ok=True)
        need = sum(_size(s) for s in shards)
        if shutil.disk_usage(dest_dir).free < need:
            raise DiskFullError(
                f"Not enough disk space to copy {src.name}: {need / 1e9:.1f} GB needed.",
                hint="Free some space, or use the file where it is instead of copying it.",
            )
        for s in shards:
            _copy_atomic(s, dest_dir / s.name)
        first = dest_dir / src.name
        return LocalModel(
            first,
            _rel_name(first, self.models_dir),
            need,
            SOURCE_LIBRARY,
            quant_of(first.name),
            [dest_dir / s.name for s in shards],
        )

    def remove(self, model: LocalModel) -> bool:
        """Delete a model chatapp owns (every shard); forget a registered one. True if done.

        Files in the Hugging Face cache or LM Studio's folder belong to those tools and are
        never deleted here.
        """
        if model.source == SOURCE_REGISTERED:
            return self.registry.remove(model.path)
        if not model.owned:
            return False
        for s in model.shards or [model.path]:
            try:
                s.unlink()
            except FileNotFoundError:
                pass
            except OSError as e:
                raise UserError(f"Could not delete {s}: {e.strerror or e}") from e
        _prune_empty(model.path.parent, self.models_dir)
        return True


def _copy_atomic(src: Path, dest: Path) -> None:
    tmp = dest.with_name(f".{dest.name}.copying")
    try:
        shutil.copyfile(src, tmp)
        os.replace(tmp, dest)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        if e.errno == errno.ENOSPC:
            raise DiskFullError(f"The disk filled up while copying {src.name}.") from e
        raise UserError(f"Could not copy {src.name}: {e.strerror or e}") from e


def _prune_empty(folder: Path, root: Path) -> None:
    while folder != root and root in folder.parents:
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent


# --- details -------------------------------------------------------------------------------


@dataclass
class ModelDetails:
    """What the GGUF header says, for the library and the fit estimate."""

    name: str
    architecture: str
    parameter_count: int
    quantization: str
    context_length: int | None
    has_chat_template: bool
    license: str
    file_size: int
    kv_bytes_per_token: int | None
    split_count: int = 1
    is_embedding: bool = False  # an embedding model: never offered as a chat model


class DetailsCache:
    """ModelDetails by (path, size, mtime): a JSON file in the cache dir, plus memory."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._mem: dict[str, dict[str, Any]] = {}
        self._loaded = False

    def _load(self) -> None:
        if self._loaded or self.path is None:
            self._loaded = True
            return
        self._loaded = True
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
            if isinstance(raw, dict):
                self._mem.update(raw)
        except (OSError, ValueError):
            pass

    def details(self, path: Path) -> ModelDetails:
        """Details of a GGUF file; raises BadModelFile if it is not one."""
        try:
            st = path.stat()
        except OSError as e:
            raise BadModelFile(f"Cannot read {path}: {e.strerror or e}") from e
        key = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"
        self._load()
        hit = self._mem.get(key)
        if isinstance(hit, dict) and "is_embedding" in hit:  # (older entries lack it)
            try:
                cached = ModelDetails(**hit)
                if _sound(cached):
                    return cached
            except TypeError:
                pass
        info = read_gguf(path)
        d = ModelDetails(
            name=info.name,
            architecture=info.architecture,
            parameter_count=info.parameter_count,
            quantization=info.quantization,
            context_length=info.context_length,
            has_chat_template=bool(info.chat_template),
            license=info.str_value("general.license") or "",
            file_size=st.st_size,
            kv_bytes_per_token=kv_bytes_per_token(info.metadata),
            split_count=info.split_count,
            is_embedding=is_embedding_model(info.metadata),
        )
        stale = [k for k in self._mem if k.startswith(f"{path.resolve()}|")]
        for k in stale:
            del self._mem[k]
        self._mem[key] = asdict(d)
        if self.path is not None:
            try:
                atomic.write_text(self.path, json.dumps(self._mem))
            except UserError as e:
                log.warning("details cache not saved: %s", e)
        return d


def _sound(d: ModelDetails) -> bool:
    """A cached entry has the types ModelDetails promises (the cache file may be damaged)."""

    def whole(v: Any, optional: bool = False) -> bool:
        return (v is None and optional) or (isinstance(v, int) and not isinstance(v, bool))

    return (
        all(isinstance(v, str) for v in (d.name, d.architecture, d.quantization, d.license))
        and isinstance(d.has_chat_template, bool)
        and isinstance(d.is_embedding, bool)
        and whole(d.parameter_count)
        and whole(d.file_size)
        and whole(d.split_count)
        and whole(d.context_length, optional=True)
        and whole(d.kv_bytes_per_token, optional=True)
    )


def human_size(n: int | None) -> str:
    if n is None:
        return "?"
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000  # type: ignore[assignment]
    return f"{n:.1f} TB"


def human_params(n: int) -> str:
    if n >= 1e9:
        return f"{n / 1e9:.1f}B"
    return f"{n / 1e6:.0f}M"


def open_library(models_dir: str | os.PathLike[str] | None, data_dir: Path) -> Library:
    """The library for Settings.models_dir (None: <data dir>/models)."""
    folder = Path(models_dir).expanduser() if models_dir else data_dir / "models"
    return Library(folder, data_dir / "models-registry.json")


def models_of_kind(library: Library, cache: DetailsCache, *, embedding: bool) -> list[LocalModel]:
    """The library's complete models whose GGUF says they embed (embedding=True) or that
    chat (False); a model whose header cannot be read is in neither. Reads headers: call
    it off the GUI thread."""
    out = []
    for m in library.models():
        if not m.complete:
            continue
        try:
            if cache.details(m.path).is_embedding == embedding:
                out.append(m)
        except (UserError, OSError, ValueError):
            continue
    return out


@dataclass(frozen=True)
class Starter:
    """An entry of the curated starter list (resources/models.json)."""

    repo: str
    quant: str
    title: str
    description: str = ""
    params: str = ""
    size_gb: float = 0.0
    license: str = ""

    @property
    def size(self) -> int:
        return int(self.size_gb * 1e9)


def load_starters(path: Path) -> list[Starter]:
    """The curated list; a missing or damaged file gives an empty list, never an error."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        known = set(Starter.__dataclass_fields__)
        return [Starter(**{k: v for k, v in m.items() if k in known}) for m in raw["models"]]
    except (OSError, ValueError, KeyError, TypeError) as e:
        log.warning("starter list %s unusable: %s", path, e)
        return []
