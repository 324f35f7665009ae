"""GELU: the correctly rounded table, the piecewise-quadratic specification against float64
GELU (exhaustively), streaming and the cycle model."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from nonlin_cases import gelu_params

from generators.errors import ArrayError
from generators.gelu import check_inputs, error_lsb, family, gelu, reference
from generators.gelu.model import all_inputs, poly_delta
from generators.gelu.params import TABLE_MAX_BITS, gelu_code

TABLE = [("fixed<8,3>", "fixed<8,3>"), ("int8", "int8"), ("fixed<10,4>", "fixed<8,2>"),
         ("fixed<4,2>", "fixed<6,1>"), ("fixed<8,3>", "fixed<16,4>")]
POLY = [("fixed<16,5>", "fixed<16,5>"), ("fixed<16,4>", "fixed<16,4>"),
        ("fixed<12,4>", "fixed<8,3>"), ("fixed<16,2>", "fixed<16,2>"), ("int16", "int16"),
        ("fixed<11,3>", "fixed<12,3>"), ("fixed<16,8>", "fixed<12,4>")]


@pytest.mark.parametrize("inp, out", TABLE)
def test_table_is_correctly_rounded_everywhere(inp, out):
    """<= 0.5 LSB for every input (8-bit in and out: the issue's target), exhaustively."""
    p = gelu_params(inp, out)
    assert p.kind == "table" and p.inp.width <= TABLE_MAX_BITS
    x = all_inputs(p)
    err = error_lsb(p, gelu(p, x), reference(p, x))
    assert err.max() <= 0.5 + 1e-9, err.max()


def _gelu_fraction(x: Fraction) -> Fraction:
    """GELU to ~1e-45 in exact rationals: erf's Taylor series summed in Fractions, with
    2/sqrt(pi) and sqrt(2) as 50-digit rationals (an evaluation independent of the table's
    decimal one)."""
    two_over_sqrt_pi = Fraction("1.1283791670955125738961589031215451716881012586580")
    sqrt2 = Fraction("1.4142135623730950488016887242096980785696718753769")
    z = x / sqrt2
    term, total, n = z, z, 0
    while abs(term) > Fraction(1, 10**60) or n < 5:
        n += 1
        term = -term * z * z / n
        total += term / (2 * n + 1)
    return x * (1 + two_over_sqrt_pi * total) / 2


def test_correct_rounding_near_ties():
    """The table comes from high-precision arithmetic, not float64: the entries whose float64
    value is closest to a rounding boundary agree with an independent exact evaluation."""
    p = gelu_params("fixed<10,4>", "fixed<16,4>")
    x = all_inputs(p)
    v = np.ldexp(reference(p, x), p.out.frac_bits)
    closest = np.argsort(np.abs(v - np.floor(v) - 0.5))[:6]
    for i in closest:
        xf = Fraction(int(x[i]), 1 << p.inp.frac_bits)
        want = math.floor(_gelu_fraction(xf) * (1 << p.out.frac_bits) + Fraction(1, 2))
        assert gelu_code(xf, p.out.frac_bits) == want == int(gelu(p, x[i:i + 1])[0])


@pytest.mark.parametrize("inp, out", POLY)
def test_poly_accuracy_exhaustive(inp, out):
    """Wider inputs: <= 2 LSB is the target (16-bit in and out); the piecewise quadratic
    stays within 0.6 LSB."""
    p = gelu_params(inp, out)
    assert p.kind == "poly"
    x = all_inputs(p)
    err = error_lsb(p, gelu(p, x), reference(p, x))
    assert err.max() <= 0.6, err.max()


def test_poly_coefficients_fit_delta():
    p = gelu_params("fixed<16,5>", "fixed<16,5>")
    q = p.poly
    u = np.arange(q.span)
    d = poly_delta(p, u)
    exact = np.ldexp(u * p.inp.lsb * 0.5 * np.array([math.erfc(v * p.inp.lsb / math.sqrt(2))
                                                        for v in u]), p.internal_frac)
    assert np.abs(d - exact).max() < 2 ** (p.internal_frac - p.out.frac_bits - 2)
    assert (poly_delta(p, np.array([q.span, q.span + 5])) == 0).all()


def test_family_streaming_and_cycles(rng):
    p = gelu_params(lanes=3)
    x = rng.integers(-128, 128, (4, 5))
    inputs, outs, ctx = family.schedule(p, {"x": x})
    assert outs == {"o_stream": 7} and inputs["i_stream"]["data"].shape == (7, 3)
    back = family.assemble(p, ctx, {"o_stream": {"data": inputs["i_stream"]["data"]}})
    assert np.array_equal(back["y"], x)
    assert family.expected_cycles(p, {"x": x}) == 7 + p.latency
    assert np.array_equal(family.golden(p, {"x": x})["y"], gelu(p, x))


def test_check_inputs_errors():
    p = gelu_params()
    assert check_inputs(p, {"x": np.arange(-5, 5)}).shape == (10,)
    for arrays, msg in [({}, "missing array 'x'"), ({"x": np.zeros(0, dtype=np.int64)},
                                                    "x: shape (0,) is empty"),
                        ({"x": np.array([128])}, "x: value 128 at index 0 is out of range"),
                        ({"x": np.arange(3), "z": np.arange(3)}, "unexpected array 'z'")]:
        with pytest.raises(ArrayError) as info:
            check_inputs(p, arrays)
        assert str(info.value).startswith(msg), str(info.value)
