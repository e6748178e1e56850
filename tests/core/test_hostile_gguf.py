"""Hostile GGUF headers: wrongly typed metadata, NaN, impossible arrays, and a fixed-seed
fuzz. `chat`, `prompt`, `models info` and `models import` must end each in exit 1 with
one line naming the problem (or accept the file), never a traceback, within hard memory
and CPU limits; nothing is imported from a refused file."""

from __future__ import annotations

import json
import random
import struct
import sys
from pathlib import Path

import pytest

from chatapp.core.catalog.gguf import read_gguf
from chatapp.core.errors import BadModelFile
from tests.core import hostile_gguf as g
from tests.core.hostile_run import GiB, json_lines, run_limited

# RLIMIT_AS is enforced on Linux only (macOS ignores it), and these tests read /proc.
pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="Linux resource limits")

NAN = float("nan")

# (key, type, value, what the one-line message must say after the key)
TYPED: list[tuple[str, int, object, str]] = [
    ("general.alignment", g.STR, "32", "should be a whole number, not text"),
    ("general.alignment", g.F32, NAN, "is NaN"),
    ("general.alignment", g.U32, 0, "is 0, below 1"),
    ("general.alignment", g.U32, 48, "is 48, not a power of two"),
    ("general.alignment", g.ARR, (g.U32, [32]), "should be a whole number, not a list"),
    ("split.count", g.STR, "3", "should be a whole number, not text"),
    ("split.count", g.F64, 2.5, "should be a whole number, not the decimal 2.5"),
    ("split.count", g.I32, -1, "is -1, below 0"),
    ("general.file_type", g.BOOL, True, "should be a whole number, not true/false"),
    ("llama.context_length", g.STR, "4096", "should be a whole number, not text"),
    ("llama.context_length", g.F32, NAN, "is NaN"),
    ("llama.context_length", g.I64, -4096, "is -4096, below 0"),
    ("llama.block_count", g.STR, "x", "should be a whole number, not text"),
    ("llama.block_count", g.F64, NAN, "is NaN"),
    ("llama.embedding_length", g.F32, 64.0, "should be a whole number, not the decimal 64"),
    ("llama.attention.head_count", g.STR, "4", "should be a whole number, not text"),
    ("llama.attention.head_count", g.ARR, (g.STR, ["4", "4"]), "should be whole numbers"),
    ("llama.attention.head_count_kv", g.F32, NAN, "is NaN"),
    ("llama.attention.key_length", g.STR, "16", "should be a whole number, not text"),
    ("llama.rope.freq_base", g.F32, NAN, "is NaN"),
    ("general.architecture", g.U32, 7, "should be text, not a whole number"),
    ("general.name", g.ARR, (g.STR, ["a", "b"]), "should be text, not a list"),
    ("tokenizer.chat_template", g.U64, 1, "should be text, not a whole number"),
    ("tokenizer.ggml.eos_token_id", g.STR, "2", "should be a whole number, not text"),
    ("tokenizer.ggml.bos_token_id", g.F32, 1.0, "should be a whole number, not the decimal 1"),
    ("tokenizer.ggml.add_bos_token", g.U8, 7, "should be true/false, not a whole number"),
    ("tokenizer.ggml.tokens", g.STR, "<s>", "should be a list of texts, not text"),
    ("tokenizer.ggml.tokens", g.ARR, (g.U32, [1] * 100), "should be a list of texts, not of u32"),
    ("tokenizer.ggml.token_type", g.ARR, (g.STR, ["3"] * 100), "should be a list of whole numbers"),
]


def _typed_files(folder: Path) -> list[tuple[str, Path, str]]:
    out = []
    for i, (key, t, v, says) in enumerate(TYPED):
        kvs = g.base_kvs()
        kvs[key] = g.kv(key, t, v)
        p = folder / f"typed-{i:02d}.gguf"
        p.write_bytes(g.build(kvs))
        out.append((p.name, p, f"{p.name}: The file's header is damaged: {key!r} {says}"))
    return out


