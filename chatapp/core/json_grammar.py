"""JSON schema -> GBNF (llama.cpp's grammar format), our own converter.

A grammar built here lets the sampler pick only tokens that keep the output valid for
the schema: a tool call's arguments when a call is required, or a structured answer
(`--json-schema`, the API's response_format). What it covers:

    object   properties, required, additionalProperties (false, or a schema for a map)
    array    items, minItems, maxItems
    string   minLength, maxLength
    integer, number, boolean, null, enum, const
    anyOf / oneOf of those, a list of types, $ref to #/$defs/... (or #/definitions/...)

A keyword it cannot express (pattern, format, minimum, if/then, patternProperties...)
is refused with BadSchema naming it: never silently loosened. Annotations (title,
description, default, examples...) are ignored. Properties not in `properties` are never
generated, which keeps the output valid for any additionalProperties.
"""

from __future__ import annotations

import json
import re
from typing import Any

from chatapp.core.errors import UserError

__all__ = ["BadSchema", "SchemaGrammar", "any_json_grammar", "literal", "schema_grammar"]

# keywords that only describe; they never change what is valid
_ANNOTATIONS = {
    "title",
    "description",
    "default",
    "examples",
    "$schema",
    "$id",
    "$comment",
    "readOnly",
    "writeOnly",
    "deprecated",
    "$defs",
    "definitions",
    "strict",
}
_BY_TYPE = {
    "object": {"properties", "required", "additionalProperties"},
    "array": {"items", "minItems", "maxItems"},
    "string": {"minLength", "maxLength"},
    "integer": set(),
    "number": set(),
    "boolean": set(),
    "null": set(),
}
_COMBINERS = {"type", "enum", "const", "anyOf", "oneOf", "$ref"}
_KNOWN = _ANNOTATIONS | _COMBINERS | set().union(*_BY_TYPE.values())

# the largest repetition count written out; a schema asking for more is refused
MAX_REPEAT = 10_000

PRIMITIVES = r"""ws ::= [ \n]?
char ::= [^"\\\x7F\x00-\x1F] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F]{4})
string ::= "\"" char* "\""
integer ::= "-"? ("0" | [1-9] [0-9]{0,15})
number ::= integer ("." [0-9]{1,16})? ([eE] [-+]? [0-9]{1,3})?
boolean ::= "true" | "false"
null ::= "null"
value ::= object | array | string | number | boolean | null
object ::= "{" ws ( string ws ":" ws value ws ( "," ws string ws ":" ws value ws )* )? "}"
array ::= "[" ws ( value ws ( "," ws value ws )* )? "]"
"""


class BadSchema(UserError):
    """A JSON schema the converter cannot express (the message names the keyword)."""


def literal(text: str) -> str:
    """A GBNF string literal matching `text` exactly."""
    out = text.replace("\\", "\\\\").replace('"', '\\"')
    out = out.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    return f'"{out}"'


def _json_literal(value: Any) -> str:
    return literal(json.dumps(value, ensure_ascii=False, separators=(", ", ": ")))


