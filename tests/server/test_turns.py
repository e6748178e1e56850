"""ApiTurn: the inference thread's events reach the server's loop. A loop that keeps up
sends one piece per token; one that fell behind gets the waiting tokens as one piece."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from chatapp.core.backend import Chunk, ReplyStats
from chatapp.core.conversation import Message, Role
from chatapp.server.turns import ApiTurn, TurnError
from chatapp.service import TurnHandle
from chatapp.service.events import TurnChunk, TurnFailed, TurnFinished


def _chunk(text: str, channel: str = "answer", token_id: int = 1) -> TurnChunk:
    return TurnChunk("t", "", Chunk(text, channel, token_id=token_id, logprob=-0.5))


def _finished(n: int) -> TurnFinished:
    msg = Message("", "", None, Role.ASSISTANT, "", 0.0)
    return TurnFinished("t", "", msg, ReplyStats(completion_tokens=n), 4096)


def _turn(**kw: Any) -> ApiTurn:
    turn = ApiTurn(None, **kw)  # type: ignore[arg-type]  # deltas() never asks the service
    turn.handle = TurnHandle("t", None)
    return turn


def _from_thread(turn: ApiTurn, events: list[Any]) -> None:
    """Every event delivered on another thread before the loop runs again."""
    t = threading.Thread(target=lambda: [turn.listener(e) for e in events])
    t.start()
    t.join()


async def _pieces(turn: ApiTurn) -> list[tuple[str, str, list[str]]]:
    return [(d.channel, d.text, [t.token for t in d.tokens]) async for d in turn.deltas()]


def test_tokens_that_waited_come_as_one_piece_with_every_logprob() -> None:
    async def main() -> list[tuple[str, str, list[str]]]:
        turn = _turn()
        _from_thread(turn, [_chunk("Hel"), _chunk("lo"), _chunk(" you"), _finished(3)])
        pieces = await _pieces(turn)
        assert turn.stats is not None and turn.stats.completion_tokens == 3
        return pieces

    assert asyncio.run(main()) == [("answer", "Hello you", ["Hel", "lo", " you"])]


def test_a_reader_that_keeps_up_gets_one_piece_per_token() -> None:
    async def main() -> tuple[list[str], list[Any]]:
        turn = _turn()
        gen = turn.deltas()
        texts = []
        for text in ("Hel", "lo", " you"):
            _from_thread(turn, [_chunk(text)])
            texts.append((await gen.__anext__()).text)
        _from_thread(turn, [_finished(3)])
        return texts, [d async for d in gen]

    assert asyncio.run(main()) == (["Hel", "lo", " you"], [])


def test_a_batch_keeps_thinking_and_answer_apart_in_order() -> None:
    async def main() -> list[tuple[str, str, list[str]]]:
        turn = _turn()
        events = [_chunk("hm", "thinking"), _chunk(" ok", "thinking"), _chunk("A"), _chunk("B")]
        _from_thread(turn, [*events, _finished(4)])
        return await _pieces(turn)

    assert asyncio.run(main()) == [
        ("thinking", "hm ok", ["hm", " ok"]),
        ("answer", "AB", ["A", "B"]),
    ]


def test_a_stop_sequence_inside_a_batch_ends_the_text_there() -> None:
    async def main() -> tuple[list[tuple[str, str, list[str]]], bool]:
        turn = _turn(stops=("END",))
        _from_thread(turn, [_chunk("one "), _chunk("EN"), _chunk("D two"), _finished(3)])
        pieces = await _pieces(turn)
        assert turn.handle is not None
        return pieces, turn.handle.cancel_event.is_set()

    assert asyncio.run(main()) == ([("answer", "one ", ["one ", "EN", "D two"])], True)


def test_a_failure_after_waiting_tokens_sends_them_first() -> None:
    async def main() -> list[str]:
        turn = _turn()
        _from_thread(turn, [_chunk("a"), _chunk("b"), TurnFailed("t", None, None, "disk full")])
        got = []
        with pytest.raises(TurnError, match="disk full"):
            async for d in turn.deltas():
                got.append(d.text)
        return got

    assert asyncio.run(main()) == ["ab"]


def test_pieces_are_spaced_by_the_stream_interval_the_first_is_never_held() -> None:
    """With a stream interval, tokens that come faster than it go out together; the first
    piece goes at once (time to first token is untouched). Deterministic: the loop's
    timers order the arrivals before the held piece's wait ends."""

    async def main(interval: float) -> list[str]:
        turn = _turn(min_interval=interval)
        gen = turn.deltas()
        _from_thread(turn, [_chunk("a")])
        pieces = [(await gen.__anext__()).text]  # at once
        _from_thread(turn, [_chunk("b")])

        async def later() -> None:
            await asyncio.sleep(0.01)  # well inside the interval
            _from_thread(turn, [_chunk("c"), _finished(3)])

        task = asyncio.create_task(later())
        pieces += [d.text async for d in gen]
        await task
        return pieces

    assert asyncio.run(main(0.2)) == ["a", "bc"]  # "b" waited for the interval, "c" joined
    assert asyncio.run(main(0.0)) == ["a", "b", "c"]  # no interval: each as it comes