def _structural_files(folder: Path) -> list[tuple[str, Path, str]]:
    """Arrays whose declared size cannot fit, duplicate keys, unknown types."""
    cases: list[tuple[str, bytes, str]] = []
    base = g.base_kvs()

    def with_entry(key: str, raw: bytes) -> bytes:
        kvs = dict(base)
        kvs[key] = g.s(key) + raw
        return g.build(kvs)

    big = struct.pack("<IIQ", g.ARR, g.U8, 1 << 30)  # 1G bytes declared, none there
    cases.append(("array-1g", with_entry("x.big", big), "'x.big' declares 1,073,741,824 items"))
    strs = struct.pack("<IIQ", g.ARR, g.STR, 1 << 30)
    cases.append(
        ("strings-1g", with_entry("x.strs", strs), "'x.strs' declares 1,073,741,824 items")
    )
    nested = struct.pack("<IIQ", g.ARR, g.ARR, 2)
    cases.append(("nested", with_entry("x.n", nested), "'x.n' is an array of arrays"))
    odd = struct.pack("<IIQ", g.ARR, 77, 2)
    cases.append(("elem-type", with_entry("x.t", odd), "'x.t' is an array of unknown value type"))
    cases.append(
        (
            "value-type",
            with_entry("x.v", struct.pack("<I", 99)),
            "'x.v' has an unknown value type 99",
        )
    )
    long_str = struct.pack("<IQ", g.STR, 1 << 40)
    cases.append(("string-len", with_entry("x.s", long_str), "'x.s' holds a string that runs"))
    dup = [*list(base.values()), base["llama.context_length"]]
    cases.append(("duplicate", g.build(dup), "'llama.context_length' appears twice"))
    out = []
    for name, data, says in cases:
        p = folder / f"{name}.gguf"
        p.write_bytes(data)
        out.append((p.name, p, f"{p.name}: The file's header is damaged: {says}"))
    return out


RUNNER = """
import contextlib, io, json, os, sys, traceback
from chatapp.__main__ import main
jobs = json.loads(open(os.environ["JOBS"]).read())
for name, argv in jobs:
    out, err = io.StringIO(), io.StringIO()
    row = {"name": name, "cmd": argv[0] if argv[0] != "models" else " ".join(argv[:2])}
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            row["code"] = main(argv)
    except SystemExit as e:
        row["code"] = e.code
    except BaseException:
        row["code"] = "traceback"
        row["traceback"] = traceback.format_exc()[-1500:]
    row["stderr"] = err.getvalue()
    print(json.dumps(row), flush=True)
"""


def _commands(path: Path, messages: Path) -> list[list[str]]:
    return [
        ["models", "info", str(path)],
        ["models", "import", str(path)],
        ["prompt", "--model", str(path), "--messages", str(messages)],
        ["chat", "--model", str(path), "--max-tokens", "1", "Hi"],
    ]


def _run(jobs: list[tuple[str, list[str]]], tmp: Path, *, cpu_s: int) -> list[dict[str, object]]:
    tmp.mkdir(parents=True, exist_ok=True)
    jobs_file = tmp / "jobs.json"
    jobs_file.write_text(json.dumps(jobs))
    home = tmp / "home"
    env = {
        "JOBS": str(jobs_file),
        "CHATAPP_HOME": str(home),
        "HOME": str(tmp / "user"),  # no real Hugging Face cache or LM Studio folder
        "HF_HUB_CACHE": str(tmp / "hf"),
    }
    # 2 GiB of address space: the 1G-element array drove `chat` to 7.4 GB
    return json_lines(run_limited(RUNNER, memory=2 * GiB, cpu_s=cpu_s, env=env))


def _nothing_imported(tmp: Path) -> None:
    models = tmp / "home"
    imported = list(models.rglob("*.gguf")) if models.exists() else []
    assert imported == [], imported


