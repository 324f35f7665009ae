"""rtl tier: the requant unit's Verilog under cocotb + Verilator, code for code against the
golden model (generators.numerics.requantize_fixed) on random, corner and adversarial cases,
with exact cycle counts, then idle inputs and back-pressure. Four builds: configs/requant8.yaml
(double, per channel) and single/per tensor/mult_bits 16, rnd_conv/per channel and trn/per
tensor; every rounding x per combination also runs in the Amaranth simulator (not marked rtl).
The split product of a narrow multiplier (generators/requant/widemul.py, mult_bits <= 17) is
checked on its own (exhaustively on narrow operands), in lanes of several widths and in the
unit (single/mult_bits 16 above; double/mult_bits 16 in the Amaranth simulator, and in
Verilator under regress); the wide product of mult_bits >= 18 (2 or 4 registered hard
partial products) in lanes of several widths and in every build with 32-bit multipliers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from generators.config import config_to_dict, load_config, parse_config
from generators.requant import family
from sim.unit import simulate_many

ROOT = Path(__file__).resolve().parent.parent
I32_MIN, I32_MAX = -(1 << 31), (1 << 31) - 1
MULTS = [0, 1 << 30, (1 << 31) - 1, 1, (1 << 30) + (1 << 29), (1 << 30) + 1]
SHIFTS = [-31, -1, 0, 30, -16, 1, -5, -30]


def _cfg(**keys):
    base = {"name": "rq_t", "unit": "requant", "in": "int32", "out": "int8", "channels": 16,
            "lanes": 3}
    return parse_config({**base, **keys}, "test")


def _ties(shift: int, rng, count: int) -> np.ndarray:
    """Accumulators whose scaled value is a tie (or one off) for a round multiplier: odd
    multiples of 2**(e-1) and 2**e (e = -shift), both signs, and their neighbours."""
    e = max(-shift, 0)
    odd = 2 * rng.integers(0, 6, count) + 1
    v = odd << max(e - 1, 0)
    v = np.where(rng.random(count) < 0.5, v, odd << e)
    v = v * rng.choice([-1, 1], count) + rng.integers(-1, 2, count)
    return np.clip(v, I32_MIN, I32_MAX)


def corner_runs(p, rng) -> list[dict]:
    """Runs (checked arrays) covering: acc at the format's extremes and INT32_MIN;
    multipliers 0, 2**30 and 2**31 - 1; shifts -31, -1, 0 and 30; ties of every sign; zero
    points at both ends; act_min == act_max; random values. Per tensor the corner
    multiplier/shift pairs go to separate runs."""
    fmt, out = p.inp, p.out
    n = min(p.channels, 2 * p.lanes + 1)    # the last beat of each row padded
    k = p.mult_shift
    mults = [m >> k << k for m in MULTS]
    per = p.per == "channel"
    if per:
        pairs = [(np.array([mults[i % len(mults)] for i in range(n)]),
                  np.array([SHIFTS[i % len(SHIFTS)] for i in range(n)])),
                 (np.array([mults[(i + 3) % len(mults)] for i in range(n)]),
                  np.array([SHIFTS[(i + 5) % len(SHIFTS)] for i in range(n)]))]
    else:
        pairs = [(np.int64(m), np.int64(s)) for m, s in
                 [(mults[1], -1), (mults[1], -31), (mults[2], 0), (mults[2], 30),
                  (mults[0], -5), (mults[4], -16), (mults[5], 1), (mults[1], -7)]]
    ext = [fmt.min_code, fmt.max_code, I32_MIN, 0, -1, 1, fmt.min_code + 1, fmt.max_code - 1]
    ext = np.clip(ext, fmt.min_code, fmt.max_code)
    points = [(0, out.min_code, out.max_code), (out.min_code, out.min_code, out.max_code),
              (out.max_code, out.min_code, out.max_code), (0, 3, 3),
              (out.min_code, out.min_code, out.min_code)]
    runs = []
    for i, (m, s) in enumerate(pairs):
        shifts = np.broadcast_to(s, (n,))
        tie_rows = np.stack([_ties(int(sv), rng, 8) for sv in shifts], axis=1)
        rows = np.concatenate([
            np.tile(np.asarray(ext)[:, None], (1, n)),
            tie_rows,
            rng.integers(fmt.min_code, fmt.max_code + 1, (6, n)),
            rng.integers(-(1 << 12), 1 << 12, (4, n))])
        rows = np.clip(rows, fmt.min_code, fmt.max_code)
        for j, (zp, lo, hi) in enumerate(points):
            if (i + j) % 2 and not per and j > 1:
                continue  # per tensor: fewer clamp variants per pair, more pairs
            bias = (np.zeros(n, np.int64) if j == 0 else
                    rng.choice([0, I32_MIN, I32_MAX, -1, 12345], n) if j == 1 else
                    rng.integers(-(1 << 16), 1 << 16, n))
            arrays = {"acc": rows, "bias": bias, "shift": s, "zero_point": np.int64(zp),
                      "act_min": np.int64(lo), "act_max": np.int64(hi)}
            if p.uses_multiplier:
                arrays["multiplier"] = m
            runs.append(family.check_inputs(p, arrays))
    # random parameters, random zero point and clamp, several row counts
    for rows in (1, 3, 40):
        shape = (n,) if per else ()
        lo, hi = np.sort(rng.integers(out.min_code, out.max_code + 1, 2))
        arrays = {"acc": rng.integers(fmt.min_code, fmt.max_code + 1, (rows, n)),
                  "bias": rng.integers(I32_MIN, I32_MAX + 1, n),
                  "shift": rng.integers(-31, 31, shape),
                  "zero_point": np.int64(rng.integers(out.min_code, out.max_code + 1)),
                  "act_min": np.int64(lo), "act_max": np.int64(hi)}
        if p.uses_multiplier:
            arrays["multiplier"] = rng.integers(0, 1 << 31, shape) >> k << k
        runs.append(family.check_inputs(p, arrays))
    # the full parameter memory: N = channels
    arrays = {"acc": rng.integers(fmt.min_code, fmt.max_code + 1, (5, p.channels)),
              "shift": rng.integers(-20, 0, (p.channels,) if per else ())}
    if p.uses_multiplier:
        arrays["multiplier"] = rng.integers(1 << 30, 1 << 31, (p.channels,) if per else ()) \
            >> k << k
    runs.append(family.check_inputs(p, arrays))
    return runs


def check_runs(p, runs, *, sim="verilator", name=None, config=None):
    """Every run twice (plain with exact cycle counts, then with idle input and
    back-pressure) in one simulator start-up; every code equal to the golden model's."""
    jobs = [dict(arrays=a) for a in runs] + [
        dict(arrays=a, idle=0.3, stall=0.4, seed=i) for i, a in enumerate(runs)]
    results = simulate_many(family, p, jobs, sim=sim, name=name, config=config)
    for job, res in zip(jobs, results, strict=True):
        a = job["arrays"]
        want = family.golden(p, a)["y"]
        got = res.outputs["y"]
        if not np.array_equal(got, want):
            at = tuple(np.argwhere(got != want)[0])
            params = {k: v.tolist() for k, v in a.items() if v.ndim < 2}
            raise AssertionError(f"{p.rounding}/{p.per}: y{at} = {got[at]}, golden "
                                 f"{want[at]}, acc {a['acc'][at]} ({params})")
        expected = family.expected_cycles(p, a)
        if "idle" in job:
            assert res.cycles >= expected
        else:
            assert res.cycles == expected, (res.cycles, expected)


