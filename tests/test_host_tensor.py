"""Beat packing for the wire (against the simulators' payload packing), quantized tensors, the
fast paths of numerics.pack_bits/unpack_bits, and the host's imports."""

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from generators.board_info import describe
from generators.config import load_config
from generators.numerics import Format, pack_bits, unpack_bits
from host.tensor import QTensor, beat_bytes, code_dtype, pack_beats, unpack_beats
from sim.streams import pack_payloads, unpack_payloads


def _random_fields(fields, n, rng):
    out = {}
    for name, spec in fields.items():
        lanes = spec.get("lanes")
        w = spec.get("lane_width", spec["width"])
        lo, hi = (-(1 << (w - 1)), 1 << (w - 1)) if spec["signed"] else (0, 1 << w)
        out[name] = rng.integers(lo, hi, (n, lanes) if lanes else (n,))
    return out


def test_pack_beats_matches_payload_ints(rng):
    desc = describe(load_config("configs/ulx3s_units.yaml"))
    for unit in desc["units"]:
        for name, s in unit["streams"].items():
            arrays = _random_fields(s["fields"], 13, rng)
            buf = pack_beats(s["fields"], arrays)
            assert buf.shape == (13, s["beat_bytes"]) == (13, beat_bytes(s["fields"]))
            ints = pack_payloads(s["fields"], arrays)
            assert [int.from_bytes(row.tobytes(), "little") for row in buf] == ints, name
            back = unpack_beats(s["fields"], buf.tobytes())
            ref = unpack_payloads(s["fields"], ints)
            for f in s["fields"]:
                assert np.array_equal(back[f], ref[f]) and np.array_equal(back[f], arrays[f])
            narrow = unpack_beats(s["fields"], buf, narrow=True)
            for f in s["fields"]:
                assert np.array_equal(narrow[f], arrays[f])


def test_pack_beats_odd_offsets(rng):
    fields = {"a": {"offset": 0, "width": 3, "signed": False},
              "b": {"offset": 3, "width": 15, "lanes": 3, "lane_width": 5, "signed": True},
              "c": {"offset": 18, "width": 12, "lanes": 3, "lane_width": 4, "signed": True},
              "d": {"offset": 30, "width": 1, "signed": False}}
    arrays = _random_fields(fields, 50, rng)
    buf = pack_beats(fields, arrays)
    assert buf.shape == (50, 4)
    assert [int.from_bytes(r.tobytes(), "little") for r in buf] == pack_payloads(fields, arrays)
    back = unpack_beats(fields, buf)
    assert all(np.array_equal(back[k], arrays[k]) for k in fields)


@pytest.mark.parametrize(("w", "signed"), [(w, s) for w in [1, 2, 3, 4, 5, 8, 12, 16, 32]
                                           for s in (True, False) if w > 1 or not s])
def test_pack_bits_fast_paths_agree_with_bit_arrays(rng, w, signed):
    for lanes in (1, 2, 3, 7, 8, 9, 33):
        fmt = Format(w, w, signed)
        c = rng.integers(fmt.min_code, fmt.max_code + 1, (5, lanes))
        le = np.ascontiguousarray(c.astype("<u8")).view(np.uint8).reshape(5, lanes, 8)
        bits = np.unpackbits(le, axis=-1, bitorder="little")[..., :w].reshape(5, lanes * w)
        ref = np.packbits(bits, axis=-1, bitorder="little")
        for dt in (np.int64, np.int32, np.int16, np.int8, np.uint8):
            if np.iinfo(dt).min <= fmt.min_code and fmt.max_code <= np.iinfo(dt).max:
                assert np.array_equal(pack_bits(c.astype(dt), w), ref), dt
        out = unpack_bits(ref, w, lanes, signed)
        assert out.dtype == np.int64 and np.array_equal(out, c)
        narrow = unpack_bits(ref, w, lanes, signed, dtype=code_dtype(w, signed))
        assert narrow.dtype == code_dtype(w, signed) and np.array_equal(narrow, c)


