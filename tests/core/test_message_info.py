from chatapp.core.conversation import FinishReason, Message, Role
from chatapp.core.message_info import details, stats_line


def _answer(**meta) -> Message:
    return Message(
        id="a" * 32,
        conversation_id="c" * 32,
        parent_id="q",
        role=Role.ASSISTANT,
        content="Hi",
        created_at=0.0,
        model="m.gguf",
        finish_reason=FinishReason.LENGTH,
        completion_tokens=12,
        tokens_per_second=33.3,
        meta=meta,
    )


RECEIPT = {
    "prompt_tokens": 40,
    "prompt_sha256": "f" * 64,
    "template": "chatml",
    "template_source": "gguf",
    "template_sha256": "e" * 64,
    "sampling": {"temperature": 0.7, "seed": 5},
    "backend": "llama-cpp-python 0.3.36",
    "model": "/m.gguf",
    "reused_tokens": 30,
    "evaluated_tokens": 10,
}


def test_stats_line_says_speed_reuse_and_why_it_stopped() -> None:
    line = stats_line(_answer(prompt_seconds=0.25, receipt=RECEIPT))
    assert line == (
        "first token 0.25 s · 33.3 tok/s · 12 tokens · prompt 40 (30 reused, 10 evaluated)"
        " · length limit"
    )
    assert stats_line(_answer().with_(role=Role.USER)) == ""


def test_details_show_the_receipt_and_how_to_check_it() -> None:
    rows = dict(details(_answer(receipt=RECEIPT, context_dropped=["x", "y"])))
    assert rows["Run by"] == "llama-cpp-python 0.3.36"
    assert rows["Template"].startswith("chatml (gguf), sha256 eeee")
    assert "30 reused" in rows["Prompt"] and "temperature 0.7" in rows["Sampling"]
    assert "seed 5" in rows["Sampling"] and "2 older message(s)" in rows["Context"]
    assert rows["Check it"] == "chatapp prompt --conversation cccccccccccc --message aaaaaaaaaaaa"
    assert dict(details(_answer()))["Receipt"].startswith("none")
