"""The Jinja sandbox that renders chat templates: run only inside the template worker.

Templates are Jinja, rendered in an immutable sandbox with the conventions of Hugging Face
transformers' apply_chat_template (chat_template_utils._cached_compile_jinja_template):
trim_blocks, lstrip_blocks, loopcontrols, a no-op {% generation %} block, raise_exception,
tojson (ensure_ascii=False, indent, separators, sort_keys), strftime_now, a restricted
dict() and namespace(), bos_token, eos_token, add_generation_prompt, tools and documents.
The same inputs give the same text, character for character; tests hold us to that.

Templates are untrusted code (they come inside downloaded files). On top of Jinja's
sandbox every render runs under limits: a deadline checked at every loop step, call,
attribute access and output chunk; a cap on the output size and on the size of strings
and lists built along the way; unsafe attribute access fails at once instead of quietly
rendering nothing. Every failure is a TemplateError with a one-line message.

These limits are checked in Python; work done inside one C call (a huge json indent, a
list repeated millions of times) escapes them. So this module is imported only by the
template worker process (chatapp.core.templates.worker), which runs under an address-space
limit and is killed when it overruns its wall-clock deadline; callers use
chatapp.core.templates, never this module.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from functools import lru_cache
from typing import Any

import jinja2
import jinja2.ext
import jinja2.nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError
from jinja2.utils import Namespace
from jinja2.visitor import NodeTransformer

from chatapp.core.errors import TemplateError
from chatapp.core.templates import TemplateRefused

# The limits stop a runaway template, not a long conversation: each grows with the data
# the template is given (a 50,000-message chat renders; a loop that repeats the prompt
# without end still stops). The prompt is then fitted to the context by the caller.
MAX_OUTPUT_CHARS = 4_000_000  # ~1M tokens: far past any context window
MAX_VALUE_LEN = MAX_OUTPUT_CHARS  # strings and lists built inside a template
MAX_STEPS = 5_000_000  # loop steps, calls and attribute reads per render
OUTPUT_PER_INPUT_CHAR = 4  # more output allowed per character of the messages given
STEPS_PER_INPUT_ITEM = 200  # more steps allowed per message, field or list item given


# --- render limits -------------------------------------------------------------------


class _LimitExceeded(SecurityError):
    pass


class _Budget:
    def __init__(self, time_limit: float, input_chars: int = 0, input_items: int = 0) -> None:
        self.deadline = time.monotonic() + time_limit
        self.time_limit = time_limit
        self.steps = 0
        self.cancelled = False
        self.max_output = MAX_OUTPUT_CHARS + OUTPUT_PER_INPUT_CHAR * input_chars
        self.max_value = MAX_VALUE_LEN + OUTPUT_PER_INPUT_CHAR * input_chars
        self.max_steps = MAX_STEPS + STEPS_PER_INPUT_ITEM * input_items

    def tick(self, n: int = 1) -> None:
        self.steps += n
        if self.cancelled:
            raise _LimitExceeded("rendering was stopped")
        if self.steps > self.max_steps:
            raise _LimitExceeded(f"the template ran more than {self.max_steps:,} steps")
        if (self.steps & 0xFF) == 0 and time.monotonic() > self.deadline:
            raise _LimitExceeded(f"rendering took longer than {self.time_limit:g} s")


_state = threading.local()


def _tick(n: int = 1) -> None:
    budget: _Budget | None = getattr(_state, "budget", None)
    if budget is not None:
        budget.tick(n)


def _value_limit() -> int:
    budget: _Budget | None = getattr(_state, "budget", None)
    return MAX_VALUE_LEN if budget is None else budget.max_value


def _check_size(value: Any) -> Any:
    if isinstance(value, (str, list, tuple, dict)) and len(value) > (limit := _value_limit()):
        raise _LimitExceeded(f"the template built a value of more than {limit:,} items")
    return value


def _check_int(value: Any) -> None:
    """For numbers that size what gets built (widths, repeats, exponents)."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > _value_limit():
        raise _LimitExceeded(f"the template used a number too large to allow ({value})")


def _check_len(n: int) -> None:
    if n > _value_limit():
        raise _LimitExceeded(f"the template would build a value of {n:,} characters")


# Filters whose numeric arguments size their result: center(10**10), batch(10**10, 'x').
_SIZING_FILTERS = frozenset({"center", "indent", "batch", "slice", "wordwrap", "truncate"})


