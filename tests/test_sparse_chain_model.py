"""Compression, bit packing, the two golden models, the streaming schedule and the cycle model
of the sparse chain (no simulator)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sparse_cases import CORNERS, corner_operands, make_params, random_operands, sparse_mask

from generators.config import load_config
from generators.errors import ArrayError
from generators.numerics import Format
from generators.sparse_chain import (
    SparseChainParams,
    chain_matmul,
    check_inputs,
    compress,
    decompress,
    family,
    matmul,
    pack,
    schedule,
    unpack,
)
from generators.sparse_chain.tiling import assemble, unschedule

PATTERNS = [(n, m) for m in (2, 4, 8, 16) for n in sorted({1, 2, m // 2, m - 1, m}) if n >= 1]


@pytest.mark.parametrize("n, m", PATTERNS)
def test_compress_round_trip_and_canonical_form(n, m, rng):
    for o, k in [(1, 1), (3, m), (4, 5 * m + 3), (2, 2 * m - 1)]:
        w = rng.integers(-8, 8, (o, k)) * sparse_mask(rng, o, k, n, m, zero_groups=0.2)
        values, indices = compress(w, n, m)
        groups = -(-k // m)
        assert values.shape == indices.shape == (o, groups, n)
        assert np.array_equal(decompress(values, indices, m, k), w)
        assert ((0 <= indices) & (indices < m)).all()
        if n > 1:
            assert (np.diff(indices, axis=2) > 0).all()  # distinct, ascending
    if n == m:  # dense: every position, in order
        v, i = compress(rng.integers(-8, 8, (2, 3 * m)), n, m)
        assert (i == np.arange(m)).all()


@pytest.mark.parametrize("fmt", ["int4", "int8", "int16", "uint8", "int2"])
@pytest.mark.parametrize("n, m", [(1, 2), (2, 4), (1, 4), (4, 4), (3, 8), (5, 16)])
def test_pack_round_trip(fmt, n, m, rng):
    f = Format.parse(fmt)
    o, k = 3, 7 * m - 1
    w = rng.integers(f.min_code, f.max_code + 1, (o, k)) * sparse_mask(rng, o, k, n, m)
    w[0, 0] = f.min_code if w[0, 0] else 0
    values, indices = compress(w, n, m)
    buf = pack(values, indices, f, m)
    lane = f.width + m.bit_length() - 1
    assert buf.dtype == np.uint8 and buf.shape == (o, -(-values.shape[1] * n * lane // 8))
    v2, i2 = unpack(buf, f, n, m, values.shape[1])
    assert np.array_equal(v2, values) and np.array_equal(i2, indices)
    assert np.array_equal(decompress(v2, i2, m, k), w)


def test_packing_worked_example_of_the_docs():
    w = np.array([[0, -3, 0, 5, 0, 0, 0, 0, 7, 0, 0, 0]])
    values, indices = compress(w, 2, 4)
    assert values.tolist() == [[[-3, 5], [0, 0], [7, 0]]]
    assert indices.tolist() == [[[1, 3], [0, 1], [0, 1]]]
    buf = pack(values, indices, Format.parse("int8"), 4)
    assert bytes(buf[0]).hex(" ") == "fd 15 0c 00 40 07 00 04"


def test_pattern_break_names_first_row_and_group(rng):
    w = np.zeros((5, 18), np.int64)
    w[3, 9:12] = [1, 2, 3]          # row 3, group 2 of 2:4 has three
    w[4, 0:4] = [1, 1, 1, 1]        # a later row, an earlier group: not the first
    with pytest.raises(ValueError, match=r"^row 3, group 2 \(columns 8\.\.11\) has 3 non-zero "
                                         r"values \(allowed: at most 2 per group of 4 in mode "
                                         r"2:4\)$"):
        compress(w, 2, 4)
    w = np.zeros((1, 6), np.int64)
    w[0, 4:6] = 1                   # the ragged last group (columns 4..5)
    with pytest.raises(ValueError, match=r"row 0, group 1 \(columns 4\.\.5\) has 2"):
        compress(w, 1, 4)


def test_decompress_rejects_bad_slots():
    v = np.ones((1, 1, 2), np.int64)
    with pytest.raises(ValueError, match="names one position twice"):
        decompress(v, np.array([[[1, 1]]]), 4, 4)
    with pytest.raises(ValueError, match="0..3"):
        decompress(v, np.array([[[0, 4]]]), 4, 4)


CHAINS = [
    dict(length=4, m=4, modes=("2:4", "1:4", "4:4")),
    dict(length=6, m=2, modes=("1:2", "2:2"), w="int4", x="int8", acc="int14", overflow="sat"),
    dict(length=8, m=8, modes=("2:8", "1:8", "8:8", "4:8"), w="int16", x="int16",
         acc="int40", overflow="sat", max_k=256),
    dict(length=3, m=4, modes=("1:4", "3:4"), w="uint8", x="int8", acc="int17"),
    dict(length=5, m=16, modes=("1:16", "4:16"), w="int8", x="uint8", acc="int18"),
    # no 1:m mode (x_lanes < length * m), stages past the last whole group in 3:4
    dict(length=7, m=4, modes=("3:4", "2:4", "4:4")),
    # chains shorter than N: 4:4 spans 2 weight beats per activation beat, beside modes
    # that do not; 8:8 spans 3 (the last with one zero lane), 4:8 spans 2 (two zero lanes)
    dict(length=2, m=4, modes=("4:4", "2:4", "1:4")),
    dict(length=3, m=8, modes=("8:8", "4:8", "2:8"), w="int4", x="int4", acc="int12",
         overflow="sat", max_k=512),
]


def _id(c):
    return f"L{c['length']}-m{c['m']}-" + "-".join(
        str(v) for k, v in c.items() if k not in ("length", "m", "modes"))


def reference(p, w, x):
    """Step by step in Python ints: modulo 2**W at every step for wrap, exact then clamped
    for sat."""
    o, k = w.shape
    W = p.acc.width
    out = np.zeros((o, x.shape[1]), dtype=object)
    for i in range(o):
        for j in range(x.shape[1]):
            s = 0
            for t in range(k):
                s += int(w[i, t]) * int(x[t, j])
                if p.overflow == "wrap":
                    s &= (1 << W) - 1
            if p.overflow == "wrap":
                s -= (1 << W) if p.acc.signed and s >= 1 << (W - 1) else 0
            else:
                s = min(max(s, p.acc.min_code), p.acc.max_code)
            out[i, j] = s
    return out


def _emulate(p, sched, x_data=None):
    """What the stream protocol means, from the beats alone (in the beat's mode n:m, weight
    beat ``j`` of an activation beat's ``beats_per_group``: stage ``s`` holds slot ``t = j *
    length + s`` and, if ``t < (length // n) * n`` (``n`` when ``n > length``), multiplies
    lane ``(t // n) * m + idx`` of the activation beat, else nothing; cascade, accumulation
    over the beats with ``last``): the reference for the schedule. ``x_data`` replaces the
    ``x_stream`` lanes."""
    ws = sched.inputs["w_stream"]
    xd = sched.inputs["x_stream"]["data"] if x_data is None else x_data
    out, acc, xb, j = [], 0, 0, 0
    for t in range(len(ws["last"])):
        nm = p.mode_list[int(ws["mode"][t])]
        s_sum = 0
        for s in range(p.length):
            slot = j * p.length + s
            if slot < p.groups_per_pass(nm) * nm.n:
                lane = (slot // nm.n) * p.m + int(ws["idx"][t, s])
                s_sum += int(ws["w"][t, s]) * int(xd[xb, lane])
            else:
                assert ws["w"][t, s] == 0 and ws["idx"][t, s] == 0
        acc += s_sum
        j += 1
        if j == p.beats_per_group(nm):
            j, xb = 0, xb + 1
        if ws["last"][t]:
            out.append([acc])
            acc = 0
    assert xb == len(xd) and j == 0
    return p.acc.apply_overflow(np.array(out, dtype=object), p.overflow)


def _garbage_past_pass(p, sched, mode, rng):
    """The ``x_stream`` lanes past the mode's ``k_per_pass`` filled with random codes (what a
    beat read from memory carries there); the lanes that matter unchanged."""
    xd = np.array(sched.inputs["x_stream"]["data"])
    kp = p.k_per_pass(mode)
    xd[:, kp:] = rng.integers(p.x.min_code, p.x.max_code + 1, xd[:, kp:].shape)
    return xd


@pytest.mark.parametrize("cfg", CHAINS, ids=_id)
def test_models_agree_in_every_mode(cfg, rng):
    p = make_params(**cfg)
    for mode in p.modes:
        nm = p.mode(mode)
        for which in CORNERS:
            w, x = corner_operands(p, mode, which, rng)
            golden = matmul(p, w, x)
            assert np.array_equal(golden.astype(object), reference(p, w, x)), (mode, which)
            v, i = compress(w, nm.n, nm.m)
            assert np.array_equal(chain_matmul(p, v, i, x, mode), golden), (mode, which)
        for shape in [(1, 1, 1), (4, 3 * p.k_per_pass(mode) + 5, 3), (2, 17, 2)]:
            w, x = random_operands(p, mode, *shape, rng)
            golden = matmul(p, w, x)
            v, i = compress(w, nm.n, nm.m)
            assert np.array_equal(chain_matmul(p, v, i, x, mode), golden), (mode, shape)
            sched = schedule(p, w, x, mode)
            beats = _emulate(p, sched)
            assert len(beats) == sched.out_beats
            assert np.array_equal(assemble(p, sched, beats), golden.astype(object)), (mode,
                                                                                     shape)
            # a beat is the pass's K positions once, densely; the lanes past it are zero
            kp = p.k_per_pass(mode)
            xd = sched.inputs["x_stream"]["data"]
            assert xd.shape[1] == p.x_lanes and not xd[:, kp:].any()
            xpad = np.zeros((p.x_passes(shape[1], mode) * kp, shape[2]), dtype=np.int64)
            xpad[:shape[1]] = x
            assert np.array_equal(xd[:shape[2] * p.x_passes(shape[1], mode), :kp],
                                  xpad.T.reshape(-1, kp))
            if kp < p.x_lanes:   # and don't-care: garbage there changes nothing
                junk = _emulate(p, sched, _garbage_past_pass(p, sched, mode, rng))
                assert np.array_equal(assemble(p, sched, junk), golden.astype(object))
            assert len(sched.inputs["w_stream"]["last"]) == p.beats(*shape, mode)
            assert len(xd) == shape[0] * shape[2] * p.x_passes(shape[1], mode)
            assert unschedule(p, sched.inputs, shape, mode)["w"].tolist() == w.tolist()


def test_overflow_corners_really_overflow(rng):
    p = make_params(4, 4, ("2:4", "4:4"), "int8", "int8", "int20", overflow="sat")
    w, x = corner_operands(p, "2:4", "allmin_longk", rng)
    assert (matmul(p, w, x) == p.acc.max_code).all()
    p = make_params(4, 4, ("2:4", "4:4"), "int8", "int8", "int20")
    assert (matmul(p, w, x) != w @ x).all()


def test_cycle_model_speedups():
    p = make_params(16, 4, ("2:4", "1:4", "4:4"))
    assert p.x_lanes == 16 * 4 and p.latency == 19
    dense = p.expected_cycles(256, 1024, 8, "4:4")
    assert dense == 256 * 8 * 64 + 19
    assert dense / p.expected_cycles(256, 1024, 8, "2:4") >= 1.99
    assert dense / p.expected_cycles(256, 1024, 8, "1:4") >= 3.99
    assert p.expected_cycles(1, 1, 1) == 1 + p.latency
    p = make_params(6, 4, ("1:4", "4:4"))  # 4:4 uses 4 of 6 stages; 1:4 all 6
    assert (p.k_per_pass("4:4"), p.k_per_pass("1:4"), p.x_lanes) == (4, 24, 6 * 4)
    # the beat is the largest pass: length * m only with a 1:m mode
    p = make_params(16, 4, ("2:4",))
    assert (p.x_lanes, p.x_overread_bytes("2:4"), p.x_pass_bytes("2:4")) == (32, 0, 32)
    p = make_params(16, 4, ("2:4", "4:4"), x="int16", acc="int40")
    assert (p.x_lanes, p.x_overread_bytes("4:4"), p.x_overread_bytes("2:4")) == (32, 32, 0)
    p = make_params(16, 4, ("2:4", "1:4", "4:4"), x="int4", acc="int32")
    assert (p.x_pass_bytes("4:4"), p.x_overread_bytes("4:4"), p.x_overread_bytes()) == (8, 24, 16)
    p = make_params(16, 4, ("3:4",))   # 5 groups of 4: stage 15 holds no slot
    assert (p.k_per_pass("3:4"), p.x_lanes) == (20, 20)


def test_check_inputs_errors():
    p = make_params(4, 4, ("2:4", "4:4"), overflow="sat", acc="int32", max_k=8)
    good = {"w": np.zeros((2, 8), np.int64), "x": np.zeros((8, 3), np.int64)}
    assert set(family.check_inputs(p, good, mode="4:4")) == {"w", "x"}
    cases = [
        ({"w": good["w"]}, None, "missing array 'x'"),
        ({**good, "y": good["x"]}, None, "unexpected array 'y'"),
        ({"w": np.zeros((2, 7), np.int64), "x": good["x"]}, None, "do not chain"),
        ({"w": np.zeros((2, 9), np.int64), "x": np.zeros((9, 1), np.int64)}, None, "max_k"),
        ({"w": np.full((2, 8), 200), "x": good["x"]}, None, "w: value 200 at index (0, 0)"),
        ({"w": np.ones((2, 8), np.int64), "x": good["x"]}, None,
         "w: row 0, group 0 (columns 0..3) has 4 non-zero values"),
        (good, "1:4", "mode '1:4' is not a mode of this chain (allowed: 2:4, 4:4)"),
        ({"w": good["w"], "x": np.zeros(8, np.int64)}, None, "not 2-D"),
    ]
    for arrays, mode, text in cases:
        with pytest.raises(ArrayError) as info:
            check_inputs(p, arrays, mode)
        assert text in str(info.value) and "\n" not in str(info.value), text


def test_config_to_params():
    cfg = load_config(Path(__file__).resolve().parent.parent / "configs" / "sparse16.yaml")
    assert isinstance(cfg, SparseChainParams)
    assert cfg.modes == ("2:4", "1:4", "4:4") and cfg.overflow == "wrap"
    assert cfg.internal_width == 32 and cfg.macs_per_cycle == 16
    p = family.params(cfg)
    assert p.modes == cfg.modes and p.mode().n == 2 and p.mode_code("4:4") == 2
    assert str(cfg.product) == "int16"
    schema = SparseChainParams.model_json_schema()
    assert all(prop.get("description") for prop in schema["properties"].values())
