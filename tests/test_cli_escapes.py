"""Stored text with terminal escape sequences (an imported title that would retitle the
terminal and clear the screen, an answer that paints and rewrites lines) is printed
escaped by every CLI command that shows it, over a real database under CHATAPP_HOME;
`chatapp chat` escapes what a server on 127.0.0.1 streams, and the error line what it
says."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from chatapp import cli
from chatapp.cli.common import shown
from chatapp.core.conversation import FinishReason, Role
from chatapp.core.store import Store
from chatapp.paths import app_paths
from chatapp.server.run import ServerThread

TITLE = "\x1b]0;pwned\x07Evil \x1b[2Jtitle"
ANSWER = "Plain \x1b[31mred\x1b[0m words\rOVERWRITTEN \x9b1m and a\tbell\x07"
SYSTEM = "Be \x1b[8mhidden\x1b[0m."
RAW = ("\x1b", "\x07", "\r", "\x9b")


def _clean(out: str) -> str:
    for c in RAW:
        assert c not in out, (c, out)
    return out


def _strings(value: object) -> set[str]:
    if isinstance(value, str):
        return {value}
    items = value.values() if isinstance(value, dict) else value
    if not isinstance(items, (list, tuple, type({}.values()))):
        return set()
    return set().union(*(_strings(v) for v in items))


@pytest.fixture
def conversation() -> str:
    with Store(app_paths().ensure().database) as s:
        c = s.create_conversation(TITLE, system_prompt=SYSTEM)
        q = s.add_message(c.id, Role.USER, "Say something pwned-ish.")
        s.add_message(c.id, Role.ASSISTANT, ANSWER, parent_id=q.id, finish_reason=FinishReason.STOP)
        return c.id


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.run(list(args))
    out, err = capsys.readouterr()
    return code, _clean(out), _clean(err)


def test_shown_writes_control_characters_out_and_keeps_lines() -> None:
    assert shown("a\x1b[2Jb\x07c\r\nd\te\x00\x7f\x9b") == "a\\e[2Jb\\ac\nd\te\\0\\x7f\\x9b"


def test_every_listing_of_stored_text_is_escaped(conversation: str, capsys) -> None:
    code, out, _ = _run(capsys, "conversations")
    assert code == 0 and "\\e]0;pwned\\aEvil \\e[2Jtitle" in out
    code, out, _ = _run(capsys, "conversations", conversation)
    assert code == 0 and "\\e]0;pwned" in out
    assert "Plain \\e[31mred\\e[0m words\\rOVERWRITTEN \\x9b1m and a\tbell\\a" in out
    assert "Be \\e[8mhidden\\e[0m." in out
    code, out, _ = _run(capsys, "conversations", conversation, "--tree")
    assert code == 0 and "Plain \\e[31mred" in out
    code, out, _ = _run(capsys, "conversations", conversation, "--pin")
    assert code == 0 and "\\e]0;pwned" in out
    code, out, _ = _run(capsys, "search", "pwned")
    assert code == 0 and "\\e]0;" in out
    code, out, _ = _run(capsys, "search", "overwritten")
    assert code == 0 and "\\e]0;pwned" in out and "\\e[31mred" in out


@pytest.mark.parametrize("fmt", ["md", "txt", "html", "json"])
def test_export_to_stdout_is_escaped(conversation: str, capsys, fmt: str) -> None:
    code, out, _ = _run(capsys, "export", conversation, "-f", fmt, "-o", "-")
    assert code == 0 and "OVERWRITTEN" in out
    if fmt == "json":  # JSON escapes control characters itself: the export stays exact
        assert TITLE in _strings(json.loads(out)) and ANSWER in _strings(json.loads(out))
    else:
        assert "\\e[31mred" in out


def test_export_to_a_file_keeps_the_exact_text(conversation: str, capsys, tmp_path: Path) -> None:
    dest = tmp_path / "out.md"
    code, out, _ = _run(capsys, "export", conversation, "-o", str(dest))
    assert code == 0 and "\\e]0;pwned" in out  # the "Exported ..." line
    assert "Plain \x1b[31mred\x1b[0m words" in dest.read_text(encoding="utf-8")


@pytest.fixture
def painting_server() -> Iterator[str]:
    """Streams an answer with escape sequences; a second path fails with one."""

    async def chat(request: Request) -> Response:
        if request.url.path.startswith("/bad"):
            return JSONResponse({"error": {"message": "boom \x1b[2J gone"}}, status_code=500)

        def body() -> Iterator[str]:
            choice = {"index": 0, "delta": {"content": ANSWER}, "finish_reason": "stop"}
            yield f"data: {json.dumps({'choices': [choice]})}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(body(), media_type="text/event-stream")

    async def models(request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": "m", "object": "model"}]})

    app = Starlette(
        routes=[
            Route("/{p}/v1/models", models),
            Route("/{p}/v1/chat/completions", chat, methods=["POST"]),
        ]
    )
    s = ServerThread(app).start()
    yield s.url
    s.stop()


def test_chat_prints_a_streamed_answer_and_an_error_escaped(painting_server: str, capsys) -> None:
    remote = ["--backend-model", "m", "--backend"]
    code, out, _ = _run(capsys, "chat", *remote, f"{painting_server}/ok/v1", "Paint.")
    assert code == 0 and "Plain \\e[31mred\\e[0m words\\rOVERWRITTEN" in out
    with Store(app_paths().database) as s:
        conv = s.list_conversations()[0]
        assert s.active_thread(conv.id)[-1].content == ANSWER  # stored exactly
    code, _, err = _run(capsys, "chat", *remote, f"{painting_server}/bad/v1", "Paint.")
    assert code == 1 and "answered 500: boom \\e[2J gone" in err
