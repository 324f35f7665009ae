"""Floating-point element formats and OCP MX block formats (generators.numerics) against
ml_dtypes (element encode/decode, clipped first: its E4M3FN overflows to NaN and E5M2 to inf)
and against exact references written here with fractions.Fraction."""

from __future__ import annotations

import math
import pickle
from fractions import Fraction

import ml_dtypes
import numpy as np
import pytest

from generators.numerics import (
    E8M0_NAN,
    FLOAT_FORMATS,
    MX_FORMATS,
    FloatFormat,
    Format,
    MXFormat,
    exact_parts,
    pack_bits,
)

import format_refs

ML = {
    "fp8_e4m3": ml_dtypes.float8_e4m3fn,
    "fp8_e5m2": ml_dtypes.float8_e5m2,
    "fp6_e3m2": ml_dtypes.float6_e3m2fn,
    "fp6_e2m3": ml_dtypes.float6_e2m3fn,
    "fp4_e2m1": ml_dtypes.float4_e2m1fn,
}
ELEMENTS = list(ML)


def ml_codes(x: np.ndarray, name: str) -> np.ndarray:
    """ml_dtypes' codes of float64 values (its cast rounds to nearest even)."""
    w = FLOAT_FORMATS[name].width
    return x.astype(ML[name]).view(np.uint8).astype(np.int64) & ((1 << w) - 1)


def ml_values(codes: np.ndarray, name: str) -> np.ndarray:
    return codes.astype(np.uint8).view(ML[name]).astype(np.float64)


def ref_value(code: int, f: FloatFormat) -> Fraction | None:
    return format_refs.ref_value(code, f.name)


def sweep(f: FloatFormat) -> np.ndarray:
    """A dense sweep of a format's range: every representable value, every midpoint between
    neighbours (the ties), the float64 neighbours of both, a linear and a log grid, values
    beyond the max, the subnormal range and zeros."""
    vals = np.unique(np.abs(f.dequantize(np.arange(1 << f.width))))
    vals = vals[np.isfinite(vals)]
    mids = (vals[1:] + vals[:-1]) / 2
    pts = np.concatenate([vals, mids, [f.max_value * 1.5, f.max_value * 4]])
    pts = np.concatenate([pts, np.nextafter(pts, np.inf), np.nextafter(pts, 0)])
    mx = f.max_value
    grid = np.concatenate([np.linspace(0, 1.3 * mx, 100_001),
                           np.geomspace(2.0 ** (f.emin - f.man_bits - 4), mx * 2, 100_001)])
    x = np.concatenate([pts, grid])
    return np.concatenate([x, -x, [0.0, -0.0]])


# -- element formats ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ELEMENTS)
def test_decode_all_codes_against_ml_dtypes(name):
    f = Format.parse(name)
    codes = np.arange(1 << f.width)
    mine = f.dequantize(codes)
    ref = ml_values(codes, name)
    assert np.array_equal(np.isnan(mine), np.isnan(ref))
    ok = ~np.isnan(ref)
    assert np.array_equal(mine[ok], ref[ok])
    assert np.array_equal(np.signbit(mine[ok]), np.signbit(ref[ok]))  # -0.0 stays -0.0
    # and the exact integer decode against the bit fields, for every code
    s, mant, exp = f.decode(codes)
    fixed = f.to_fixed(codes)
    lsb = Fraction(2) ** -f.as_fixed().frac_bits
    for c in range(1 << f.width):
        v = ref_value(c, f)
        if v is None:
            assert f.is_nan(c) or f.is_inf(c)
            continue
        got = (-1) ** int(s[c]) * int(mant[c]) * Fraction(2) ** int(exp[c])
        assert got == v
        assert int(fixed[c]) * lsb == v
        assert f.as_fixed().contains([int(fixed[c])])


@pytest.mark.parametrize("name", ELEMENTS)
def test_quantize_dense_sweep_against_ml_dtypes(name):
    f = Format.parse(name)
    x = sweep(f)
    mine = f.quantize(x)
    ref = ml_codes(np.clip(x, -f.max_value, f.max_value), name)
    bad = np.flatnonzero(mine != ref)
    assert bad.size == 0, (x[bad[:5]], mine[bad[:5]], ref[bad[:5]])


@pytest.mark.parametrize("name", ["fp8_e4m3", "fp8_e5m2"])
def test_quantize_not_saturating_follows_ml_dtypes(name):
    # ml_dtypes' own overflow: E4M3FN to NaN, E5M2 to inf; NaN codes compared as NaN
    f = Format.parse(name)
    x = sweep(f)
    x = np.concatenate([x, [np.inf, -np.inf, np.nan]])
    mine = f.dequantize(f.quantize(x, saturate=False))
    ref = x.astype(ML[name]).astype(np.float64)
    assert np.array_equal(mine, ref, equal_nan=True)


