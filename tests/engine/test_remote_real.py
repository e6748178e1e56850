"""RemoteBackend against llama-cpp-python's own OpenAI-compatible server running the
real SmolLM2 on 127.0.0.1: streaming, logprobs, the chat service and the CLI on top,
wrong keys and models, a server killed mid-stream."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from chatapp.core.backend import ChatRequest, ModelRef, TokensUnavailable
from chatapp.core.conversation import FinishReason
from chatapp.core.errors import NetworkError
from chatapp.core.settings import Settings
from chatapp.core.token_engine import SamplingParams
from chatapp.engine.remote import RemoteBackend, list_models
from chatapp.service import ChatService, LoadRequest, TurnOptions
from chatapp.service.events import TurnChunk, TurnFailed, TurnFinished

pytestmark = pytest.mark.model
WAIT = 300
ALIAS = "smol"
HI = [{"role": "user", "content": "What is the capital of France?"}]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LlamaServer:
    """`python -m llama_cpp.server` in its own process group."""

    def __init__(self, model: Path, api_key: str = "") -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        args = [
            sys.executable, "-m", "llama_cpp.server", "--model", str(model),
            "--model_alias", ALIAS, "--host", "127.0.0.1", "--port", str(self.port),
            "--n_threads", "2", "--n_ctx", "2048", "--verbose", "False",
        ]  # fmt: skip
        if api_key:
            args += ["--api_key", api_key]
        self.proc = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        deadline = time.monotonic() + WAIT
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("llama_cpp.server exited")
            try:
                if httpx.get(f"{self.url}/models", headers=headers, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise RuntimeError("llama_cpp.server did not start")

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)


@pytest.fixture(scope="module")
def llama_server(smollm2_path: Path) -> Iterator[LlamaServer]:
    server = LlamaServer(smollm2_path)
    yield server
    server.kill()


def test_list_models(llama_server: LlamaServer) -> None:
    assert list_models(llama_server.url) == [ALIAS]
    # the bare host means its /v1
    assert list_models(llama_server.url.removesuffix("/v1")) == [ALIAS]


def test_streams_a_reply_with_logprobs(llama_server: LlamaServer) -> None:
    backend = RemoteBackend(llama_server.url, ALIAS)
    try:
        assert not backend.capabilities.tokens and not backend.capabilities.logprobs
        with pytest.raises(TokensUnavailable):
            backend.tokenize("hello")
        request = ChatRequest(
            HI, sampling=SamplingParams(temperature=0.0, max_tokens=8, seed=1), logprobs=2
        )
        stream = backend.execute(request, threading.Event())
        chunks = list(stream)
        assert stream.prompt.tokens_known is False and stream.prompt.messages == HI
        assert len([c for c in chunks if c.text]) > 1  # streamed, not in one piece
        assert "".join(c.text for c in chunks).strip() == stream.answer
        assert stream.answer
        with_lp = [c for c in chunks if c.logprob is not None]
        assert with_lp and all(c.logprob <= 0 and len(c.top) >= 1 for c in with_lp)
        assert backend.capabilities.logprobs  # it returned them, so now we say so
        assert stream.stats.finish_reason is FinishReason.LENGTH
    finally:
        backend.close()


def test_the_service_chats_with_a_remote_model(llama_server: LlamaServer, tmp_path: Path) -> None:
    service = ChatService(tmp_path / "chat.sqlite3", Settings())
    try:
        ref = ModelRef(ALIAS, endpoint=llama_server.url)
        loaded = service.load(LoadRequest(ref)).result(WAIT)
        assert loaded.capabilities.tokens is False
        opts = TurnOptions(sampling=SamplingParams(temperature=0.0, max_tokens=10, seed=2))
        result = service.send(None, "Name a colour.", options=opts).result(WAIT)
        assert isinstance(result, TurnFinished), result
        assert result.message.content
        conv = service.read(lambda s: s.get_conversation(result.conversation_id)).result()
        assert conv.model_path == f"remote:{llama_server.url}#{ALIAS}"  # remembers its backend
        assert result.message.meta["receipt"]["tokens_known"] is False
        with pytest.raises(TokensUnavailable, match="does not provide"):
            service.tokenize("hi").result(WAIT)
    finally:
        service.shutdown()


def test_unknown_model_fails_at_load(llama_server: LlamaServer) -> None:
    with pytest.raises(NetworkError, match="has no model 'gpt-9'.*smol"):
        RemoteBackend(llama_server.url, "gpt-9")


def test_a_wrong_api_key_is_one_line(smollm2_path: Path) -> None:
    server = LlamaServer(smollm2_path, api_key="right")
    try:
        with pytest.raises(NetworkError, match=r"refused the API key \(401\)"):
            RemoteBackend(server.url, ALIAS, api_key="wrong")
        RemoteBackend(server.url, ALIAS, api_key="right").close()
    finally:
        server.kill()


def test_a_server_killed_mid_stream_keeps_what_came(smollm2_path: Path, tmp_path: Path) -> None:
    server = LlamaServer(smollm2_path)
    service = ChatService(tmp_path / "chat.sqlite3", Settings())
    try:
        service.load(LoadRequest(ModelRef(ALIAS, endpoint=server.url))).result(WAIT)
        seen: list[str] = []

        def listener(event: object) -> None:
            if isinstance(event, TurnChunk) and event.chunk.text:
                seen.append(event.chunk.text)
                if len(seen) == 6:
                    server.kill()

        opts = TurnOptions(sampling=SamplingParams(temperature=0.0, max_tokens=400))
        result = service.send(
            None, "Write a long story about a lighthouse.", options=opts, listener=listener
        ).result(WAIT)
        assert isinstance(result, TurnFailed), result
        assert "broke off" in result.error or "Cannot reach" in result.error
        assert len(result.error.splitlines()) == 1
        assert result.message_id is not None  # the partial answer is kept
        kept = service.read(lambda s: s.get_message(result.message_id)).result()
        assert kept.finish_reason is FinishReason.ERROR
        assert kept.content and kept.content in "".join(seen).strip()
        thread = service.read(lambda s: s.active_thread(result.conversation_id)).result()
        assert thread[0].content == "Write a long story about a lighthouse."  # typed text kept
    finally:
        service.shutdown()
        server.kill()


def test_cli_chat_with_a_backend(llama_server: LlamaServer, tmp_path: Path) -> None:
    run_cli = Path(__file__).resolve().parents[1] / "hub" / "run_cli.py"
    env = {**os.environ, "CHATAPP_HOME": str(tmp_path / "home")}
    argv = [sys.executable, str(run_cli), "chat", "--backend", llama_server.url]
    argv += ["--backend-model", ALIAS, "--max-tokens", "8", "--temperature", "0", "Say hello."]
    r = subprocess.run(
        argv,
        check=False,
        capture_output=True,
        text=True,
        timeout=WAIT,
        env=env,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip()
    assert "[conversation" in r.stderr
    bad = subprocess.run(
        [sys.executable, str(run_cli), "chat", "--backend", llama_server.url, "hi"],
        check=False,
        capture_output=True,
        text=True,
        timeout=WAIT,
        env=env,
    )
    assert bad.returncode == 1
    assert "--backend-model" in bad.stderr
