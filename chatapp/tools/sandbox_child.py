"""The Python tool's child: runs as `python -I -B sandbox_child.py SCRATCH LIMITS_JSON`.

It reads the user's code from stdin, lowers its own resource limits, installs an audit
hook, and only then runs the code. The hook refuses sockets, new processes, ctypes and
every file operation outside the scratch folder (reads of Python's own install are
allowed, writes never). This file must import nothing from chatapp: it runs in a bare
interpreter. Audit hooks are not a wall against hostile C code; the rlimits, the separate
network namespace (when `unshare` can make one) and the parent's kill are the hard limits.
"""

import ast
import contextlib
import json
import os
import resource
import sys
import traceback


def _limits(limits: dict) -> None:
    def lower(which: int, value: int) -> None:
        # the hard limit too, so the code cannot raise it again; the CPU's hard limit a
        # second later than the soft one (SIGXCPU first, then SIGKILL)
        _, hard = resource.getrlimit(which)
        want_hard = value + 1 if which == resource.RLIMIT_CPU else value
        if hard != resource.RLIM_INFINITY:
            value, want_hard = min(value, hard), min(want_hard, hard)
        # not enforced here (RLIMIT_AS on macOS): the parent's limits still are
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(which, (value, want_hard))

    lower(resource.RLIMIT_CPU, int(limits["cpu_seconds"]))
    lower(resource.RLIMIT_AS, int(limits["memory_bytes"]))
    lower(resource.RLIMIT_FSIZE, int(limits["file_bytes"]))
    if hasattr(resource, "RLIMIT_NPROC"):
        lower(resource.RLIMIT_NPROC, 0)
    lower(resource.RLIMIT_CORE, 0)


def _hook(scratch: str) -> None:
    real = os.path.realpath
    sep = os.sep
    read_roots = tuple(
        {
            real(p)
            for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, *sys.path)
            if p and os.path.isabs(p)
        }
    )
    read_files = {"/dev/null", "/dev/urandom", "/dev/random", "/etc/localtime"}
    read_roots += ("/usr/share/zoneinfo",)
    denied_events = ("socket.", "subprocess.", "os.exec", "os.posix_spawn", "os.spawn")
    denied_exact = {
        "os.system",
        "os.fork",
        "os.forkpty",
        "os.kill",
        "os.killpg",
        "signal.pthread_kill",
        "pty.spawn",
        "ctypes.dlsym",  # loading a library is allowed (numpy needs it), looking up C functions not
        "os.startfile",
        "webbrowser.open",
        "sys.remote_exec",
        "resource.setrlimit",  # its limits are set before its code runs, for good
        "resource.prlimit",
    }
    write_path_events = {
        "os.remove",
        "os.rmdir",
        "os.mkdir",
        "os.rename",
        "os.symlink",
        "os.link",
        "os.chmod",
        "os.chown",
        "os.truncate",
        "os.utime",
        "os.chflags",
        "os.lchflags",
        "os.setxattr",
        "os.removexattr",
        "shutil.copyfile",
        "shutil.copytree",
        "shutil.move",
        "shutil.rmtree",
        "shutil.make_archive",
        "shutil.unpack_archive",
        "sqlite3.connect",  # SQLite opens its files in C, without an "open" event
    }
    read_path_events = {"os.listdir", "os.scandir", "os.chdir", "glob.glob", "glob.glob/2"}

    def inside(path: str, roots: tuple) -> bool:
        return any(path == r or path.startswith(r.rstrip(sep) + sep) for r in roots)

    def resolve(p: object) -> str | None:
        if not isinstance(p, (str, bytes, os.PathLike)):
            return None  # an already-open descriptor: its path was checked when opened
        return real(os.fsdecode(p))

    def check_write(p: object) -> None:
        path = resolve(p)
        if path is not None and not inside(path, (scratch,)):
            raise PermissionError(f"the Python tool may write only in its folder {scratch}: {p!r}")

    def check_read(p: object) -> None:
        path = resolve(p)
        if path is None or inside(path, (scratch,)) or path in read_files:
            return
        if not inside(path, read_roots):
            raise PermissionError(f"the Python tool may read only in its folder {scratch}: {p!r}")

    def hook(event: str, args: tuple) -> None:
        if event in denied_exact or event.startswith(denied_events):
            if event == "os.kill" and args and args[0] == os.getpid():
                return
            raise PermissionError(f"not allowed in the Python tool: {event}")
        if event == "open":
            path, mode, flags = ([*list(args), None, None, None])[:3]
            writing = bool(
                (isinstance(mode, str) and any(c in mode for c in "wax+"))
                or (
                    isinstance(flags, int)
                    and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC)
                )
            )
            (check_write if writing else check_read)(path)
        elif event in write_path_events:
            for a in args[:2]:
                if isinstance(a, (str, bytes, os.PathLike)):
                    check_write(a)
        elif event in read_path_events and args and isinstance(args[0], (str, bytes, os.PathLike)):
            check_read(args[0])

    sys.addaudithook(hook)


def main() -> None:
    scratch = os.path.realpath(sys.argv[1])
    limits = json.loads(sys.argv[2])
    code = sys.stdin.read()
    sys.stdin.close()
    os.chdir(scratch)
    sys.path.insert(0, scratch)
    try:
        tree = ast.parse(code, "<python tool>", "exec")
    except SyntaxError as e:
        print(f"SyntaxError: {e.msg} (line {e.lineno})", file=sys.stderr)
        sys.exit(1)
    # like a REPL: the value of a last bare expression is printed
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = ast.Expression(tree.body[-1].value)
        tree.body.pop()
    body = compile(tree, "<python tool>", "exec")
    tail = compile(last, "<python tool>", "eval") if last is not None else None
    _limits(limits)
    _hook(scratch)
    namespace = {"__name__": "__main__", "__builtins__": __builtins__}
    try:
        exec(body, namespace)
        if tail is not None:
            value = eval(tail, namespace)
            if value is not None:
                print(repr(value))
    except SystemExit:
        raise
    except BaseException as e:  # the model's code may raise anything; it is reported  # noqa: BLE001
        # the traceback of the model's code, without this file's frames
        frames = [f for f in traceback.extract_tb(e.__traceback__) if f.filename != __file__]
        sys.stdout.flush()
        print("Traceback (most recent call last):", file=sys.stderr)
        print("".join(traceback.format_list(frames)), end="", file=sys.stderr)
        print("".join(traceback.format_exception_only(type(e), e)), end="", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
