"""What "Show prompt", the template editor and `chatapp prompt` show is exactly what the
next send sends: real window, real models, real CLI processes, real database."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from chatapp.core.receipt import Receipt, text_sha256
from chatapp.core.store import Store
from chatapp.paths import app_paths
from chatapp.service import default_backend_factory

pytestmark = [pytest.mark.model, pytest.mark.qt_log_ignore("does not support propagateSizeHints")]
RUN_CLI = Path(__file__).resolve().parents[1] / "hub" / "run_cli.py"
WAIT = 300_000  # ms: a bound for a broken build on a busy machine, not a speed test


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(RUN_CLI), *args], capture_output=True, text=True, timeout=600
    )


def _window(qtbot: Any, make_window: Any, model: Path, max_tokens: int = 12) -> Any:
    w = make_window(
        engine_factory=default_backend_factory, extensions=("chatapp.gui.template_actions",)
    )
    w.settings.max_tokens = max_tokens
    w.settings.seed = 7
    w.settings.n_threads = 2
    with qtbot.waitSignal(w.session.model_loaded, timeout=WAIT):
        w.open_model(str(model))
    return w


def _send(qtbot: Any, w: Any, text: str) -> str:
    with qtbot.waitSignal(w.session.reply_finished, timeout=WAIT) as blocker:
        w.input.setPlainText(text)
        w.send_button.click()
    return str(blocker.args[0])


def _show_prompt(qtbot: Any, w: Any) -> Any:
    actions = w.template_actions
    with qtbot.waitSignal(actions.prompt_view_opened, timeout=WAIT) as blocker:
        assert actions.show_prompt()
    view = blocker.args[0]
    qtbot.waitUntil(lambda: view.token_model.rowCount() > 0, timeout=WAIT)
    return view


def _view_ids(view: Any) -> list[int]:
    return [int(view.token_model.index(r, 1).data()) for r in range(view.token_model.rowCount())]


def _cli_ids(out: str) -> list[int]:
    tokens = out.split("\n--- ", 1)[1].splitlines()[1:]
    return [int(line.split("\t", 1)[0]) for line in tokens]


def test_window_cli_and_service_send_identical_prompts_and_receipts_verify(
    qtbot: Any, make_window: Any, smollm2_path: Path
) -> None:
    # an answer made by the CLI
    res = _cli(
        "chat",
        "--model",
        str(smollm2_path),
        "--seed",
        "1",
        "--max-tokens",
        "12",
        "--threads",
        "2",
        "Name three fruits.",
    )
    assert res.returncode == 0, res.stderr
    cid = re.search(r"\[conversation (\w+)", res.stderr).group(1)
    with Store(app_paths().database) as store:
        conv = store.find_conversation(cid)
        cli_answer = store.active_thread(conv.id)[-1]
    check = _cli("prompt", "--conversation", conv.id, "--message", cli_answer.id)
    assert check.returncode == 0, check.stderr
    assert "matches the receipt" in check.stderr

    # the same conversation in the window: Show prompt == chatapp prompt == the next send
    w = make_window(
        engine_factory=default_backend_factory, extensions=("chatapp.gui.template_actions",)
    )
    w.settings.max_tokens, w.settings.n_threads = 12, 2
    with qtbot.waitSignal(w.session.model_loaded, timeout=WAIT):
        w.session.select_conversation(conv.id)  # loads the conversation's model
    w.input.setPlainText("And three vegetables?")
    shown = _view_ids(_show_prompt(qtbot, w))
    cli = _cli("prompt", "--conversation", conv.id, "--tokens")
    assert cli.returncode == 0, cli.stderr
    # chatapp prompt has no draft: the window's prompt is the CLI's plus the new turn
    cli_ids = _cli_ids(cli.stdout)
    service_ids = (
        w.session.service.prepare_conversation(conv.id, draft="And three vegetables?")
        .result(300)
        .tokens
    )
    assert shown == service_ids and shown[: len(cli_ids) - 3] == cli_ids[:-3]
    window_answer = _send(qtbot, w, "And three vegetables?")
    with Store(app_paths().database) as store:
        assert store.prompt_tokens(window_answer) == shown  # exactly what was shown
    check = _cli("prompt", "--conversation", conv.id, "--message", window_answer)
    assert check.returncode == 0 and "matches the receipt" in check.stderr, check.stderr

    # a template changed since: the receipt check fails and names the first difference
    w.settings.user_templates[smollm2_path.name] = (
        "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n"
        "{% endfor %}<|im_start|>assistant\n"
    )
    w.save_settings()
    check = _cli("prompt", "--conversation", conv.id, "--message", window_answer)
    assert check.returncode == 1
    assert re.search(r"differs from the receipt at token \d+", check.stderr), check.stderr


def test_a_saved_template_edit_changes_the_very_next_prompt(
    qtbot: Any, make_window: Any, smollm2_path: Path
) -> None:
    w = _window(qtbot, make_window, smollm2_path)
    _send(qtbot, w, "Hi!")
    editor = w.template_actions.edit_template()  # the actions own it and delete it on close
    mine = (
        "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n"
        "{% endfor %}<|im_start|>assistant\nCertainly:"
    )
    editor.set_text(mine)
    qtbot.waitUntil(lambda: editor.preview.toPlainText().endswith("Certainly:"), timeout=WAIT)
    preview = editor.preview.toPlainText()
    assert re.search(r"\d+ tokens", editor.status.text())
    editor.save()
    answer_id = _send(qtbot, w, "Bye!")
    with Store(app_paths().database) as store:
        answer = store.get_message(answer_id)
        sent = store.prompt_tokens(answer_id)
    receipt = Receipt.from_dict(answer.meta["receipt"])
    assert receipt.template_source == "user" and receipt.template_sha256 == text_sha256(mine)
    pairs = w.session.service.describe_tokens(sent).result(300)
    sent_text = b"".join(b for _i, b in pairs).decode()
    opener = "<|im_start|>assistant\nCertainly:"
    assert preview.endswith(opener)  # the editor showed the history as the send renders it
    assert sent_text == preview[: -len(opener)] + "<|im_start|>user\nBye!<|im_end|>\n" + opener


def test_gemma_bos_is_shown_exactly_as_sent_with_a_template_without_bos(
    qtbot: Any, make_window: Any, gemma_path: Path
) -> None:
    w = _window(qtbot, make_window, gemma_path, max_tokens=4)
    w.settings.user_templates[gemma_path.name] = (
        "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}model:"
    )
    w.save_settings()  # for the CLI process
    _send(qtbot, w, "Hello")
    view = _show_prompt(qtbot, w)
    assert view.text.startswith("<bos>user: Hello\n")
    ids = _view_ids(view)
    bos = w.session.model.info.bos_token
    assert bos == "<bos>" and view.token_model.index(0, 2).data() == "<bos>"
    cli = _cli("prompt", "--conversation", w.session.conversation_id, "--tokens")
    assert cli.returncode == 0, cli.stderr
    assert cli.stdout.startswith("<bos>user: Hello\n") and _cli_ids(cli.stdout) == ids
    w.input.setPlainText("Again")
    shown = _view_ids(_show_prompt(qtbot, w))
    sent_id = _send(qtbot, w, "Again")
    with Store(app_paths().database) as store:
        assert store.prompt_tokens(sent_id) == shown
    assert shown[0] == ids[0]  # the BOS id, shown and sent