def test_nan_and_inf_inputs():
    e4, e5 = Format.parse("fp8_e4m3"), Format.parse("fp8_e5m2")
    x = np.array([np.nan, np.inf, -np.inf])
    assert e4.quantize(x).tolist() == [0x7F, 0x7E, 0xFE]      # NaN; inf saturates to ±448
    assert e5.quantize(x).tolist() == [0x7E, 0x7B, 0xFB]      # NaN; inf saturates to ±57344
    assert e5.quantize(x, saturate=False).tolist() == [0x7E, 0x7C, 0xFC]
    assert e4.quantize(x, saturate=False).tolist() == [0x7F, 0x7F, 0xFF]
    for name in ("fp6_e3m2", "fp6_e2m3", "fp4_e2m1"):
        f = Format.parse(name)
        with pytest.raises(ValueError, match="no NaN"):
            f.quantize([1.0, np.nan])
        assert f.quantize([np.inf]).tolist() == [f.max_code_finite]
    assert e4.is_nan([0x7F, 0xFF, 0x7E]).tolist() == [True, True, False]
    assert e5.is_inf([0x7C, 0xFC, 0x7D]).tolist() == [True, True, False]


def test_fp32_against_numpy():
    f = Format.parse("fp32")
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.standard_normal(50_000) * 10.0 ** rng.integers(-45, 39, 50_000),
                        [3.4028235e38, 3.4028236e38, 1e39, 1.4e-45, 7e-46, 7.1e-46, 0.0, -0.0]])
    with np.errstate(over="ignore"):
        ref = x.astype(np.float32)
    mine = f.quantize(x, saturate=False)
    assert np.array_equal(mine, ref.view(np.uint32).astype(np.int64))


def test_encode_big_integers_is_exact():
    # the golden model rounds exact block sums (Python ints of any size) with encode
    f = Format.parse("fp32")
    rng = np.random.default_rng(2)
    for _ in range(400):
        n = int(rng.integers(1, 2**62)) << int(rng.integers(0, 80))
        n += int(rng.integers(0, 3))
        e = int(rng.integers(-260, 60))
        sign = int(rng.integers(0, 2))
        code = int(f.encode(np.array([sign]), np.array([n], dtype=object), np.array([e]),
                            saturate=False)[0])
        got = f.dequantize([code])[0]
        want = format_refs.ref_round_float((-1) ** sign * Fraction(n) * Fraction(2) ** e)
        if want is None:
            assert math.isinf(got) and (got < 0) == bool(sign)
        else:
            assert Fraction(float(got)) == want, (n, e)
            assert math.copysign(1.0, got) == (-1.0) ** sign


def test_parse_names_and_pickle():
    for name in [*FLOAT_FORMATS, *MX_FORMATS]:
        f = Format.parse(name)
        assert str(f) == name
        assert pickle.loads(pickle.dumps(f)) == f
    assert isinstance(Format.parse("fp8_e4m3"), FloatFormat)
    assert isinstance(Format.parse("mxfp4"), MXFormat)
    assert Format.parse("int8").kind == "fixed"
    with pytest.raises(ValueError, match="mxfp4"):
        Format.parse("fp8")
    assert Format.parse("mxfp4").emax == 2 and Format.parse("mxfp8_e4m3").emax == 8
    assert Format.parse("mxfp8_e5m2").emax == 15 and Format.parse("mxint8").emax == 0


def test_code_outside_the_format():
    with pytest.raises(ValueError, match=r"code 16 at index 1 is out of range for fp4_e2m1"):
        Format.parse("fp4_e2m1").check_codes([1, 16], "a")


# -- MX block formats -------------------------------------------------------------------------


def ref_mx_block(xs: list[float], mx: MXFormat) -> tuple[list[int], int]:
    """OCP MX v1.0 conversion of one block, written independently (scalar)."""
    if any(not math.isfinite(v) for v in xs):
        return [0] * len(xs), E8M0_NAN
    amax = max(abs(v) for v in xs)
    if amax == 0:
        X = -127
    else:
        X = math.frexp(amax)[1] - 1 - mx.emax   # floor(log2(amax)) - emax_elem
        X = min(max(X, -127), 127)
    out = []
    el = mx.element
    for v in xs:
        q = Fraction(v) / Fraction(2) ** X
        if isinstance(el, FloatFormat):
            qf = float(max(min(q, Fraction(el.max_value)), -Fraction(el.max_value)))
            out.append(int(ml_codes(np.array([qf]), el.name)[0]) if qf != 0 or v == 0 else
                       int(ml_codes(np.array([math.copysign(0.0, v)]), el.name)[0]))
        else:
            t = q * 64
            fl = math.floor(t)
            r = fl + (1 if (t - fl > Fraction(1, 2) or (t - fl == Fraction(1, 2)
                                                       and fl % 2)) else 0)
            out.append(min(max(r, -128), 127))
    return out, X + 127


