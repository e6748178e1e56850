"""Guards against a Qt binding that corrupts Python's refcounts.

PySide6 6.12.0 drops a reference to True/False on every Signal.emit(): a long chat
(thousands of coalesced token updates) then aborts the process with
"bool_dealloc: deallocating True or False". pyproject pins below it; this test fails if
a version with the bug comes back.
"""

import sys

from PySide6.QtCore import QObject, Signal


class _Emitter(QObject):
    flag = Signal(bool)
    text = Signal(str, str, str)


def test_emitting_signals_keeps_bool_refcounts(qtbot):
    e = _Emitter()
    got = []
    e.flag.connect(lambda b: got.append(int(b)))
    e.text.connect(lambda *a: got.append(a))
    before = sys.getrefcount(False), sys.getrefcount(True)
    for i in range(200):
        e.flag.emit(i % 2 == 0)
        e.text.emit("r1", "x", "")
    after = sys.getrefcount(False), sys.getrefcount(True)
    assert len(got) == 400 and sum(x for x in got if isinstance(x, int)) == 100
    assert abs(after[0] - before[0]) < 50 and abs(after[1] - before[1]) < 50, (before, after)
