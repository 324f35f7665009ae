"""unschedule/disassemble are exact inverses of schedule/assemble (what the Python reference
board needs to run beats through the golden models), and stream_beats counts what schedule
makes."""

import numpy as np
import pytest
import sparse_cases

from generators.mac_array import family as mac
from generators.sparse_chain import family as sparse

import mac_cases

MAC_SHAPES = [(1, 1, 1), (3, 5, 2), (8, 8, 8), (9, 17, 13), (20, 3, 30), (130, 7, 5)]


@pytest.mark.parametrize("dataflow,tile_m", [("output_stationary", 64),
                                             ("weight_stationary", 64),
                                             ("weight_stationary", 7)])
@pytest.mark.parametrize("rows,cols", [(1, 1), (2, 3), (4, 4)])
def test_mac_unschedule_inverts_schedule(rng, dataflow, tile_m, rows, cols):
    p = mac_cases.make_params(rows, cols, dataflow=dataflow, tile_m=tile_m)
    for m, k, n in MAC_SHAPES:
        a, b = mac_cases.random_operands(p, m, k, n, rng)
        inputs, outs, ctx = mac.schedule(p, {"a": a, "b": b})
        counts = mac.stream_beats(p, (m, k, n))
        assert counts == {**{s: len(next(iter(f.values()))) for s, f in inputs.items()}, **outs}
        back = mac.unschedule(p, inputs, (m, k, n))
        assert np.array_equal(back["a"], a) and np.array_equal(back["b"], b)
        c = mac.golden(p, {"a": a, "b": b})
        beats = mac.disassemble(p, ctx, c)
        assert beats["c_stream"]["data"].shape == (outs["c_stream"], cols)
        assert np.array_equal(mac.assemble(p, ctx, beats)["c"], c["c"])


def test_mac_unschedule_refuses_other_beats(rng):
    p = mac_cases.make_params(2, 2, dataflow="weight_stationary")
    a, b = mac_cases.random_operands(p, 5, 3, 4, rng)
    inputs, _, _ = mac.schedule(p, {"a": a, "b": b})
    with pytest.raises(ValueError):
        mac.unschedule(p, inputs, (5, 5, 4))          # counts for another shape
    bad = {s: {f: v.copy() for f, v in d.items()} for s, d in inputs.items()}
    bad["a_stream"]["data"][0, 1] += 1                 # the N-block copies of a disagree
    with pytest.raises(ValueError):
        mac.unschedule(p, bad, (5, 3, 4))
    bad = {s: {f: v.copy() for f, v in d.items()} for s, d in inputs.items()}
    bad["a_stream"]["last"][0] = 1
    with pytest.raises(ValueError):
        mac.unschedule(p, bad, (5, 3, 4))


@pytest.mark.parametrize("length,m,modes", [(4, 4, ("2:4", "1:4", "4:4")),
                                            (5, 2, ("1:2", "2:2")),
                                            (16, 8, ("3:8", "8:8", "1:8"))])
def test_sparse_unschedule_inverts_schedule(rng, length, m, modes):
    p = sparse_cases.make_params(length, m, modes)
    for mode in modes:
        for o, k, b in [(1, 1, 1), (3, 9, 2), (2, 40, 3), (5, 2 * m, 1)]:
            w, x = sparse_cases.random_operands(p, mode, o, k, b, rng)
            inputs, outs, ctx = sparse.schedule(p, {"w": w, "x": x}, mode=mode)
            counts = sparse.stream_beats(p, (o, k, b), mode=mode)
            assert counts == {**{s: len(next(iter(f.values()))) for s, f in inputs.items()},
                              **outs}
            back = sparse.unschedule(p, inputs, (o, k, b), mode=mode)
            assert np.array_equal(back["w"], w) and np.array_equal(back["x"], x)
            y = sparse.golden(p, back, mode=mode)
            beats = sparse.disassemble(p, ctx, y)
            assert np.array_equal(sparse.assemble(p, ctx, beats)["y"], y["y"])


