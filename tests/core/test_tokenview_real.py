"""The token view of real SmolLM2 tokens: typed text and a generated answer round-trip
to the same text, multi-byte characters split across tokens included."""

from __future__ import annotations

import threading

import pytest

from chatapp.core import tokenview as tv
from chatapp.core.chat import prepare_prompt, template_for
from chatapp.core.generation import ReplyStream
from chatapp.core.logprobs import TraceBuilder, pack_trace, unpack_trace
from chatapp.core.token_engine import SamplingParams
from chatapp.engine.llama import LlamaEngine

pytestmark = pytest.mark.model
TEXT = "Llamas 🦙 in 東京, naïve café: 𝔘𝔫𝔦𝔠𝔬𝔡𝔢!\n\tdone <|im_end|>"


@pytest.fixture(scope="module")
def smol(smollm2_path):
    e = LlamaEngine(smollm2_path, n_threads=2)
    yield e
    e.close()


def test_typed_text_round_trips_through_the_token_view(smol):
    ids = smol.tokenize(TEXT, special=True)
    tokens = [(t, smol.token_bytes(t)) for t in ids]
    spans = tv.spans_from_tokens(tokens, special=smol.is_special)
    # the byte-level tokenizer really splits some characters here
    split = [s for s in spans if "\\x" in s.label]
    assert split and all(s.note for s in split)
    assert [s for s in spans if s.special] == [spans[-1]]  # <|im_end|> is one control token
    assert tv.spans_text(spans) == TEXT
    labels = [s.label for s in spans]
    assert b"".join(tv.label_bytes(x) for x in labels).decode("utf-8") == TEXT
    html = tv.token_view_html(spans)
    assert html.count("<a name=") == len(ids)


def test_a_generated_answer_round_trips_through_its_trace(smol):
    tpl = template_for(smol)
    prompt = prepare_prompt(
        smol, tpl, "", [{"role": "user", "content": "Write three emoji and 東京."}]
    )
    stream = ReplyStream(
        smol,
        prompt,
        SamplingParams(seed=5, max_tokens=40),
        threading.Event(),
        tpl.stop_markers,
        logprobs=5,
    )
    builder = TraceBuilder(5, stream.params.as_dict())
    for chunk in stream:
        builder.add(chunk)
    trace = unpack_trace(pack_trace(builder.build(smol.token_bytes)))
    spans = tv.spans_from_trace(trace, special=smol.is_special)
    shown = b"".join(tv.label_bytes(s.label) for s in spans).decode("utf-8")
    assert shown == tv.spans_text(spans) == trace.text()
    assert shown.strip() == stream.answer  # what the user saw is what the view shows
    assert all(s.probability is not None and 0 < s.probability <= 1 for s in spans)
    assert "probability" in tv.tooltip(spans[0])
