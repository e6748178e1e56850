"""A long imported-looking chat for the context-fitting tests and bench/context_fit.py:
`n` messages (questions and answers alternating) of varied English text."""

from __future__ import annotations

import random
import time

from chatapp.core.conversation import Message, Role, new_id

WORDS = [
    "the",
    "river",
    "a",
    "lighthouse",
    "keeper",
    "walked",
    "along",
    "cold",
    "shore",
    "every",
    "morning",
    "and",
    "counted",
    "ships",
    "while",
    "gulls",
    "circled",
    "above",
    "old",
    "stone",
    "walls",
    "of",
    "harbour",
    "town",
    "where",
    "people",
    "told",
    "stories",
    "about",
    "storms",
    "winter",
    "nights",
    "bread",
    "tea",
    "letters",
    "from",
    "far",
    "away",
    "islands",
    "maps",
    "compass",
    "rope",
    "lantern",
    "oil",
    "wind",
    "rain",
    "sun",
    "tide",
    "sand",
    "boat",
    "net",
    "fish",
    "market",
    "bell",
    "tower",
    "clock",
    "road",
    "hill",
]


def long_chat(conversation_id: str, n: int, words: int = 79, seed: int = 7) -> list[Message]:
    """n messages chained parent to child, user first; about words*1.3 tokens each."""
    rnd = random.Random(seed)
    out: list[Message] = []
    parent = None
    t0 = time.time() - n
    for i in range(n):
        text = f"{i}: " + " ".join(rnd.choice(WORDS) for _ in range(words)) + "."
        role = Role.USER if i % 2 == 0 else Role.ASSISTANT
        m = Message(new_id(), conversation_id, parent, role, text, t0 + i)
        out.append(m)
        parent = m.id
    return out
