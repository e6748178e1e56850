"""Per-chat tool settings are plain JSON in Conversation.meta["tools"]: the enabled list
and each tool's permission, with the documented defaults, surviving a real save."""

from __future__ import annotations

import json

import pytest

from chatapp.core.store import Store
from chatapp.paths import app_paths
from chatapp.tools.permissions import (
    ChatTools,
    read_chat_tools,
    set_enabled,
    set_permission,
)
from chatapp.tools.registry import ToolRegistry, ToolSpec


@pytest.fixture
def specs(tmp_path) -> dict[str, ToolSpec]:
    with ToolRegistry(tmp_path / "config") as reg:
        return {s.name: s for s in reg.specs()}


def test_defaults(specs: dict[str, ToolSpec]) -> None:
    tools = read_chat_tools({})
    assert tools == ChatTools()
    assert tools.offered(specs.values()) == []  # a chat offers no tool until one is switched on
    assert {n: tools.permission(s) for n, s in specs.items()} == {
        "calculator": "always",
        "current_time": "always",
        "python": "ask",
        "read_file": "ask",
        "list_files": "ask",
        "search_files": "ask",
    }
    mcp = ToolSpec("srv__x", "", {"type": "object"}, "mcp:srv", "ask")
    assert tools.permission(mcp) == "ask"


def test_enable_and_permissions_round_trip_through_the_store(
    specs: dict[str, ToolSpec],
) -> None:
    with Store(app_paths().ensure().database) as store:
        conv = store.create_conversation("tools")
        meta = dict(conv.meta)
        set_enabled(meta, "calculator", True)
        set_enabled(meta, "python", True)
        set_enabled(meta, "read_file", True)
        set_permission(meta, "python", "always")
        set_permission(meta, "read_file", "never")
        store.update_conversation(conv.id, meta=meta)
        again = store.get_conversation(conv.id)
    assert again is not None
    assert again.meta["tools"] == {
        "enabled": ["calculator", "python", "read_file"],
        "permissions": {"python": "always", "read_file": "never"},
    }
    json.dumps(again.meta)  # plain JSON
    tools = read_chat_tools(again.meta)
    assert [s.name for s in tools.offered(specs.values())] == ["calculator", "python"]
    assert tools.permission(specs["python"]) == "always"
    # switched off, and a permission back to its default
    set_enabled(again.meta, "calculator", False)
    set_permission(again.meta, "python", None)
    tools = read_chat_tools(again.meta)
    assert tools.enabled == ("python", "read_file")
    assert tools.permission(specs["python"]) == "ask"


@pytest.mark.parametrize(
    "raw",
    [
        "nonsense",
        {"enabled": "calculator", "permissions": []},
        {"enabled": [1, None, "calculator", "calculator"], "permissions": {"python": "sometimes"}},
    ],
)
def test_damaged_values_read_as_defaults(raw: object, specs: dict[str, ToolSpec]) -> None:
    tools = read_chat_tools({"tools": raw})
    assert tools.enabled in ((), ("calculator",))
    assert tools.permission(specs["python"]) == "ask"


def test_a_bad_permission_is_refused() -> None:
    with pytest.raises(ValueError, match="always, ask, never"):
        set_permission({}, "python", "sometimes")
