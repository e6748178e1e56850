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
