"""The calculator is exact (big integers, fractions, decimals) and refuses, at once and in
one line, what is not arithmetic or would be too large to compute."""

from __future__ import annotations

import pytest

from chatapp.tools.calculator import MAX_BITS, CalcError, calculate


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("2**100", str(2**100)),
        (
            "12345678901234567890 * 98765432109876543210",
            str(12345678901234567890 * 98765432109876543210),
        ),
        ("-(3**40) + 1", str(-(3**40) + 1)),
        ("0.1 + 0.2", "0.3"),  # exactly, not 0.30000000000000004
        ("1.10 * 3", "3.3"),
        ("1/4 + 1/4", "0.5"),
        ("7 // 2", "3"),
        ("-7 % 3", "2"),
        ("2**-3", "0.125"),
        ("1e3 + 1", "1001"),
        ("1_000_000 * 3", "3000000"),
        ("123456789.123456789 * 10**9", "123456789123456789"),
    ],
)
def test_exact_results(expression: str, expected: str) -> None:
    assert calculate(expression) == expected


def test_results_longer_than_pythons_str_limit() -> None:
    # int -> str refuses more than 4,300 digits by default; the calculator does not
    assert calculate("3**10000") == str(__import__("decimal").Decimal(3**10000))
    assert len(calculate("3**10000")) == 4772
    assert calculate("-(10**5000) - 1") == "-1" + "0" * 4999 + "1"


def test_a_third_stays_a_fraction_with_an_approximation() -> None:
    out = calculate("1/3")
    assert out.startswith("1/3 (≈ 0.3333333333")
    assert calculate("1/3 * 3") == "1"  # exact: no 0.9999…
    assert calculate("(1/3 + 1/6) * 2") == "1"


def test_decimal_literals_are_read_from_their_text_not_a_float() -> None:
    # 0.1 as a float is 0.1000000000000000055511151231257827...
    assert calculate("0.1 * 10**30") == "1" + "0" * 29


@pytest.mark.parametrize(
    ("expression", "words"),
    [
        ("9**9**9", "power too large"),
        ("10**100000", "power too large"),
        ("2**(MAX)".replace("MAX", str(MAX_BITS * 2)), "power too large"),
        ("(10**5000) ** 20", "power too large"),
        ("1e999999999", "exponent too large"),
        ("__import__('os').system('true')", "function calls are not allowed"),
        ("abs(-1)", "function calls are not allowed"),
        ("(1).real", "attribute access is not allowed"),
        ("x + 1", "unknown name 'x'"),
        ("'a' * 3", "str literals are not allowed"),
        ("[1, 2]", "List is not allowed"),
        ("2 ^ 10", "write **"),
        ("1 / 0", "division by zero"),
        ("1 % 0", "division by zero"),
        ("0 ** -1", "division by zero"),
        ("2 ** 0.5", "whole-number exponents"),
        ("1 +", "not an arithmetic expression"),
        ("", "empty expression"),
        ("1+" * 2000 + "1", "longer than"),
        ("lambda: 1", "Lambda is not allowed"),
    ],
)
def test_refusals_are_clear(expression: str, words: str) -> None:
    with pytest.raises(CalcError) as e:
        calculate(expression)
    assert words in str(e.value)
    assert "\n" not in str(e.value)


def test_growth_by_repeated_multiplication_is_bounded() -> None:
    big = "*".join(["(10**3000)"] * 10)  # each factor is fine, the product is not
    with pytest.raises(CalcError, match="too large"):
        calculate(big)


def test_deep_nesting_is_refused_not_a_crash() -> None:
    with pytest.raises(CalcError):
        calculate("(" * 150 + "1" + ")" * 150 + "+" + "-" * 300 + "1")