def _messages(tmp: Path) -> Path:
    m = tmp / "messages.json"
    m.write_text(json.dumps([{"role": "user", "content": "Hi"}]))
    return m


def test_typed_and_structural_corpus_gives_one_line_errors_naming_the_key(tmp_path: Path) -> None:
    files = _typed_files(tmp_path) + _structural_files(tmp_path)
    messages = _messages(tmp_path)
    jobs = [(name, argv) for name, p, _ in files for argv in _commands(p, messages)]
    rows = _run(jobs, tmp_path, cpu_s=120)
    assert len(rows) == len(jobs)
    expected = {name: says for name, _, says in files}
    for row in rows:
        assert row["code"] == 1, row
        lines = str(row["stderr"]).splitlines()
        assert len(lines) == 1, row
        assert lines[0].startswith(f"chatapp: error: {expected[str(row['name'])]}"), row
    _nothing_imported(tmp_path)
    # and the in-process reader says the same (no CLI in between)
    for _name, p, says in files[:3]:
        with pytest.raises(BadModelFile) as e:
            read_gguf(p)
        assert str(e.value).startswith(says)


def _random_value(rng: random.Random) -> tuple[int, object]:
    t = rng.choice([g.U8, g.I8, g.U16, g.I16, g.U32, g.I32, g.F32, g.BOOL, g.STR, g.ARR, g.U64,
                    g.I64, g.F64])  # fmt: skip
    if t == g.STR:
        return t, rng.choice(["", "x", "32", "nan", "\u00e9" * 3])
    if t == g.ARR:
        et = rng.choice([g.U8, g.I32, g.F32, g.STR])
        items = [rng.choice(["a", ""]) if et == g.STR else rng.randrange(100) for _ in range(3)]
        return t, (et, items)
    if t in (g.F32, g.F64):
        return t, rng.choice([float("nan"), float("inf"), -1.5, 0.0, 1e30])
    if t == g.BOOL:
        return t, rng.choice([True, False])
    signed = t in (g.I8, g.I16, g.I32, g.I64)
    bits = {g.U8: 8, g.I8: 8, g.U16: 16, g.I16: 16, g.U32: 32, g.I32: 32}.get(t, 64)
    low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    return t, rng.choice([low, high, 0, 1, 3, min(high, 48)])


def test_fuzzed_headers_never_give_a_traceback(tmp_path: Path) -> None:
    """Fixed-seed mutations of a sound file: bytes flipped, 4- and 8-byte fields set to
    edge values, cuts. Every command accepts the file or refuses it in one line. `prompt`
    and `chat` run on the refused ones: an accepted one goes on to llama.cpp itself,
    whose own checks on a damaged file (GGML_ASSERT) are not ours to test."""
    sound = g.build(g.base_kvs())
    header_end = len(sound) - 64  # the tensor data: 16 floats at the end
    rng = random.Random(13)
    edges = [
        0,
        1,
        0x7F,
        0xFF,
        0xFFFF,
        0x7FFFFFFF,
        0xFFFFFFFF,
        1 << 32,
        (1 << 63) - 1,
        (1 << 64) - 1,
    ]
    files = []
    keys = list(g.base_kvs())
    for i in range(400):
        data = bytearray(sound)
        kind = i % 5
        if kind == 4:  # a value of a random type for a random key
            kvs = g.base_kvs()
            key = rng.choice(keys)
            kvs[key] = g.kv(key, *_random_value(rng))
            data = bytearray(g.build(kvs))
        elif kind == 0:
            for _ in range(rng.randint(1, 4)):
                data[rng.randrange(4, header_end)] = rng.randrange(256)
        elif kind == 1:
            at = rng.randrange(4, header_end - 8)
            data[at : at + 8] = struct.pack("<Q", rng.choice(edges))
        elif kind == 2:
            at = rng.randrange(4, header_end - 4)
            data[at : at + 4] = struct.pack("<I", rng.choice(edges) & 0xFFFFFFFF)
        else:
            data = data[: rng.randrange(4, len(data))]
        p = tmp_path / f"fuzz-{i:03d}.gguf"
        p.write_bytes(bytes(data))
        files.append(p)
    messages = _messages(tmp_path)
    jobs = [(p.name, argv) for p in files for argv in _commands(p, messages)[:2]]
    rows = _run(jobs, tmp_path, cpu_s=240)
    assert len(rows) == len(jobs)
    refused: set[str] = set()
    for row in rows:
        assert row["code"] in (0, 1), row
        if row["code"] == 1:
            lines = str(row["stderr"]).splitlines()
            assert len(lines) == 1 and lines[0].startswith("chatapp: error: "), row
            if row["cmd"] == "models import":
                refused.add(str(row["name"]))
    assert len(refused) > 150  # most mutations are caught; the rest are sound enough
    later = [
        (p.name, argv) for p in files if p.name in refused for argv in _commands(p, messages)[2:]
    ]
    for row in _run(later, tmp_path / "later", cpu_s=240):
        lines = str(row["stderr"]).splitlines()
        assert row["code"] == 1 and len(lines) == 1, row
        assert lines[0].startswith("chatapp: error: "), row


