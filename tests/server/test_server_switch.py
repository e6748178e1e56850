"""The window's switch: Models > Serve the loaded model on http://127.0.0.1:PORT serves
the window's own service; off stops it; a busy port says so and stays off."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest

from tests.server.conftest import client


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_switch_serves_the_windows_model(
    make_window,
    fake_model_file: Path,
    qtbot,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    port = _free_port()
    monkeypatch.setenv("CHATAPP_API_PORT", str(port))
    w = make_window(extensions=("chatapp.gui.server_actions",), reply="Served by the window.")
    switch = w.server_switch
    assert not switch.action.isChecked()  # off by default
    assert switch.action.text() == f"Serve the loaded model on http://127.0.0.1:{port}"
    with qtbot.waitSignal(w.session.model_loaded, timeout=10_000):
        w.session.open_model(str(fake_model_file))

    switch.action.trigger()
    assert switch.action.isChecked()
    url = f"http://127.0.0.1:{port}/v1"
    assert switch.url == url
    r = client(url).chat.completions.create(
        model="fake-model", messages=[{"role": "user", "content": "hi"}]
    )
    assert r.choices[0].message.content == "Served by the window."

    switch.action.trigger()
    assert not switch.action.isChecked()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/models", timeout=5)


def test_a_busy_port_is_an_error_and_the_switch_stays_off(
    make_window,
    qtbot,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        monkeypatch.setenv("CHATAPP_API_PORT", str(port))
        w = make_window(extensions=("chatapp.gui.server_actions",))
        errors: list[str] = []
        monkeypatch.setattr(w, "show_error", errors.append)
        w.server_switch.action.trigger()
        assert not w.server_switch.action.isChecked()
        assert errors and f"127.0.0.1:{port}" in errors[0]
