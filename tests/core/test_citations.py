"""An answer's [n] resolved to the passages its prompt numbered: the function the window's
citation cards, the CLI and the JSON export share (no Qt, no model)."""

from __future__ import annotations

import json

from chatapp.core.citations import cite_marks, cited_passages, resolve
from chatapp.core.conversation import Conversation, Message, Role
from chatapp.core.export import to_json
from chatapp.core.export.schema import doc_to_conversation

PASSAGES = [
    {"n": 1, "where": "handbook.docx, Travel", "file": "/d/handbook.docx", "page": None,
     "heading": "Travel", "chunk_id": 11, "text": "Book trains through Railbird.", "score": 0.03},
    {"n": 2, "where": "plant.pdf, page 2", "file": "/d/plant.pdf", "page": 2, "heading": "",
     "chunk_id": 12, "text": "The pump runs at 1480 rpm.", "score": 0.02},
    {"n": 3, "where": "note.md (whole file)", "file": "/d/note.md", "whole_file": True,
     "text": "The key is under the pot."},
]  # fmt: skip


def test_each_mark_resolves_to_its_passage_and_place() -> None:
    answer = "Trains go through Railbird [1]. The pump runs at 1480 rpm[2], see [1, 3] and [9]."
    found = resolve(answer, PASSAGES)
    assert [(c.n, answer[c.start : c.end]) for c in found] == [
        (1, "[1]"), (2, "[2]"), (1, "[1, 3]"), (3, "[1, 3]"),
    ]  # fmt: skip
    pump = found[1]
    assert (pump.file, pump.where, pump.page, pump.chunk_id) == (
        "/d/plant.pdf", "plant.pdf, page 2", 2, 12,
    )  # fmt: skip
    assert found[0].heading == "Travel" and found[3].chunk_id is None  # a whole attached file
    assert cited_passages(answer, PASSAGES) == [PASSAGES[0], PASSAGES[1], PASSAGES[2]]


def test_ranges_runs_and_code_are_read_as_a_person_would() -> None:
    assert [n for _, _, n in cite_marks("Both [1-3][4] and [2–3].")] == [[1, 2, 3], [4], [2, 3]]
    assert cite_marks("Use `a[1]` or\n```\nb[2]\n```\n") == []
    assert cite_marks("[^1] is a footnote, [x] is not a number, [1000] is too long") == []
    assert resolve("No sources here.", PASSAGES) == []


def test_the_json_export_lists_an_answers_citations_and_imports_unchanged() -> None:
    conv = Conversation(id="c1", title="Docs", created_at=1.0, updated_at=2.0)
    question = Message(
        id="m1", conversation_id="c1", parent_id=None, role=Role.USER,
        content="How fast is the pump?", created_at=1.0,
    )  # fmt: skip
    answer = Message(
        id="m2", conversation_id="c1", parent_id="m1", role=Role.ASSISTANT,
        content="It runs at 1480 rpm [2].", created_at=2.0,
        meta={"documents": {"passages": PASSAGES, "chunk_ids": [11, 12]}},
    )  # fmt: skip
    text = to_json(conv, [question, answer])
    doc = json.loads(text)
    by_id = {m["id"]: m for m in doc["messages"]}
    assert "citations" not in by_id["m1"]
    [cited] = by_id["m2"]["citations"]
    assert cited == {
        "n": 2, "at": [20, 23], "file": "/d/plant.pdf", "where": "plant.pdf, page 2",
        "page": 2, "heading": "", "chunk_id": 12,
    }  # fmt: skip
    passages = by_id["m2"]["meta"]["documents"]["passages"]
    assert passages[1]["score"] == 0.02 and passages[1]["text"] == "The pump runs at 1480 rpm."
    # the derived field is not read back: the imported answer is the exported one
    _conv, messages = doc_to_conversation(doc, "test.json")
    assert [m.meta for m in messages] == [question.meta, answer.meta]
    assert to_json(conv, messages) == text
