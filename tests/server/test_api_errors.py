"""Mistakes get OpenAI's error shape and status; keys and CORS guard every route."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import openai
import pytest

from chatapp.core.errors import UserError
from chatapp.server import check_binding, is_loopback
from tests.server.conftest import MODEL_ID, client

pytestmark = pytest.mark.model  # the server holds the real SmolLM2 (no generation here)


def _error(r: httpx.Response, status: int) -> dict:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert err["message"]
    return err


def test_malformed_json_is_a_400(api: str) -> None:
    r = httpx.post(
        f"{api}/chat/completions",
        content=b'{"model": "x", "messages": [',
        headers={"content-type": "application/json"},
    )
    err = _error(r, 400)
    assert err["type"] == "invalid_request_error"
    assert "JSON" in err["message"]
    err = _error(httpx.post(f"{api}/chat/completions", json=["not", "an", "object"]), 400)
    assert "object" in err["message"]


def test_unknown_model_is_a_404(api: str) -> None:
    with pytest.raises(openai.NotFoundError) as e:
        client(api).chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
        )
    assert e.value.code == "model_not_found"
    assert "gpt-4o" in e.value.message
    with pytest.raises(openai.NotFoundError):
        client(api).models.retrieve("gpt-4o")


def test_missing_or_bad_messages_are_400s(api: str) -> None:
    err = _error(httpx.post(f"{api}/chat/completions", json={"model": MODEL_ID}), 400)
    assert err["param"] == "messages"
    with pytest.raises(openai.BadRequestError) as e:
        client(api).chat.completions.create(model=MODEL_ID, messages=[])
    assert "messages" in e.value.message
    with pytest.raises(openai.BadRequestError) as e:
        client(api).chat.completions.create(
            model=MODEL_ID, messages=[{"role": "wizard", "content": "hi"}]
        )
    assert e.value.body["param"] == "messages[0].role"
    err = _error(httpx.post(f"{api}/completions", json={"model": MODEL_ID}), 400)
    assert err["param"] == "prompt"


def test_out_of_range_sampling_is_a_400(api: str) -> None:
    for bad in ({"temperature": 5}, {"top_p": -1}, {"max_tokens": 0}, {"n": 2}, {"stop": 3}):
        body = {"model": MODEL_ID, "messages": [{"role": "user", "content": "hi"}], **bad}
        err = _error(httpx.post(f"{api}/chat/completions", json=body), 400)
        assert err["param"] == next(iter(bad))


def test_oversize_request_is_a_413(serve) -> None:
    url = serve(max_body_bytes=10_000)
    with pytest.raises(openai.APIStatusError) as e:
        client(url).chat.completions.create(
            model=MODEL_ID, messages=[{"role": "user", "content": "x" * 20_000}]
        )
    assert e.value.status_code == 413
    # without a Content-Length (chunked upload) the cap holds as well
    chunks = iter([b'{"model": "x", "messages": "' + b"y" * 6000, b"z" * 6000 + b'"}'])
    json_type = {"content-type": "application/json"}
    _error(httpx.post(f"{url}/chat/completions", content=chunks, headers=json_type), 413)


def test_unknown_route_is_a_404_in_the_error_shape(api: str) -> None:
    _error(httpx.get(f"{api}/engines"), 404)


def test_api_key_is_checked_on_every_route(serve) -> None:
    url = serve(api_key="sekrit")
    with pytest.raises(openai.AuthenticationError):
        client(url, "wrong").models.list()
    with pytest.raises(openai.AuthenticationError):
        client(url, "wrong").chat.completions.create(
            model=MODEL_ID, messages=[{"role": "user", "content": "hi"}]
        )
    for path in ("/models", "/completions", "/nowhere"):
        err = _error(httpx.post(url + path, json={}), 401)
        assert err["code"] == "invalid_api_key"
    assert [m.id for m in client(url, "sekrit").models.list().data] == [MODEL_ID]


def test_cors_is_off_unless_configured(serve) -> None:
    preflight = {
        "Origin": "http://tool.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }
    off = serve()
    r = httpx.options(f"{off}/chat/completions", headers=preflight)
    assert "access-control-allow-origin" not in r.headers
    r = httpx.get(f"{off}/models", headers={"Origin": "http://tool.example"})
    assert "access-control-allow-origin" not in r.headers

    on = serve(cors_origins=("http://tool.example",), api_key="k")
    r = httpx.options(f"{on}/chat/completions", headers=preflight)  # preflight carries no key
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == "http://tool.example"
    r = httpx.get(
        f"{on}/models", headers={"Origin": "http://tool.example", "Authorization": "Bearer k"}
    )
    assert r.headers["access-control-allow-origin"] == "http://tool.example"
    r = httpx.options(f"{on}/chat/completions", headers={**preflight, "Origin": "http://evil"})
    assert "access-control-allow-origin" not in r.headers


def test_binding_beyond_loopback_needs_a_key() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")
    check_binding("127.0.0.1", "")
    check_binding("0.0.0.0", "a key")
    with pytest.raises(UserError, match="API key"):
        check_binding("0.0.0.0", "")


def test_serve_cli_refuses_an_open_host_without_a_key(tmp_path: Path) -> None:
    run_cli = Path(__file__).resolve().parents[1] / "hub" / "run_cli.py"
    r = subprocess.run(
        [sys.executable, str(run_cli), "serve", "--host", "0.0.0.0", "--model", "x.gguf"],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        env={"CHATAPP_API_KEY": "", "CHATAPP_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert r.returncode == 1
    assert r.stderr.strip().splitlines()[-1].startswith("chatapp: error: Serving on 0.0.0.0")


def test_a_failed_turn_is_mapped_by_its_kind_not_its_text(
    api: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server reads the failure's kind: a context-full error whose message says
    nothing of a context is still a 400 context_length_exceeded; a disk-full one a 507."""
    from chatapp.core.errors import ContextFullError, DiskFullError
    from chatapp.service import pipeline

    def full(*_args: object, **_kw: object) -> None:
        raise ContextFullError("Far too long (reworded on purpose).")

    monkeypatch.setattr(pipeline, "fit_context", full)
    with pytest.raises(openai.BadRequestError) as e:
        client(api).chat.completions.create(
            model=MODEL_ID, messages=[{"role": "user", "content": "hi"}]
        )
    assert e.value.code == "context_length_exceeded"
    assert e.value.message.endswith("Far too long (reworded on purpose).")

    def disk(*_args: object, **_kw: object) -> None:
        raise DiskFullError("Out of room (reworded).")

    monkeypatch.setattr(pipeline, "fit_context", disk)
    r = httpx.post(
        f"{api}/chat/completions",
        json={"model": MODEL_ID, "messages": [{"role": "user", "content": "hi"}]},
    )
    assert _error(r, 507)["code"] == "disk_full"
