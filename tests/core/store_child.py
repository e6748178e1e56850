"""A second process on the same database, for the contention tests (runs this worktree).

python store_child.py DB stream N     wait until an import is under way, then stream
                                      an answer: N saves, each a Store write; prints
                                      JSON with the answer's id and what it saw
python store_child.py DB import ZIP EXIT_AFTER
                                      import ZIP through the batched API and die
                                      (os._exit) after EXIT_AFTER conversations
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.meta_path[:] = [f for f in sys.meta_path if "__editable__" not in getattr(f, "__module__", "")]

from chatapp.core import store
from chatapp.core.conversation import FinishReason, Role
from chatapp.core.export import importers


def stream(db: Path, saves: int) -> None:
    waits: list[str] = []
    s = store.Store(db, on_busy=lambda w: waits.append(w.message))
    # start only once the import has begun, so the two really overlap
    for _ in range(6000):
        if s._db.execute("SELECT count(*) FROM write_batches").fetchone()[0]:
            break
        time.sleep(0.01)
    else:
        raise SystemExit("the import never started")
    conv = s.create_conversation("streamed while importing")
    user = s.add_message(conv.id, Role.USER, "question")
    reply = s.add_message(
        conv.id, Role.ASSISTANT, "", parent_id=user.id, finish_reason=FinishReason.STREAMING
    )
    longest = 0.0
    text = ""
    counts = []  # conversations committed so far, seen after each save
    for i in range(saves):
        text += f"piece {i} "
        t = time.monotonic()
        s.update_message(reply.id, content=text)
        longest = max(longest, time.monotonic() - t)
        counts.append(s.count_conversations())
        time.sleep(0.02)
    s.update_message(reply.id, content=text, finish_reason=FinishReason.STOP)
    importing = s._db.execute("SELECT count(*) FROM write_batches").fetchone()[0] > 0
    s.close()
    print(
        json.dumps(
            {
                "reply": reply.id,
                "text": text,
                "longest_save": longest,
                "import_still_running": importing,
                "counts": counts,
                "busy_messages": waits,
            }
        )
    )


def crash_import(db: Path, src: Path, exit_after: int) -> None:
    store.BATCH_SECONDS = 0.0  # commit after every write: the crash leaves committed rows
    s = store.Store(db)
    done = [0]
    real_create = s.create_conversation

    def create(*a, **kw):  # type: ignore[no-untyped-def]
        if done[0] == exit_after:
            os._exit(9)  # as if killed: no cleanup runs
        done[0] += 1
        return real_create(*a, **kw)

    s.create_conversation = create  # type: ignore[method-assign]
    importers.import_file(s, src)
    raise SystemExit("the import finished before it was meant to die")


if __name__ == "__main__":
    db = Path(sys.argv[1])
    if sys.argv[2] == "stream":
        stream(db, int(sys.argv[3]))
    else:
        crash_import(db, Path(sys.argv[3]), int(sys.argv[4]))