def test_millions_of_empty_strings_are_refused_without_walking_them(tmp_path: Path) -> None:
    """33.5M empty strings really in the file (a sparse 268 MB file): refused from the
    count, within 15 s of CPU for the whole CLI run (walking them took 19-22 s)."""
    kvs = g.base_kvs()
    n = 33_554_432
    head_kvs = [*list(kvs.values()), g.s("x.empty") + struct.pack("<IIQ", g.ARR, g.STR, n)]
    sound = g.build(head_kvs)  # the count promises strings the header does not hold...
    p = tmp_path / "empty-strings.gguf"
    with open(p, "wb") as f:
        f.write(sound)
        f.truncate(len(sound) + 8 * n)  # ...and these zero bytes are 33.5M empty ones
    messages = _messages(tmp_path)
    jobs = [(p.name, argv) for argv in _commands(p, messages)]
    for row in _run(jobs, tmp_path, cpu_s=15):
        assert row["code"] == 1, row
        assert row["stderr"] == (
            f"chatapp: error: {p.name}: The file's header is damaged: 'x.empty' is an array "
            "of 33,554,432 strings (impossibly many).\n"
        ), row
    _nothing_imported(tmp_path)


@pytest.mark.model
def test_real_models_still_read(smollm2_path: Path, gemma_path: Path) -> None:
    for path in (smollm2_path, gemma_path):
        info = read_gguf(path)
        assert info.alignment == 32 and info.context_length and info.split_count == 1
        assert read_gguf(path, keep_arrays=True).vocab_size == info.vocab_size


def test_a_layer_count_llama_cpp_would_abort_on_is_refused_before_it(tmp_path: Path) -> None:
    """llama.cpp asserts 0 < block_count <= 512 and aborts the whole process otherwise:
    everything that hands the file to llama.cpp refuses it first; `models info` (which
    never loads it) still shows it."""
    messages = _messages(tmp_path)
    jobs = []
    for n in (0, 513, 1 << 31):
        kvs = g.base_kvs()
        kvs["llama.block_count"] = g.kv("llama.block_count", g.U32, n)
        p = tmp_path / f"layers-{n}.gguf"
        p.write_bytes(g.build(kvs))
        jobs += [(str(n), argv) for argv in _commands(p, messages)]
    for row in _run(jobs, tmp_path, cpu_s=60):
        if row["cmd"] == "models info":
            assert row["code"] == 0, row
            continue
        n = row["name"]
        assert row["code"] == 1, row
        assert row["stderr"] == (
            f"chatapp: error: layers-{n}.gguf: The file's header is damaged: "
            f"'llama.block_count' is {n}; a model has 1 to 512 layers.\n"
        ), row
    _nothing_imported(tmp_path)