BUILDS = {
    "requant8": None,   # configs/requant8.yaml: double, per channel, int32 -> int8, 4 lanes
    "single_tensor_m16": dict(rounding="single", per="tensor", mult_bits=16, out="uint8",
                              lanes=2, channels=9),
    "rnd_conv_channel": dict(rounding="rnd_conv", out="int16", lanes=3, channels=12),
    "trn_tensor": dict(rounding="trn", per="tensor", **{"in": "int24"}, out="int4", lanes=1,
                       channels=5),
    "double_channel_m16": dict(mult_bits=16, **{"in": "int24"}, lanes=2, channels=7),
}


#: Verilator builds in `make test`; these run in `make regress` (their RTL is checked in every
#: run by the Amaranth simulator below; single_tensor_m16 has the split product in Verilator).
REGRESS_BUILDS = ("rnd_conv_channel", "trn_tensor", "double_channel_m16")


@pytest.mark.rtl
@pytest.mark.parametrize("build", [pytest.param(b, marks=pytest.mark.regress)
                                   if b in REGRESS_BUILDS else b for b in BUILDS])
def test_requant_verilator(build, rng):
    if BUILDS[build] is None:
        cfg = load_config(ROOT / "configs" / "requant8.yaml")
    else:
        cfg = _cfg(name=f"rq_{build}", **BUILDS[build])
    p = family.params(cfg)
    runs = corner_runs(p, rng)
    check_runs(p, runs, name=cfg.name, config=config_to_dict(cfg))
    if build == "requant8":
        # sustained rate: one beat per cycle after the parameter beats, latency 11
        assert p.latency == 11 and family.expected_cycles(p, runs[-1]) == 16 + 5 * 16 + 11


