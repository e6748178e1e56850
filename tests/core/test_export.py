import json
import zipfile

import pytest
from markdown_it import MarkdownIt

from chatapp.core import export
from chatapp.core.conversation import Conversation, Message, Role
from tests.golden.sample import ANSWER, IMG, NESTED_FENCE, SCRIPT, T0, sample


def _conv(content: str, system_prompt: str = "", thinking: str = ""):
    conv = Conversation("c1", "t", T0, T0, system_prompt=system_prompt, current_leaf_id="a")
    msgs = [
        Message("u", "c1", None, Role.USER, "q", T0),
        Message("a", "c1", "u", Role.ASSISTANT, content, T0 + 1, thinking=thinking),
    ]
    return conv, msgs


def _tags(page: str) -> list[tuple[str, list]]:
    from html.parser import HTMLParser

    found = []

    class Collect(HTMLParser):
        def handle_starttag(self, tag, attrs):
            found.append((tag, attrs))

    Collect().feed(page)
    return found


def _code_blocks(markdown: str) -> list[str]:
    tokens = MarkdownIt("commonmark").parse(markdown)
    return [t.content for t in tokens if t.type in ("fence", "code_block")]


def test_markdown_keeps_code_blocks_intact_including_nested_fences():
    conv, messages = sample()
    md = export.to_markdown(conv, messages)
    blocks = _code_blocks(md)
    assert "def by_length(words: list[str]) -> list[str]:\n" in blocks[1]
    assert '```python\nprint("inner")\n```\n' in blocks  # the inner fence stays text
    # the system prompt, which holds a ``` fence, is wrapped in a longer fence
    assert blocks[0] == conv.system_prompt + "\n"
    assert "````text\n" in md


def test_an_unclosed_fence_does_not_swallow_the_next_message():
    conv, messages = _conv("```python\nprint(1)")
    conv = conv.with_(current_leaf_id="u2")
    messages.append(Message("u2", "c1", "a", Role.USER, "# after", T0 + 2))
    tokens = MarkdownIt("commonmark").parse(export.to_markdown(conv, messages))
    headings = [tokens[i + 1].content for i, t in enumerate(tokens) if t.type == "heading_open"]
    assert "after" in headings


def test_fence_for_is_longer_than_any_backtick_run():
    assert export.fence_for("no ticks") == "```"
    assert export.fence_for("a ````` b") == "``````"


def test_markdown_marks_thinking_and_names_roles_model_and_time():
    conv, messages = sample()
    md = export.to_markdown(conv, messages)
    assert "> **Thinking**\n>\n> The user wants `sorted(key=len)`." in md
    assert "## User · 2025-01-01 12:01 UTC" in md
    assert "## Assistant · 2025-01-01 12:03 UTC · SmolLM2-135M-Instruct-Q4\\_1.gguf" in md
    assert "*118 tokens, 87.2 tokens/s*" in md


def test_text_formats_show_the_active_branch_and_say_others_exist():
    conv, messages = sample()
    for fmt in ("md", "txt", "html"):
        out = export.render(fmt, conv, messages)
        assert "older answer that was regenerated" not in out
        assert "other branches" in out
    # on the older branch, the newer answer is the hidden one
    older = export.to_markdown(conv.with_(current_leaf_id="m02"), messages)
    assert "older answer that was regenerated" in older and "by_length" not in older
    single = [m for m in messages if m.id != "m02"]
    assert "other branches" not in export.to_markdown(conv, single)


def test_json_keeps_the_whole_tree_and_lifts_known_meta():
    conv, messages = sample()
    doc = json.loads(export.to_json(conv, messages))
    assert doc["format"] == "chatapp.conversation" and doc["version"] == 1
    by_id = {m["id"]: m for m in doc["messages"]}
    assert set(by_id) == {m.id for m in messages}
    assert by_id["m02"]["parent_id"] == by_id["m03"]["parent_id"] == "m01"
    m3 = by_id["m03"]
    assert m3["model_sha256"] == "9a" * 32
    assert m3["sampling"]["temperature"] == 0.7 and m3["template"]["name"] == "chatml"
    assert m3["meta"] == {"custom": ["kept", 1]}
    assert (m3["prompt_tokens"], m3["completion_tokens"], m3["tokens_per_second"]) == (
        41,
        118,
        87.25,
    )
    assert doc["conversation"]["current_leaf_id"] == "m05"


