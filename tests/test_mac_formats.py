"""The MAC array's golden model with floating-point and MX operands against the exact
references of tests/format_refs.py (integers and Fractions, written apart from the model)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from generators.errors import ArrayError
from generators.mac_array import family
from generators.mac_array.params import MacArrayParams
from generators.numerics import MX_FORMATS, Format

import format_refs as ref

MX = list(MX_FORMATS)
PAIRS = list(itertools.product(MX, MX))


def params(a, b, acc="fp32", **kw):
    return MacArrayParams(name="t", rows=2, cols=2, a=a, b=b, acc=acc, **kw)


def run(p, **arrays):
    return family.golden(p, family.check_inputs(p, arrays))["c"]


def test_all_e4m3_products():
    # all 65,536 E4M3 x E4M3 products: one K=1 GEMM of every code by every code
    codes = np.arange(256)
    p = params("fp8_e4m3", "fp8_e4m3")
    c = run(p, a=codes[:, None], b=codes[None, :])
    vals = [ref.ref_value(i, "fp8_e4m3") for i in range(256)]
    want = np.zeros((256, 256), dtype=np.int64)
    for i in range(256):
        for j in range(256):
            if vals[i] is None or vals[j] is None:
                want[i, j] = ref.FP32_NAN
            else:
                # every product of two E4M3 values is an fp32 value (8 significant bits,
                # exponents -18..17): the exact product's code, checked exact on the way back
                v = vals[i] * vals[j]
                want[i, j] = ref.fp32_code(v)
                assert ref.Fraction(float(np.uint32(want[i, j]).view(np.float32))) == v
    assert np.array_equal(c, want)
    # the slow general reference on a sample of the products agrees too
    for i, j in [(0x01, 0x01), (0x7E, 0x7E), (0xFE, 0x7E), (0x80, 0x05), (0x7F, 0)]:
        assert ref.ref_dot_fp32([i], [j], "fp8_e4m3", "fp8_e4m3") == want[i, j]
    # and exactly in a fixed-point accumulator (no NaN codes there)
    pf = params("fp8_e4m3", "fp8_e4m3", acc="fixed<40,22>")
    fin = np.array([i for i in range(256) if (i & 0x7F) != 0x7F])
    cf = run(pf, a=fin[:, None], b=fin[None, :])
    for i, ci in enumerate(fin):
        for j, cj in enumerate(fin):
            v = ref.ref_value(int(ci), "fp8_e4m3") * ref.ref_value(int(cj), "fp8_e4m3")
            assert v * 2 ** 18 == int(cf[i, j])


def mx_operand(rng, f, shape, axis):
    """Codes and scales of one MX operand: half the blocks quantized from Student-t data,
    half uniform random codes (every code: zeros, max, subnormals, NaN/inf codes of the FP8
    elements), scales random around 127 with extremes (0, 1, 253, 254) and NaN (255)."""
    x = rng.standard_t(3, shape) * 2.0 ** rng.integers(-8, 8)
    codes, scales = f.quantize(x, axis=axis)
    lo = f.element.min_code if f.element.kind == "fixed" else 0
    hi = f.element.max_code
    rand = rng.integers(lo, hi + 1, shape)
    pick = rng.random(scales.shape) < 0.5
    codes = np.where(np.repeat(pick, 32, axis=axis), rand, codes)
    rs = rng.integers(100, 155, scales.shape)
    rs = np.where(rng.random(scales.shape) < 0.05, rng.choice([0, 1, 253, 254, 255],
                                                               scales.shape), rs)
    return codes, np.where(pick, rs, scales)


def mx_operands(rng, fa, fb, m, n, t):
    """Codes and scales of a [m, 32t] x [32t, n] MX GEMM (see :func:`mx_operand`)."""
    a, sa = mx_operand(rng, Format.parse(fa), (m, 32 * t), 1)
    b, sb = mx_operand(rng, Format.parse(fb), (32 * t, n), 0)
    return [a, sa, b, sb]


def check_pair(rng, fa, fb, m, n, t):
    a, sa, b, sb = mx_operands(rng, fa, fb, m, n, t)
    c = run(params(fa, fb), a=a, b=b, a_scale=sa, b_scale=sb)
    for i in range(m):
        for j in range(n):
            want = ref.ref_dot_fp32(a[i].tolist(), b[:, j].tolist(), fa, fb, sa[i].tolist(),
                                    sb[:, j].tolist(), 32)
            assert int(c[i, j]) == want, (fa, fb, i, j)
    return m * n * t


@pytest.mark.parametrize("fa,fb", PAIRS)
def test_mx_block_dot_products(fa, fb):
    # 64 blocks per pair here; tests/test_regress.py runs 10**5 per pair
    rng = np.random.default_rng(abs(hash((fa, fb))) % 2**32)
    assert check_pair(rng, fa, fb, 4, 4, 4) == 64


@pytest.mark.regress
@pytest.mark.parametrize("fa,fb", PAIRS)
def test_mx_block_dot_products_1e5(fa, fb):
    rng = np.random.default_rng(7)
    done = 0
    while done < 100_000:
        done += check_pair(rng, fa, fb, 25, 25, 16)
    assert done >= 100_000


@pytest.mark.parametrize("fa,fb,acc", [("fp8_e4m3", "int8", "fp32"),
                                       ("fp8_e5m2", "fp4_e2m1", "fp32"),
                                       ("fp6_e2m3", "fp6_e3m2", "fp32"),
                                       ("mxfp4", "fp8_e4m3", "fp32"),
                                       ("int8", "mxint8", "fp32"),
                                       ("fp8_e4m3", "int8", "fixed<32,23>"),
                                       ("fp4_e2m1", "fp4_e2m1", "fixed<16,14>")])
def test_mixed_formats(fa, fb, acc):
    rng = np.random.default_rng(5)
    p = params(fa, fb, acc)
    k = 64
    arrays = {}
    for name, f, shape in (("a", p.a, (6, k)), ("b", p.b, (k, 5))):
        if f.kind == "mx":
            arrays[name], arrays[name + "_scale"] = f.quantize(
                rng.standard_normal(shape), axis=1 if name == "a" else 0)
        elif f.kind == "float":
            arrays[name] = f.quantize(rng.standard_normal(shape) * 4)
        else:
            arrays[name] = rng.integers(f.min_code, f.max_code + 1, shape)
    c = run(p, **arrays)
    block = 32 if p.mx else None
    for i in range(6):
        for j in range(5):
            sa = arrays.get("a_scale")
            sb = arrays.get("b_scale")
            if acc == "fp32":
                want = ref.ref_dot_fp32(arrays["a"][i].tolist(), arrays["b"][:, j].tolist(),
                                        fa, fb, None if sa is None else sa[i].tolist(),
                                        None if sb is None else sb[:, j].tolist(), block)
            else:
                total = 0
                for t in range(k):
                    na, ea = ref.ref_elem(int(arrays["a"][i, t]), fa)
                    nb, eb = ref.ref_elem(int(arrays["b"][t, j]), fb)
                    total += ref.Fraction(na * nb) * ref.Fraction(2) ** (ea + eb)
                want = int(total * 2 ** p.acc.frac_bits)
                assert p.acc.min_code <= want <= p.acc.max_code
            assert int(c[i, j]) == want, (i, j)


def test_nan_and_inf_cases():
    p = params("fp8_e5m2", "fp8_e5m2")
    inf, ninf, nan, one, zero = 0x7C, 0xFC, 0x7E, 0x3C, 0x00
    a = np.array([[inf, one], [inf, zero], [inf, ninf], [nan, one], [one, one]])
    b = np.array([[one], [one]])
    b2 = np.array([[zero], [one]])
    c = run(p, a=a, b=b)[:, 0].tolist()
    assert c[0] == 0x7F800000 and c[3] == ref.FP32_NAN and c[2] == ref.FP32_NAN
    assert c[4] == 0x40000000                        # 1 + 1 = 2
    assert run(p, a=a[1:2], b=b2)[0, 0] == ref.FP32_NAN   # inf * 0
    # a NaN scale makes its block NaN, and so the whole sum
    pm = params("mxfp8_e4m3", "mxfp8_e4m3")
    a = np.full((1, 64), 0x38)
    b = np.full((64, 1), 0x38)
    sa = np.array([[127, 255]])
    sb = np.array([[127], [127]])
    assert run(pm, a=a, b=b, a_scale=sa, b_scale=sb)[0, 0] == ref.FP32_NAN
    sa = np.array([[127, 127]])
    assert run(pm, a=a, b=b, a_scale=sa, b_scale=sb)[0, 0] == 0x42800000    # 64.0
    # overflow of a block to fp32 gives inf
    sa = np.array([[254, 127]])
    sb = np.array([[254], [127]])
    assert run(pm, a=a, b=b, a_scale=sa, b_scale=sb)[0, 0] == 0x7F800000


@pytest.mark.parametrize("arrays,message", [
    ({"a": np.full((2, 32), 16), "b": np.zeros((32, 2), dtype=np.int64)},
     "a: code 16 at index (0, 0) is out of range for fp4_e2m1 (allowed: 0..15, the bit "
     "patterns)"),
    ({"a": np.zeros((2, 40), dtype=np.int64), "b": np.zeros((40, 2), dtype=np.int64),
      "a_scale": np.zeros((2, 1), dtype=np.int64), "b_scale": np.zeros((1, 2), dtype=np.int64)},
     "a: K = 40 is not a multiple of mxfp4's block size 32 (padding rule: pad a's columns and "
     "b's rows with zero codes to K = 64, which leaves every dot product unchanged)"),
    ({"a": np.zeros((2, 64), dtype=np.int64), "b": np.zeros((64, 2), dtype=np.int64),
      "a_scale": np.zeros((2, 3), dtype=np.int64), "b_scale": np.zeros((2, 2), dtype=np.int64)},
     "a_scale: shape (2, 3) does not fit a [M,K] of shape (2, 64) in mxfp4 (allowed: (2, 2), "
     "one E8M0 code per 32 elements along K)"),
    ({"a": np.zeros((2, 32), dtype=np.int64), "b": np.zeros((32, 2), dtype=np.int64),
      "a_scale": np.full((2, 1), 256), "b_scale": np.zeros((1, 2), dtype=np.int64)},
     "a_scale: scale code 256 at index (0, 0) is out of range for E8M0 (allowed: 0..255, 255 "
     "is NaN)"),
    ({"a": np.zeros((2, 32), dtype=np.int64), "b": np.zeros((32, 2), dtype=np.int64),
      "a_scale": np.zeros((2, 1), dtype=np.int64)},
     "missing array 'b_scale' (mac_array needs: a [M,K], b [K,N], a_scale [M, K/32], "
     "b_scale [K/32, N])"),
])
def test_bad_arrays(arrays, message):
    p = params("mxfp4", "mxfp8_e4m3")
    if "a_scale" not in arrays:
        p = params("fp4_e2m1", "fp4_e2m1")
    with pytest.raises(ArrayError) as err:
        family.check_inputs(p, arrays)
    assert str(err.value) == message


def test_nan_code_refused_by_fixed_acc():
    p = params("fp8_e4m3", "int8", "fixed<32,23>")
    with pytest.raises(ArrayError, match=r"a: code 127 at index \(0, 1\) is NaN in fp8_e4m3, "
                                         r"which acc fixed<32,23> cannot hold"):
        family.check_inputs(p, {"a": np.array([[0, 127]]), "b": np.array([[1], [1]])})


def test_cli_run_mx_golden_and_refusals(tmp_path):
    from cli_helpers import tf

    cfg = tmp_path / "mx.yaml"
    cfg.write_text("name: mxt\nunit: mac_array\nrows: 2\ncols: 2\na: mxfp4\nb: mxfp8_e4m3\n"
                   "acc: fp32\n")
    rng = np.random.default_rng(0)
    ca, sa = Format.parse("mxfp4").quantize(rng.standard_normal((3, 64)), axis=1)
    cb, sb = Format.parse("mxfp8_e4m3").quantize(rng.standard_normal((64, 2)), axis=0)
    np.savez(tmp_path / "in.npz", a=ca, b=cb, a_scale=sa, b_scale=sb)
    r = tf("run", cfg, "--inputs", tmp_path / "in.npz", "--out", tmp_path / "out.npz")
    assert r.returncode == 0, r.stderr
    c = np.load(tmp_path / "out.npz")["c"]
    for i in range(3):
        for j in range(2):
            assert int(c[i, j]) == ref.ref_dot_fp32(ca[i].tolist(), cb[:, j].tolist(), "mxfp4",
                                                    "mxfp8_e4m3", sa[i].tolist(),
                                                    sb[:, j].tolist(), 32)
    np.savez(tmp_path / "bad.npz", a=ca, b=cb, a_scale=sa[:, :1], b_scale=sb)
    r = tf("run", cfg, "--inputs", tmp_path / "bad.npz", "--out", tmp_path / "out.npz")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "a_scale: shape (3, 1) does not fit" in r.stderr
    np.savez(tmp_path / "code.npz", a=ca + 16, b=cb, a_scale=sa, b_scale=sb)
    r = tf("run", cfg, "--inputs", tmp_path / "code.npz", "--out", tmp_path / "out.npz")
    assert r.returncode == 2 and "out of range for fp4_e2m1" in r.stderr
