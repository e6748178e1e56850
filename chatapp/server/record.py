"""`--record`: an API request and its answer kept as a conversation (on the store thread)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chatapp.core.conversation import Role, title_from
from chatapp.core.store import Store
from chatapp.service.events import TurnFinished

if TYPE_CHECKING:
    from chatapp.server.requests import Call


def record_turn(store: Store, call: Call, finished: TurnFinished, model_path: str = "") -> str:
    """Save the request's messages (or raw prompt) and the answer; returns the
    conversation's id."""
    if call.prompt is not None:
        messages = [{"role": "user", "content": call.prompt}]
    else:
        messages = call.messages
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
    thread = [m for m in messages if m["role"] != "system"]
    first_user = next((m["content"] for m in thread if m["role"] == "user"), "API request")
    reply = finished.message
    with store.transaction():
        conv = store.create_conversation(
            title_from(first_user),
            model_path=model_path or None,
            system_prompt=system,
            meta={"source": "api", "endpoint": "completions" if call.prompt else "chat"},
        )
        parent = None
        for m in thread:
            role = {"user": Role.USER, "assistant": Role.ASSISTANT}.get(m["role"], Role.USER)
            parent = store.add_message(conv.id, role, m["content"], parent_id=parent).id
        store.add_message(
            conv.id,
            Role.ASSISTANT,
            reply.content,
            parent_id=parent,
            thinking=reply.thinking,
            model=reply.model,
            finish_reason=reply.finish_reason,
            prompt_tokens=reply.prompt_tokens,
            completion_tokens=reply.completion_tokens,
            tokens_per_second=reply.tokens_per_second,
        )
    return conv.id
