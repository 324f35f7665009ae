"""model tier: the requantization golden model (generators.numerics.requantize_fixed and
quantize_multiplier) against a second implementation written here from the issue's formulas
in plain Python ints; the requant family's arrays, streams and bad input (through the command
line, exit 2 and one line)."""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import tf

from generators.config import parse_config
from generators.errors import ArrayError
from generators.numerics import Format, quantize_multiplier, requantize_fixed
from generators.requant import family

ROOT = Path(__file__).resolve().parent.parent
CFG = ROOT / "configs" / "requant8.yaml"
I32_MIN, I32_MAX = -(1 << 31), (1 << 31) - 1
INT8 = Format.parse("int8")


# -- the second implementation: Python ints, one element at a time -------------------------


def ref_wrap32(v: int) -> int:
    return (v + (1 << 31)) % (1 << 32) - (1 << 31)


def ref_srdhm(a: int, b: int) -> int:
    if a == b == I32_MIN:
        return I32_MAX
    ab = a * b
    v = ab + ((1 << 30) if ab >= 0 else 1 - (1 << 30))
    q = abs(v) // (1 << 31)          # C division truncates toward zero
    return q if v >= 0 else -q


def ref_rdbpot(v: int, e: int) -> int:
    mask = (1 << e) - 1
    return (v >> e) + (1 if (v & mask) > (mask >> 1) + (1 if v < 0 else 0) else 0)


def ref_pow2(x: int, s: int, rounding: str) -> int:
    """round(x * 2**s) by the ap_fixed rules, with Fractions."""
    v = Fraction(x) * Fraction(2) ** s
    f = math.floor(v)
    if rounding == "trn" or v == f:
        return f
    if rounding == "rnd":
        return f + (1 if v - f >= Fraction(1, 2) else 0)
    frac = v - f
    return f + (1 if frac > Fraction(1, 2) or (frac == Fraction(1, 2) and f % 2) else 0)


def ref_requant(acc, bias, m, s, zp, lo, hi, rounding) -> int:
    x = ref_wrap32(acc + bias)
    if rounding == "double":
        r = ref_rdbpot(ref_srdhm(ref_wrap32(x * 2 ** max(s, 0)), m), max(-s, 0))
    elif rounding == "single":
        r = (x * m + 2 ** (30 - s)) >> (31 - s)
    else:
        r = ref_pow2(x, s, rounding)
    return min(max(zp + r, lo), hi)


def ref_quantize_multiplier(scale: float, bits: int) -> tuple[int, int]:
    if scale == 0:
        return 0, 0
    q, shift = math.frexp(scale)
    v = Fraction(q) * 2 ** (bits - 1)
    mq = math.floor(v + Fraction(1, 2))          # v > 0: half away from zero
    if mq == 2 ** (bits - 1):
        mq //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return mq * 2 ** (32 - bits), shift


# -- random values with many ties ------------------------------------------------------------


def _values(rng, n):
    """acc, bias, multiplier, shift: uniform int32 and multipliers, and a quarter with round
    multipliers and tie-making accumulators (odd multiples of 2**(e-1), 2**e, their
    neighbours, both signs)."""
    acc = rng.integers(I32_MIN, I32_MAX + 1, n)
    bias = np.where(rng.random(n) < 0.5, 0, rng.integers(I32_MIN, I32_MAX + 1, n))
    m = rng.integers(0, 1 << 31, n)
    s = rng.integers(-31, 31, n)
    special = rng.random(n) < 0.25
    e = np.maximum(-s, 0)
    odd = 2 * rng.integers(0, 8, n) + 1
    tie = odd << np.maximum(e - rng.integers(0, 2, n), 0)
    tie = tie * rng.choice([-1, 1], n) + rng.integers(-1, 2, n)
    acc = np.where(special, np.clip(tie, I32_MIN, I32_MAX), acc)
    bias = np.where(special, 0, bias)
    m = np.where(special, rng.choice([0, 1, 1 << 30, (1 << 31) - 1, 3 << 29], n), m)
    ext = rng.random(n) < 0.02
    acc = np.where(ext, rng.choice([I32_MIN, I32_MAX, 0, -1, 1], n), acc)
    return acc, bias, m, s


