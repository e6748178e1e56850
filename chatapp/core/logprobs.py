"""Per-token probabilities of an answer: what was kept, how it is stored and exported.

For every generated token chatapp keeps its id and bytes, its log-probability under the
model's raw distribution (softmax of the logits) and under the distribution the sampler
actually drew from (after repeat penalty, top-k, top-p, min-p, temperature), and the top
N alternatives of both (N: `logprobs_top_n` in the settings, 5 by default, at most 20).

Stored compactly beside the message (table token_logprobs, migration 007) as one blob:
b"CLP1" + zlib(header JSON, vocabulary, fixed-width little-endian arrays), not JSON per
token. The JSON export carries it as a message's optional `tokens` field
(docs/export-format.md); `trace_from_doc(trace_to_doc(t)) == t` for a stored trace.
"""

from __future__ import annotations

import json
import math
import struct
import sys
import zlib
from array import array
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

DEFAULT_TOP_N = 5
MAX_TOP_N = 20
MAGIC = b"CLP1"
SAMPLING_KEYS = ("temperature", "top_k", "top_p", "min_p", "repeat_penalty", "seed")

Alternatives = tuple[tuple[int, float], ...]


def top_n_setting(settings: Any) -> int:
    """How many alternatives to keep per token. Settings belongs to another part of the
    app; it may or may not have `logprobs_top_n` yet, so it is read with a default."""
    value = getattr(settings, "logprobs_top_n", DEFAULT_TOP_N)
    try:
        n = int(value)
    except (TypeError, ValueError):
        return DEFAULT_TOP_N
    return max(0, min(n, MAX_TOP_N))


@dataclass(frozen=True)
class TokenStep:
    """One generated token. Log-probabilities are None where unknown (a forced token
    outside the sampler's candidates, or capture was off)."""

    token_id: int
    logprob: float | None = None  # raw distribution
    sampled_logprob: float | None = None  # the distribution the sampler drew from
    top: Alternatives = ()  # raw, best first
    sampled_top: Alternatives = ()  # sampled, best first (may hold fewer than top_n)

    @property
    def probability(self) -> float | None:
        return None if self.sampled_logprob is None else math.exp(self.sampled_logprob)

    @property
    def raw_probability(self) -> float | None:
        return None if self.logprob is None else math.exp(self.logprob)


@dataclass(frozen=True)
class TokenTrace:
    """An answer's tokens with their probabilities. pieces: the bytes of every token id
    that appears (chosen or alternative), so the views work without the model loaded.
    forced: how many leading tokens were not sampled in this answer (kept from the answer
    it branched from, and the chosen alternative)."""

    steps: tuple[TokenStep, ...]
    pieces: Mapping[int, bytes]
    top_n: int
    sampling: Mapping[str, Any] = field(default_factory=dict)
    forced: int = 0

    @property
    def token_ids(self) -> list[int]:
        return [s.token_id for s in self.steps]

    def data(self, token_id: int) -> bytes:
        return self.pieces.get(token_id, b"")

    def text(self) -> str:
        """Everything generated, decoded once (characters split across tokens whole)."""
        return b"".join(self.data(s.token_id) for s in self.steps).decode("utf-8", "replace")


def step_from_chunk(chunk: Any) -> TokenStep:
    """The step a core.backend.Chunk with a token id stands for."""
    return TokenStep(
        int(chunk.token_id),
        chunk.logprob,
        chunk.sampled_logprob,
        tuple((a.token_id, a.logprob) for a in chunk.top),
        tuple((a.token_id, a.logprob) for a in chunk.sampled_top),
    )


