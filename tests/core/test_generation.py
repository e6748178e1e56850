import threading

from chatapp.core.conversation import FinishReason
from chatapp.core.generation import ReplyStream
from chatapp.core.token_engine import SamplingParams
from tests.fakes import ScriptedEngine


def _run(reply: str, markers=(), **params):
    eng = ScriptedEngine(reply=reply)
    rs = ReplyStream(eng, [1, 2, 3], SamplingParams(**params), threading.Event(), markers)
    pieces = [c.text for c in rs if c.text]
    return "".join(pieces), rs, pieces


def test_stop_marker_is_cut_and_never_shown():
    text, rs, pieces = _run("Paris is the capital.<|im_end|>\n<|im_start|>user", ["<|im_end|>"])
    assert text == "Paris is the capital."
    assert not any("<" in p for p in pieces)
    assert rs.stats.finish_reason is FinishReason.STOP


def test_partial_marker_at_the_end_is_released_when_it_is_not_a_marker():
    text, _, _ = _run("a < b and a <|im", ["<|im_end|>"])
    assert text == "a < b and a <|im"


def test_multibyte_characters_split_across_tokens_decode_whole():
    text, _, pieces = _run("日本語 😀 ok")
    assert text == "日本語 😀 ok"
    assert "\ufffd" not in text and all("\ufffd" not in p for p in pieces)


def test_max_tokens_is_length_and_counts():
    text, rs, _ = _run("abcdefgh", max_tokens=3)
    assert text == "abc"
    assert rs.stats.finish_reason is FinishReason.LENGTH
    assert rs.stats.completion_tokens == 3
    assert rs.stats.prompt_tokens == 3


def test_cancel_keeps_what_came_so_far():
    eng = ScriptedEngine(reply="x" * 1000)
    cancel = threading.Event()
    rs = ReplyStream(eng, [1], SamplingParams(), cancel)
    got = ""
    for piece in (c.text for c in rs):
        got += piece
        if len(got) >= 10:
            cancel.set()
    assert rs.stats.finish_reason is FinishReason.CANCELLED
    assert 10 <= len(rs.text) < 1000
    assert rs.text == got


def test_thinking_goes_to_its_own_channel():
    eng = ScriptedEngine(reply="<think>Let me see: 2+2.</think>It is 4.<|im_end|>junk")
    rs = ReplyStream(
        eng, [1], SamplingParams(), threading.Event(), ["<|im_end|>"], [("<think>", "</think>")]
    )
    got = {"thinking": "", "answer": ""}
    for c in rs:
        got[c.channel] += c.text
    assert got == {"thinking": "Let me see: 2+2.", "answer": "It is 4."}
    assert rs.thinking == "Let me see: 2+2." and rs.answer == "It is 4."