@pytest.mark.parametrize("rounding", ["double", "single"])
def test_golden_matches_second_implementation_1e6(rng, rounding):
    n = 10 ** 6
    acc, bias, m, s = _values(rng, n)
    # a few zero points and clamp ranges, one golden call each (they are scalars)
    groups = [(0, -128, 127), (-128, -128, 127), (127, -128, 127), (5, -3, 3), (0, 7, 7)]
    cut = np.linspace(0, n, len(groups) + 1).astype(int)
    for (zp, lo, hi), a, b in zip(groups, cut[:-1], cut[1:], strict=True):
        got = requantize_fixed(acc[a:b], bias=bias[a:b], multiplier=m[a:b], shift=s[a:b],
                               zero_point=zp, act_min=lo, act_max=hi, rounding=rounding,
                               out_fmt=INT8)
        want = [ref_requant(*v, zp, lo, hi, rounding) for v in zip(
            acc[a:b].tolist(), bias[a:b].tolist(), m[a:b].tolist(), s[a:b].tolist(),
            strict=True)]
        assert np.array_equal(got, np.asarray(want)), (zp, lo, hi)


@pytest.mark.parametrize("rounding", ["trn", "rnd", "rnd_conv"])
def test_golden_power_of_two_matches_second_implementation(rng, rounding):
    # 10**5 per rounding: the Fraction reference is slower than the int ones above
    n = 10 ** 5
    acc, bias, _, s = _values(rng, n)
    out = Format.parse("int16")
    got = requantize_fixed(acc, bias=bias, shift=s, zero_point=-9, rounding=rounding,
                           out_fmt=out)
    want = [ref_requant(a, b, None, sv, -9, out.min_code, out.max_code, rounding)
            for a, b, sv in zip(acc.tolist(), bias.tolist(), s.tolist(), strict=True)]
    assert np.array_equal(got, np.asarray(want))


def test_golden_unrounded_rescaling_without_clamp(rng):
    # with a 16-bit output and small scales most codes are inside the range, so the
    # comparison above is not just a comparison of clamps
    acc, bias, m, s = _values(rng, 10 ** 5)
    s = np.minimum(s, -12)
    y = requantize_fixed(acc, bias=bias, multiplier=m, shift=s, out_fmt=Format.parse("int16"))
    inside = (y > -32768) & (y < 32767)
    assert inside.mean() > 0.5


def test_per_channel_broadcast_along_last_axis(rng):
    acc = rng.integers(-2 ** 20, 2 ** 20, (6, 5))
    m = rng.integers(1 << 30, 1 << 31, 5)
    s = rng.integers(-20, 0, 5)
    bias = rng.integers(-1000, 1000, 5)
    got = requantize_fixed(acc, bias=bias, multiplier=m, shift=s, out_fmt=INT8)
    for n in range(5):
        col = requantize_fixed(acc[:, n], bias=int(bias[n]), multiplier=int(m[n]),
                               shift=int(s[n]), out_fmt=INT8)
        assert np.array_equal(got[:, n], col)


def test_quantize_multiplier_matches_tflite_rules(rng):
    scales = np.concatenate([
        np.exp2(rng.uniform(-40, 28.99, 20000)),
        rng.uniform(0, 1, 5000),
        [0.0, 1.0, 0.5, 0.25, 2.0 ** -31, 2.0 ** -32, 2.0 ** -33, 1 - 2.0 ** -40,
         0.5 - 2.0 ** -45, 2.0 ** 29, 5e-324]])
    for bits in (32, 31, 24, 16, 12, 8, 3, 2):
        m, s = quantize_multiplier(scales, bits=bits)
        want = [ref_quantize_multiplier(float(v), bits) for v in scales]
        assert np.array_equal(m, [w[0] for w in want]), bits
        assert np.array_equal(s, [w[1] for w in want]), bits
        assert ((m >= 0) & (m < 1 << 31)).all() and ((s >= -31) & (s <= 30)).all()
        assert (m & ((1 << (32 - bits)) - 1) == 0).all()
        # close: within half a step of the kept bits (relative), where not flushed to zero
        kept = m > 0
        approx = m[kept] * np.exp2(s[kept] - 31.0)
        assert (np.abs(approx / scales[kept] - 1) <= 2.0 ** -(bits - 2)).all()
    assert quantize_multiplier(0.3) == (1288490189, -1)
    assert quantize_multiplier(1 - 2.0 ** -40) == (1 << 30, 1)    # 2**31 halved
    assert quantize_multiplier(2.0 ** -33) == (0, 0)              # shift below -31
    assert isinstance(quantize_multiplier(0.75)[0], int)


