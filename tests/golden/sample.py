"""A fixed conversation for golden files and rendering tests: every feature, stable times."""

from __future__ import annotations

from chatapp.core.conversation import Conversation, FinishReason, Message, Role

T0 = 1_735_732_800.0  # 2025-01-01 12:00 UTC
CONV_ID = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
SCRIPT = "<script>document.title='PWNED'</script>"
IMG = "<img src=x onerror=\"document.title='PWNED'\">"

NESTED_FENCE = """Here is a Markdown snippet that itself holds a code block:

````markdown
```python
print("inner")
```
````
"""

ANSWER = """Use `sorted()`; it is **stable** and returns a new list:

```python
def by_length(words: list[str]) -> list[str]:
    # shortest first; ties keep their order
    return sorted(words, key=len)
```

| call | in place | returns |
|------|----------|---------|
| `sorted(xs)` | no | a new list |
| `xs.sort()` | yes | `None` |

Unicode is fine too: 你好, 世界 🌍🚀, and right to left: שלום עולם, مرحبا بالعالم.
"""


def _msg(i: int, parent: str | None, role: Role, content: str, **kw: object) -> Message:
    return Message(
        id=f"m{i:02d}",
        conversation_id=CONV_ID,
        parent_id=parent,
        role=role,
        content=content,
        created_at=T0 + 60 * i,
        **kw,  # type: ignore[arg-type]
    )


def sample() -> tuple[Conversation, list[Message]]:
    model = "SmolLM2-135M-Instruct-Q4_1.gguf"
    meta = {
        "model_sha256": "9a" * 32,
        "template": {"name": "chatml", "source": "gguf"},
        "sampling": {"temperature": 0.7, "top_p": 0.95, "seed": 42},
        "custom": ["kept", 1],
    }
    messages = [
        _msg(1, None, Role.USER, f"How do I sort a list of words by length? {SCRIPT} {IMG}"),
        _msg(
            2,
            "m01",
            Role.ASSISTANT,
            "An older answer that was regenerated.",
            model=model,
            finish_reason=FinishReason.STOP,
        ),
        _msg(
            3,
            "m01",
            Role.ASSISTANT,
            ANSWER,
            thinking="The user wants `sorted(key=len)`.\nMention stability <b>not bold</b>.",
            model=model,
            finish_reason=FinishReason.STOP,
            prompt_tokens=41,
            completion_tokens=118,
            tokens_per_second=87.25,
            meta=meta,
        ),
        _msg(4, "m03", Role.USER, "And a code block inside a code block?"),
        _msg(
            5,
            "m04",
            Role.ASSISTANT,
            NESTED_FENCE + "\n```\nan unclosed block at the end (the reply was cut off)",
            model=model,
            finish_reason=FinishReason.LENGTH,
            completion_tokens=64,
            tokens_per_second=90.0,
        ),
    ]
    conv = Conversation(
        id=CONV_ID,
        title='Sorting in Python: <fast> & "stable"',
        created_at=T0,
        updated_at=T0 + 300,
        model_path="/models/" + model,
        system_prompt="You are a concise assistant.\n```\nfence in the system prompt\n```",
        current_leaf_id="m05",
        meta={"pinned": True},
    )
    return conv, messages


def long_conversation(n: int = 60) -> tuple[Conversation, list[Message]]:
    """Many long messages: enough for a multi-page PDF."""
    conv, _ = sample()
    messages: list[Message] = []
    parent = None
    for i in range(1, n + 1):
        role = Role.USER if i % 2 else Role.ASSISTANT
        text = f"Message {i}. " + ("Lorem ipsum dolor sit amet, 世界 🌍. " * 12)
        if role is Role.ASSISTANT:
            text += "\n\n```python\nfor i in range(3):\n    print(i)\n```\n"
        messages.append(_msg(i, parent, role, text).with_(id=f"long{i}", conversation_id="long"))
        parent = messages[-1].id
    return conv.with_(id="long", current_leaf_id=parent, title="A long conversation"), messages


TOOLS_CONV_ID = "7a6b5c4d3e2f10918273645546372819"


def sample_tools() -> tuple[Conversation, list[Message]]:
    """A turn with tool calls: two calls in one answer (one unreadable), their results
    (one an error, one denied), and the answer after them."""
    model = "Qwen2.5-0.5B-Instruct-Q4_K_M.gguf"

    def msg(i: int, parent: str | None, role: Role, content: str, **kw: object) -> Message:
        return _msg(i, parent, role, content, **kw).with_(conversation_id=TOOLS_CONV_ID)

    calls = [
        {"id": "call_1", "name": "calculator", "arguments": {"expression": "12345 * 6789"}},
        {"id": "call_2", "name": "python", "arguments": {"code": "print(`x`)\n```"}},
        {
            "id": "call_3",
            "name": "",
            "arguments": {},
            "raw": '{"name": calculator}',
            "error": "Could not read the tool call: not valid JSON (Expecting value).",
        },
    ]
    messages = [
        msg(1, None, Role.USER, "What is 12345 times 6789? <b>Use a tool</b>."),
        msg(
            2,
            "m01",
            Role.ASSISTANT,
            "Let me compute that.",
            model=model,
            finish_reason=FinishReason.TOOL_CALLS,
            completion_tokens=40,
            meta={"tool_calls": calls},
        ),
        msg(
            3,
            "m02",
            Role.TOOL,
            "83810205",
            meta={"tool_call_id": "call_1", "name": "calculator", "seconds": 0.0012},
        ),
        msg(
            4,
            "m03",
            Role.TOOL,
            "The user denied this call.",
            meta={"tool_call_id": "call_2", "name": "python", "denied": True, "seconds": 0.0},
        ),
        msg(
            5,
            "m04",
            Role.TOOL,
            "Could not read the tool call: not valid JSON. Write the call again as valid JSON.\n"
            "```\n<script>alert(1)</script>",
            meta={"tool_call_id": "call_3", "name": "", "is_error": True, "truncated": True},
        ),
        msg(
            6,
            "m05",
            Role.ASSISTANT,
            "12345 × 6789 = **83,810,205**.",
            model=model,
            finish_reason=FinishReason.STOP,
        ),
    ]
    conv = Conversation(
        id=TOOLS_CONV_ID,
        title="A turn with tools",
        created_at=T0,
        updated_at=T0 + 360,
        model_path="/models/" + model,
        current_leaf_id="m06",
    )
    return conv, messages