class TraceBuilder:
    """Collects an answer's tokens from the chunks of its stream (service side)."""

    def __init__(self, top_n: int, sampling: Mapping[str, Any] | None = None) -> None:
        self.top_n = top_n
        self.sampling = {k: v for k, v in (sampling or {}).items() if k in SAMPLING_KEYS}
        self.steps: list[TokenStep] = []
        self.pieces: dict[int, bytes] = {}
        self.forced = 0

    def resume(self, trace: TokenTrace) -> None:
        """Continue: the answer's tokens so far come first (one answer, one trace)."""
        self.steps = [*trace.steps, *self.steps]
        self.pieces = {**trace.pieces, **self.pieces}
        self.forced = trace.forced
        self.top_n = max(self.top_n, trace.top_n)  # the first part's alternatives stay

    def add(self, chunk: Any) -> None:
        """A core.backend.Chunk; chunks without a token id carry no step."""
        if chunk.token_id is None:
            return
        self.steps.append(step_from_chunk(chunk))
        if chunk.data:
            self.pieces[int(chunk.token_id)] = bytes(chunk.data)

    def build(self, token_bytes: Callable[[int], bytes]) -> TokenTrace | None:
        """token_bytes: the vocabulary (called for ids not yet known)."""
        if not self.steps:
            return None
        pieces = dict(self.pieces)
        for s in self.steps:
            for t in (s.token_id, *(a for a, _ in s.top), *(a for a, _ in s.sampled_top)):
                if t not in pieces:
                    pieces[t] = token_bytes(t)
        return TokenTrace(tuple(self.steps), pieces, self.top_n, dict(self.sampling), self.forced)


def forced_tokens(trace: TokenTrace, position: int, token_id: int) -> tuple[Any, ...]:
    """Branching from an alternative: the answer's first `position` tokens as they were
    generated, then token_id, each as a core.token_engine.Sampled with what was recorded
    (the chosen token's probabilities are those it had as an alternative there)."""
    from chatapp.core.token_engine import Sampled

    out = [
        Sampled(s.token_id, s.logprob, s.top, s.sampled_logprob, s.sampled_top)
        for s in trace.steps[:position]
    ]
    at = trace.steps[position]
    raw = dict(at.top).get(token_id)
    sampled = dict(at.sampled_top).get(token_id)
    out.append(Sampled(token_id, raw, at.top, sampled, at.sampled_top))
    return tuple(out)


# -- the stored blob ---------------------------------------------------------------------


def _le(a: array) -> bytes:
    if sys.byteorder != "little":
        a = array(a.typecode, a)
        a.byteswap()
    return a.tobytes()


def _from_le(code: str, raw: bytes) -> array:
    a = array(code)
    a.frombytes(raw)
    if sys.byteorder != "little":
        a.byteswap()
    return a


def _f(x: float | None) -> float:
    return math.nan if x is None or not math.isfinite(x) else x


def _opt(x: float) -> float | None:
    return None if math.isnan(x) else x


def pack_trace(trace: TokenTrace) -> bytes:
    """header JSON; vocabulary (ids, lengths, bytes); per step: id, raw and sampled
    log-probability (float32, NaN: unknown), then top_n (id, log-probability) slots for
    raw and for sampled alternatives (id -1: empty slot)."""
    n, k = len(trace.steps), trace.top_n
    vocab = sorted(trace.pieces)
    header = json.dumps(
        {
            "n": n,
            "top_n": k,
            "vocab": len(vocab),
            "forced": trace.forced,
            "sampling": dict(trace.sampling),
        },
        separators=(",", ":"),
    ).encode()
    ids = array("i", (s.token_id for s in trace.steps))
    lp = array("f", (_f(s.logprob) for s in trace.steps))
    slp = array("f", (_f(s.sampled_logprob) for s in trace.steps))
    tid, tlp, sid, slp2 = array("i"), array("f"), array("i"), array("f")
    for s in trace.steps:
        for alts, out_id, out_lp in ((s.top, tid, tlp), (s.sampled_top, sid, slp2)):
            alts = alts[:k]
            out_id.extend(t for t, _ in alts)
            out_lp.extend(_f(v) for _, v in alts)
            out_id.extend([-1] * (k - len(alts)))
            out_lp.extend([math.nan] * (k - len(alts)))
    parts = [
        struct.pack("<I", len(header)),
        header,
        _le(array("i", vocab)),
        _le(array("I", (len(trace.pieces[t]) for t in vocab))),
        b"".join(trace.pieces[t] for t in vocab),
        *(_le(a) for a in (ids, lp, slp, tid, tlp, sid, slp2)),
    ]
    return MAGIC + zlib.compress(b"".join(parts), 6)


