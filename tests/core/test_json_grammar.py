"""JSON schema -> GBNF: what it covers, and every refused keyword named."""

from __future__ import annotations

import pytest

from chatapp.core.json_grammar import BadSchema, any_json_grammar, literal, schema_grammar


@pytest.mark.parametrize(
    "keyword, schema",
    [
        ("pattern", {"type": "string", "pattern": "^a+$"}),
        ("format", {"type": "string", "format": "date"}),
        ("if", {"if": {"type": "string"}, "then": {"maxLength": 2}}),
        ("patternProperties", {"type": "object", "patternProperties": {"^x": {}}}),
        ("minimum", {"type": "integer", "minimum": 3}),
        ("not", {"not": {"type": "null"}}),
        ("allOf", {"allOf": [{"type": "string"}]}),
        ("uniqueItems", {"type": "array", "uniqueItems": True}),
    ],
)
def test_unsupported_keyword_is_refused_by_name(keyword: str, schema: dict) -> None:
    nested = {"type": "object", "properties": {"x": schema}, "required": ["x"]}
    for s in (schema, nested):
        with pytest.raises(BadSchema, match=f"'{keyword}'"):
            schema_grammar(s)


def test_external_ref_and_dangling_ref_are_refused() -> None:
    with pytest.raises(BadSchema, match="only #/\\$defs"):
        schema_grammar({"$ref": "https://example.com/s.json"})
    with pytest.raises(BadSchema, match="points to nothing"):
        schema_grammar({"$ref": "#/$defs/missing"})


def test_required_property_must_be_declared() -> None:
    with pytest.raises(BadSchema, match="'b'"):
        schema_grammar({"type": "object", "properties": {"a": {}}, "required": ["b"]})


def test_grammar_names_properties_enums_and_limits() -> None:
    g = schema_grammar(
        {
            "type": "object",
            "properties": {
                "unit": {"enum": ["c", "f"]},
                "tags": {
                    "type": "array",
                    "items": {"type": "string", "maxLength": 5},
                    "minItems": 1,
                    "maxItems": 3,
                },
                "tree": {"$ref": "#/$defs/node"},
            },
            "required": ["unit"],
            "$defs": {
                "node": {
                    "type": "object",
                    "properties": {"kids": {"type": "array", "items": {"$ref": "#/$defs/node"}}},
                }
            },
        }
    )
    assert '"\\"unit\\""' in g and '"\\"c\\""' in g
    assert "char{0,5}" in g and "){0,2}" in g
    assert g.count("def-node") >= 2  # recursive definition refers to itself


def test_literal_escapes() -> None:
    assert literal('a"b\\c\n') == '"a\\"b\\\\c\\n"'
    assert any_json_grammar().startswith("root ::= ws object")
