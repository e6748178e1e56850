"""The conversation tree: versions of a message, the branch to show, deletes that undo.

Every edit or regenerate adds a sibling (same parent), so a message's versions are its
siblings in creation order. Choosing a version shows the newest leaf under it, so the
rest of the thread follows that version. Pure functions over one conversation's messages
(all branches, as `Store.messages` returns them); the caller applies results to the store.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Generic, NamedTuple, Protocol, TypeVar

from chatapp.core.conversation import Message


class Node(Protocol):
    """What the tree needs of a message (a Message, or a Link when that is all there is)."""

    @property
    def id(self) -> str: ...
    @property
    def conversation_id(self) -> str: ...
    @property
    def parent_id(self) -> str | None: ...
    @property
    def created_at(self) -> float: ...


class Link(NamedTuple):
    """A message's place in the tree without its text (Store.message_links): enough to
    count versions and pick branches in a long conversation cheaply."""

    id: str
    conversation_id: str
    parent_id: str | None
    created_at: float


N = TypeVar("N", bound=Node)


@dataclass(frozen=True)
class Deletion:
    """What a delete removes and how to put it back.

    `messages` are parents first, so re-inserting them in order satisfies the foreign
    keys; `leaf_before` is the conversation's current leaf before the delete and
    `leaf_after` the one to select after it (None: nothing left to show)."""

    conversation_id: str
    message_id: str
    messages: tuple[Message, ...]
    leaf_before: str | None
    leaf_after: str | None


class Tree(Generic[N]):
    """One conversation's messages (or links) indexed by id and by parent."""

    def __init__(self, messages: Iterable[N]) -> None:
        self.by_id: dict[str, N] = {}
        self.children: dict[str | None, list[N]] = {}
        order: dict[str, int] = {}
        for i, m in enumerate(messages):
            self.by_id[m.id] = m
            order[m.id] = i
        for m in self.by_id.values():
            parent = m.parent_id if m.parent_id in self.by_id else None
            self.children.setdefault(parent, []).append(m)
        for kids in self.children.values():  # versions in creation order, ties by input order
            kids.sort(key=lambda m: (m.created_at, order[m.id]))
        self._order = order

    def siblings(self, message_id: str) -> list[N]:
        """The versions of a message (itself included), oldest first; [] if unknown."""
        m = self.by_id.get(message_id)
        if m is None:
            return []
        parent = m.parent_id if m.parent_id in self.by_id else None
        return list(self.children.get(parent, []))

    def version(self, message_id: str) -> tuple[int, int]:
        """(1-based index among its versions, number of versions); (0, 0) if unknown."""
        sibs = self.siblings(message_id)
        ids = [s.id for s in sibs]
        return (ids.index(message_id) + 1, len(ids)) if message_id in ids else (0, 0)

    def versions(self, message_ids: Iterable[str]) -> dict[str, tuple[int, int]]:
        """version() for each id (a shown thread), leaving out messages with one version."""
        out = {}
        for mid in message_ids:
            v = self.version(mid)
            if v[1] > 1:
                out[mid] = v
        return out

    def subtree(self, message_id: str) -> list[N]:
        """The message and everything under it, parents before children."""
        root = self.by_id.get(message_id)
        if root is None:
            return []
        out: list[N] = []
        seen: set[str] = set()
        queue = [root]
        while queue:
            m = queue.pop(0)
            if m.id in seen:
                continue
            seen.add(m.id)
            out.append(m)
            queue.extend(self.children.get(m.id, []))
        return out

    def newest_leaf(self, message_id: str) -> str | None:
        """The leaf under (or at) a message that was written last: the branch to show
        when that message's version is chosen."""
        leaves = [m for m in self.subtree(message_id) if not self.children.get(m.id)]
        if not leaves:
            return None
        return max(leaves, key=lambda m: (m.created_at, self._order[m.id])).id

    def switch(self, message_id: str, step: int) -> str | None:
        """The leaf to select to show the version `step` away from `message_id` (-1 the
        previous, +1 the next); None if there is no such version."""
        sibs = self.siblings(message_id)
        ids = [s.id for s in sibs]
        if message_id not in ids:
            return None
        j = ids.index(message_id) + step
        if not 0 <= j < len(ids):
            return None
        return self.newest_leaf(ids[j])

    def plan_delete(
        self: Tree[Message], message_id: str, current_leaf_id: str | None
    ) -> Deletion | None:
        """Delete a message with its replies (all their versions). If the shown branch
        goes through it, show a neighbouring version instead (the previous one, else the
        next), else its parent. None if the message is unknown. Needs whole Messages
        (the undo puts them back)."""
        doomed = self.subtree(message_id)
        if not doomed:
            return None
        conv = doomed[0].conversation_id
        doomed_ids = {m.id for m in doomed}
        after = current_leaf_id
        if current_leaf_id is None or current_leaf_id in doomed_ids:
            sibs = [s.id for s in self.siblings(message_id)]
            i = sibs.index(message_id)
            neighbour = sibs[i - 1] if i > 0 else (sibs[i + 1] if i + 1 < len(sibs) else None)
            if neighbour is not None:
                after = self.newest_leaf(neighbour)
            else:
                parent = self.by_id[message_id].parent_id
                after = parent if parent in self.by_id else None
        return Deletion(conv, message_id, tuple(doomed), current_leaf_id, after)