def unpack_trace(blob: bytes) -> TokenTrace:
    if not blob.startswith(MAGIC):
        raise ValueError("not a chatapp token trace")
    raw = zlib.decompress(blob[len(MAGIC) :])
    (hlen,) = struct.unpack_from("<I", raw, 0)
    pos = 4
    header = json.loads(raw[pos : pos + hlen])
    pos += hlen
    n, k, v = int(header["n"]), int(header["top_n"]), int(header["vocab"])

    def take(code: str, count: int) -> array:
        nonlocal pos
        size = array(code).itemsize * count
        a = _from_le(code, raw[pos : pos + size])
        pos += size
        return a

    vocab, lengths = take("i", v), take("I", v)
    pieces: dict[int, bytes] = {}
    for t, ln in zip(vocab, lengths):
        pieces[t] = raw[pos : pos + ln]
        pos += ln
    ids, lp, slp = take("i", n), take("f", n), take("f", n)
    tid, tlp, sid, slp2 = take("i", n * k), take("f", n * k), take("i", n * k), take("f", n * k)

    def alts(idv: array, lpv: array, i: int) -> Alternatives:
        return tuple((idv[j], lpv[j]) for j in range(i * k, (i + 1) * k) if idv[j] >= 0)

    steps = tuple(
        TokenStep(ids[i], _opt(lp[i]), _opt(slp[i]), alts(tid, tlp, i), alts(sid, slp2, i))
        for i in range(n)
    )
    return TokenTrace(steps, pieces, k, header.get("sampling", {}), int(header.get("forced", 0)))


# -- the JSON export -----------------------------------------------------------------------