def test_qtensor_per_tensor_and_per_channel():
    x = np.array([[-1.0, 0.26, 0.5], [2.0, -3.0, 100.0]])
    q = QTensor.quantize(x, "int8", scale=0.25)
    assert q.codes.dtype == np.int8
    assert q.codes.tolist() == [[-4, 1, 2], [8, -12, 127]]        # ties to even, saturated
    assert np.allclose(q.dequantize()[0], [-1.0, 0.25, 0.5])
    qc = QTensor.quantize(x, "uint8", scale=[0.5, 1.0, 2.0], zero_point=[10, 20, 30], axis=1)
    assert qc.codes.tolist() == [[8, 20, 30], [14, 17, 80]]
    assert np.allclose(qc.dequantize(), [[-1, 0, 0], [2, -3, 100]])
    fx = QTensor.quantize([1.3, -0.06], "fixed<8,3>")                # scale = the format's LSB
    assert fx.codes.tolist() == [42, -2] and fx.scale == 2.0 ** -5
    q4 = QTensor(np.array([7, -8]), Format.parse("int4"))
    assert q4.codes.dtype == np.int8


@pytest.mark.parametrize("bad,msg", [
    (dict(x=[np.nan], fmt="int8"), "NaN"),
    (dict(x=[1.0], fmt="int8", scale=0.0), "scale"),
    (dict(x=[[1.0, 2.0]], fmt="int8", scale=[1.0, 2.0]), "axis"),
    (dict(x=[[1.0, 2.0]], fmt="int8", scale=[1.0, 2.0, 3.0], axis=1), "channels"),
    (dict(x=[1.0], fmt="int99"), "not a format"),
])
def test_qtensor_errors(bad, msg):
    with pytest.raises(ValueError, match=msg):
        QTensor.quantize(**bad)
    with pytest.raises(ValueError, match="out of range"):
        QTensor(np.array([200]), Format.parse("int8"))


# make test runs this check, and more, as
# test_layers.py::test_import_host_pulls_in_no_generator_tools
@pytest.mark.regress
def test_host_does_not_import_amaranth():
    code = ("import sys, host, host.protocol, host.tensor, host.transport, host.board; "
            "print(any(m.split('.')[0] == 'amaranth' for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@st.composite
def _layouts(draw):
    fields, off = {}, 0
    for i in range(draw(st.integers(1, 4))):
        off += draw(st.integers(0, 9))                  # gaps: pad bits between fields
        if draw(st.booleans()):
            lanes, lw = draw(st.integers(1, 9)), draw(st.integers(1, 33))
            signed = lw > 1 and draw(st.booleans())
            fields[f"f{i}"] = {"offset": off, "width": lanes * lw, "lanes": lanes,
                               "lane_width": lw, "signed": signed}
            off += lanes * lw
        else:
            w = draw(st.integers(1, 40))
            fields[f"f{i}"] = {"offset": off, "width": w, "signed": False}
            off += w
    return fields


@settings(max_examples=150, deadline=None)
@given(fields=_layouts(), n=st.integers(0, 5), seed=st.integers(0, 2**16))
def test_pack_beats_round_trip_any_layout(fields, n, seed):
    arrays = _random_fields(fields, n, np.random.default_rng(seed))
    buf = pack_beats(fields, arrays)
    assert [int.from_bytes(r.tobytes(), "little") for r in buf] == pack_payloads(fields, arrays)
    back = unpack_beats(fields, buf.tobytes(), n)
    for k in fields:
        assert np.array_equal(back[k], arrays[k])


def test_pack_bits_big_endian_codes_are_cast_not_viewed():
    c = np.array([[1, -2, 300]], dtype=">i2")
    assert pack_bits(c, 16).tolist() == [[1, 0, 254, 255, 44, 1]]
    le = np.array([[1, -2, 300]], dtype="<i2")
    assert np.shares_memory(pack_bits(le, 16), le)          # the documented view