def mx_blocks(rng, n: int) -> np.ndarray:
    """``n`` blocks of 32: Gaussian with random magnitudes, plus zero blocks, blocks with
    exact maxima, tiny (subnormal-range) values, outliers that saturate, NaN and inf."""
    x = rng.standard_normal((n, 32)) * 2.0 ** rng.integers(-30, 30, (n, 1))
    kinds = rng.integers(0, 8, n)
    x[kinds == 0] = 0.0
    x[kinds == 1, 0] = 2.0 ** rng.integers(-20, 20, (kinds == 1).sum())
    x[kinds == 2, 1:] *= 2.0 ** -12                      # one big, the rest subnormal
    x[kinds == 3, 5] = np.nan
    x[kinds == 4, 7] = -np.inf
    x[kinds == 5, :4] = 1.999 * np.abs(x[kinds == 5, :1]).max(axis=1, keepdims=True) \
        if (kinds == 5).any() else 0
    return x


@pytest.mark.parametrize("name", list(MX_FORMATS))
def test_mx_quantize_against_reference(name):
    mx = Format.parse(name)
    rng = np.random.default_rng(len(name))
    x = mx_blocks(rng, 300)
    codes, scales = mx.quantize(x.reshape(-1, 32 * 3).T, axis=0)   # blocks along axis 0
    codes, scales = codes.T.reshape(300, 32), scales.T.reshape(300)
    for i in range(300):
        rc, rs = ref_mx_block(x[i].tolist(), mx)
        assert int(scales[i]) == rs, (i, x[i])
        assert codes[i].tolist() == rc, (i, x[i])
    # dequantize: the element value times the scale, NaN for NaN-scale blocks
    back = mx.dequantize(codes, scales[:, None], axis=1)
    nan_blk = scales == E8M0_NAN
    assert np.isnan(back[nan_blk]).all()
    ok = ~nan_blk
    ev = mx.element.dequantize(codes[ok])
    assert np.array_equal(back[ok], np.ldexp(ev, scales[ok, None] - 127))


def test_mx_scale_rule_and_saturation():
    mx = Format.parse("mxfp4")
    x = np.zeros(32)
    x[0] = 7.9          # floor(log2 7.9) - 2 = 0: 7.9 saturates to 6
    x[1] = -0.25        # fp4 subnormal 0.5 * 2**-1? -> rounds to -0.0 or -0.5 (tie: even)
    codes, scales = mx.quantize(x)
    assert scales.tolist() == [127]
    assert codes[0] == 0b0111 and codes[1] in (0b1000,)     # ties to even: 0.25 -> 0
    codes, scales = mx.quantize(np.zeros(64))
    assert scales.tolist() == [0, 0] and not codes.any()


def test_mx_shape_errors():
    mx = Format.parse("mxfp8_e4m3")
    with pytest.raises(ValueError, match=r"length 33 .* not a multiple of .* 32 \(padding "
                                         r"rule: pad with zeros to 64\)"):
        mx.quantize(np.zeros(33))
    with pytest.raises(ValueError, match=r"scales: shape \(3,\) does not fit"):
        mx.dequantize(np.zeros(64, dtype=np.int64), np.zeros(3, dtype=np.int64))
    with pytest.raises(ValueError, match="scale code 256"):
        mx.dequantize(np.zeros(32, dtype=np.int64), np.array([256]))


@pytest.mark.parametrize("name", list(MX_FORMATS))
def test_mx_pack_roundtrip(name):
    mx = Format.parse(name)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 64)) * 4
    codes, scales = mx.quantize(x, axis=1)
    buf = mx.pack(codes, scales, axis=1)
    assert buf.dtype == np.uint8 and buf.shape == (3, 2 * mx.block_bytes())
    assert mx.block_bytes() == {8: 33, 6: 25, 4: 17}[mx.width]
    assert buf[0, 0] == scales[0, 0] and buf[0, mx.block_bytes()] == scales[0, 1]
    c2, s2 = mx.unpack(buf, 64, axis=1)
    assert np.array_equal(c2, codes) and np.array_equal(s2, scales)
    # axis 0 too
    c3, s3 = mx.unpack(mx.pack(codes.T, scales.T, axis=0), 64, axis=0)
    assert np.array_equal(c3, codes.T) and np.array_equal(s3, scales.T)


def test_fp4_two_per_byte_fp6_packed():
    codes = np.array([[0x1, 0xF, 0x7, 0x8]])
    assert pack_bits(codes, 4).tolist() == [[0xF1, 0x87]]
    six = np.array([[0x3F, 0x01, 0x20, 0x15]])   # 4 x 6 bits = 3 bytes
    b = pack_bits(six, 6)
    assert b.shape == (1, 3)
    v = int.from_bytes(bytes(b[0].tolist()), "little")
    assert [(v >> (6 * i)) & 63 for i in range(4)] == six[0].tolist()


def test_exact_parts():
    v, e = exact_parts(Format.parse("fp8_e4m3"), [0x38, 0x01, 0xFE])   # 1.0, 2**-9, -448
    assert e == -9 and v.tolist() == [512, 1, -448 * 512]
    v, e = exact_parts(Format.parse("int8"), [-3])
    assert e == 0 and v.tolist() == [-3]
    v, e = exact_parts(Format.parse("mxint8"), [-128])
    assert e == -6 and v.tolist() == [-128]
