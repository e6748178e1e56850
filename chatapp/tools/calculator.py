"""Exact arithmetic for the model: big integers, fractions and decimals, never `eval`.

The expression is parsed with `ast` and walked over an allow-list of nodes. Every value
is a `Fraction`, so 0.1 + 0.2 is exactly 0.3 and 1/3 stays a third. Decimal literals
are read from their source text (not through a float). Powers and results are bounded
before they are computed, so `9**9**9` is refused at once instead of eating memory.
"""

from __future__ import annotations

import ast
from decimal import Decimal, InvalidOperation, localcontext
from fractions import Fraction

MAX_EXPRESSION_CHARS = 2000
MAX_BITS = 40_000  # numerator or denominator of any intermediate value (about 12,000 digits)
MAX_LITERAL_EXPONENT = 10_000  # 1e10000 is fine, 1e999999999 is refused before it is built
MAX_DEPTH = 100
APPROX_DIGITS = 30


class CalcError(ValueError):
    """The expression is not allowed or cannot be computed; the message says why."""


def calculate(expression: str) -> str:
    """The exact value of `expression`, as text for the model (CalcError when refused)."""
    text = expression.strip()
    if not text:
        raise CalcError("empty expression")
    if len(text) > MAX_EXPRESSION_CHARS:
        raise CalcError(f"expression longer than {MAX_EXPRESSION_CHARS} characters")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as e:
        raise CalcError(f"not an arithmetic expression: {e.msg}") from None
    value = _Walker(text).eval(tree.body, 0)
    return format_value(value)


def format_value(value: Fraction) -> str:
    """An integer, an exact decimal, or a fraction with a decimal approximation."""
    num, den = value.numerator, value.denominator
    if den == 1:
        return _digits(num)
    twos = fives = 0
    d = den
    while d % 2 == 0:
        d //= 2
        twos += 1
    while d % 5 == 0:
        d //= 5
        fives += 1
    places = max(twos, fives)
    if d == 1 and places <= 200:
        scaled = abs(num) * 10**places // den
        whole, frac = divmod(scaled, 10**places)
        sign = "-" if num < 0 else ""
        return f"{sign}{_digits(whole)}.{_digits(frac).rjust(places, '0').rstrip('0')}"
    with localcontext() as ctx:
        ctx.prec = APPROX_DIGITS
        approx = Decimal(num) / Decimal(den)
    return f"{_digits(num)}/{_digits(den)} (≈ {approx})"


def _digits(n: int) -> str:
    """str(n) without Python's 4,300-digit guard (Decimal(int) is exact and unlimited)."""
    return str(Decimal(n))


_BINOPS = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow)


class _Walker:
    def __init__(self, source: str) -> None:
        self.source = source

    def eval(self, node: ast.AST, depth: int) -> Fraction:
        if depth > MAX_DEPTH:
            raise CalcError("expression nested too deeply")
        if isinstance(node, ast.Constant):
            return self._constant(node)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.UAdd, ast.USub)):
            v = self.eval(node.operand, depth + 1)
            return -v if isinstance(node.op, ast.USub) else v
        if isinstance(node, ast.BinOp):
            if isinstance(node.op, ast.BitXor):
                raise CalcError("'^' is not a power here: write ** (2**10)")
            if not isinstance(node.op, _BINOPS):
                raise CalcError(f"operator {type(node.op).__name__} is not allowed")
            left = self.eval(node.left, depth + 1)
            right = self.eval(node.right, depth + 1)
            return _checked(self._binop(node.op, left, right))
        if isinstance(node, ast.Call):
            raise CalcError("function calls are not allowed: use + - * / // % ** and parentheses")
        if isinstance(node, ast.Attribute):
            raise CalcError("attribute access is not allowed")
        if isinstance(node, ast.Name):
            raise CalcError(f"unknown name {node.id!r}: only numbers and operators")
        raise CalcError(f"{type(node).__name__} is not allowed in an arithmetic expression")

    def _constant(self, node: ast.Constant) -> Fraction:
        v = node.value
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise CalcError(f"{type(v).__name__} literals are not allowed")
        if isinstance(v, int):
            return _checked(Fraction(v))
        # a float literal: take its exact decimal text, not the binary float
        literal = ast.get_source_segment(self.source, node) or repr(v)
        try:
            dec = Decimal(literal.replace("_", ""))
        except InvalidOperation:
            raise CalcError(f"cannot read the number {literal!r}") from None
        exponent = dec.as_tuple().exponent
        if not dec.is_finite() or not isinstance(exponent, int):
            raise CalcError(f"{literal!r} is not a finite number")
        if abs(exponent) > MAX_LITERAL_EXPONENT or abs(dec.adjusted()) > MAX_LITERAL_EXPONENT:
            raise CalcError(f"{literal!r}: exponent too large")
        return _checked(Fraction(dec))

    def _binop(self, op: ast.operator, a: Fraction, b: Fraction) -> Fraction:
        if isinstance(op, ast.Add):
            return a + b
        if isinstance(op, ast.Sub):
            return a - b
        if isinstance(op, ast.Mult):
            if _bits(a) + _bits(b) > 2 * MAX_BITS + 2:
                raise CalcError("result too large")
            return a * b
        if isinstance(op, (ast.Div, ast.FloorDiv, ast.Mod)):
            if b == 0:
                raise CalcError("division by zero")
            if isinstance(op, ast.Div):
                return a / b
            return Fraction(a // b) if isinstance(op, ast.FloorDiv) else a % b
        return _power(a, b)


def _power(base: Fraction, exponent: Fraction) -> Fraction:
    if exponent.denominator != 1:
        raise CalcError("only whole-number exponents are exact: roots are not supported")
    e = exponent.numerator
    if base == 0 and e < 0:
        raise CalcError("division by zero (0 to a negative power)")
    if base in (0, 1) or e == 0:
        return Fraction(1) if e == 0 else base
    if base == -1:
        return Fraction(-1 if e % 2 else 1)
    # the result needs about |e| * bits(base) bits: refuse before computing it
    if abs(e) > MAX_BITS or abs(e) * max(_bits(base) - 1, 1) > MAX_BITS:
        raise CalcError(f"power too large: the result would have more than {MAX_BITS} bits")
    return base**e


def _bits(v: Fraction) -> int:
    return max(abs(v.numerator).bit_length(), v.denominator.bit_length())


def _checked(v: Fraction) -> Fraction:
    if _bits(v) > MAX_BITS:
        raise CalcError(f"result too large: more than {MAX_BITS} bits")
    return v
