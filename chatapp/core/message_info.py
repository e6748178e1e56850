"""What the window says about an answer: its statistics line and its details (the receipt).

Pure functions over a stored Message, so the message view, the details dialog and the
tests read the same words.
"""

from __future__ import annotations

from typing import Any

from chatapp.core.conversation import FinishReason, Message, Role
from chatapp.core.receipt import Receipt

STOP_REASONS = {
    FinishReason.STOP: "end of turn",
    FinishReason.LENGTH: "length limit",
    FinishReason.CANCELLED: "stopped by you",
    FinishReason.ERROR: "failed",
    FinishReason.STREAMING: "still streaming (or interrupted)",
}


def stats_line(msg: Message) -> str:
    """Time to first token, speed, tokens, prompt reuse and why it stopped, for an answer;
    "" for a question or an answer with no statistics (imported, older)."""
    if msg.role is not Role.ASSISTANT:
        return ""
    parts: list[str] = []
    ttft = msg.meta.get("prompt_seconds")
    if isinstance(ttft, (int, float)):
        parts.append(f"first token {ttft:.2f} s")
    if msg.tokens_per_second:
        parts.append(f"{msg.tokens_per_second:.1f} tok/s")
    if msg.completion_tokens:
        parts.append(f"{msg.completion_tokens} tokens")
    receipt = Receipt.from_dict(msg.meta.get("receipt"))
    if receipt is not None and receipt.tokens_known:
        parts.append(
            f"prompt {receipt.prompt_tokens} ({receipt.reused_tokens} reused, "
            f"{receipt.evaluated_tokens} evaluated)"
        )
    if receipt is not None and receipt.speculative.get("mode"):
        parts.append(speculation_text(receipt.speculative))
    if msg.finish_reason is not None and msg.finish_reason in STOP_REASONS:
        parts.append(STOP_REASONS[msg.finish_reason])
    return " · ".join(parts)


def speculation_text(spec: dict[str, Any]) -> str:
    """Speculative decoding's acceptance rate, e.g. "lookup drafts 80 of 96 accepted
    (83%)"; the reason where it was off; "" where it was not asked for."""
    mode = spec.get("mode")
    if not mode:
        note = spec.get("note")
        return f"speculative decoding {note}" if note else ""
    drafted, accepted = int(spec.get("drafted", 0)), int(spec.get("accepted", 0))
    name = "draft model" if mode == "draft" else str(mode)
    if not drafted:
        return f"{name} drafts: none"
    return f"{name} drafts {accepted} of {drafted} accepted ({100 * accepted / drafted:.0f}%)"


def details(msg: Message) -> list[tuple[str, str]]:
    """(label, value) rows for the answer's details: what exactly produced it."""
    rows: list[tuple[str, str]] = [("Message id", msg.id)]
    if msg.model:
        rows.append(("Model", msg.model))
    receipt = Receipt.from_dict(msg.meta.get("receipt"))
    if receipt is None:
        if msg.role is Role.ASSISTANT:
            rows.append(("Receipt", "none (made before chatapp kept receipts, or imported)"))
        return rows + documents_rows(msg)
    rows += [
        ("Model reference", receipt.model),
        ("Run by", receipt.backend or "unknown"),
        (
            "Template",
            f"{receipt.template} ({receipt.template_source}), "
            f"sha256 {receipt.template_sha256[:16]}…",
        ),
    ]
    if receipt.tokens_known:
        rows.append(
            (
                "Prompt",
                f"{receipt.prompt_tokens} tokens ({receipt.reused_tokens} reused from the "
                f"cache{_disk(receipt)}, {receipt.evaluated_tokens} evaluated), "
                f"sha256 {receipt.prompt_sha256[:16]}…",
            )
        )
    else:
        rows.append(("Prompt", "rendered by the server: its tokens are not known here"))
    rows.append(("Sampling", _sampling(receipt.sampling)))
    line = stats_line(msg)
    if line:
        rows.append(("Statistics", line))
    if msg.meta.get("context_dropped"):
        n = len(msg.meta["context_dropped"])
        rows.append(("Context", f"{n} older message(s) were left out to fit the context"))
    rows += documents_rows(msg)
    rows.append(
        (
            "Check it",
            f"chatapp prompt --conversation {msg.conversation_id[:12]} --message {msg.id[:12]}",
        )
    )
    return rows


def _sampling(s: dict[str, Any]) -> str:
    order = ("temperature", "top_p", "top_k", "min_p", "repeat_penalty", "max_tokens", "seed")
    return ", ".join(f"{k} {s[k]}" for k in order if k in s and s[k] is not None)


def passage_scores(p: dict[str, Any]) -> str:
    """How a retrieved passage ranked: "score 0.0325 · keyword #1 (bm25 4.1) · vector #3
    (similarity 0.61)"; an attached file's whole text says so."""
    if p.get("whole_file"):
        return "the whole attached file"
    parts = []
    if isinstance(p.get("score"), (int, float)):
        parts.append(f"score {p['score']:.4f}")
    if p.get("keyword_rank"):
        bm = f" (bm25 {p['bm25']:.2f})" if isinstance(p.get("bm25"), (int, float)) else ""
        parts.append(f"keyword #{p['keyword_rank']}{bm}")
    if p.get("vector_rank"):
        sim = p.get("similarity")
        sim_text = f" (similarity {sim:.3f})" if isinstance(sim, (int, float)) else ""
        parts.append(f"vector #{p['vector_rank']}{sim_text}")
    return " · ".join(parts) or "no scores recorded"


def documents_rows(msg: Message) -> list[tuple[str, str]]:
    """An answer's retrieved passages (file, where, scores, the passage) and the exact
    text inserted into its question, for the details dialog."""
    docs = msg.meta.get("documents")
    if not isinstance(docs, dict):
        return []
    passages = [p for p in docs.get("passages") or [] if isinstance(p, dict)]
    if not passages:
        return [("Documents", str(docs.get("note") or "no passage matched"))]
    rows: list[tuple[str, str]] = []
    what = []
    if docs.get("collections"):
        what.append("collections " + ", ".join(str(c) for c in docs["collections"]))
    files = docs.get("files") or []
    what.append(f"{len(passages)} passage(s) from {len(files)} file(s)")
    rows.append(("Documents", "; ".join(what)))
    for f in files:
        if isinstance(f, dict):
            rows.append(("File", f"{f.get('path', '')}\nsha256 {f.get('sha256', '')}"))
    for p in passages:
        rows.append(
            (
                f"[{p.get('n', '?')}] {p.get('where', '')}",
                f"{passage_scores(p)}\n{p.get('text', '')}",
            )
        )
    if docs.get("rewrites"):
        rows.append(("Rephrased as", "\n".join(str(r) for r in docs["rewrites"])))
    if docs.get("inserted"):
        rows.append(("Inserted into the question", str(docs["inserted"])))
    return rows


def _disk(receipt: Receipt) -> str:
    """How many of the reused tokens came from a state saved on disk, if any."""
    return f", {receipt.disk_tokens} of them from disk" if receipt.disk_tokens else ""
