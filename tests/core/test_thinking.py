"""Splitting streamed reasoning from the answer (chatapp.core.thinking)."""

from __future__ import annotations

import pytest

from chatapp.core.templates import ChatTemplate, render
from chatapp.core.templates.presets import get_preset
from chatapp.core.thinking import (
    ANSWER,
    THINKING,
    AnswerStream,
    ThinkingSplitter,
    history_message,
    split_thinking,
    starts_inside_thinking,
    template_reads_thinking,
)

TEXT = "<think>\nLet me see: 2 < 3, and <b> is not a tag.\n</think>\n\nThe answer is <b>2</b>."


def _stream(pieces: list[str], **kw: object) -> tuple[ThinkingSplitter, list[tuple[str, str]]]:
    s = ThinkingSplitter(**kw)  # type: ignore[arg-type]
    out: list[tuple[str, str]] = []
    for p in pieces:
        out += s.feed(p)
    out += s.flush()
    return s, out


def _joined(out: list[tuple[str, str]], channel: str) -> str:
    return "".join(t for c, t in out if c == channel)


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 1000])
def test_tags_split_across_pieces_of_any_size(size: int) -> None:
    pieces = [TEXT[i : i + size] for i in range(0, len(TEXT), size)]
    s, out = _stream(pieces)
    assert s.thinking == "Let me see: 2 < 3, and <b> is not a tag.\n"
    assert s.answer == "The answer is <b>2</b>."
    assert _joined(out, THINKING) == s.thinking and _joined(out, ANSWER) == s.answer
    assert "<think>" not in s.answer + s.thinking and "</think>" not in s.answer + s.thinking


def test_every_split_point_of_the_tags() -> None:
    for i in range(len(TEXT)):
        s, _ = _stream([TEXT[:i], TEXT[i:]])
        assert s.answer == "The answer is <b>2</b>.", i


def test_text_is_released_as_soon_as_it_cannot_be_a_tag() -> None:
    s = ThinkingSplitter()
    assert s.feed("Hello <") == [(ANSWER, "Hello ")]
    assert s.feed("b>") == [(ANSWER, "<b>")]


def test_no_thinking_at_all() -> None:
    s, out = _stream(["Just ", "an answer."])
    assert (s.thinking, s.answer, out) == (
        "",
        "Just an answer.",
        [(ANSWER, "Just "), (ANSWER, "an answer.")],
    )


def test_start_inside_for_prompts_that_open_the_block() -> None:
    s, _ = _stream(["I think", "...</think>", "Done"], start_inside=True)
    assert (s.thinking, s.answer) == ("I think...", "Done")


def test_unfinished_thinking_stays_thinking() -> None:
    s, _ = _stream(["<think>still going <"])
    assert (s.thinking, s.answer) == ("still going <", "")


def test_custom_tags() -> None:
    thinking, answer = split_thinking(
        "[THINK]hmm[/THINK]ok", (("<think>", "</think>"), ("[THINK]", "[/THINK]"))
    )
    assert (thinking, answer) == ("hmm", "ok")


def test_starts_inside_thinking() -> None:
    assert starts_inside_thinking("<｜Assistant｜><think>\n", (("<think>", "</think>"),))
    assert not starts_inside_thinking("<think>\n\n</think>\n\n", (("<think>", "</think>"),))
    assert not starts_inside_thinking("<|im_start|>assistant\n", (("<think>", "</think>"),))


def test_history_message_passes_thinking_only_to_templates_that_read_it() -> None:
    qwen3 = ChatTemplate("q", "gguf", "{{ message.reasoning_content }}")
    chatml = ChatTemplate("c", "preset", "{{ message['content'] }}")
    assert template_reads_thinking(qwen3.text) and not template_reads_thinking(chatml.text)
    assert history_message("2", "hmm", qwen3) == {
        "role": "assistant",
        "content": "2",
        "reasoning_content": "hmm",
    }
    assert history_message("2", "hmm", chatml) == {"role": "assistant", "content": "2"}
    assert history_message("2", "", qwen3) == {"role": "assistant", "content": "2"}


@pytest.mark.parametrize("size", [1, 2, 3, 4, 50])
def test_answer_stream_stops_at_a_marker_that_never_shows(size: int) -> None:
    raw = "<think>plan</think>\n\nHello <|im_sure|> there!<|im_end|>\n<|im_start|>user\nmore"
    stream = AnswerStream(("<|im_end|>", "<|endoftext|>"), (("<think>", "</think>"),))
    shown: list[tuple[str, str]] = []
    for i in range(0, len(raw), size):
        shown += stream.feed(raw[i : i + size])
    shown += stream.finish()
    assert stream.stopped
    assert (stream.thinking, stream.answer) == ("plan", "Hello <|im_sure|> there!")
    assert "".join(t for c, t in shown if c == ANSWER) == "Hello <|im_sure|> there!"
    assert all("<|im_end|>" not in t and t != "<|im" for _, t in shown)


def test_answer_stream_without_a_marker_releases_everything() -> None:
    stream = AnswerStream(("<end_of_turn>",))
    out = stream.feed("Hi <end_of") + stream.finish()
    assert not stream.stopped and "".join(t for _, t in out) == "Hi <end_of"


def test_answer_stream_for_deepseek_starts_inside_thinking() -> None:
    preset = get_preset("deepseek-r1")
    assert preset is not None
    template = ChatTemplate(
        preset.name, "preset", preset.template, preset.stop_markers, "", preset.think_tags
    )
    prompt = render(template, [{"role": "user", "content": "2+2?"}])
    stream = AnswerStream.for_template(template, prompt)
    for piece in ["Two plus", " two.</th", "ink>\n\n4", "<｜end▁of▁sentence｜>", "junk"]:
        stream.feed(piece)
    stream.finish()
    assert (stream.thinking, stream.answer, stream.stopped) == ("Two plus two.", "4", True)
