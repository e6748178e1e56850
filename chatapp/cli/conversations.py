"""`chatapp conversations`: list conversations (pinned first), show one (its active
branch, or with --tree every branch); rename, pin, tag, switch a branch, delete to the
trash and restore, through the chat service's conversation commands (the window's own).
No Qt."""

from __future__ import annotations

import argparse
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from chatapp.cli.chat_settings_cli import change_settings, describe
from chatapp.cli.common import shown
from chatapp.core.conversation import Conversation, FinishReason, Message, thread
from chatapp.core.errors import UserError
from chatapp.core.settings import Settings
from chatapp.core.store import Store
from chatapp.core.store.trash import CONVERSATION
from chatapp.paths import app_paths
from chatapp.service import ChatService

PREVIEW_CHARS = 70
PIN = "📌"


def register(sub: argparse._SubParsersAction) -> None:
    c = sub.add_parser(
        "conversations",
        help="list conversations (pinned first), show one, or change it",
        description="With no ID: list conversations, pinned first, then the most recent. "
        "With an ID (or a unique prefix of one): show its active branch, or with --tree "
        "every branch; --rename, --pin, --unpin, --add-tag, --remove-tag, --branch, --delete "
        "and --delete-message change it. A delete goes to the trash: --deleted lists it, "
        "--restore ID undoes a delete (also after a restart), --purge-deleted empties it.",
    )
    c.add_argument(
        "id",
        nargs="?",
        help="show (or change) this conversation; with --restore: the deleted chat or message",
    )
    c.add_argument("-n", "--limit", type=int, default=50, help="list at most N (default 50)")
    c.add_argument("--tag", metavar="TAG", help="list only the conversations tagged TAG")
    c.add_argument(
        "--tree", action="store_true", help="show every message and branch (* marks the active one)"
    )
    c.add_argument("--rename", metavar="TITLE", help="give the conversation a new title")
    c.add_argument("--pin", action="store_true", help="keep the conversation on top of the list")
    c.add_argument("--unpin", action="store_true")
    c.add_argument("--add-tag", metavar="TAG", action="append", default=[])
    c.add_argument("--remove-tag", metavar="TAG", action="append", default=[])
    c.add_argument(
        "--set",
        metavar="FIELD=VALUE",
        action="append",
        default=[],
        help="this chat's own setting: a sampling field (temperature, top_p, top_k, min_p, "
        "repeat_penalty, seed, max_tokens), system_prompt or context_policy (stop, "
        "drop_oldest); repeatable",
    )
    c.add_argument(
        "--unset", metavar="FIELD", action="append", default=[], help="back to the default"
    )
    c.add_argument(
        "--branch",
        metavar="MESSAGE",
        help="make the branch through this message (id or prefix, see --tree) the active one",
    )
    c.add_argument(
        "--delete", action="store_true", help="move the conversation to the trash (undo: --restore)"
    )
    c.add_argument(
        "--delete-message",
        metavar="MESSAGE",
        help="move this message and its replies to the trash (undo: --restore)",
    )
    c.add_argument("--deleted", action="store_true", help="list what is in the trash, latest first")
    c.add_argument(
        "--restore",
        action="store_true",
        help="undo the delete of ID (a deleted conversation, message or trash entry)",
    )
    c.add_argument(
        "--purge-deleted",
        action="store_true",
        help="empty the trash: what was deleted is gone for good",
    )
    c.set_defaults(func=conversations)


def open_store() -> Store:
    store = Store(app_paths().ensure().database)
    store.recover_interrupted()
    return store


@contextmanager
def _service() -> Iterator[ChatService]:
    """The chat service, for its conversation commands (service.conversations): the
    CLI's edits are the window's, saved the same way."""
    paths = app_paths().ensure()
    service = ChatService(paths.database, Settings.load(paths.settings))
    try:
        yield service
    finally:
        service.shutdown()


def _edits(args: argparse.Namespace) -> list[str]:
    """The options given that change the conversation, as --names."""
    given = {
        "--rename": args.rename is not None,
        "--pin": args.pin,
        "--unpin": args.unpin,
        "--add-tag": bool(args.add_tag),
        "--remove-tag": bool(args.remove_tag),
        "--branch": bool(args.branch),
        "--delete": args.delete,
        "--delete-message": bool(args.delete_message),
    }
    return [name for name, on in given.items() if on]


