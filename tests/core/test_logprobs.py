"""The stored form of per-token probabilities: the packed blob, the export field, the
table (migration 007) and its cascade."""

from __future__ import annotations

import json
import math

import pytest

from chatapp.core.conversation import Role
from chatapp.core.export import to_json
from chatapp.core.export.schema import ImportFormatError, doc_to_conversation
from chatapp.core.logprobs import (
    TokenStep,
    TokenTrace,
    pack_trace,
    top_n_setting,
    trace_from_doc,
    trace_to_doc,
    unpack_trace,
)
from chatapp.core.store import Store

LLAMA = "🦙".encode()


def _f32(x: float) -> float:
    import struct

    return struct.unpack("<f", struct.pack("<f", x))[0]


def _trace() -> TokenTrace:
    steps = (
        TokenStep(
            10,
            _f32(math.log(0.5)),
            0.0,
            ((10, _f32(math.log(0.5))), (11, _f32(-2.0))),
            ((10, 0.0),),
        ),
        TokenStep(12, _f32(-3.5), None, ((11, _f32(-0.1)), (12, _f32(-3.5))), ()),
        TokenStep(13),
    )
    pieces = {10: b"Hi", 11: b" there", 12: b" " + LLAMA[:2], 13: LLAMA[2:]}
    return TokenTrace(steps, pieces, 2, {"temperature": 0.0, "top_k": 40}, forced=1)


def test_pack_round_trips_and_is_compact() -> None:
    t = _trace()
    back = unpack_trace(pack_trace(t))
    assert back == t
    assert back.text() == "Hi 🦙"
    # 500 tokens with 5 + 5 alternatives: well under the ~4 kB of text JSON per token
    big = TokenTrace(
        tuple(
            TokenStep(
                i % 900,
                -0.5,
                -0.2,
                tuple((j, -1.0 * j) for j in range(5)),
                tuple((j, -0.5 * j) for j in range(5)),
            )
            for i in range(500)
        ),
        {i: b"x%d" % i for i in range(900)},
        5,
    )
    assert len(pack_trace(big)) < 500 * 100
    with pytest.raises(ValueError):
        unpack_trace(b"not a trace")


def test_export_doc_round_trips_bytes_split_across_tokens() -> None:
    t = unpack_trace(pack_trace(_trace()))
    doc = json.loads(json.dumps(trace_to_doc(t), allow_nan=False))
    assert doc["pieces_hex"] == {"12": (b" " + LLAMA[:2]).hex(), "13": LLAMA[2:].hex()}
    assert doc["pieces"] == {"10": "Hi", "11": " there"}
    assert doc["steps"][1]["sampled_logprob"] is None and doc["forced"] == 1
    assert pack_trace(trace_from_doc(doc)) == pack_trace(t)


@pytest.mark.parametrize(
    ("bad", "says"),
    [
        ({"top_n": 50, "steps": []}, "top_n"),
        ({"top_n": 5, "steps": [{"id": "x"}]}, "integer id"),
        ({"top_n": 5, "steps": [{"id": 1, "logprob": 2.0}]}, "log-probability"),
        ({"top_n": 5, "steps": [{"id": 1, "top": [[1]]}]}, "pairs"),
        ({"top_n": 5, "steps": [], "pieces_hex": {"1": "zz"}}, "pieces"),
    ],
)
def test_a_bad_tokens_field_is_refused_in_one_line(bad, says, tmp_path) -> None:
    with Store(tmp_path / "a.db") as store:
        conv = store.create_conversation("t")
        q = store.add_message(conv.id, Role.USER, "hi")
        store.add_message(conv.id, Role.ASSISTANT, "Hi", parent_id=q.id)
        doc = json.loads(to_json(store.get_conversation(conv.id), store.messages(conv.id)))
    doc["messages"][1]["tokens"] = bad
    with pytest.raises(ImportFormatError) as e:
        doc_to_conversation(doc, "f.json")
    assert says in str(e.value) and "\n" not in str(e.value)


def test_stored_beside_the_message_exported_imported_and_deleted_with_it(tmp_path) -> None:
    with Store(tmp_path / "a.db") as store:
        assert "007_token_logprobs" in store.applied_migrations()
        conv = store.create_conversation("t")
        q = store.add_message(conv.id, Role.USER, "hi")
        a = store.add_message(conv.id, Role.ASSISTANT, "Hi 🦙", parent_id=q.id)
        store.save_token_trace(a.id, _trace())
        meta_row = store._db.execute("SELECT meta FROM messages WHERE id = ?", (a.id,)).fetchone()
        assert "steps" not in meta_row[0]  # not JSON in the messages table
        assert store.messages(conv.id)[1].tokens is None  # only read when asked
        msgs = store.messages(conv.id, with_tokens=True)
        text = to_json(store.get_conversation(conv.id), msgs)
    with Store(tmp_path / "b.db") as other:
        c2, imported = doc_to_conversation(json.loads(text), "f.json")
        other.create_conversation(c2.title, conversation_id=c2.id, created_at=c2.created_at)
        other.insert_messages(imported)
        again = to_json(other.get_conversation(c2.id), other.messages(c2.id, with_tokens=True))
        assert other.token_trace(a.id) == unpack_trace(pack_trace(_trace()))
        other.delete_message(a.id)
        assert other.token_trace(a.id) is None
    assert json.loads(again)["messages"][1]["tokens"] == json.loads(text)["messages"][1]["tokens"]


def test_how_many_alternatives_comes_from_settings_with_a_default() -> None:
    class Old:  # settings without the field
        pass

    class New:
        logprobs_top_n = 12

    class Silly:
        logprobs_top_n = 99

    assert top_n_setting(Old()) == 5
    assert top_n_setting(New()) == 12
    assert top_n_setting(Silly()) == 20