@pytest.mark.parametrize("rounding", ["double", "single", "trn", "rnd", "rnd_conv"])
@pytest.mark.parametrize("per", ["channel", "tensor"])
def test_requant_amaranth_every_variant(rounding, per, rng):
    p = _cfg(rounding=rounding, per=per, channels=7, lanes=2,
             **({"mult_bits": 12} if rounding == "single" and per == "channel" else {}))
    check_runs(p, corner_runs(p, rng)[::2], sim="amaranth")


@pytest.mark.parametrize("mult_bits", [16, pytest.param(17, marks=pytest.mark.regress)])
def test_requant_amaranth_split_product(mult_bits, rng):
    """double, mult_bits <= 17: the product split over one 18 x 18 multiplier and LUT logic,
    as many stages as the four-multiplier product of
    mult_bits 32 (latency 1 + 10), exact on the corner runs with exact cycle counts."""
    p = _cfg(rounding="double", mult_bits=mult_bits, channels=7, lanes=2, **{"in": "int24"})
    assert p.latency == 1 + 10
    check_runs(p, corner_runs(p, rng)[::2], sim="amaranth")


@pytest.mark.rtl
def test_requant8_run_rtl_through_the_command_line(tmp_path, rng):
    from cli_helpers import tf

    arrays = {"acc": rng.integers(I32_MIN, I32_MAX + 1, (7, 64)),
              "bias": rng.integers(-1000, 1000, 64), "multiplier": rng.integers(0, 1 << 31, 64),
              "shift": rng.integers(-31, 31, 64), "zero_point": np.int64(-128),
              "act_max": np.int64(100)}
    np.savez(tmp_path / "in.npz", **arrays)
    r = tf("run", ROOT / "configs" / "requant8.yaml", "--inputs", tmp_path / "in.npz", "--out",
           tmp_path / "out.npz", "--backend", "rtl", "--stats", tmp_path / "s.json", cwd=ROOT)
    assert r.returncode == 0, r.stderr
    p = family.params(load_config(ROOT / "configs" / "requant8.yaml"))
    want = family.golden(p, family.check_inputs(p, arrays))["y"]
    assert np.array_equal(np.load(tmp_path / "out.npz")["y"], want)
    import json
    stats = json.loads((tmp_path / "s.json").read_text())
    assert stats["cycles"] == stats["expected_cycles"] == 16 + 7 * 16 + 11
    assert stats["mismatches"] == 0


@pytest.mark.parametrize("rounding,mult_bits,x_fmt,overflow", [
    ("double", 32, "int24", "sat"), ("single", 18, "int20", "sat"), ("rnd", 32, "int16", "wrap")])
def test_lane_alone_with_other_accumulator_rules(rounding, mult_bits, x_fmt, overflow, rng):
    """RequantLane as another unit would instantiate it (an accumulator format of its own and
    a saturating ``acc + bias``), with a clock enable that drops at random, in the Amaranth
    simulator: every output equals requantize_fixed with that acc_fmt and overflow."""
    from generators.numerics import Format, requantize_fixed
    from generators.requant.rtl import RequantLane

    inp, out, xf = Format.parse("int32"), Format.parse("int8"), Format.parse(x_fmt)
    dut = RequantLane(inp, out, rounding, mult_bits, x_fmt=xf, overflow=overflow)
    n = 600
    k = 32 - mult_bits
    acc = rng.integers(I32_MIN, I32_MAX + 1, n) >> rng.integers(0, 32, n)
    bias = rng.integers(-(1 << 20), 1 << 20, n)
    mult = rng.integers(0, 1 << 31, n) >> k << k
    shift = rng.integers(-31, 31, n)
    zp, lo, hi = -5, -100, 90
    want = requantize_fixed(acc, bias=bias, multiplier=mult if dut.uses_multiplier else None,
                            shift=shift, zero_point=zp, act_min=lo, act_max=hi,
                            rounding=rounding, out_fmt=out, acc_fmt=xf, overflow=overflow)
    got = _lane_outputs(dut, rng, acc, bias, mult >> k, shift, zp, lo, hi)
    assert np.array_equal(got, want)