def test_html_escapes_all_message_text_and_loads_nothing_external():
    conv, messages = sample()
    page = export.to_html(conv, messages)
    assert "<script" not in page.lower()
    assert "&lt;script&gt;document.title='PWNED'&lt;/script&gt;" in page
    assert "<img" not in page and "onerror=" not in page.replace("onerror=&quot;", "")
    assert "&lt;b&gt;not bold&lt;/b&gt;" in page  # thinking is escaped as well
    assert "&lt;fast&gt; &amp; &quot;stable&quot;" in page  # the title
    tags = _tags(page)
    assert not {t for t, _ in tags} & {"script", "img", "iframe", "object", "link", "b"}
    assert not [a for _, attrs in tags for a, _ in attrs if a == "src" or a.startswith("on")]
    assert "@import" not in page and "url(" not in page
    assert "Content-Security-Policy" in page


def test_html_highlights_code_and_folds_thinking():
    conv, messages = sample()
    page = export.to_html(conv, messages)
    assert '<pre class="code"><code class="language-python"><span class="k">def</span>' in page
    assert '<details class="thinking">\n<summary>Thinking</summary>' in page
    assert 'dir="auto"' in page  # right-to-left paragraphs lay out correctly


def test_html_drops_images_and_javascript_links():
    conv, messages = _conv("![x](http://example.com/a.png) [y](javascript:alert(1)) " + IMG)
    page = export.to_html(conv, messages)
    assert "<img" not in page and 'href="javascript' not in page


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("Hello world", "Hello world.md"),
        ('a/b\\c:d*e?f"g<h>i|j', "a_b_c_d_e_f_g_h_i_j.md"),
        ("../../etc/passwd", "_.._etc_passwd.md"),
        ("CON", "_CON.md"),
        ("con.txt", "_con.txt.md"),
        ("LPT9", "_LPT9.md"),
        ("COM10", "COM10.md"),
        ("trailing dots...   ", "trailing dots.md"),
        ("   ", "conversation.md"),
        ("tab\there\nnewline", "tab here newline.md"),
        ("日本語のタイトル 🌍", "日本語のタイトル 🌍.md"),
    ],
)
def test_safe_filename(title, expected):
    assert export.safe_filename(title, ".md") == expected


def test_safe_filename_is_length_limited_and_unique():
    taken: set[str] = set()
    long = export.safe_filename("界" * 500, ".md", taken)
    assert len(long.encode()) <= export.MAX_NAME_BYTES + 3
    names = [export.safe_filename("Same", ".md", taken) for _ in range(3)]
    assert names == ["Same.md", "Same-2.md", "Same-3.md"]
    assert export.safe_filename("SAME", ".md", taken) == "SAME-4.md"  # case-insensitive


def _many(n: int):
    convs = {}
    for i in range(n):
        conv, msgs = sample()
        cid = f"c{i}"
        title = "Same title" if i < 2 else f"Chat {i}"
        conv = conv.with_(id=cid, title=title)
        convs[cid] = (conv, [m.with_(conversation_id=cid) for m in msgs])
    return convs


@pytest.mark.parametrize("fmt", export.TEXT_FORMATS)
def test_export_many_writes_a_zip_with_an_index(tmp_path, fmt):
    convs = _many(3)
    seen = []

    def progress(done, total):
        seen.append((done, total))

    dest = export.export_many(
        list(convs), convs.__getitem__, fmt, tmp_path / "all.zip", progress=progress
    )
    with zipfile.ZipFile(dest) as zf:
        names = sorted(zf.namelist())
        index = json.loads(zf.read("index.json"))
        assert names == sorted(
            [
                "index.html",
                "index.json",
                f"Same title.{fmt}",
                f"Same title-2.{fmt}",
                f"Chat 2.{fmt}",
            ]
        )
        assert [e["file"] for e in index["conversations"]] == [
            f"Same title.{fmt}",
            f"Same title-2.{fmt}",
            f"Chat 2.{fmt}",
        ]
        body = zf.read(f"Chat 2.{fmt}").decode()
        assert body == export.render(fmt, *convs["c2"])
        assert 'href="Same%20title-2.' in zf.read("index.html").decode()
    assert seen[0] == (0, 3) and seen[-1] == (3, 3)


def test_export_many_to_a_folder(tmp_path):
    convs = _many(2)
    export.export_many(list(convs), convs.__getitem__, "md", tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "Same title-2.md",
        "Same title.md",
        "index.html",
        "index.json",
    ]


def test_export_many_leaves_no_partial_zip_when_a_conversation_fails(tmp_path):
    convs = _many(2)

    def load(cid):
        if cid == "c1":
            raise RuntimeError("database went away")
        return convs[cid]

    with pytest.raises(RuntimeError):
        export.export_many(list(convs), load, "md", tmp_path / "all.zip")
    assert list(tmp_path.iterdir()) == []


def test_long_messages_and_answer_render_in_every_format():
    conv, messages = _conv(ANSWER * 300 + NESTED_FENCE + SCRIPT)
    for fmt in export.TEXT_FORMATS:
        out = export.render(fmt, conv, messages)
        assert "by_length" in out and len(out) > len(ANSWER) * 300