def _num(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def trace_to_doc(trace: TokenTrace) -> dict[str, Any]:
    """The `tokens` field of an exported message (docs/export-format.md)."""
    pieces: dict[str, str] = {}
    pieces_hex: dict[str, str] = {}
    for t in sorted(trace.pieces):
        data = trace.pieces[t]
        try:
            pieces[str(t)] = data.decode("utf-8")
        except UnicodeDecodeError:
            pieces_hex[str(t)] = data.hex()
    return {
        "top_n": trace.top_n,
        "sampling": dict(trace.sampling),
        "forced": trace.forced,
        "steps": [
            {
                "id": s.token_id,
                "logprob": _num(s.logprob),
                "sampled_logprob": _num(s.sampled_logprob),
                "top": [[t, _num(v)] for t, v in s.top],
                "sampled_top": [[t, _num(v)] for t, v in s.sampled_top],
            }
            for s in trace.steps
        ],
        "pieces": pieces,
        "pieces_hex": pieces_hex,
    }


class TraceFormatError(ValueError):
    """A `tokens` field that does not follow the schema (the message says where)."""


def trace_from_doc(doc: Any) -> TokenTrace:
    def fail(problem: str) -> TraceFormatError:
        return TraceFormatError(f"field 'tokens': {problem}")

    if not isinstance(doc, dict):
        raise fail("must be an object")
    top_n = doc.get("top_n")
    if not isinstance(top_n, int) or isinstance(top_n, bool) or not 0 <= top_n <= MAX_TOP_N:
        raise fail(f"top_n must be a number from 0 to {MAX_TOP_N}")
    pieces: dict[int, bytes] = {}
    try:
        for key, text in (doc.get("pieces") or {}).items():
            pieces[int(key)] = str(text).encode("utf-8")
        for key, hx in (doc.get("pieces_hex") or {}).items():
            pieces[int(key)] = bytes.fromhex(str(hx))
    except (ValueError, AttributeError) as e:
        raise fail(f"bad pieces ({e})") from e
    steps = doc.get("steps")
    if not isinstance(steps, list):
        raise fail("steps must be a list")

    def lp(x: Any) -> float | None:
        if x is None:
            return None
        if isinstance(x, bool) or not isinstance(x, (int, float)) or x > 1e-6:
            raise fail(f"a log-probability must be a number <= 0, not {x!r}")
        return float(x)

    def alts(x: Any) -> Alternatives:
        if not isinstance(x, list) or not all(isinstance(a, list) and len(a) == 2 for a in x):
            raise fail("alternatives must be [id, logprob] pairs")
        out = tuple((int(a[0]), lp(a[1])) for a in x)
        return tuple((t, v if v is not None else math.nan) for t, v in out)

    out: list[TokenStep] = []
    for s in steps:
        if not isinstance(s, dict) or not isinstance(s.get("id"), int):
            raise fail("each step needs an integer id")
        out.append(
            TokenStep(
                s["id"],
                lp(s.get("logprob")),
                lp(s.get("sampled_logprob")),
                alts(s.get("top", [])),
                alts(s.get("sampled_top", [])),
            )
        )
    sampling = doc.get("sampling") or {}
    if not isinstance(sampling, dict):
        raise fail("sampling must be an object")
    forced = doc.get("forced", 0)
    return TokenTrace(
        tuple(out), pieces, top_n, sampling, int(forced) if isinstance(forced, int) else 0
    )


def sampling_summary(sampling: Mapping[str, Any]) -> str:
    """Which settings shaped the sampled distribution, in words."""
    t = sampling.get("temperature")
    if t is None:
        return "sampling settings unknown"
    if t == 0:
        return "temperature 0 (always the most likely token, after the repeat penalty)"
    parts = [f"temperature {t:g}"]
    if (k := sampling.get("top_k")) and k > 0:
        parts.append(f"top-k {k}")
    if (p := sampling.get("top_p")) is not None and p < 1:
        parts.append(f"top-p {p:g}")
    if (m := sampling.get("min_p")) and m > 0:
        parts.append(f"min-p {m:g}")
    if (r := sampling.get("repeat_penalty")) and r != 1:
        parts.append(f"repeat penalty {r:g}")
    return ", ".join(parts)


def alternatives_text(alts: Sequence[tuple[int, float]], pieces: Mapping[int, bytes]) -> str:
    """`'Paris' 92.1%, ' Lyon' 3.0%` for a tooltip or the terminal."""
    out = []
    for t, v in alts:
        data = pieces.get(t, b"")
        out.append(f"{data.decode('utf-8', 'backslashreplace')!r} {100 * math.exp(v):.1f}%")
    return ", ".join(out)


def _alt_doc(token_id: int, text: str, logprob: float) -> dict[str, Any]:
    return {
        "id": token_id,
        "text": text,
        "probability": round(math.exp(logprob), 6) if math.isfinite(logprob) else None,
        "logprob": _num(logprob),
    }


def chunk_to_json(chunk: Any) -> dict[str, Any]:
    """One generated token (a core.backend.Chunk with a token id) as the CLI's --json
    prints it: probability and top under the distribution the sampler drew from,
    raw_probability and raw_top under the model's raw distribution. `bytes` (hex) is
    added when the token is not whole UTF-8 by itself (part of a multi-byte character)."""
    data: bytes = chunk.data
    try:
        text, partial = data.decode("utf-8"), False
    except UnicodeDecodeError:
        text, partial = data.decode("utf-8", "replace"), True
    out: dict[str, Any] = {"id": chunk.token_id, "text": text}
    if partial:
        out["bytes"] = data.hex()
    slp, lp = chunk.sampled_logprob, chunk.logprob
    out["probability"] = round(math.exp(slp), 6) if slp is not None else None
    out["logprob"] = _num(slp)
    out["raw_probability"] = round(math.exp(lp), 6) if lp is not None else None
    out["raw_logprob"] = _num(lp)
    out["top"] = [_alt_doc(a.token_id, a.text, a.logprob) for a in chunk.sampled_top]
    out["raw_top"] = [_alt_doc(a.token_id, a.text, a.logprob) for a in chunk.top]
    if chunk.channel != "answer":
        out["channel"] = chunk.channel
    return out