@pytest.mark.parametrize("bad", [-0.5, float("nan"), float("inf"), 2.0 ** 30,
                                 2.0 ** 30 * (1 - 2.0 ** -40)])
def test_quantize_multiplier_refuses(bad):
    with pytest.raises(ValueError, match="real_scale"):
        quantize_multiplier(bad)


def test_hardware_identities_of_the_rtl(rng):
    # the forms the RTL computes (generators/requant/rtl.py) equal the formulas
    a = rng.integers(I32_MIN, I32_MAX + 1, 200000)
    m = rng.integers(0, 1 << 31, 200000)
    a[:4], m[:4] = [I32_MIN, I32_MIN, I32_MAX, -1], [(1 << 31) - 1, 0, (1 << 31) - 1, 1 << 30]
    srdhm = [ref_srdhm(x, y) for x, y in zip(a.tolist(), m.tolist(), strict=True)]
    assert np.array_equal((a * m + (1 << 30)) >> 31, srdhm)
    v = rng.integers(I32_MIN, I32_MAX + 1, 200000)
    e = rng.integers(1, 32, 200000)
    want = [ref_rdbpot(x, y) for x, y in zip(v.tolist(), e.tolist(), strict=True)]
    assert np.array_equal((v + (1 << (e - 1)) - (v < 0)) >> e, want)


def test_split_product_identities(rng):
    # the split product of a lane with mult_bits <= 17 (generators/requant/widemul.py):
    # a = a_hi * 2**18 + a_lo (a_lo = a[:18] unsigned, a_hi = a[18:] signed), and radix-4
    # Booth digits d_i = -2*x[2i+1] + x[2i] + x[2i-1] (x[-1] = 0) of x sign- or zero-extended
    # to 2n bits sum to x
    a = rng.integers(I32_MIN, I32_MAX + 1, 100000)
    a[:3] = [I32_MIN, I32_MAX, -1]
    m = rng.integers(0, 1 << 16, 100000)
    a_lo, a_hi = a & ((1 << 18) - 1), a >> 18
    assert a_lo.min() >= 0 and a_hi.min() >= -(1 << 13) and a_hi.max() < 1 << 13
    assert np.array_equal(a_hi * m * (1 << 18) + a_lo * m, a * m)
    for x, width, signed in [(a_hi, 14, True), (m, 16, False), (m >> 13, 3, False)]:
        n = (width + (0 if signed else 1) + 1) // 2
        u = x & ((1 << (2 * n)) - 1)          # two's complement in 2n bits
        bit = [(u >> j) & 1 for j in range(2 * n)]
        digits = [-2 * bit[2 * i + 1] + bit[2 * i] + (bit[2 * i - 1] if i else 0)
                  for i in range(n)]
        assert all(d.min() >= -2 and d.max() <= 2 for d in digits)
        if not signed:
            assert digits[-1].min() >= 0    # an unsigned operand's top digit: never negative
        assert np.array_equal(sum(d * 4 ** i for i, d in enumerate(digits)), x)


