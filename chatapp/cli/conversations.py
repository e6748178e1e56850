"""`chatapp conversations`: list conversations (pinned first), show one (its active
branch, or with --tree every branch), pin them and tag them. No Qt."""

from __future__ import annotations

import argparse
from collections import defaultdict
from datetime import datetime
from pathlib import Path

from chatapp.cli.common import shown
from chatapp.core.conversation import Conversation, FinishReason, Message, thread
from chatapp.core.errors import UserError
from chatapp.core.store import Store
from chatapp.paths import app_paths

PREVIEW_CHARS = 70
PIN = "📌"


def register(sub: argparse._SubParsersAction) -> None:
    c = sub.add_parser(
        "conversations",
        help="list conversations (pinned first), or show one",
        description="With no ID: list conversations, pinned first, then the most recent. "
        "With an ID (or a unique prefix of one): show its active branch, or with --tree "
        "every branch; --pin, --unpin, --add-tag and --remove-tag change it.",
    )
    c.add_argument("id", nargs="?", help="show (or change) this conversation")
    c.add_argument("-n", "--limit", type=int, default=50, help="list at most N (default 50)")
    c.add_argument("--tag", metavar="TAG", help="list only the conversations tagged TAG")
    c.add_argument(
        "--tree", action="store_true", help="show every message and branch (* marks the active one)"
    )
    c.add_argument("--pin", action="store_true", help="keep the conversation on top of the list")
    c.add_argument("--unpin", action="store_true")
    c.add_argument("--add-tag", metavar="TAG", action="append", default=[])
    c.add_argument("--remove-tag", metavar="TAG", action="append", default=[])
    c.set_defaults(func=conversations)


def open_store() -> Store:
    store = Store(app_paths().ensure().database)
    store.recover_interrupted()
    return store


def conversations(args: argparse.Namespace) -> int:
    changes = args.pin or args.unpin or args.add_tag or args.remove_tag
    if not args.id and (changes or args.tree):
        raise UserError("Give a conversation id for --tree, --pin, --unpin or the tag options.")
    if args.pin and args.unpin:
        raise UserError("--pin and --unpin cannot go together.")
    store = open_store()
    try:
        if not args.id:
            _list(store, args.limit, args.tag)
            return 0
        conv = store.find_conversation(args.id)
        if conv is None:
            raise UserError(f"No conversation with id {args.id}.")
        if changes:
            _change(store, conv, args)
            return 0
        if args.tree:
            _header(store, conv)
            for line in tree_lines(store.messages(conv.id), conv.current_leaf_id):
                print(line)
            return 0
        _header(store, conv)
        for m in store.active_thread(conv.id):
            print(f"\n[{m.role.value}]\n{shown(m.content)}")
        return 0
    finally:
        store.close()


def _list(store: Store, limit: int, tag: str | None) -> None:
    convs = store.list_conversations(limit=limit, tag=tag)
    if tag and not convs:
        known = ", ".join(t for t, _ in store.all_tags()) or "none yet"
        raise UserError(f"No conversation is tagged {tag!r} (tags: {known}).")
    pinned = store.pinned_ids()
    tags = store.tags_of([c.id for c in convs])
    for c in convs:
        when = datetime.fromtimestamp(c.updated_at).strftime("%Y-%m-%d %H:%M")
        flag = f"{PIN} " if c.id in pinned else ""
        labels = "".join(f"  #{t}" for t in tags[c.id])
        print(shown(f"{c.id[:12]}  {when}  {flag}{c.title}{labels}"))


def _header(store: Store, conv: Conversation) -> None:
    pin = f"{PIN} " if conv.id in store.pinned_ids() else ""
    print(shown(f"# {pin}{conv.title}  ({conv.id})"))
    details = []
    if conv.model_path:
        details.append(f"model: {Path(conv.model_path).name}")
    tags = store.tags(conv.id)
    if tags:
        details.append("tags: " + ", ".join(tags))
    if details:
        print(shown("  ".join(details)))
    if conv.system_prompt:
        print(f"\n[system]\n{shown(conv.system_prompt)}")


def _change(store: Store, conv: Conversation, args: argparse.Namespace) -> None:
    if args.pin or args.unpin:
        store.set_pinned(conv.id, args.pin)
    if args.add_tag or args.remove_tag:
        drop = {t.lstrip("#").strip().casefold() for t in args.remove_tag}
        kept = [t for t in store.tags(conv.id) if t.casefold() not in drop]
        store.set_tags(conv.id, kept + args.add_tag)
    pinned = "pinned" if conv.id in store.pinned_ids() else "not pinned"
    tags = ", ".join(store.tags(conv.id)) or "no tags"
    print(shown(f"{conv.id[:12]}  {conv.title}: {pinned}, {tags}"))


def _preview(m: Message) -> str:
    text = " ".join(m.content.split())
    if not text and m.thinking:
        text = "(thinking only) " + " ".join(m.thinking.split())
    if len(text) > PREVIEW_CHARS:
        text = text[: PREVIEW_CHARS - 1] + "…"
    if m.finish_reason is FinishReason.CANCELLED:
        text += "  [stopped]"
    elif m.finish_reason is FinishReason.ERROR:
        text += "  [failed]"
    elif m.finish_reason is FinishReason.STREAMING:
        text += "  [streaming]"
    return text


def tree_lines(messages: list[Message], current_leaf_id: str | None) -> list[str]:
    """Every message as one line: '*' marks the active branch, a message with several
    replies opens one indented branch per reply (├─ / └─), a single reply stays in line."""
    by_id = {m.id: m for m in messages}
    children: dict[str | None, list[Message]] = defaultdict(list)
    for m in messages:  # oldest first
        parent = m.parent_id if m.parent_id in by_id else None
        children[parent].append(m)
    active = {m.id for m in thread(messages, current_leaf_id)}
    width = max((len(m.role.value) for m in messages), default=4)
    lines: list[str] = []
    seen: set[str] = set()
    # (message, indent for its own line, indent for what comes below it)
    roots = children[None]
    stack: list[tuple[Message, str, str]] = []
    if len(roots) == 1:
        stack.append((roots[0], "", ""))
    else:
        for i, r in reversed(list(enumerate(roots))):
            last = i == len(roots) - 1
            stack.append((r, "└─ " if last else "├─ ", "   " if last else "│  "))
    while stack:
        m, head, below = stack.pop()
        if m.id in seen:
            continue
        seen.add(m.id)
        mark = "*" if m.id in active else " "
        lines.append(f"{mark} {head}{m.id[:8]}  {m.role.value:<{width}}  {shown(_preview(m))}")
        kids = children.get(m.id, [])
        if len(kids) == 1:
            stack.append((kids[0], below, below))
        else:
            for i, k in reversed(list(enumerate(kids))):
                last = i == len(kids) - 1
                stack.append(
                    (k, below + ("└─ " if last else "├─ "), below + ("   " if last else "│  "))
                )
    return lines
