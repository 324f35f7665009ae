"""Golden model, streaming schedule and cycle model of the MAC array (no simulator)."""

from __future__ import annotations

import numpy as np
import pytest

from generators.errors import ArrayError
from generators.mac_array import check_inputs, gemm, schedule
from generators.mac_array.tiling import assemble

from mac_cases import CORNERS, corner_operands, make_params, random_operands


def reference(p, a, b):
    """Step-by-step accumulation in plain Python ints, the rule applied as the array would:
    modulo 2**W at every step for wrap (equal to wrapping once), exact then clamped for sat."""
    m, k = a.shape
    n = b.shape[1]
    W = p.acc.width
    out = np.zeros((m, n), dtype=object)
    for i in range(m):
        for j in range(n):
            s = 0
            for t in range(k):
                s += int(a[i, t]) * int(b[t, j])
                if p.overflow == "wrap":
                    s &= (1 << W) - 1
            if p.overflow == "wrap":
                if p.acc.signed and s >= 1 << (W - 1):
                    s -= 1 << W
            else:
                s = min(max(s, p.acc.min_code), p.acc.max_code)
            out[i, j] = s
    return out


@pytest.mark.parametrize("fmt", [("int8", "int8", "int32"), ("int4", "int8", "int12"),
                                 ("uint8", "int8", "int17"), ("uint4", "uint4", "uint9"),
                                 ("int16", "int16", "int48"), ("int2", "uint16", "int19")])
@pytest.mark.parametrize("overflow", ["wrap", "sat"])
def test_golden_matches_stepwise_reference(fmt, overflow, rng):
    p = make_params(2, 2, *fmt, overflow=overflow)
    for which in CORNERS:
        a, b = corner_operands(p, which, rng)
        assert np.array_equal(gemm(p, a, b).astype(object), reference(p, a, b)), which
    a, b = random_operands(p, 5, 7, 3, rng)
    assert np.array_equal(gemm(p, a, b).astype(object), reference(p, a, b))


def test_corners_really_overflow(rng):
    p = make_params(2, 2, "int8", "int8", "int20", overflow="sat")
    a, b = corner_operands(p, "allmin_longk", rng)
    assert (gemm(p, a, b) == p.acc.max_code).all()
    p = make_params(2, 2, "int8", "int8", "int20", overflow="wrap")
    exact = a @ b
    assert (exact > p.acc.max_code).all() and (gemm(p, a, b) != exact).all()


def _emulate(p, sched):
    """What the stream protocol means, computed directly from the beats (no RTL): the
    reference the schedule is checked against."""
    ins = sched.inputs
    a_data, last = ins["a_stream"]["data"], ins["a_stream"]["last"]
    b_data = ins["b_stream"]["data"]
    out = []
    if p.dataflow == "output_stationary":
        acc = np.zeros((p.rows, p.cols), dtype=object)
        for t in range(len(a_data)):
            acc = acc + np.outer(a_data[t].astype(object), b_data[t].astype(object))
            if last[t]:
                out.extend(acc)
                acc = np.zeros_like(acc)
    else:
        kf, kl = ins["a_stream"]["k_first"], ins["a_stream"]["k_last"]
        bpos = 0
        buf = {}
        row = 0
        w = None
        for t in range(len(a_data)):
            if w is None:
                w = b_data[bpos: bpos + p.rows][::-1].astype(object)
                bpos += p.rows
            part = a_data[t].astype(object) @ w
            total = part if kf[t] else buf[row] + part
            if kl[t]:
                out.append(total)
            else:
                buf[row] = total
            row += 1
            if last[t]:
                row, w = 0, None
    data = np.array(out, dtype=object)
    return p.acc.apply_overflow(data, p.overflow)


@pytest.mark.parametrize("dataflow", ["output_stationary", "weight_stationary"])
@pytest.mark.parametrize("shape", [(1, 1, 1), (5, 1, 7), (3, 9, 2), (17, 11, 13), (8, 16, 8)])
@pytest.mark.parametrize("size", [(1, 1), (3, 5), (4, 4)])
def test_schedule_streams_the_whole_gemm(dataflow, shape, size, rng):
    p = make_params(*size, dataflow=dataflow, tile_m=4)
    a, b = random_operands(p, *shape, rng)
    sched = schedule(p, a, b)
    beats = _emulate(p, sched)
    assert len(beats) == sched.out_beats
    c = assemble(p, sched, beats)
    assert np.array_equal(c, gemm(p, a, b).astype(object))


@pytest.mark.parametrize("dataflow", ["output_stationary", "weight_stationary"])
def test_expected_cycles_model(dataflow):
    p = make_params(8, 8, dataflow=dataflow)
    # more work never takes fewer cycles; K = 1 still finishes
    assert p.expected_cycles(1, 1, 1) > 0
    prev = 0
    for m in (1, 8, 9, 64, 65, 256):
        c = p.expected_cycles(m, 256, 256)
        assert c >= prev
        prev = c
    # end-to-end 256^3 on 8x8 close to ideal, the target
    assert p.utilization(256, 256, 256, p.expected_cycles(256, 256, 256)) > 0.99
    if dataflow == "output_stationary":
        # one output tile: K beats, then the latency, then R rows
        assert p.expected_cycles(8, 100, 8) == 100 - 1 + p.latency + 8
        # K < rows: each tile is limited by draining 8 rows
        assert p.expected_cycles(8, 2, 16) == (2 - 1) + 8 + p.latency + 8
    with pytest.raises(ValueError):
        p.expected_cycles(0, 1, 1)


def test_internal_width():
    assert make_params(2, 2, "int8", "int8", "int20").internal_width == 20
    sat = make_params(2, 2, "int8", "int8", "int20", overflow="sat", max_k=1024)
    assert sat.internal_width == 16 + 10
    assert make_params(2, 2, "uint8", "uint8", "int18", overflow="sat",
                       max_k=4).internal_width == 16 + 1 + 2
    assert make_params(2, 2, "int8", "int8", "int48", overflow="sat").internal_width == 48


def test_check_inputs_messages():
    p = make_params(2, 2, "int4", "uint8", "int16")
    good = {"a": np.zeros((2, 3), np.int64), "b": np.zeros((3, 4), np.int64)}
    a, b = check_inputs(p, good)
    assert a.shape == (2, 3)
    cases = [
        ({"a": good["a"]}, "missing array 'b'"),
        ({**good, "x": good["a"]}, "unexpected array 'x'"),
        ({"a": np.zeros(3, np.int64), "b": good["b"]}, "a: shape (3,) is not 2-D"),
        ({"a": np.zeros((2, 4), np.int64), "b": good["b"]}, "do not chain"),
        ({"a": np.zeros((0, 3), np.int64), "b": good["b"]}, "is empty"),
        ({"a": np.full((2, 3), 8), "b": good["b"]}, "int4"),
        ({"a": good["a"], "b": np.full((3, 4), -1)}, "uint8"),
        ({"a": good["a"].astype(float), "b": good["b"]}, "float64"),
    ]
    for arrays, text in cases:
        with pytest.raises(ArrayError, match=None) as err:
            check_inputs(p, arrays)
        assert text in str(err.value), (text, str(err.value))
        assert "\n" not in str(err.value)
    sat = make_params(2, 2, overflow="sat", max_k=4)
    with pytest.raises(ArrayError, match="max_k"):
        check_inputs(sat, {"a": np.zeros((1, 5), np.int64), "b": np.zeros((5, 1), np.int64)})