def test_sparse_unschedule_refuses_wrong_mode(rng):
    p = sparse_cases.make_params(4, 4, ("2:4", "4:4"))
    w, x = sparse_cases.random_operands(p, "2:4", 2, 8, 2, rng)
    inputs, _, _ = sparse.schedule(p, {"w": w, "x": x}, mode="2:4")
    with pytest.raises(ValueError):
        sparse.unschedule(p, inputs, (2, 8, 2), mode="4:4")


@pytest.mark.parametrize("lane", ["past_pass", "past_k", "copy", "in_pass"])
def test_sparse_unschedule_x_beats_dont_care_lanes(rng, lane):
    """An x beat is the pass's K positions once: the lanes past the pass and past K are
    don't-care (any codes, as a board reading x from its tensor memory has there) and give
    the same x; a changed code inside the pass, or two copies of a beat that disagree, is not
    a schedule."""
    p = sparse_cases.make_params(16, 4, ("2:4", "1:4", "4:4"))
    w, x = sparse_cases.random_operands(p, "2:4", 2, 40, 2, rng)
    inputs, _, _ = sparse.schedule(p, {"w": w, "x": x}, mode="2:4")
    assert sparse.unschedule(p, inputs, (2, 40, 2), mode="2:4")["x"].shape == (40, 2)
    xd = np.array(inputs["x_stream"]["data"])
    assert xd.shape == (2 * 2 * 2, 64)
    if lane == "past_pass":
        xd[:, 32:] = rng.integers(-128, 128, (8, 32))     # lanes past k_per_pass = 32
    elif lane == "past_k":
        xd[1::2, 40 - 32:32] = 77   # pass 1 of each column holds K 32..63: 40.. is past K
    elif lane == "copy":
        xd[4, 3] += 1           # row 1's copy of column 0, pass 0
    else:
        xd[[0, 4], 3] += 1      # both rows' copies of K position 3, column 0: another x
    bad = {**inputs, "x_stream": {"data": xd}}
    if lane in ("past_pass", "past_k"):
        got = sparse.unschedule(p, bad, (2, 40, 2), mode="2:4")
        assert np.array_equal(got["x"], x) and np.array_equal(got["w"], w)
    elif lane == "copy":
        with pytest.raises(ValueError, match="not a 2x40x2 schedule in mode 2:4"):
            sparse.unschedule(p, bad, (2, 40, 2), mode="2:4")
    else:
        got = sparse.unschedule(p, bad, (2, 40, 2), mode="2:4")["x"]
        want = x.copy()
        want[3, 0] += 1
        assert np.array_equal(got, want)


@pytest.mark.parametrize("unit", ["gelu", "copy"])
def test_elementwise_unschedule_refuses_a_wrong_beat_count(unit):
    """13 elements on 4 lanes are 4 beats: 3 (12 codes) or 5 are not a schedule, whatever
    the codes (the reference board must refuse what the RTL would stall on)."""
    from generators.config import parse_config
    from generators.units import family

    keys = {"gelu": {"in": "fixed<8,3>", "out": "fixed<8,3>"}, "copy": {"format": "int8"}}
    cfg = parse_config({"name": "u", "unit": unit, "lanes": 4, **keys[unit]}, "test")
    fam = family(unit)
    p = fam.params(cfg)
    x = np.arange(13) - 6
    inputs, _, _ = fam.schedule(p, {"x": x})
    assert np.array_equal(fam.unschedule(p, inputs, (13,))["x"], x)
    for beats in (3, 5):
        data = np.zeros((beats, 4), np.int64)
        last = np.zeros(beats, np.int64)
        last[-1] = 1
        with pytest.raises(ValueError, match="data codes for 13 elements"):
            fam.unschedule(p, {"i_stream": {"data": data, "last": last}}, (13,))
