"""Host helpers for the float and MX formats (host.tensor.FTensor, MXTensor) and board.gemm
with them on the model:// reference board (the golden model behind the wire protocol)."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from generators.errors import ArrayError
from generators.mac_array import family
from host import FTensor, MXTensor, open_board
from host.tensor import as_code_arrays


def test_ftensor_roundtrip_and_pack():
    x = np.array([[0.3, -1.7, 6.5, 100.0]])
    t = FTensor.quantize(x, "fp4_e2m1")
    assert t.dequantize().tolist() == [[0.5, -1.5, 6.0, 6.0]]        # RNE, saturating
    buf = t.pack()
    assert buf.shape == (1, 2)                                       # two codes a byte
    assert np.array_equal(FTensor.unpack(buf, "fp4_e2m1", 4).codes, t.codes)
    with pytest.raises(ValueError, match="not a floating-point element format"):
        FTensor([1], "int8")


def test_mxtensor_roundtrip_and_arrays():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 64))
    t = MXTensor.quantize(x, "mxfp8_e4m3", axis=1)
    assert t.scales.shape == (3, 2)
    assert np.allclose(t.dequantize(), x, rtol=2 ** -3)
    u = MXTensor.unpack(t.pack(), "mxfp8_e4m3", 64, axis=1)
    assert np.array_equal(u.codes, t.codes) and np.array_equal(u.scales, t.scales)
    arrays = as_code_arrays({"a": t})
    assert set(arrays) == {"a", "a_scale"}
    with pytest.raises(ValueError, match=r"scales: shape \(3, 1\) does not fit"):
        MXTensor(t.codes, t.scales[:, :1], "mxfp8_e4m3", axis=1)


@pytest.fixture(scope="module")
def design(tmp_path_factory):
    units = [{"name": "mx", "unit": "mac_array", "rows": 4, "cols": 4, "a": "mxfp4",
              "b": "mxfp8_e4m3", "acc": "fp32"},
             {"name": "f8", "unit": "mac_array", "rows": 4, "cols": 4, "a": "fp8_e4m3",
              "b": "int8", "acc": "fp32"}]
    path = tmp_path_factory.mktemp("fmt") / "fmt.yaml"
    path.write_text(yaml.safe_dump({"name": "fmt", "board": "ulx3s", "buffer_bytes": 8192,
                                    "units": units}))
    return path


def test_board_gemm_float_and_mx(design):
    rng = np.random.default_rng(1)
    with open_board(f"model://{design}") as board:
        a = FTensor.quantize(rng.standard_normal((5, 7)), "fp8_e4m3")
        b = rng.integers(-128, 128, (7, 3))
        c = board.gemm(a, b, unit="f8")
        _, p = board.unit("f8").family()
        assert np.array_equal(c, family.golden(p, {"a": a.codes, "b": b})["c"])
        vals = FTensor(c, "fp32").dequantize()
        assert np.allclose(vals, a.dequantize() @ b, rtol=1e-6)
        with pytest.raises(ArrayError, match=r"a: code \d+ at index \(0, 0\) is out of "
                                             r"range for fp8_e4m3"):
            board.gemm(a.codes + 256, b, unit="f8")
        # MX operands: an MXTensor is its codes and its scales on the wire
        am = MXTensor.quantize(rng.standard_normal((5, 64)), "mxfp4", axis=1)
        bm = MXTensor.quantize(rng.standard_normal((64, 3)), "mxfp8_e4m3", axis=0)
        c = board.gemm(am, bm, unit="mx")
        _, p = board.unit("mx").family()
        want = family.golden(p, {"a": am.codes, "b": bm.codes, "a_scale": am.scales,
                                 "b_scale": bm.scales})["c"]
        assert np.array_equal(c, want)
        assert np.allclose(FTensor(c, "fp32").dequantize(), am.dequantize() @ bm.dequantize(),
                           rtol=1e-5, atol=1e-5)
        with pytest.raises(ArrayError, match="missing array 'a_scale'"):
            board.gemm(am.codes, bm, unit="mx")
        # a GEMM larger than the buffers: split into RUNs, the scales cut with their operand
        am = MXTensor.quantize(rng.standard_normal((70, 64)), "mxfp4", axis=1)
        bm = MXTensor.quantize(rng.standard_normal((64, 45)), "mxfp8_e4m3", axis=0)
        c = board.gemm(am, bm, unit="mx")
        assert board.last_run["runs"] > 1
        want = family.golden(p, {"a": am.codes, "b": bm.codes, "a_scale": am.scales,
                                 "b_scale": bm.scales})["c"]
        assert np.array_equal(c, want)
