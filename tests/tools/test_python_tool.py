"""The Python tool runs the model's code in a separate process that is stopped at its
CPU, time, memory and output limits, has no network, and writes only in its own folder.
Each limit is asserted on its effect: the file outside does not exist afterwards, the
listening socket was never reached, the process is gone."""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

import pytest

from chatapp.tools import python_tool
from chatapp.tools.registry import PythonLimits, ToolRegistry, ToolResult


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    d = tmp_path / "scratch"
    d.mkdir()
    return d


@pytest.fixture
def registry(tmp_path: Path, scratch: Path):
    limits = PythonLimits(cpu_seconds=2, memory_mb=256, output_bytes=4000)
    with ToolRegistry(tmp_path / "config", scratch_dir=scratch, python_limits=limits) as r:
        yield r


def py(registry: ToolRegistry, code: str, timeout: float = 30.0) -> ToolResult:
    return registry.run("python", {"code": code}, cancel=threading.Event(), timeout=timeout)


def test_prints_and_the_last_expression(registry: ToolRegistry) -> None:
    r = py(registry, "import math\nprint('hello')\nmath.factorial(25)")
    assert not r.is_error
    assert r.content == f"hello\n{15511210043330985984000000}"


def test_an_exception_is_an_error_with_the_models_traceback_only(registry: ToolRegistry) -> None:
    r = py(registry, "x = 1\n1 / 0")
    assert r.is_error
    assert "ZeroDivisionError: division by zero" in r.content
    assert 'File "<python tool>", line 2' in r.content
    assert "sandbox_child" not in r.content


def test_files_persist_in_the_scratch_folder_variables_do_not(
    registry: ToolRegistry, scratch: Path
) -> None:
    assert not py(registry, "x = 5\nopen('notes.txt', 'w').write('kept')").is_error
    assert (scratch / "notes.txt").read_text() == "kept"
    assert py(registry, "open('notes.txt').read()").content == "'kept'"
    r = py(registry, "print(x)")
    assert r.is_error and "NameError" in r.content


def test_cpu_limit_stops_a_busy_loop(registry: ToolRegistry) -> None:
    r = py(registry, "while True:\n    pass", timeout=120)
    assert r.is_error
    assert "CPU limit" in r.content
    code = (
        "import resource\n"
        "try:\n"
        "    resource.setrlimit(resource.RLIMIT_CPU, (1000, 1000))\n"
        "except Exception as e:\n"
        "    print(type(e).__name__)\n"
        "while True:\n    pass"
    )
    r = py(registry, code, timeout=120)
    assert r.content == "PermissionError\n[stopped: used its 2 s of CPU time (CPU limit)]"


def test_time_limit_kills_a_sleeper_and_its_process_is_gone(
    registry: ToolRegistry, scratch: Path
) -> None:
    code = "import os, time\nopen('pid', 'w').write(str(os.getpid()))\nprint('before')\ntime.sleep(600)"
    r = py(registry, code, timeout=5)
    assert r.is_error
    assert r.content == "before\n[stopped: ran longer than the 5 s time limit]"
    pid = int((scratch / "pid").read_text())
    _assert_gone(pid)


def test_memory_limit(registry: ToolRegistry) -> None:
    ok = py(registry, "len(bytearray(50 * 1024 * 1024))")
    assert ok.content == str(50 * 1024 * 1024)
    r = py(registry, "b = bytearray(1024 * 1024 * 1024)\nprint('allocated')")
    assert r.is_error
    assert "MemoryError" in r.content
    assert "allocated" not in r.content


def test_output_limit(registry: ToolRegistry) -> None:
    r = py(registry, "import sys\nwhile True:\n    sys.stdout.write('x' * 1000)", timeout=60)
    assert r.is_error and r.truncated
    assert "output limit" in r.content
    assert r.content.count("x") <= 4000


def test_file_size_limit(tmp_path: Path, scratch: Path) -> None:
    limits = PythonLimits(file_mb=1)
    with ToolRegistry(tmp_path / "c", scratch_dir=scratch, python_limits=limits) as reg:
        r = py(reg, "open('big', 'wb').write(b'x' * (2 * 1024 * 1024))")
    assert r.is_error and "File too large" in r.content
    assert (scratch / "big").stat().st_size <= 1024 * 1024