def test_wide_product_and_rounding_identities(rng):
    # a lane with mult_bits >= 18 (generators/requant/widemul.py wide_product): both operands
    # split at bit 18; the weight-0 and weight-36 products side by side (no overlap), plus
    # the nudge, plus the middle sum << 18, is a*m + nudge; double's rounding shift as the RTL
    # forms it (the nudge picked by the sign) and its saturation to out.width + 2 bits
    a = rng.integers(I32_MIN, I32_MAX + 1, 100000)
    m = rng.integers(0, 1 << 31, 100000)
    a[:4], m[:4] = [I32_MIN, I32_MAX, -1, I32_MIN], [(1 << 31) - 1, (1 << 31) - 1, 1, 0]
    lo18 = (1 << 18) - 1
    a_lo, a_hi, m_lo, m_hi = a & lo18, a >> 18, m & lo18, m >> 18
    p00, p11 = a_lo * m_lo, a_hi * m_hi
    assert p00.min() >= 0 and p00.max() < 1 << 36
    base = (p00 | (p11 << 36)) + (1 << 30)          # concatenation, then the nudge
    mid = a_hi * m_lo + a_lo * m_hi
    assert np.array_equal((base + (mid << 18)) >> 31, (a * m + (1 << 30)) >> 31)
    v = rng.integers(I32_MIN, I32_MAX + 1, 100000)
    e = rng.integers(0, 32, 100000)
    half = (1 << e) >> 1
    t = v + np.where((v < 0) & (e != 0), half - 1, half)
    want = np.where(e == 0, v, (v + half - (v < 0)) >> np.maximum(e, 1))
    assert np.array_equal(t >> e, want)
    for w in (2, 8, 16):
        for zp, lo, hi in [(-(1 << (w - 1)), -(1 << (w - 1)), (1 << (w - 1)) - 1),
                           ((1 << w) - 1, 0, (1 << w) - 1), (0, 0, 0)]:
            sat = np.clip(want, -(1 << (w + 1)), (1 << (w + 1)) - 1)
            assert np.array_equal(np.clip(zp + sat, lo, hi), np.clip(zp + want, lo, hi))


@pytest.mark.parametrize("rounding", ["double", "single", "trn"])
def test_latency_with_the_split_product(rounding):
    """A product wider than one hard multiplier's operands takes one stage more: split with
    mult_bits <= 17, four (or two) summed hard partial products with mult_bits >= 18 (double:
    always, the product's operand being x << left in int32; single: x is int32 here)."""
    from generators.requant.params import LANE_STAGES
    from generators.requant.rtl import RequantLane

    for mult_bits in ((2, 12, 16, 17, 18, 24, 32) if rounding != "trn" else (32,)):
        p = _params(rounding=rounding, mult_bits=mult_bits)
        several = rounding != "trn"
        assert p.latency == 1 + LANE_STAGES[rounding] + several
        assert RequantLane(p.inp, p.out, rounding, mult_bits).latency == p.lane_latency
    if rounding == "single":   # an x and a multiplier of at most 18 bits keep one product
        for x_fmt, mult_bits, several in [("int18", 16, False), ("int19", 16, True),
                                          ("int18", 19, False), ("int18", 20, True),
                                          ("int19", 18, True)]:
            lane = RequantLane(INT8, INT8, "single", mult_bits, x_fmt=Format.parse(x_fmt))
            assert lane.latency == LANE_STAGES["single"] + several


# -- the family's arrays and streams ---------------------------------------------------------


def _params(**changes):
    d = {"name": "rq", "unit": "requant", "in": "int32", "out": "int8", "channels": 10,
         "lanes": 3, **changes}
    return parse_config(d, "test")


@pytest.mark.parametrize("changes", [{}, {"per": "tensor", "mult_bits": 16},
                                     {"rounding": "rnd_conv"}, {"rounding": "single"}])
def test_schedule_round_trips(rng, changes):
    p = _params(**changes)
    n = 7
    arrays = {"acc": rng.integers(-2 ** 31, 2 ** 31, (4, n)),
              "bias": rng.integers(-99, 99, n), "shift": rng.integers(-31, 31, n),
              "zero_point": np.int64(-3), "act_max": np.int64(100)}
    if p.uses_multiplier:
        arrays["multiplier"] = rng.integers(0, 2 ** 31, n) >> p.mult_shift << p.mult_shift
    if p.per == "tensor":
        arrays["shift"], arrays["multiplier"] = np.int64(-9), arrays["multiplier"][0]
    a = family.check_inputs(p, arrays)
    inputs, out_beats, ctx = family.schedule(p, a)
    assert family.stream_beats(p, family.shape_key(a)) == {
        "p_stream": 3, "acc_stream": 12, "y_stream": 12} == {
        **{k: len(v["last"]) for k, v in inputs.items()}, **out_beats}
    back = family.unschedule(p, inputs, (4, n))
    assert back.keys() == a.keys() and all(np.array_equal(back[k], a[k]) for k in a)
    y = family.golden(p, a)["y"]
    assert np.array_equal(family.assemble(p, ctx, family.disassemble(p, ctx, {"y": y}))["y"], y)
    bad = {k: dict(v) for k, v in inputs.items()}
    bad["p_stream"]["zero_point"] = bad["p_stream"]["zero_point"].copy()
    bad["p_stream"]["zero_point"][0] += 1
    with pytest.raises(ValueError):
        family.unschedule(p, bad, (4, n))
    assert family.expected_cycles(p, a) == 3 + 12 + p.latency