_BIG_WIDTH = re.compile(r"\d{7,}")


def _check_replace(s: Any, old: Any, new: Any, count: Any = None) -> None:
    """Refuse a replace() whose result would be too large, before it is built."""
    if not (isinstance(s, str) and isinstance(old, str) and isinstance(new, str)):
        return
    n = s.count(old) if old else len(s) + 1
    if isinstance(count, int) and count >= 0:
        n = min(n, count)
    _check_len(len(s) + n * (len(new) - len(old)))


def _check_join(sep: Any, items: Any) -> None:
    """Refuse a join() whose result would be too large, before it is built."""
    if isinstance(sep, str) and isinstance(items, (list, tuple)):
        _check_len(len(sep) * max(len(items) - 1, 0) + sum(len(str(x)) for x in items))


def _checked(value: Any) -> Any:
    """Wraps `~` concatenations (see _GuardedEnvironment._parse)."""
    _tick()
    return _check_size(value)


def _check_format(fmt: str) -> None:
    """A format string may not ask for a field millions of characters wide."""
    if _BIG_WIDTH.search(fmt):
        raise _LimitExceeded("a format width too large to allow")


class _GuardedRange:
    """range() whose iteration counts against the render budget."""

    def __init__(self, *args: int) -> None:
        self._range = range(*args)
        if len(self._range) > (limit := _value_limit()):
            raise _LimitExceeded(f"range() of more than {limit:,} items")

    def __iter__(self) -> Iterator[int]:
        for i in self._range:
            _tick()
            yield i

    def __len__(self) -> int:
        return len(self._range)

    def __getitem__(self, item: Any) -> Any:
        return self._range[item]

    def __contains__(self, item: Any) -> bool:
        return item in self._range

    def __repr__(self) -> str:
        return repr(self._range)

    def __reversed__(self) -> Iterator[int]:
        for i in reversed(self._range):
            _tick()
            yield i


def _guarded_range(*args: int) -> _GuardedRange:
    return _GuardedRange(*args)


LOOP_GUARD = "chatapp_loop_guard"  # a global every {% for %} iterates through
CHECKED = "chatapp_checked"  # a global every `~` result passes through


def _loop_guard(iterable: Any) -> Iterator[Any]:
    """Counts each loop step against the budget, so even an empty nested loop over a
    long string ends at the deadline instead of spinning on a thread forever."""
    for item in iterable:
        _tick()
        yield item


# --- the environment (mirrors transformers) -------------------------------------------


class TemplateRaised(jinja2.TemplateError):
    """raise_exception() called by the template: its message is meant for the user."""


def _raise_exception(message: str) -> None:
    raise TemplateRaised(message)


def _tojson(
    x: Any,
    ensure_ascii: bool = False,
    indent: int | None = None,
    separators: tuple[str, str] | None = None,
    sort_keys: bool = False,
) -> str:
    return json.dumps(
        x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
    )


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


class _TemplateDict:
    """dict() for templates, without dict's attributes (transformers' TemplateDict)."""

    def __call__(self, *args: Any, **kwargs: Any) -> dict[Any, Any]:
        return dict(*args, **kwargs)

    def fromkeys(self, *args: Any, **kwargs: Any) -> dict[Any, Any]:
        return dict.fromkeys(*args, **kwargs)


class _TemplateNamespace(Namespace):
    """namespace() that refuses underscore names and oversized values."""

    def __init__(*args: Any, **kwargs: Any) -> None:
        self, args = args[0], args[1:]
        attrs = dict(*args, **kwargs)
        for name, value in attrs.items():
            _TemplateNamespace._check_name(name)
            _check_size(value)
        Namespace.__init__(self, attrs)

    def __setitem__(self, name: str, value: Any) -> None:
        _TemplateNamespace._check_name(name)
        _tick()
        Namespace.__setitem__(self, name, _check_size(value))

    @staticmethod
    def _check_name(name: Any) -> None:
        if isinstance(name, str) and name.startswith("_"):
            raise SecurityError(f"a namespace cannot hold underscore names ({name!r})")


class _GenerationBlock(jinja2.ext.Extension):
    """{% generation %}...{% endgeneration %} marks assistant text for training masks in
    transformers; for rendering it is just its body."""

    tags = {"generation"}

    def parse(self, parser: Any) -> jinja2.nodes.Node:
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_body"), [], [], body).set_lineno(lineno)

    def _body(self, caller: Any) -> str:
        return str(caller())


