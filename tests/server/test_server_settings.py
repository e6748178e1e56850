"""Settings > API server: the values persist (reopening the dialog, restarting the app),
the Models menu's switch serves with them (a real GET /v1/models on 127.0.0.1), start at
launch works, and a host other than loopback without a key is refused, saying why."""

from __future__ import annotations

import socket
from typing import Any

import httpx
import pytest
from PySide6.QtWidgets import QDialogButtonBox

from chatapp.core.settings import Settings
from chatapp.gui.server_settings import ServerSettingsPage, parse_origins
from chatapp.paths import app_paths

EXT = ("chatapp.gui.settings_dialog", "chatapp.gui.server_actions")


@pytest.fixture(autouse=True)
def no_port_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CHATAPP_API_PORT", raising=False)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _page(w: Any) -> tuple[Any, ServerSettingsPage]:
    d = w.settings_actions.show_dialog()
    pages = [p for p in d.pages if isinstance(p, ServerSettingsPage)]
    assert len(pages) == 1
    titles = [d.tabs.tabText(i) for i in range(d.tabs.count())]
    assert "API server" in titles
    return d, pages[0]


def _ok(qtbot: Any, w: Any, d: Any) -> None:
    d.buttons.button(QDialogButtonBox.StandardButton.Ok).click()
    qtbot.waitUntil(lambda: w.settings_actions.dialog is None or not d.isVisible())
    qtbot.wait(10)  # the switch follows the new values on the next turn of the event loop


def _stop(w: Any) -> None:
    w.server_switch.stop()


def test_the_page_shows_the_defaults(qtbot: Any, make_window: Any) -> None:
    w = make_window(extensions=EXT)
    d, page = _page(w)
    assert not page.autostart.isChecked()  # off by default
    assert (page.host.text(), page.port.value(), page.key.text()) == ("127.0.0.1", 8080, "")
    assert page.origins.text() == "" and page.warning.isHidden()
    assert "off" in page.status.text()
    assert w.server_switch.action.text() == "Serve the loaded model on http://127.0.0.1:8080"
    d.reject()


def test_values_persist_across_a_reopen_and_a_restart_and_the_switch_serves_them(
    qtbot: Any, make_window: Any
) -> None:
    port = _free_port()
    w = make_window(extensions=EXT)
    d, page = _page(w)
    page.autostart.setChecked(True)
    page.port.setValue(port)
    page.key.setText("sekret")
    page.origins.setText("http://localhost:3000/, https://example.org")
    _ok(qtbot, w, d)
    s = w.settings
    assert (s.api_autostart, s.api_host, s.api_port, s.api_key) == (
        True,
        "127.0.0.1",
        port,
        "sekret",
    )
    assert s.api_cors_origins == ["http://localhost:3000", "https://example.org"]
    assert Settings.load(app_paths().settings) == s  # saved
    assert w.server_switch.action.text() == f"Serve the loaded model on http://127.0.0.1:{port}"

    d, page = _page(w)  # reopened: the page shows what was saved
    assert (page.autostart.isChecked(), page.port.value(), page.key.text()) == (
        True,
        port,
        "sekret",
    )
    assert page.origins.text() == "http://localhost:3000, https://example.org"
    d.reject()

    # the switch serves on the configured port, with the key and the CORS origin
    w.server_switch.action.trigger()
    assert w.server_switch.action.isChecked()
    url = f"http://127.0.0.1:{port}/v1"
    assert w.server_switch.url == url
    assert httpx.get(f"{url}/models", timeout=10).status_code == 401  # the key is asked
    ok = httpx.get(
        f"{url}/models",
        headers={"Authorization": "Bearer sekret", "Origin": "http://localhost:3000"},
        timeout=10,
    )
    assert ok.status_code == 200 and ok.json()["object"] == "list"
    assert ok.headers["access-control-allow-origin"] == "http://localhost:3000"
    _stop(w)
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/models", timeout=5)
    w.close()

    # a restart: a new window reading the same file starts the server at launch
    w2 = make_window(extensions=EXT)
    try:
        assert w2.settings.api_port == port and w2.settings.api_autostart
        assert w2.server_switch.action.isChecked() and w2.server_switch.url == url
        r = httpx.get(f"{url}/models", headers={"Authorization": "Bearer sekret"}, timeout=10)
        assert r.status_code == 200
        _d, page = _page(w2)
        assert url in page.status.text()
        _d.reject()
    finally:
        _stop(w2)


def test_a_running_server_moves_to_the_new_port_on_ok(qtbot: Any, make_window: Any) -> None:
    first, second = _free_port(), _free_port()
    w = make_window(extensions=EXT)
    w.settings.api_port = first
    switch = w.server_switch
    assert switch.start()
    try:
        assert httpx.get(f"http://127.0.0.1:{first}/v1/models", timeout=10).status_code == 200
        d, page = _page(w)
        assert f"127.0.0.1:{first}" in page.status.text()
        page.port.setValue(second)
        _ok(qtbot, w, d)
        qtbot.waitUntil(lambda: switch.url == f"http://127.0.0.1:{second}/v1")
        assert switch.action.isChecked()
        r = httpx.get(f"http://127.0.0.1:{second}/v1/models", timeout=10)
        assert r.status_code == 200
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{first}/v1/models", timeout=5)
    finally:
        switch.stop()


def test_a_host_beyond_loopback_without_a_key_is_refused_with_a_reason(
    qtbot: Any, make_window: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = _free_port()
    w = make_window(extensions=EXT)
    d, page = _page(w)
    page.host.setText("0.0.0.0")
    page.port.setValue(port)
    assert not page.warning.isHidden()  # said on the page before anything is saved
    assert "API key" in page.warning.text()
    page.key.setText("k")
    assert page.warning.isHidden()
    page.key.setText("")
    _ok(qtbot, w, d)
    assert (w.settings.api_host, w.settings.api_key) == ("0.0.0.0", None)
    assert w.server_switch.action.text() == f"Serve the loaded model on http://0.0.0.0:{port}"

    errors: list[str] = []
    monkeypatch.setattr(w, "show_error", errors.append)
    w.server_switch.action.trigger()
    assert not w.server_switch.action.isChecked() and w.server_switch.url is None
    assert len(errors) == 1
    assert "0.0.0.0" in errors[0] and "reachable from other machines" in errors[0]
    assert "API key" in errors[0]
    with pytest.raises(httpx.ConnectError):  # nothing listens
        httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=5)


def test_start_at_launch_with_an_unsafe_host_stays_off_and_says_why(
    qtbot: Any, make_window: Any
) -> None:
    path = app_paths().ensure().settings
    s = Settings(api_autostart=True, api_host="0.0.0.0", api_port=_free_port())
    s.save(path)
    w = make_window(extensions=EXT)
    assert not w.server_switch.action.isChecked()
    assert w.message_bar.isVisible() and w.message_bar.error
    assert "reachable from other machines" in w.message_bar.label.text()


def test_origins_are_split_on_commas_and_spaces() -> None:
    assert parse_origins(" http://a:1/, https://b\nhttp://c ,, ") == [
        "http://a:1",
        "https://b",
        "http://c",
    ]
    assert parse_origins("") == []