def test_defaults_and_check_inputs():
    p = _params()
    a = family.check_inputs(p, {"acc": np.zeros((2, 4), np.int32),
                                "multiplier": np.int64(1 << 30)})
    assert a["bias"].tolist() == [0] * 4 and a["shift"].tolist() == [0] * 4
    assert int(a["act_min"]) == -128 and int(a["act_max"]) == 127 and int(a["zero_point"]) == 0
    with pytest.raises(ArrayError, match="multiplier"):
        family.check_inputs(p, {"acc": np.zeros((2, 4), np.int32)})


# -- bad input through the command line: exit 2, one line ------------------------------------


N = 8
GOOD = {"acc": np.zeros((3, N), np.int32), "bias": np.zeros(N, np.int32),
        "multiplier": np.full(N, 1 << 30, np.int64), "shift": np.full(N, -3, np.int64)}
BAD = [
    ({"multiplier": np.array([1 << 30] * 7 + [1 << 31])},
     "multiplier: value 2147483648 at index 7 is out of range (allowed: 0..2147483647"),
    ({"multiplier": np.array([-1] + [1] * 7)},
     "multiplier: value -1 at index 0 is out of range (allowed: 0..2147483647"),
    ({"shift": np.array([0, 31] + [0] * 6)},
     "shift: value 31 at index 1 is out of range (allowed: -31..30)"),
    ({"shift": np.full(N, -32)}, "shift: value -32 at index 0 is out of range (allowed: -31..30)"),
    ({"bias": np.zeros(N - 1, np.int32)},
     "bias: shape (7,) does not fit acc's N = 8 (allowed: a scalar or shape (8,))"),
    ({"multiplier": np.full(N, 0.5)}, "multiplier: dtype float64 is not an integer dtype"),
    ({"bias": np.array([0] * 5 + [1 << 31] + [0] * 2)},
     "bias: value 2147483648 at index 5 is out of range (allowed: -2147483648..2147483647)"),
    ({"zero_point": np.int64(128)},
     "zero_point: value 128 is out of range (allowed: -128..127, the range of int8)"),
    ({"act_min": np.int64(-200)},
     "act_min: value -200 is out of range (allowed: -128..127, the range of int8)"),
    ({"act_min": np.int64(5), "act_max": np.int64(4)},
     "act_min: 5 > act_max 4 (allowed: act_min <= act_max)"),
    ({"zero_point": np.zeros(2, np.int64)}, "zero_point: shape (2,) is not a scalar"),
    ({"acc": np.zeros((2, 65), np.int32), "bias": np.int32(0), "multiplier": np.int64(1),
      "shift": np.int64(0)},
     "acc: N = 65 channels exceed the parameter memory (allowed: N <= 64"),
    ({"acc": np.zeros(8, np.int32)}, "acc: shape (8,) is not [R, N]"),
    ({"acc": np.zeros((2, N))}, "acc: dtype float64 is not an integer dtype"),
    ({"scale": np.zeros(N)}, "unexpected array 'scale'"),
]