@pytest.mark.parametrize("isolation", ["namespace", "audit-hook"])
def test_no_network(
    registry: ToolRegistry, monkeypatch: pytest.MonkeyPatch, isolation: str
) -> None:
    if isolation == "namespace" and python_tool.network_isolation() != "namespace":
        pytest.skip("unshare -rn does not work here")
    monkeypatch.setattr(python_tool, "network_isolation", lambda: isolation)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        port = listener.getsockname()[1]
        code = f"import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=5)\nprint('connected')"
        r = py(registry, code)
        with pytest.raises(BlockingIOError):
            listener.accept()  # nobody ever connected
    assert r.is_error
    assert "connected" not in r.content.replace("create_connection", "")
    if isolation == "audit-hook":
        assert "not allowed in the Python tool: socket" in r.content


def test_cannot_write_outside_its_folder(
    registry: ToolRegistry, scratch: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside.txt"
    attempts = [
        f"open({str(outside)!r}, 'w').write('x')",
        "open('../outside.txt', 'a').write('x')",
        f"import os\nos.symlink({str(outside)!r}, 'link')\nopen('link', 'w').write('x')",
        f"import os\nfd = os.open({str(outside)!r}, os.O_WRONLY | os.O_CREAT)\nos.write(fd, b'x')",
        f"open('inside.txt', 'w').write('x')\nimport os\nos.rename('inside.txt', {str(outside)!r})",
        f"import shutil\nopen('inside2.txt', 'w').write('x')\nshutil.copy('inside2.txt', {str(outside)!r})",
        f"import pathlib\npathlib.Path({str(outside)!r}).write_text('x')",
        f"import sqlite3\nsqlite3.connect({str(outside)!r}).execute('create table t(x)')",
        f"import os\nos.system('touch {outside}')",
        f"import subprocess\nsubprocess.run(['touch', {str(outside)!r}])",
    ]
    for code in attempts:
        r = py(registry, code)
        assert r.is_error, code
        assert not outside.exists(), code
        assert not outside.is_symlink() or not outside.exists()
    assert (scratch / "inside.txt").exists()  # the part inside its folder did happen
    r = py(
        registry, "import sqlite3\nc = sqlite3.connect('db.sqlite')\nc.execute('create table t(x)')"
    )
    assert not r.is_error and (scratch / "db.sqlite").exists()


def test_cannot_read_outside_its_folder(registry: ToolRegistry, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("the secret words")
    r = py(registry, f"print(open({str(secret)!r}).read())")
    assert r.is_error
    assert "the secret words" not in r.content
    r = py(registry, f"import os\nprint(os.listdir({str(tmp_path)!r}))")
    assert "secret.txt" not in r.content


def test_cancel_stops_a_running_child(registry: ToolRegistry, scratch: Path) -> None:
    cancel = threading.Event()
    code = "import os, time\nopen('pid', 'w').write(str(os.getpid()))\ntime.sleep(600)"
    out: list[ToolResult] = []
    t = threading.Thread(
        target=lambda: out.append(registry.run("python", {"code": code}, cancel=cancel))
    )
    t.start()
    pid_file = scratch / "pid"
    while t.is_alive() and not (pid_file.exists() and pid_file.read_text()):
        t.join(0.05)
    cancel.set()
    t.join(60)
    assert out and out[0].is_error and "cancelled" in out[0].content
    _assert_gone(int(pid_file.read_text()))


def test_a_registry_makes_and_removes_its_own_scratch_folder(tmp_path: Path) -> None:
    reg = ToolRegistry(tmp_path / "c")
    reg.run("calculator", {"expression": "1"}, cancel=threading.Event())
    assert reg._scratch is None  # made only when the Python tool needs it
    r = py(reg, "import os\nos.getcwd()")
    folder = Path(eval(r.content))
    assert folder.is_dir() and folder == reg.scratch_dir.resolve()
    reg.close()
    assert not folder.exists()


def _assert_gone(pid: int) -> None:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return
    # a zombie not yet reaped by its parent also counts as gone
    status = Path(f"/proc/{pid}/status")
    assert status.exists() and "zombie" in status.read_text(), f"process {pid} still runs"
