"""Softmax: the exp table, the golden model against exact arithmetic (Fractions) and against
float64 softmax (the accuracy targets, in output LSBs), streaming and the cycle model."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from nonlin_cases import softmax_params

from generators.errors import ArrayError
from generators.softmax import (
    assemble_rows,
    check_inputs,
    error_lsb,
    family,
    reference,
    schedule_rows,
    softmax,
)
from generators.softmax.stimuli import KINDS, adversarial_rows, random_rows

CONFIGS = [
    dict(length=64, inp="fixed<8,3>", out="ufixed<8,0>"),     # configs/softmax64.yaml
    dict(length=64, inp="fixed<8,3>", out="ufixed<16,0>"),
    dict(length=64, inp="int8", out="ufixed<8,0>"),
    dict(length=256, inp="fixed<12,4>", out="ufixed<8,0>"),
    dict(length=16, lanes=4, inp="fixed<6,2>", out="ufixed<10,1>"),
    dict(length=1, inp="uint4", out="ufixed<4,0>"),
]


def _id(c):
    return "-".join(str(v) for v in c.values())


@pytest.mark.parametrize("cfg", CONFIGS, ids=_id)
def test_exp_table_is_correctly_rounded(cfg):
    p = softmax_params(**cfg)
    t = np.array(p.table, dtype=np.int64)
    assert t[0] == 1 << p.guard
    assert (np.diff(t) <= 0).all()
    assert t[-1] == 0 or len(t) == 1 << p.inp.width
    d = np.arange(len(t))
    exact = np.ldexp(np.exp(-d * p.inp.lsb), p.guard)
    assert np.abs(t - exact).max() <= 0.5 + 1e-6


def _exact_spec(p, row) -> list[int]:
    """The specification in exact rational arithmetic, independently of NumPy."""
    m = max(row)
    e = [p.table[min(m - v, p.table_size - 1)] for v in row]
    s = sum(e)
    out = []
    for v in e:
        q = Fraction(v << p.out_frac, s)
        out.append(min(math.floor(q + Fraction(1, 2)), p.out.max_code))
    return out


@pytest.mark.parametrize("cfg", CONFIGS, ids=_id)
def test_model_equals_the_exact_specification(cfg, rng):
    p = softmax_params(**cfg)
    for row in adversarial_rows(p, rng)[:60]:
        assert softmax(p, row[None, :])[0].tolist() == _exact_spec(p, row.tolist())


@pytest.mark.parametrize("cfg", CONFIGS, ids=_id)
def test_accuracy_against_float64(cfg, rng):
    """Max error <= 0.51 LSB (<= 1 LSB is the 16-bit target), on random rows of full length
    and of random lengths and on every adversarial kind; argmax kept where the exact top two
    differ by more than 1 LSB."""
    p = softmax_params(**cfg)
    rows = [random_rows(p, rng, 4000)]
    rows += [random_rows(p, rng, 500, n) for n in sorted({1, 2, max(1, p.length // 3)})]
    errs, signed = [], []
    for x in rows + [r[None, :] for r in adversarial_rows(p, rng)]:
        y = softmax(p, x)
        prob = reference(p, x)
        e = error_lsb(p, y, prob, signed=True)
        errs.append(np.abs(e).reshape(-1))
        signed.append(e.reshape(-1))
        exact = np.clip(np.ldexp(prob, p.out_frac), 0, p.out.max_code)
        top2 = np.sort(exact, axis=1)[:, -2:] if x.shape[1] > 1 else None
        if top2 is not None:
            clear = top2[:, 1] - top2[:, 0] > 1
            assert (np.argmax(y, axis=1) == np.argmax(exact, axis=1))[clear].all()
        assert (y.sum(axis=1) <= p.out.max_code * x.shape[1]).all()
    err = np.concatenate(errs)
    assert err.max() <= 0.51, err.max()
    if p.out.width >= 16:
        assert err.max() <= 1.0
    # the full-length random rows: the bench's mean targets
    full = errs[0]
    assert full.mean() <= 0.26
    if cfg == CONFIGS[0]:
        assert full.mean() <= 0.2
        assert abs(signed[0].mean()) <= 0.05


def test_rows_of_one_are_exactly_one(rng):
    p = softmax_params()
    x = random_rows(p, rng, 50, 1)
    assert (softmax(p, x) == p.out.max_code).all()
    p = softmax_params(out="ufixed<8,1>")
    assert (softmax(p, x) == 128).all()


def test_all_equal_rows_are_uniform():
    p = softmax_params(out="ufixed<16,0>")
    for n in (1, 2, 3, 7, 64):
        y = softmax(p, np.full((1, n), -128))
        assert (y == min(round(65536 / n), 65535)).all()


def test_schedule_round_trip_with_lanes(rng):
    p = softmax_params(length=10, lanes=4)
    rows = [rng.integers(-128, 128, n) for n in (1, 4, 5, 10, 3)]
    fields, beats = schedule_rows(p, rows)
    assert beats == sum(math.ceil(len(r) / 4) for r in rows)
    assert fields["data"].shape == (beats, 4)
    assert fields["last"].sum() == len(rows)
    assert fields["keep"][0] == 1 and fields["keep"][1] == 0b1111
    back = assemble_rows(p, [len(r) for r in rows], fields["data"])
    assert all(np.array_equal(a, b) for a, b in zip(back, rows, strict=True))


def test_expected_cycles_model():
    p = softmax_params(length=64)
    one = p.expected_cycles([64])
    # one row: stored, summed, divided: three passes back to back plus the pipelines
    assert one == 3 * 64 + p.sum_depth + p.div_depth - 1
    # sustained: each further row of the same length costs exactly its beats
    for n in (1, 5, 64):
        assert p.expected_cycles([n] * 11) - p.expected_cycles([n] * 10) == n
    # a short row after a long one waits for the long one's passes
    assert p.expected_cycles([64, 1]) == p.expected_cycles([64]) + 1
    q = softmax_params(length=10, lanes=4)
    assert q.expected_cycles([10] * 5) - q.expected_cycles([10] * 4) == 3


def test_check_inputs_errors():
    p = softmax_params(length=8)
    good = np.zeros((2, 8), dtype=np.int64)
    assert check_inputs(p, {"x": good}).shape == (2, 8)
    cases = [
        ({}, "missing array 'x' (softmax needs: x [R, n] with 1 <= n <= 8)"),
        ({"x": good, "y": good}, "unexpected array 'y'"),
        ({"x": np.zeros(8, dtype=np.int64)}, "x: shape (8,) is not 2-D"),
        ({"x": np.zeros((2, 0), dtype=np.int64)}, "x: shape (2, 0) is empty"),
        ({"x": np.zeros((2, 9), dtype=np.int64)},
         "x: rows of 9 elements are longer than this unit's length 8 (allowed: 1..8)"),
        ({"x": np.full((1, 2), 200)}, "x: value 200 at index (0, 0) is out of range"),
        ({"x": np.zeros((1, 2))}, "x: dtype float64 is not an integer dtype"),
    ]
    for arrays, msg in cases:
        with pytest.raises(ArrayError) as info:
            check_inputs(p, arrays)
        assert str(info.value).startswith(msg), str(info.value)
        assert "\n" not in str(info.value)


def test_family_golden_and_stats(rng):
    p = softmax_params(length=8)
    x = rng.integers(-128, 128, (3, 5))
    assert np.array_equal(family.golden(p, {"x": x})["y"], softmax(p, x))
    st = family.stats(p, {"x": x}, None)
    assert st["expected_cycles"] == p.expected_cycles([5] * 3)
    assert set(KINDS) >= {"all_equal_min", "one_huge", "ties_top2"}


@pytest.mark.regress
def test_accuracy_million_rows():
    """The bench's sweep: 10**6 random rows of configs/softmax64.yaml."""
    p = softmax_params()
    rng = np.random.default_rng(1)
    worst, total, tsigned, count = 0.0, 0.0, 0.0, 0
    for _ in range(20):
        x = random_rows(p, rng, 50000)
        e = error_lsb(p, softmax(p, x), reference(p, x), signed=True)
        worst = max(worst, float(np.abs(e).max()))
        total += float(np.abs(e).sum())
        tsigned += float(e.sum())
        count += e.size
    assert worst <= 0.51 and total / count <= 0.2 and abs(tsigned / count) <= 0.05
