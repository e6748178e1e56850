"""A turn's tools and output constraint, from the caller's options (TurnOptions)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from chatapp.core.backend import ChatRequest
from chatapp.core.errors import UserError
from chatapp.core.json_grammar import any_json_grammar, schema_grammar
from chatapp.service.pipeline import TurnSpec
from chatapp.service.tools import CHOICES, ToolRunner, TurnTools, turn_tools
from chatapp.service.turn import TurnOptions


def tool_setup(
    spec: TurnSpec, opts: TurnOptions | None, runner: ToolRunner | None, max_steps: int
) -> TurnSpec:
    """The spec with `opts`' tools (the app's, run in the turn, or the caller's specs,
    run by the caller) and its JSON constraint. Raises UserError (BadSchema) for an
    unknown tool or a schema the grammar cannot express."""
    if opts is None:
        return spec
    tools: TurnTools | None = None
    if opts.tool_max_steps is not None:
        max_steps = max(0, opts.tool_max_steps)
    if opts.tools:
        tools = turn_tools(
            opts.tool_runner or runner,
            opts.tools,
            opts.tool_choice,
            opts.approve,
            max_steps=max_steps,
        )
        if opts.tool_permissions:
            tools = replace(tools, permissions={**tools.permissions, **opts.tool_permissions})
        tools = replace(tools, parallel=opts.parallel)
    elif opts.tool_specs:
        choice = opts.tool_choice or "auto"
        names = [str(t.get("function", t).get("name", "")) for t in opts.tool_specs]
        if choice not in CHOICES and choice not in names:
            raise UserError(f"tool_choice names {choice!r}, which is not among the tools.")
        tools = TurnTools(
            [dict(t) for t in opts.tool_specs], choice, None, max_steps=1, parallel=opts.parallel
        )
    request = spec.request
    if opts.json_schema is not None and opts.json_schema is not False:
        if tools is not None and tools.constrained:
            raise UserError("A required tool call and a JSON answer cannot both be asked for.")
        grammar = (
            any_json_grammar() if opts.json_schema is True else schema_grammar(opts.json_schema)
        )
        # a local model samples under the grammar; a remote server is sent the format
        request = replace(
            request, grammar=grammar, response_format=response_format(opts.json_schema)
        )
    return replace(spec, request=request, tools=tools)


def offered_tools(
    opts: TurnOptions | None, runner: ToolRunner | None, max_steps: int
) -> list[dict[str, Any]] | None:
    """The tools the first step of a turn with `opts` offers the template (what "Show
    prompt" must show): the same setup and the same rule as the turn's (tool_loop)."""
    spec = tool_setup(TurnSpec(None, ChatRequest([]), None), opts, runner, max_steps)  # type: ignore[arg-type]
    tools = spec.tools
    if tools is None or tools.max_steps <= 0:
        return None
    return tools.offered


def response_format(json_schema: Any) -> dict[str, Any]:
    """A turn's JSON constraint as OpenAI's response_format (what a remote server gets)."""
    if json_schema is True:
        return {"type": "json_object"}
    return {
        "type": "json_schema",
        "json_schema": {"name": "answer", "schema": json_schema, "strict": True},
    }