class SchemaGrammar:
    """Rules for one or more schemas in one grammar; add() returns a rule's name."""

    def __init__(self, root_schema: Any = None) -> None:
        self.rules: dict[str, str] = {}
        self._root = root_schema if isinstance(root_schema, dict) else {}
        self._refs: dict[str, str] = {}
        self._n = 0

    def _name(self, hint: str) -> str:
        base = re.sub(r"[^a-zA-Z0-9]+", "-", hint).strip("-").lower() or "r"
        self._n += 1
        return f"{base}-{self._n}"

    def _rule(self, hint: str, body: str) -> str:
        name = self._name(hint)
        self.rules[name] = body
        return name

    def add(self, schema: Any, hint: str = "root") -> str:
        """The name of a rule matching JSON valid for `schema`."""
        return self._rule(hint, self._expr(schema, hint))

    def text(self, root: str) -> str:
        """The whole grammar, `root` its start."""
        lines = [f"root ::= {root}"]
        lines += [f"{name} ::= {body}" for name, body in self.rules.items()]
        return "\n".join(lines) + "\n" + PRIMITIVES

    # -- one schema ----------------------------------------------------------------

    def _expr(self, schema: Any, hint: str) -> str:
        if schema is True or schema == {}:
            return "value"
        if schema is False:
            raise BadSchema("The schema `false` allows no value at all.")
        if not isinstance(schema, dict):
            raise BadSchema(f"A JSON schema must be an object, not {type(schema).__name__}.")
        for key in schema:
            if key not in _KNOWN:
                raise BadSchema(
                    f"JSON schema keyword '{key}' is not supported in constrained output."
                )
        if "$ref" in schema:
            return self._ref(str(schema["$ref"]))
        if "const" in schema:
            return _json_literal(schema["const"])
        if "enum" in schema:
            values = schema["enum"]
            if not isinstance(values, list) or not values:
                raise BadSchema("'enum' must be a non-empty list.")
            return "(" + " | ".join(_json_literal(v) for v in values) + ")"
        for key in ("anyOf", "oneOf"):
            if key in schema:
                options = schema[key]
                if not isinstance(options, list) or not options:
                    raise BadSchema(f"'{key}' must be a non-empty list.")
                base = {k: v for k, v in schema.items() if k not in (key, *_ANNOTATIONS)}
                names = [self.add({**base, **o} if base else o, hint) for o in options]
                return "(" + " | ".join(names) + ")"
        types = schema.get("type")
        if types is None:
            kinds = [t for t, words in _BY_TYPE.items() if words & schema.keys()]
            if len(kinds) != 1:
                return "value" if not kinds else self._types(schema, kinds, hint)
            types = kinds[0]
        if isinstance(types, list):
            return self._types(schema, [str(t) for t in types], hint)
        return self._typed(schema, str(types), hint)

    def _types(self, schema: dict[str, Any], types: list[str], hint: str) -> str:
        if not types:
            raise BadSchema("'type' must name at least one type.")
        names = [self._rule(f"{hint}-{t}", self._typed(schema, t, hint)) for t in types]
        return "(" + " | ".join(names) + ")"

    def _typed(self, schema: dict[str, Any], kind: str, hint: str) -> str:
        if kind not in _BY_TYPE:
            raise BadSchema(f"Unknown JSON schema type '{kind}'.")
        if kind == "object":
            return self._object(schema, hint)
        if kind == "array":
            return self._array(schema, hint)
        if kind == "string":
            return self._string(schema)
        return kind

    def _string(self, schema: dict[str, Any]) -> str:
        lo = _count(schema, "minLength", 0) or 0
        hi = _count(schema, "maxLength", None)
        if lo == 0 and hi is None:
            return "string"
        if hi is not None and hi < lo:
            raise BadSchema("'maxLength' is below 'minLength'.")
        return '"\\"" char{' + f"{lo},{'' if hi is None else hi}" + '} "\\""'

    def _array(self, schema: dict[str, Any], hint: str) -> str:
        items = schema.get("items", {})
        if isinstance(items, list):
            raise BadSchema("JSON schema keyword 'items' as a list (tuples) is not supported.")
        item = self.add(items, f"{hint}-item")
        lo = _count(schema, "minItems", 0) or 0
        hi = _count(schema, "maxItems", None)
        if hi is not None and hi < lo:
            raise BadSchema("'maxItems' is below 'minItems'.")
        if hi == 0:
            return '"[" ws "]"'
        more_lo = max(lo - 1, 0)
        more_hi = "" if hi is None else str(hi - 1)
        body = f'{item} ws ( "," ws {item} ws ){{{more_lo},{more_hi}}}'
        if lo == 0:
            body = f"( {body} )?"
        return f'"[" ws {body} "]"'

    def _object(self, schema: dict[str, Any], hint: str) -> str:
        props = schema.get("properties") or {}
        if not isinstance(props, dict):
            raise BadSchema("'properties' must be an object.")
        required = schema.get("required") or []
        if not isinstance(required, list):
            raise BadSchema("'required' must be a list.")
        missing = [r for r in required if r not in props]
        extra = schema.get("additionalProperties", True)
        if missing and extra is False:
            raise BadSchema(f"Required property '{missing[0]}' is not in 'properties'.")
        if not props:
            if extra is False:
                return '"{" ws "}"'
            if isinstance(extra, dict) and extra:
                value = self.add(extra, f"{hint}-value")
                pair = f'string ws ":" ws {value} ws'
                return f'"{{" ws ( {pair} ( "," ws {pair} )* )? "}}"'
            return "object"
        if missing:
            raise BadSchema(
                f"Required property '{missing[0]}' is not in 'properties' "
                "(generating unnamed properties is not supported)."
            )
        pairs: dict[str, str] = {}
        for key, sub in props.items():
            value = self.add(sub, f"{hint}-{key}")
            pairs[key] = f'{literal(json.dumps(key, ensure_ascii=False))} ws ":" ws {value} ws'
        req = [k for k in props if k in required]
        opt = [k for k in props if k not in required]
        parts: list[str] = []
        for i, key in enumerate(req):
            parts.append(pairs[key] if i == 0 else f'"," ws {pairs[key]}')
        if opt:
            if req:
                parts.append(" ".join(f'( "," ws {pairs[k]} )?' for k in opt))
            else:
                # no required property: the first one present takes no comma
                starts = []
                for i, key in enumerate(opt):
                    rest = " ".join(f'( "," ws {pairs[k]} )?' for k in opt[i + 1 :])
                    starts.append(f"{pairs[key]} {rest}".strip())
                parts.append("( " + " | ".join(f"( {s} )" for s in starts) + " )?")
        return '"{" ws ' + " ".join(parts) + ' "}"'

    def _ref(self, ref: str) -> str:
        if ref in self._refs:
            return self._refs[ref]
        m = re.fullmatch(r"#/(\$defs|definitions)/(.+)", ref)
        if m is None:
            raise BadSchema(f"'$ref' {ref!r} is not supported (only #/$defs/NAME).")
        target = (self._root.get(m.group(1)) or {}).get(m.group(2).replace("~1", "/"))
        if target is None:
            raise BadSchema(f"'$ref' {ref!r} points to nothing.")
        name = self._name(f"def-{m.group(2)}")
        self._refs[ref] = name  # before expanding: a definition may refer to itself
        self.rules[name] = self._expr(target, f"def-{m.group(2)}")
        return name


def _count(schema: dict[str, Any], key: str, default: int | None) -> int | None:
    value = schema.get(key, default)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise BadSchema(f"'{key}' must be a non-negative integer.")
    if value > MAX_REPEAT:
        raise BadSchema(
            f"'{key}' of {value} is more than constrained output allows ({MAX_REPEAT})."
        )
    return value


def schema_grammar(schema: Any) -> str:
    """A GBNF grammar for JSON valid against `schema` (raises BadSchema)."""
    g = SchemaGrammar(schema)
    root = g.add(schema)
    return g.text(f"ws {root}")


def any_json_grammar() -> str:
    """Any JSON object (the API's response_format json_object)."""
    return "root ::= ws object\n" + PRIMITIVES