@pytest.mark.parametrize("rounding,mult_bits,x_fmt,overflow", [
    ("double", 16, "int32", "wrap"), ("double", 12, "int24", "sat"),
    ("double", 17, "int32", "wrap"), ("double", 2, "int32", "wrap"),
    ("single", 16, "int32", "wrap"), ("single", 17, "int24", "sat"),
    ("single", 12, "int32", "sat"), ("single", 16, "int19", "wrap"),
    ("single", 16, "int18", "wrap"),
    ("double", 32, "int32", "wrap"), ("double", 18, "int32", "wrap"),
    ("double", 19, "int24", "sat"), ("double", 20, "int32", "wrap"),
    ("double", 25, "int32", "sat"), ("single", 32, "int32", "wrap"),
    ("single", 18, "int32", "sat"), ("single", 19, "int18", "wrap"),
    ("single", 20, "int18", "wrap"), ("single", 32, "int16", "wrap"),
    ("single", 24, "int20", "sat")])
def test_lane_split_product_exact(rounding, mult_bits, x_fmt, overflow, rng):
    """Lanes whose product takes more than one hard multiplier's operands: split
    (mult_bits <= 17 with a 32-bit ``x << left`` or an ``x`` wider than 18 bits) or wide
    (mult_bits >= 18: 2 or 4 hard partial products summed over a stage more); int18 ``x``
    with single and a multiplier of at most 18 bits keeps one product. Every output equals
    requantize_fixed, with shifts chosen so that most outputs are not clamped (the product's
    bits reach the output) and the corners: x at INT32_MIN/MAX, the largest multiplier, 0."""
    from generators.numerics import Format, requantize_fixed
    from generators.requant.params import LANE_STAGES, splits_product, wide_product
    from generators.requant.rtl import RequantLane

    inp, out, xf = Format.parse("int32"), Format.parse("int16"), Format.parse(x_fmt)
    dut = RequantLane(inp, out, rounding, mult_bits, x_fmt=xf, overflow=overflow)
    split = splits_product(rounding, mult_bits, xf.width)
    wide = wide_product(rounding, mult_bits, xf.width)
    assert not (split and wide)
    assert split == (mult_bits <= 17 and (rounding == "double" or xf.width > 18))
    assert wide == (mult_bits >= 18 and (rounding == "double" or xf.width > 18
                                         or mult_bits > 19))
    assert dut.latency == LANE_STAGES[rounding] + (split or wide)
    n = 300
    k = 32 - mult_bits
    mags = rng.integers(0, 32, n)
    acc = rng.integers(I32_MIN, I32_MAX + 1, n) >> mags
    bias = rng.integers(-(1 << 8), 1 << 8, n)
    mult = rng.integers(1 << 30, 1 << 31, n) >> k << k
    # |result| ~ |x| * 2**(shift - 1): about 2**13 for most, some left shifts (wrapping a)
    shift = np.clip(14 - (31 - mags) + rng.integers(-2, 2, n), -31, 30)
    top = ((1 << 31) - 1) >> k << k
    corner = [(I32_MIN, top, 0), (I32_MAX, top, 0), (I32_MIN, top, -17), (I32_MAX, top, -17),
              (I32_MIN, 0, 0), (-1, top, 30), (1, top, 30), (-(1 << 17), top, -3),
              ((1 << 18) - 1, top, -4), (-(1 << 18), top, -5), (12345, 1 << k, 14)]
    for i, (a, mv, sv) in enumerate(corner):
        acc[i], mult[i], shift[i], bias[i] = a, mv, sv, 0
    zp, lo, hi = 3, out.min_code, out.max_code
    want = requantize_fixed(acc, bias=bias, multiplier=mult, shift=shift, zero_point=zp,
                            act_min=lo, act_max=hi, rounding=rounding, out_fmt=out,
                            acc_fmt=xf, overflow=overflow)
    assert np.mean((want > lo) & (want < hi)) > 0.7   # the product reaches most outputs
    got = _lane_outputs(dut, rng, acc, bias, mult >> k, shift, zp, lo, hi)
    assert np.array_equal(got, want)