def conversations(args: argparse.Namespace) -> int:
    changes = _edits(args)
    deletes = [c for c in changes if c.startswith("--delete")]
    trash_ops = [o for o in ("deleted", "restore", "purge_deleted") if getattr(args, o)]
    if len(trash_ops) > 1 or (trash_ops and (changes or args.tree)):
        raise UserError("--deleted, --restore and --purge-deleted go alone.")
    if args.restore and not args.id:
        raise UserError("Give the id of the deleted conversation or message for --restore.")
    if (args.deleted or args.purge_deleted) and args.id:
        raise UserError("--deleted and --purge-deleted take no conversation id.")
    if not args.id and (changes or args.tree or args.set or args.unset):
        raise UserError(
            "Give a conversation id for --tree, --rename, --pin, --unpin, --branch, the delete "
            "or the tag options."
        )
    if args.pin and args.unpin:
        raise UserError("--pin and --unpin cannot go together.")
    if deletes and len(changes) > 1:
        raise UserError(f"{deletes[0]} goes alone.")
    if args.rename is not None and not args.rename.strip():
        raise UserError("--rename needs a title.")
    if args.deleted:
        return _list_deleted(args.limit)
    if args.restore or args.purge_deleted:
        with _service() as service:
            if args.restore:
                _restore(service, args.id)
            else:
                n = service.conversations.purge_deleted().result()
                print(f"Emptied the trash: {n} delete(s) are gone for good.")
        return 0
    store = open_store()
    try:
        if not args.id:
            _list(store, args.limit, args.tag)
            return 0
        conv = store.find_conversation(args.id)
        if conv is None:
            hint = ""
            if store.find_trash(args.id) is not None:
                hint = " It is in the trash: chatapp conversations --restore " + args.id
            raise UserError(f"No conversation with id {args.id}.{hint}")
        if args.set or args.unset:
            with _service() as service:
                chat, system = change_settings(service, conv, args.set, args.unset)
            print(describe(chat, system))
            if not changes:
                return 0
        if changes:
            with _service() as service:
                _change(store, service, conv, args)
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


def _list_deleted(limit: int) -> int:
    store = open_store()
    try:
        entries = store.trash_entries(limit=limit)
    finally:
        store.close()
    if not entries:
        print("The trash is empty.")
        return 0
    for e in entries:
        when = datetime.fromtimestamp(e.deleted_at).strftime("%Y-%m-%d %H:%M")
        if e.kind == CONVERSATION:
            what = f"chat {e.conversation_id[:12]}  {e.title}  ({e.message_count} messages)"
        else:
            n = e.message_count
            what = (
                f"{n} message{'s' if n != 1 else ''} {(e.message_id or '')[:8]} of"
                f" {e.conversation_id[:12]}  {e.title}: {e.preview}"
            )
        print(f"{e.id[:12]}  {when}  {what}")
    return 0


def _restore(service: ChatService, key: str) -> None:
    entry = service.conversations.find_deleted(key).result()
    if entry is None:
        raise UserError(f"Nothing deleted has the id {key} (see chatapp conversations --deleted).")
    service.conversations.restore(entry.id).result()
    if entry.kind == CONVERSATION:
        print(f"Restored {entry.conversation_id[:12]}  {entry.title}")
    else:
        n = entry.message_count
        print(
            f"Restored {n} message{'s' if n != 1 else ''} in"
            f" {entry.conversation_id[:12]}  {entry.title}"
        )


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


def _change(
    store: Store, service: ChatService, conv: Conversation, args: argparse.Namespace
) -> None:
    commands = service.conversations
    if args.delete:
        entry = commands.delete([conv.id]).result()
        if entry:
            print(f"Deleted {conv.id[:12]}  {conv.title}")
            print(f"  undo: chatapp conversations --restore {conv.id[:12]}")
        return
    if args.delete_message:
        msg = _find_message(store, conv, args.delete_message)
        deleted = commands.delete_message(msg.id).result()
        if deleted is not None:
            n = deleted.message_count
            print(f"Deleted {n} message{'s' if n != 1 else ''} of {conv.id[:12]}  {conv.title}")
            print(f"  undo: chatapp conversations --restore {msg.id[:12]}")
        return
    if args.rename is not None:
        conv = commands.rename(conv.id, args.rename).result()
    if args.pin or args.unpin:
        commands.set_pinned([conv.id], args.pin).result()
    if args.add_tag or args.remove_tag:
        commands.change_tags(conv.id, args.add_tag, args.remove_tag).result()
    if args.branch:
        msg = _find_message(store, conv, args.branch)
        commands.show_branch_of(msg.id).result()
    pinned = "pinned" if conv.id in store.pinned_ids() else "not pinned"
    tags = ", ".join(store.tags(conv.id)) or "no tags"
    print(shown(f"{conv.id[:12]}  {conv.title}: {pinned}, {tags}"))


def _find_message(store: Store, conv: Conversation, key: str) -> Message:
    """A message of this conversation by id or unique prefix (as --tree shows them)."""
    hits = [m for m in store.messages(conv.id) if m.id.startswith(key.strip())]
    if len(hits) != 1 or not key.strip():
        raise UserError(
            f"No message {key} in this conversation"
            + (" (the prefix matches several)" if len(hits) > 1 else "")
            + f": see chatapp conversations {conv.id[:12]} --tree"
        )
    return hits[0]


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
