"""Property: export -> import -> export gives the same JSON, for any conversation tree."""

import json
import tempfile
from html.parser import HTMLParser
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from chatapp.core import export
from chatapp.core.conversation import Conversation, FinishReason, Message, Role
from chatapp.core.export import importers
from chatapp.core.store import Store

SPECIAL = [
    "你好，世界。これは日本語です。한국어",
    "emoji 🌍🚀👩‍👩‍👧‍👦🏳️‍🌈",
    "שלום עולם — مرحبا بالعالم",
    "```python\nprint('x')\n```",
    "````\n```\nnested\n```\n````",
    "``` unclosed fence\ncode",
    "~~~\ntilde fence\n~~~",
    "inline `code` and ``double``",
    "<script>document.title='PWNED'</script>",
    "<img src=x onerror=alert(1)>",
    "</details></div><details>",
    "&amp; &lt; <b>bold?</b> \\ * _ # |",
    "line\r\nwindows\rold mac\u2028sep",
    "x" * 20_000,
]

text = st.one_of(
    st.text(max_size=200),
    st.sampled_from(SPECIAL),
    st.lists(st.sampled_from(SPECIAL), min_size=1, max_size=4).map("\n\n".join),
)
times = st.floats(min_value=0, max_value=4e9, allow_nan=False, allow_infinity=False)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | times | st.text(max_size=20),
    lambda kids: (
        st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=8), kids, max_size=3)
    ),
    max_leaves=8,
)
metas = st.dictionaries(
    st.sampled_from(["model_sha256", "template", "sampling", "seed", "x", ""]),
    json_values,
    max_size=4,
)


@st.composite
def conversations(draw):
    n = draw(st.integers(min_value=0, max_value=12))
    messages: list[Message] = []
    for i in range(n):
        parent = draw(st.sampled_from([None] + [m.id for m in messages])) if messages else None
        role = draw(st.sampled_from(list(Role)))
        messages.append(
            Message(
                id=f"m{i}-" + draw(st.text("abcdef0123456789", min_size=1, max_size=6)),
                conversation_id="c",
                parent_id=parent,
                role=role,
                content=draw(text),
                created_at=draw(times),
                thinking=draw(st.one_of(st.just(""), text)),
                model=draw(st.none() | st.text(min_size=1, max_size=30)),
                finish_reason=draw(st.none() | st.sampled_from(list(FinishReason))),
                prompt_tokens=draw(st.none() | st.integers(0, 10**6)),
                completion_tokens=draw(st.none() | st.integers(0, 10**6)),
                tokens_per_second=draw(st.none() | st.floats(0, 1e4)),
                meta=draw(metas),
            )
        )
    leaf = draw(st.sampled_from([None] + [m.id for m in messages]))
    created = draw(times)
    conv = Conversation(
        id="c",
        title=draw(text),
        created_at=created,
        updated_at=created + draw(st.floats(0, 1e6)),
        model_path=draw(st.none() | st.text(max_size=40)),
        system_prompt=draw(st.one_of(st.just(""), text)),
        current_leaf_id=leaf,
        meta=draw(metas),
    )
    return conv, messages


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conversations())
def test_json_round_trip_through_the_store_is_exact(data):
    conv, messages = data
    first = export.to_json(conv, messages)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "c.json"
        path.write_text(first, encoding="utf-8")
        with Store(Path(tmp) / "db.sqlite3") as store:
            result = importers.import_file(store, path)
            assert result.imported == ["c"] and result.messages == len(messages)
            again = export.to_json(store.get_conversation("c"), store.messages("c"))
            assert importers.import_file(store, path).duplicates == 1
    assert again == first
    doc = json.loads(first)
    assert {m["id"]: m["parent_id"] for m in doc["messages"]} == {
        m.id: m.parent_id for m in messages
    }


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, list]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, attrs))


@settings(max_examples=60, deadline=None)
@given(conversations())
def test_html_never_contains_active_content(data):
    conv, messages = data
    page = export.to_html(conv, messages)
    parser = _Tags()
    parser.feed(page)
    names = {t for t, _ in parser.tags}
    assert not names & {"script", "img", "iframe", "object", "embed", "link", "svg", "b"}
    assert not [a for _, attrs in parser.tags for a, _ in attrs if a.startswith("on") or a == "src"]


@settings(max_examples=60, deadline=None)
@given(conversations())
def test_markdown_keeps_the_system_prompt_as_one_code_block_and_every_message(data):
    conv, messages = data
    md = export.to_markdown(conv, messages)
    shown = export.active_thread(conv, messages)
    assert md.count("\n## ") >= len(shown)  # one heading per message (plus the system prompt)
    if conv.system_prompt.strip():
        tokens = MarkdownIt("commonmark").parse(md)
        fences = [t.content for t in tokens if t.type == "fence"]
        expected = conv.system_prompt.replace("\r\n", "\n").replace("\r", "\n")
        expected = expected.replace("\x00", "\ufffd")  # CommonMark's rule for NUL
        assert fences and fences[0] == expected + "\n"
    for fmt in ("txt", "html"):
        assert export.render(fmt, conv, messages)


def test_tool_calls_and_results_round_trip(tmp_path):
    """An answer's calls and each result's call id come back from a JSON export as they
    were, as named fields of the JSON, and the conversation continues from them."""
    from chatapp.core.prompting import conversation_messages
    from chatapp.core.templates import ChatTemplate
    from tests.golden.sample import TOOLS_CONV_ID, sample_tools

    conv, messages = sample_tools()
    first = export.to_json(conv, messages)
    doc = json.loads(first)
    answer = next(m for m in doc["messages"] if m["id"] == "m02")
    assert [c["name"] for c in answer["tool_calls"]] == ["calculator", "python", ""]
    assert "tool_calls" not in answer["meta"]
    results = [m for m in doc["messages"] if m["role"] == "tool"]
    assert [m["tool_call_id"] for m in results] == ["call_1", "call_2", "call_3"]
    path = tmp_path / "c.json"
    path.write_text(first, encoding="utf-8")
    with Store(tmp_path / "db.sqlite3") as store:
        importers.import_file(store, path)
        back = store.messages(TOOLS_CONV_ID)
        again = export.to_json(store.get_conversation(TOOLS_CONV_ID), back)
    assert again == first
    by_id = {m.id: m for m in back}
    assert by_id["m02"].meta["tool_calls"][0]["arguments"] == {"expression": "12345 * 6789"}
    assert by_id["m03"].role is Role.TOOL and by_id["m03"].meta["tool_call_id"] == "call_1"
    # what a template is given for the imported thread: the calls and the results
    sent = conversation_messages(
        [by_id[f"m0{i}"] for i in range(1, 7)], ChatTemplate("t", "test", "{{ messages }}")
    )
    assert [m["role"] for m in sent] == ["user", "assistant", "tool", "tool", "tool", "assistant"]
    assert sent[1]["tool_calls"][0]["function"]["name"] == "calculator"
    assert sent[2]["tool_call_id"] == "call_1"


def test_tool_calls_of_the_wrong_shape_are_refused(tmp_path):
    from tests.golden.sample import sample_tools

    doc = json.loads(export.to_json(*sample_tools()))
    doc["messages"][1]["tool_calls"] = ["not an object"]
    path = tmp_path / "c.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    with Store(tmp_path / "db.sqlite3") as store:
        try:
            importers.import_file(store, path)
        except importers.ImportFormatError as e:
            assert "'tool_calls' must be a list of objects" in str(e)
        else:
            raise AssertionError("imported")
        assert store.list_conversations() == []
