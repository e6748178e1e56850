"""One turn, one set of rules (issue 17): settings resolved in layers wherever a chat is
continued, load settings resolved the same for the window, `chatapp chat` and `chatapp
serve`, and every kind of stored turn leaves a receipt that `chatapp prompt` verifies.
Real processes, the real SmolLM2."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from chatapp.core.chat_settings import HARDWARE_KEY, set_model_entry
from chatapp.core.conversation import Role
from chatapp.core.receipt import Receipt
from chatapp.core.settings import Settings
from chatapp.core.store import Store
from chatapp.paths import app_paths

pytestmark = pytest.mark.model
RUN_CLI = Path(__file__).resolve().parents[1] / "hub" / "run_cli.py"


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(RUN_CLI), *args], capture_output=True, text=True, timeout=600
    )


def _cid(stderr: str) -> str:
    m = re.search(r"\[conversation (\w+)", stderr)
    assert m, stderr
    return m.group(1)


def _last_answer(cid: str) -> tuple[Receipt, str]:
    with Store(app_paths().database) as store:
        conv = store.find_conversation(cid)
        assert conv is not None
        answer = store.active_thread(conv.id)[-1]
        assert answer.role is Role.ASSISTANT
        receipt = Receipt.from_dict(answer.meta["receipt"])
        assert receipt is not None
        return receipt, answer.id


def test_chat_settings_set_from_the_cli_are_used_by_the_next_cli_turn(smollm2_path: Path) -> None:
    first = cli("chat", "--model", str(smollm2_path), "--max-tokens", "6", "--threads", "2", "Hi")
    assert first.returncode == 0, first.stderr
    cid = _cid(first.stderr)
    receipt, _ = _last_answer(cid)
    assert receipt.sources["temperature"] == "app" and receipt.sources["max_tokens"] == "caller"

    # the chat's own settings, checked against the panel's ranges
    bad = cli("conversations", cid, "--set", "temperature=9")
    assert bad.returncode == 1 and "temperature must be between 0 and 5" in bad.stderr
    assert "Traceback" not in bad.stderr
    changed = cli(
        "conversations",
        cid,
        "--set",
        "temperature=0",
        "--set",
        "system_prompt=Answer like a pirate.",
        "--set",
        "top_k=7",
        "--set",
        "context_policy=drop-oldest",
    )
    assert changed.returncode == 0, changed.stderr
    assert "temperature=0" in changed.stdout and "drop_oldest" in changed.stdout

    # continued from the CLI with no sampling flags: the chat's own values, said to be the chat's
    second = cli("chat", "-c", cid, "--max-tokens", "6", "--threads", "2", "Who are you?")
    assert second.returncode == 0, second.stderr
    receipt, mid = _last_answer(cid)
    assert receipt.sampling["temperature"] == 0 and receipt.sources["temperature"] == "chat"
    assert receipt.sampling["top_k"] == 7 and receipt.sources["top_k"] == "chat"
    assert receipt.sources["system_prompt"] == "chat"
    assert receipt.context_policy == "drop_oldest" and receipt.sources["context_policy"] == "chat"
    prompt = cli("prompt", "--conversation", cid, "--message", mid)
    assert prompt.returncode == 0, prompt.stderr  # the receipt verifies
    with Store(app_paths().database) as store:
        ids = store.prompt_tokens(mid)
    shown = cli("prompt", "--conversation", cid)
    assert "Answer like a pirate." in shown.stdout and ids

    # a flag overrides only its own field
    third = cli(
        "chat", "-c", cid, "--temperature", "0.5", "--max-tokens", "6", "--threads", "2", "Ok"
    )
    assert third.returncode == 0, third.stderr
    receipt, _ = _last_answer(cid)
    assert receipt.sampling["temperature"] == 0.5 and receipt.sources["temperature"] == "caller"
    assert receipt.sampling["top_k"] == 7 and receipt.sources["top_k"] == "chat"

    # unset: back to the layers below
    cli("conversations", cid, "--unset", "top_k")
    fourth = cli("chat", "-c", cid, "--max-tokens", "4", "--threads", "2", "Bye")
    assert fourth.returncode == 0, fourth.stderr
    receipt, _ = _last_answer(cid)
    assert receipt.sources["top_k"] == "app" and receipt.sources["temperature"] == "chat"


def test_flags_are_checked_like_the_panel(smollm2_path: Path) -> None:
    r = cli("chat", "--model", str(smollm2_path), "--top-p", "1.5", "Hi")
    assert r.returncode == 1 and "top_p must be between 0 and 1" in r.stderr


def _model_context(limit: int, model: Path) -> None:
    paths = app_paths().ensure()
    settings = Settings.load(paths.settings)
    set_model_entry(settings.extra, HARDWARE_KEY, model.name, {"context_limit": limit})
    settings.save(paths.settings)


def test_a_models_own_context_length_is_used_by_chat_and_serve(smollm2_path: Path) -> None:
    # a context of 512 tokens for this model (as the window's panel saves it; the app's
    # is 4096): a long prompt no longer fits, in `chatapp chat` ...
    _model_context(512, smollm2_path)
    long = "word " * 700
    r = cli("chat", "--model", str(smollm2_path), "--max-tokens", "4", long)
    assert r.returncode == 3, r.stderr  # context full has its own exit code
    assert "context holds 512" in r.stderr
    # ... and in `chatapp serve`
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ)
    proc = subprocess.Popen(
        [sys.executable, str(RUN_CLI), "serve", "--model", str(smollm2_path), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/v1/models", timeout=2) as resp:
                    model_id = json.load(resp)["data"][0]["id"]
                break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.3)
        body = json.dumps(
            {"model": model_id, "messages": [{"role": "user", "content": long}], "max_tokens": 4}
        ).encode()
        req = urllib.request.Request(
            f"{url}/v1/chat/completions", body, {"Content-Type": "application/json"}
        )
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(req, timeout=120)
        assert err.value.code == 400
        payload = json.load(err.value)
        assert payload["error"]["code"] == "context_length_exceeded"
        assert "context holds 512" in payload["error"]["message"]
    finally:
        proc.terminate()
        proc.wait(30)


def test_every_stored_kind_of_turn_leaves_a_receipt_that_verifies(smollm2_path: Path) -> None:
    """A send, Continue, regenerate and branch-from-alternative run through the same
    pipeline; `chatapp prompt --conversation ID --message MID` re-renders each answer's
    prompt in a new process and checks it against the receipt."""
    from chatapp.core.backend import ModelRef
    from chatapp.core.conversation import FinishReason
    from chatapp.service import ChatService, TurnOptions
    from chatapp.service.events import TurnFinished

    service = ChatService(app_paths().ensure().database, Settings())
    try:
        service.load(service.load_request(ModelRef.local(smollm2_path), n_threads=2)).result(300)
        short = TurnOptions(overrides={"max_tokens": 5, "seed": 3, "temperature": 0.0})
        sent = service.send(None, "Count from one to ten in words.", options=short).result(300)
        assert isinstance(sent, TurnFinished), sent
        assert sent.message.finish_reason is FinishReason.LENGTH
        cid, first = sent.conversation_id, sent.message
        more = TurnOptions(overrides={"max_tokens": 6, "temperature": 0.0})
        cont = service.continue_answer(first.id, options=more).result(300)
        assert isinstance(cont, TurnFinished), cont
        assert cont.message.id == first.id and cont.message.content.startswith(first.content)
        regen = service.regenerate(cid, options=short).result(300)
        assert isinstance(regen, TurnFinished), regen
        trace_len = 2
        branch = service.branch_from(regen.message.id, trace_len, 28, options=short).result(300)
        assert isinstance(branch, TurnFinished), branch
        answers = [cont.message, regen.message, branch.message]
    finally:
        service.shutdown()
    # a continued answer is one answer: its receipt is its question's prompt's
    assert cont.message.meta["receipt"] == first.meta["receipt"]
    assert len(cont.message.meta["continued"]) == 2
    for answer in answers:
        check = cli("prompt", "--conversation", cid, "--message", answer.id)
        assert check.returncode == 0, (answer.id, check.stderr)
        assert "matches the receipt" in check.stderr


def test_a_recorded_api_request_leaves_a_receipt_that_verifies(smollm2_path: Path) -> None:
    """`serve --record` keeps a request through the stored turn: its receipt is checked by
    `chatapp prompt` in a new process like any answer's."""
    from chatapp.core.backend import ModelRef
    from chatapp.service import ChatService, ClientTurn, TurnOptions
    from chatapp.service.events import TurnFinished

    service = ChatService(app_paths().ensure().database, Settings())
    try:
        service.load(service.load_request(ModelRef.local(smollm2_path), n_threads=2)).result(300)
        done = service.record(
            [{"role": "user", "content": "Name a planet."}],
            "Answer in one word.",
            TurnOptions(overrides={"max_tokens": 5, "temperature": 0.0}),
            client=ClientTurn(meta={"source": "api"}),
        ).result(300)
        assert isinstance(done, TurnFinished), done
    finally:
        service.shutdown()
    check = cli("prompt", "--conversation", done.conversation_id, "--message", done.message.id)
    assert check.returncode == 0, check.stderr
    assert "matches the receipt" in check.stderr


def test_a_sliding_window_model_says_in_the_receipt_that_its_state_is_not_kept(
    gemma_path: Path,
) -> None:
    from chatapp.core.backend import ModelRef
    from chatapp.service import ChatService, TurnOptions
    from chatapp.service.events import TurnFinished

    service = ChatService(app_paths().ensure().database, Settings())
    try:
        service.load(service.load_request(ModelRef.local(gemma_path), n_threads=2)).result(300)
        done = service.send(
            None, "The sky is", options=TurnOptions(overrides={"max_tokens": 3})
        ).result(300)
        assert isinstance(done, TurnFinished), done
    finally:
        service.shutdown()
    receipt = Receipt.from_dict(done.message.meta["receipt"])
    assert receipt is not None and "sliding-window" in receipt.state_note
