"""copy: the config, the golden model (the identity) and its input checks, streaming and its
inverses, the cycle model."""

from __future__ import annotations

import numpy as np
import pytest
from copy_cases import codes, copy_params

from generators.config import config_to_dict, parse_config
from generators.copy import check_inputs, copy, family
from generators.errors import ArrayError, ConfigError


def test_config_keys_defaults_and_formats():
    cfg = parse_config({"name": "c", "unit": "copy"}, "t")
    assert (str(cfg.format), cfg.lanes, cfg.latency) == ("int8", 1, 1)
    assert config_to_dict(cfg) == {"name": "c", "unit": "copy", "format": "int8", "lanes": 1}
    for fmt in ("int2", "uint2", "int32", "uint32", "fixed<16,5>", "ufixed<12,0>",
                "fixed<8,-3>"):
        cfg = parse_config({"name": "c", "unit": "copy", "format": fmt, "lanes": 64}, "t")
        assert str(cfg.format) == fmt and cfg.lanes == 64
    for bad, msg in [({"format": "int33"}, "format: int33 is not allowed for copy"),
                     ({"format": "uint1"}, "format: uint1 is not allowed for copy"),
                     ({"format": "float8"}, "format: 'float8' is not a format"),
                     ({"lanes": 0}, r"lanes: 0 is out of range \(allowed: 1..64\)"),
                     ({"lanes": 65}, r"lanes: 65 is out of range \(allowed: 1..64\)"),
                     ({"in": "int8"}, "in: unknown key")]:
        with pytest.raises(ConfigError, match=msg):
            parse_config({"name": "c", "unit": "copy", **bad}, "t")


@pytest.mark.parametrize("fmt", ["int8", "uint4", "int32", "uint32", "fixed<16,3>"])
def test_golden_is_the_identity(fmt, rng):
    p = copy_params(fmt)
    x = codes(p, rng, (5, 3, 4))
    y = family.golden(p, family.check_inputs(p, {"x": x}))["y"]
    assert y.shape == x.shape and y.dtype == np.int64 and np.array_equal(y, x)
    assert y is not x and not np.shares_memory(y, x)
    assert np.array_equal(copy(p, [3, -1]), [3, -1])


def test_check_inputs_errors():
    p = copy_params("int8")
    assert check_inputs(p, {"x": np.arange(-5, 5)}).shape == (10,)
    assert family.check_inputs(p, {"x": np.int64(7)})["x"].shape == ()
    for q, arrays, msg in [
            (p, {}, "missing array 'x'"),
            (p, {"x": np.zeros(0, dtype=np.int64)}, "x: shape (0,) is empty"),
            (p, {"x": np.array([0, 5, 128])},
             "x: value 128 at index 2 is out of range for int8 (allowed: -128..127)"),
            (p, {"x": np.array([[0, 1], [-129, 0]])}, "x: value -129 at index (1, 0)"),
            (copy_params("uint4"), {"x": np.array([3, -1])},
             "x: value -1 at index 1 is out of range for uint4 (allowed: 0..15)"),
            (p, {"x": np.zeros(3)}, "x: dtype float64 is not an integer dtype"),
            (p, {"x": np.arange(3), "z": np.arange(3)}, "unexpected array 'z'")]:
        with pytest.raises(ArrayError) as info:
            family.check_inputs(q, arrays)
        assert str(info.value).startswith(msg), str(info.value)
        assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match="has no modes"):
        family.check_inputs(p, {"x": np.arange(3)}, mode="2:4")


@pytest.mark.parametrize("lanes, shape", [(1, (4, 5)), (3, (4, 5)), (4, (8,)), (64, (3,)),
                                          (2, (1,)), (5, (2, 3, 5))])
def test_schedule_unschedule_round_trip(lanes, shape, rng):
    p = copy_params("int16", lanes)
    x = codes(p, rng, shape)
    n = x.size
    beats = -(-n // lanes)
    inputs, outs, ctx = family.schedule(p, {"x": x})
    s = inputs["i_stream"]
    assert outs == {"o_stream": beats} and s["data"].shape == (beats, lanes)
    assert s["last"].tolist() == [0] * (beats - 1) + [1]
    assert np.array_equal(s["data"].reshape(-1)[:n], x.reshape(-1))
    assert not s["data"].reshape(-1)[n:].any()   # the last beat zero-padded
    dims = family.shape_key({"x": x})
    assert dims == (n,)
    assert family.stream_beats(p, dims) == {"i_stream": beats, "o_stream": beats}
    # the board's side: arrays from the input beats, output beats from the output arrays
    back = family.unschedule(p, inputs, dims)
    assert np.array_equal(back["x"], x.reshape(-1))
    y = family.golden(p, {"x": x})["y"]
    out = family.disassemble(p, ctx, {"y": y})
    assert set(out) == {"o_stream"}
    assert np.array_equal(out["o_stream"]["data"], s["data"])
    assert np.array_equal(out["o_stream"]["last"], s["last"])
    assert np.array_equal(family.assemble(p, ctx, out)["y"], x)


def test_unschedule_refuses_beats_no_schedule_makes(rng):
    p = copy_params("int8", 4)
    x = codes(p, rng, (10,))
    inputs, _, _ = family.schedule(p, {"x": x})

    def changed(**fields):
        return {"i_stream": {**inputs["i_stream"], **fields}}

    last = inputs["i_stream"]["last"].copy()
    last[0] = 1
    pad = inputs["i_stream"]["data"].copy()
    pad[-1, -1] = 9                                 # the padding of the last beat
    for bad, dims in [(changed(last=last), (10,)), (changed(data=pad), (10,)),
                      (inputs, (13,)), (inputs, (5,)), (inputs, (0,))]:
        with pytest.raises(ValueError):
            family.unschedule(p, bad, dims)


@pytest.mark.parametrize("lanes, n", [(1, 1), (1, 100), (4, 13), (4, 16), (64, 65)])
def test_cycle_model(lanes, n):
    p = copy_params("int8", lanes)
    x = np.zeros(n, dtype=np.int64)
    beats = -(-n // lanes)
    assert p.latency == 1
    assert family.expected_cycles(p, {"x": x}) == p.expected_cycles(beats) == beats + 1
    st = family.stats(p, {"x": x}, 77)
    assert st == {"elements": n, "beats": beats, "expected_cycles": beats + 1, "cycles": 77}
    with pytest.raises(ValueError):
        p.expected_cycles(0)
    man = family.manifest_extra(p)
    assert man["latency"] == 1 and man["throughput"]["elements_per_cycle"] == lanes