def _guard_call(name: str, node: jinja2.nodes.Node) -> jinja2.nodes.Call:
    return jinja2.nodes.Call(
        jinja2.nodes.Name(name, "load", lineno=node.lineno),
        [node],
        [],
        None,
        None,
        lineno=node.lineno,
    )


class _GuardNodes(NodeTransformer):
    """Routes what Jinja does without calling back into the environment through the
    budget: each {% for %} step, and each `~` result (a string can double per step)."""

    def visit_For(self, node: jinja2.nodes.For) -> jinja2.nodes.Node:
        self.generic_visit(node)
        node.iter = _guard_call(LOOP_GUARD, node.iter)
        return node

    def visit_Concat(self, node: jinja2.nodes.Concat) -> jinja2.nodes.Node:
        self.generic_visit(node)
        return _guard_call(CHECKED, node)


class _GuardedEnvironment(ImmutableSandboxedEnvironment):
    intercepted_binops: frozenset[str] = frozenset({"*", "+", "**", "%"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        _tick()
        if operator == "*":
            if isinstance(left, (str, list, tuple)) and isinstance(right, int):
                _check_int(len(left) * right)
            elif isinstance(right, (str, list, tuple)) and isinstance(left, int):
                _check_int(len(right) * left)
        elif operator == "**":
            _check_int(right)
            if isinstance(left, int) and isinstance(right, int) and right > 0:
                _check_len(left.bit_length() * right // 8)  # the result's size in bytes
        elif operator == "%" and isinstance(left, str):
            _check_format(left)
        return _check_size(super().call_binop(context, operator, left, right))

    def call(self, context: Any, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        _tick()
        owner = getattr(obj, "__self__", None)
        if isinstance(owner, (str, list, tuple, dict)):
            # str.ljust(10**10), str.zfill, str.expandtabs...: numbers that size results
            for value in (*args, *kwargs.values()):
                _check_int(value)
        if isinstance(owner, str):
            method = getattr(obj, "__name__", "")
            if method == "replace" and len(args) >= 2:
                _check_replace(owner, *args[:3])
            elif method == "join" and args:
                _check_join(owner, args[0])
        return _check_size(super().call(context, obj, *args, **kwargs))

    def getattr(self, obj: Any, attribute: str) -> Any:
        _tick()
        if attribute in ("format", "format_map") and isinstance(obj, str):
            _check_format(obj)
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        _tick()
        return super().getitem(obj, argument)

    def _parse(self, source: str, name: str | None, filename: str | None) -> jinja2.nodes.Template:
        tree = super()._parse(source, name, filename)
        guarded = _GuardNodes().visit(tree)
        assert isinstance(guarded, jinja2.nodes.Template)
        return guarded

    def unsafe_undefined(self, obj: Any, attribute: str) -> Any:
        # Jinja returns an Undefined that renders as "" until used; an escape attempt
        # should fail loudly, right where it happens.
        raise SecurityError(
            f"access to attribute {attribute!r} of {type(obj).__name__!r} object is unsafe"
        )


def _wrap_filter(name: str, fn: Any) -> Any:
    def guarded(*args: Any, **kwargs: Any) -> Any:
        _tick()
        if name in _SIZING_FILTERS:
            for value in (*args[1:], *kwargs.values()):
                _check_int(value)
        if name == "format":
            value = next((a for a in args if isinstance(a, str)), "")  # after any context
            _check_format(value)
        elif name == "replace" and len(args) >= 4:
            _check_replace(*args[1:5])
        elif name == "join" and len(args) >= 2:
            _check_join(args[2] if len(args) > 2 else kwargs.get("d", ""), args[1])
        return _check_size(fn(*args, **kwargs))

    for attr in ("jinja_pass_arg",):
        if hasattr(fn, attr):
            setattr(guarded, attr, getattr(fn, attr))
    return guarded


def _environment() -> _GuardedEnvironment:
    env = _GuardedEnvironment(
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=[_GenerationBlock, jinja2.ext.loopcontrols],
    )
    env.filters["tojson"] = _tojson
    for name, fn in list(env.filters.items()):
        env.filters[name] = _wrap_filter(name, fn)
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    env.globals["dict"] = _TemplateDict()
    env.globals["namespace"] = _TemplateNamespace
    env.globals["range"] = _guarded_range
    env.globals[LOOP_GUARD] = _loop_guard
    env.globals[CHECKED] = _checked
    return env


_ENV = _environment()


@lru_cache(maxsize=64)
def _compile(text: str) -> jinja2.Template:
    return _ENV.from_string(text)


def check_syntax_here(text: str) -> None:
    """Raise TemplateError (with the line number) if the text does not parse."""
    try:
        _compile(text)
    except jinja2.TemplateSyntaxError as e:
        err = TemplateError(f"Template syntax error on line {e.lineno}: {e.message}")
        err.lineno = e.lineno  # type: ignore[attr-defined]
        raise err from e
    except RecursionError as e:
        raise TemplateError("The chat template is nested too deeply to parse.") from e
    except MemoryError as e:
        raise TemplateError("The chat template ran out of memory while parsing.") from e
    except (SyntaxError, ValueError, OverflowError) as e:
        # Python's own compiler refusing Jinja's generated code (too deeply nested, too
        # many literals), or a number literal past Python's limits
        raise TemplateError(f"The chat template cannot be compiled: {type(e).__name__}.") from e


def _render_chunks(compiled: jinja2.Template, context: dict[str, Any], budget: _Budget) -> str:
    _state.budget = budget
    try:
        parts: list[str] = []
        size = 0
        for chunk in compiled.generate(**context):
            size += len(chunk)
            if size > budget.max_output:
                raise _LimitExceeded(f"the prompt grew past {budget.max_output:,} characters")
            budget.tick()
            parts.append(chunk)
        return "".join(parts)
    finally:
        _state.budget = None


def render_here(text: str, context: dict[str, Any], time_limit: float) -> str:
    """Render in this process (the worker's): the context is already plain data.

    Raises TemplateError for a syntax error, a template that raises (TemplateRefused, its
    own message kept), an unsafe operation, or a blown time/size limit.
    """
    check_syntax_here(text)
    try:
        budget = _Budget(time_limit, *input_size(context))
        out = _render_chunks(_compile(text), context, budget)
    except TemplateRaised as e:
        err: TemplateError = TemplateRefused(
            f"The chat template refused this conversation: {e.message}"
        )
        cause: BaseException = e
    except _LimitExceeded as e:
        err, cause = TemplateError(f"The chat template was stopped: {e.message}."), e
    except SecurityError as e:
        err, cause = TemplateError(f"The chat template tried something unsafe: {e.message}"), e
    except jinja2.TemplateError as e:
        err, cause = (
            TemplateError(f"The chat template failed{{where}}: {e.message or type(e).__name__}"),
            e,
        )
    except RecursionError as e:
        err, cause = TemplateError("The chat template recursed too deeply."), e
    except MemoryError:
        raise  # the worker reports it and starts afresh
    except (
        TypeError,
        ValueError,
        KeyError,
        IndexError,
        AttributeError,
        ZeroDivisionError,
        OverflowError,
        ArithmeticError,
        LookupError,
        UnicodeError,
    ) as e:
        err, cause = (
            TemplateError(f"The chat template failed{{where}}: {type(e).__name__}: {_short(e)}"),
            e,
        )
    else:
        _check_text(out)
        return out
    line = template_line(cause)
    err.lineno = line  # type: ignore[attr-defined]
    err.message = err.message.replace("{where}", f" on line {line}" if line else "")
    err.args = (err.message,)
    raise err from cause


def input_size(value: Any) -> tuple[int, int]:
    """The characters of text and the number of items (fields, list entries) in the
    plain data a template is given: what its limits grow with."""
    chars = items = 0
    stack = [value]
    while stack:
        v = stack.pop()
        items += 1
        if isinstance(v, str):
            chars += len(v)
        elif isinstance(v, dict):
            stack.extend(v.values())
            chars += sum(len(k) for k in v if isinstance(k, str))
        elif isinstance(v, (list, tuple)):
            stack.extend(v)
    return chars, items


def _short(e: BaseException, limit: int = 200) -> str:
    """An exception's text on one line, cut short: it may quote megabytes of template data."""
    text = " ".join(str(e).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _check_text(text: str) -> None:
    """The prompt must be real text: a lone surrogate cannot be encoded for the model."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise TemplateError(
            f"The rendered prompt holds a lone surrogate (U+{ord(text[e.start]):04X}), "
            "which is not valid text."
        ) from None


def template_line(error: BaseException) -> int | None:
    """The template line an error happened on (Jinja maps its frames back to it)."""
    line = getattr(error, "lineno", None)
    tb = error.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return int(line) if isinstance(line, int) and line > 0 else None