@pytest.mark.parametrize("backend", ["golden", "rtl"])
def test_bad_arrays_exit_2_one_line(tmp_path, backend):
    """Every bad array is exit 2 and one line; the command runs main() in this process
    (tests/cli_helpers.py; tests/test_cli.py runs the real entry points as processes)."""
    cases = BAD if backend == "golden" else BAD[-5:-3]   # rtl: refused before building
    for i, (change, msg) in enumerate(cases):
        path = tmp_path / f"in{i}.npz"
        np.savez(path, **{**GOOD, **change})
        r = tf("run", CFG, "--inputs", path, "--out", tmp_path / "o.npz", "--backend", backend,
               cwd=ROOT)
        code, err = r.returncode, r.stderr
        assert code == 2, (msg, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and msg in lines[0], (msg, err)
        assert "Traceback" not in err


def test_run_golden_writes_y(tmp_path, rng):
    acc = rng.integers(-2 ** 31, 2 ** 31, (5, 64))
    m, s = quantize_multiplier(rng.uniform(1e-6, 1e-3, 64))
    np.savez(tmp_path / "in.npz", acc=acc, bias=rng.integers(-2 ** 20, 2 ** 20, 64),
             multiplier=m, shift=s, zero_point=np.int64(-5))
    r = tf("run", CFG, "--inputs", tmp_path / "in.npz", "--out", tmp_path / "out.npz", cwd=ROOT)
    assert r.returncode == 0, r.stderr
    with np.load(tmp_path / "in.npz") as f:
        arrays = dict(f)
    y = np.load(tmp_path / "out.npz")["y"]
    p = family.params(parse_config({"name": "requant8", "unit": "requant", "in": "int32",
                                    "out": "int8", "channels": 64, "lanes": 4}, "t"))
    want = family.golden(p, family.check_inputs(p, arrays))["y"]
    assert y.shape == (5, 64) and np.array_equal(y, want)
    assert np.array_equal(want[:, 3], [ref_requant(int(acc[i, 3]), int(arrays["bias"][3]),
                                                   int(m[3]), int(s[3]), -5, -128, 127,
                                                   "double") for i in range(5)])


@pytest.mark.parametrize("per", ["channel", "tensor"])
def test_unschedule_takes_the_wire_format(rng, per):
    # scalar fields come off the wire as raw bits (host.tensor.unpack_beats)
    from generators.emit import describe_ports
    from host.tensor import pack_beats, unpack_beats

    p = _params(per=per, out="int4")
    a = family.check_inputs(p, {
        "acc": rng.integers(-2 ** 31, 2 ** 31, (3, 5)), "bias": rng.integers(-9, 9, 5),
        "multiplier": np.int64(1 << 30) if per == "tensor" else rng.integers(0, 2 ** 31, 5),
        "shift": np.int64(-7) if per == "tensor" else rng.integers(-31, 31, 5),
        "zero_point": np.int64(-3), "act_min": np.int64(-8), "act_max": np.int64(-1)})
    inputs, _, _ = family.schedule(p, a)
    _, streams = describe_ports(family.component(p))
    wire = {k: unpack_beats(streams[k]["fields"], pack_beats(streams[k]["fields"], v).tobytes(),
                            len(v["last"])) for k, v in inputs.items()}
    back = family.unschedule(p, wire, (3, 5, 0))
    assert all(np.array_equal(back[k], a[k]) for k in a)


def test_model_board_runs_requant(tmp_path, rng):
    from host.board import BoardError, open_board

    design = tmp_path / "rq.yaml"
    design.write_text("name: rqb\nboard: ulx3s\nlink: {uart: 3000000}\nunits:\n"
                      "  - {name: rq, unit: requant, in: int32, out: int8, channels: 64, "
                      "lanes: 4}\n")
    arrays = {"acc": rng.integers(-2 ** 31, 2 ** 31, (6, 10)),
              "bias": rng.integers(-1000, 1000, 10), "multiplier": rng.integers(0, 2 ** 31, 10),
              "shift": rng.integers(-31, 31, 10), "zero_point": np.int64(-3)}
    with open_board(f"model://{design}") as board:
        y = board.run("rq", arrays)["y"]
        with pytest.raises((ArrayError, BoardError), match="shift"):
            board.run("rq", {**arrays, "shift": np.full(10, 40)})
    p = _params(channels=64, lanes=4)
    assert np.array_equal(y, family.golden(p, family.check_inputs(p, arrays))["y"])


@pytest.mark.parametrize("rounding", ["double", "single", "trn", "rnd", "rnd_conv"])
def test_every_rounding_round_trips_through_its_dump(rounding):
    """A dumped config (config_to_dict, and so a board's INFO) parses back, for the unit and
    for the fused block: a power-of-two rounding keeps the default mult_bits in its dump."""
    from generators.config import config_to_dict

    unit = parse_config({"name": "r", "unit": "requant", "in": "int32", "out": "int8",
                         "rounding": rounding, "channels": 8}, "t")
    assert parse_config(config_to_dict(unit), "again") == unit
    mac = parse_config({"name": "m", "unit": "mac_array", "rows": 2, "cols": 2, "a": "int8",
                        "b": "int8", "acc": "int32", "requant": {"rounding": rounding}}, "t")
    assert parse_config(config_to_dict(mac), "again") == mac