def _lane_outputs(dut, rng, acc, bias, mult, shift, zp, lo, hi) -> list[int]:
    """Drive a RequantLane with a clock enable that drops at random (30% of cycles) in the
    Amaranth simulator; its outputs, one per element."""
    from amaranth.sim import Simulator

    n = len(acc)
    got = []

    async def bench(ctx):
        ctx.set(dut.zero_point, zp)
        ctx.set(dut.act_min, lo)
        ctx.set(dut.act_max, hi)
        taken = 0
        while len(got) < n:
            en = int(rng.random() >= 0.3)
            i = min(taken, n - 1)
            ctx.set(dut.en, en)
            ctx.set(dut.acc, int(acc[i]))
            ctx.set(dut.bias, int(bias[i]))
            ctx.set(dut.shift, int(shift[i]))
            if dut.uses_multiplier:
                ctx.set(dut.multiplier, int(mult[i]))
            await ctx.tick()
            if en:
                taken += 1
                if taken >= dut.latency:
                    got.append(ctx.get(dut.y))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return got


@pytest.mark.parametrize("a_bits,b_bits", [
    (24, 5), (25, 4), (19, 3),
    pytest.param(24, 7, marks=pytest.mark.regress), pytest.param(28, 5, marks=pytest.mark.regress)])
def test_split_product_exhaustive_on_narrow_operands(a_bits, b_bits, rng):
    """widemul.split_product equals a * b for every upper part of ``a`` and every ``b`` (with
    lower parts 0, 2**18 - 1 and random ones), three enabled cycles later under an enable
    that drops at random. (24, 5) and (24, 7) Booth-recode ``a[18:]``, (25, 4) and (28, 5)
    recode ``b``, (19, 3) has a one-bit upper part."""
    lo_bits = 18
    hi = np.arange(-(1 << (a_bits - lo_bits - 1)), 1 << (a_bits - lo_bits - 1))
    b = np.arange(1 << b_bits)
    hh, bb = (v.ravel() for v in np.meshgrid(hi, b))
    low = rng.integers(0, 1 << lo_bits, len(hh))
    low[::3], low[1::3] = 0, (1 << lo_bits) - 1
    _check_split_product(a_bits, b_bits, hh * (1 << lo_bits) + low, bb, rng)


@pytest.mark.parametrize("b_bits", [15, 16, 11, 1])
def test_split_product_full_width(b_bits, rng):
    """The lanes' shapes (a 32-bit ``a``; ``b`` of mult_bits - 1 bits): corners and random."""
    n = 500
    a = rng.integers(I32_MIN, I32_MAX + 1, n) >> rng.integers(0, 20, n)
    b = rng.integers(0, 1 << b_bits, n)
    top = (1 << b_bits) - 1
    corners = [(I32_MIN, top), (I32_MAX, top), (I32_MIN, 0), (-1, top), (-(1 << 18), top),
               ((1 << 18) - 1, top), (-(1 << 18) - 1, 1), (1 << 30, top), (-(1 << 30), 1)]
    for i, (av, bv) in enumerate(corners):
        a[i], b[i] = av, bv
    _check_split_product(32, b_bits, a, b, rng)


def _check_split_product(a_bits, b_bits, a, b, rng):
    from amaranth.hdl import Module, Signal, signed, unsigned
    from amaranth.lib import wiring
    from amaranth.lib.wiring import In, Out
    from amaranth.sim import Simulator

    from generators.requant.widemul import split_product

    width = a_bits + b_bits + 1

    class Dut(wiring.Component):
        def __init__(self):
            super().__init__({"en": In(1), "a": In(signed(a_bits)), "b": In(unsigned(b_bits)),
                              "p": Out(signed(width))})

        def elaborate(self, platform):
            m = Module()

            def reg(shape, value, name):
                r = Signal(shape, name=name, reset_less=True)
                with m.If(self.en):
                    m.d.sync += r.eq(value)
                return r

            a_q = reg(self.a.shape(), self.a, "a_q")
            b_q = reg(self.b.shape(), self.b, "b_q")
            p = split_product(m, platform, reg, self.en, self.a, self.b, a_q, b_q, width, "p")
            m.d.comb += self.p.eq(p)
            return m

    dut = Dut()
    n = len(a)
    got = []

    async def bench(ctx):
        taken = 0
        while len(got) < n:
            en = int(rng.random() >= 0.3)
            i = min(taken, n - 1)
            ctx.set(dut.en, en)
            ctx.set(dut.a, int(a[i]))
            ctx.set(dut.b, int(b[i]))
            await ctx.tick()
            if en:
                taken += 1
                if taken >= 3:
                    got.append(ctx.get(dut.p))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    want = [int(x) * int(y) for x, y in zip(a, b, strict=True)]
    bad = [i for i in range(n) if got[i] != want[i]]
    assert not bad, (len(bad), [(int(a[i]), int(b[i]), got[i], want[i]) for i in bad[:3]])
