"""Each family's ``program_streams``: descriptors over a tensor memory holding the operands in
their layouts play exactly the beats of the family's ``schedule``, and storing the output
beats of ``disassemble(golden)`` through the output descriptor gives the golden array."""

import numpy as np
import pytest

from generators.board_info import describe
from generators.config import (
    BoardConfig,
    TensorMemoryConfig,
    config_to_dict,
    load_config,
    parse_config,
)
from generators.tm import Place, ProgramError, data_lanes, storage_bits
from generators.units import family
from host import program as P

WORD = 32


def _design(unit_cfg, word_bytes=WORD):
    cfg = BoardConfig(name="t", board="ulx3s",
                      tensor_memory=TensorMemoryConfig(word_bytes=word_bytes),
                      units=(unit_cfg,))
    info = describe(cfg)
    return info["units"][0]["streams"], info["tensor_memory"]


def _up(v, m):
    return -(-v // m) * m


def run_case(unit_cfg, arrays, layouts, mode=None, pad=32):
    """Place every operand in its own bank, play, store, compare; returns the descriptors."""
    fam = family(unit_cfg.unit)
    params = fam.params(unit_cfg)
    streams, tmd = _design(unit_cfg)
    checked = fam.check_inputs(params, arrays, mode=mode)
    dims = fam.shape_key(checked)
    golden = fam.golden(params, checked, mode=mode)
    tm = P.TensorMemory(tmd["banks"], tmd["bank_bytes"], tmd["word_bytes"])
    tensors = {**{k: checked[k] for k in fam.in_arrays}, **golden}
    raw = fam.raw_operands(params, checked, mode=mode)
    places = {}
    for bank, (op, stream) in enumerate(fam.operand_streams.items()):
        if stream not in streams:
            continue
        fields = streams[stream]["fields"]
        if layouts.get(op, "raw") == "raw":
            pitch = P.raw_pitch(streams[stream]["beat_bytes"], WORD)
            places[op] = Place(bank, 64, "raw", pitch)
            tm.write(bank, 64, P.raw_tensor_bytes(fields, raw[op], pitch))
            continue
        t = np.asarray(tensors[op])
        t2 = t.reshape(t.shape[0], -1) if t.ndim != 1 else t.reshape(1, -1)
        _, width, _ = data_lanes(fields["data"])
        layout = layouts[op]
        r, c = t2.shape if layout == "row" else t2.shape[::-1]
        ld = _up(_up(c, pad) * storage_bits(width) // 8, WORD)
        places[op] = Place(bank, 64, layout, ld, t2.shape)
        if streams[stream]["dir"] == "in":
            tm.write(bank, 64, P.layout_bytes(t2, layout, width, ld, _up(r, pad)))
    descs = fam.program_streams(params, dims, places, streams, mode=mode)
    assert list(descs) == list(streams)
    ins, _, ctx = fam.schedule(params, checked, mode=mode)
    code = params.mode_code(mode) if fam.has_modes else 0
    for s, d in descs.items():
        P.check_descriptor(d, streams[s]["fields"], tmd["bank_bytes"], tmd["word_bytes"],
                           tmd["banks"], s)
        if streams[s]["dir"] == "in":
            got = P.play(tm.mem[d.bank], d, streams[s]["fields"], code)
            assert set(got) == set(ins[s]), s
            if d.kind == P.RAW:   # signed fields come back as raw bits: compare the bytes
                from host.tensor import pack_beats
                f = streams[s]["fields"]
                assert np.array_equal(pack_beats(f, got), pack_beats(f, ins[s])), s
                continue
            for f in ins[s]:
                assert np.array_equal(got[f], np.asarray(ins[s][f])), (s, f)
    outs = fam.disassemble(params, ctx, golden)
    for op, stream in fam.operand_streams.items():
        if stream in streams and streams[stream]["dir"] == "out":
            d = descs[stream]
            P.store(tm.mem[d.bank], d, streams[stream]["fields"], outs[stream])
            pl = places[op]
            lanes, width, signed = data_lanes(streams[stream]["fields"]["data"])
            want = np.asarray(golden[op])
            w2 = want.reshape(want.shape[0], -1) if want.ndim != 1 else want.reshape(1, -1)
            got = P.layout_codes(tm.read(pl.bank, 64, tmd["bank_bytes"] - 64), pl.layout,
                                 w2.shape, width, signed, pl.ld)
            assert np.array_equal(got, w2), op
    return descs


def _mac(name, **changes):
    cfg = load_config(f"configs/{name}.yaml")
    return parse_config({**config_to_dict(cfg), **changes}, "t") if changes else cfg


def _rq(rng, n, per=True):
    from generators.numerics import quantize_multiplier  # noqa: F401 (exists)

    return {"bias": rng.integers(-500, 500, n),
            "multiplier": rng.integers(1 << 29, (1 << 31) - 1, n) if per else
            np.int64(1 << 30),
            "shift": rng.integers(-9, -5, n) if per else np.int64(-7),
            "zero_point": np.int64(3)}


SHAPES = [(8, 8, 8), (20, 13, 19), (1, 1, 1), (17, 40, 9)]


@pytest.mark.parametrize("m,k,n", SHAPES)
def test_mac_array_output_stationary(m, k, n):
    rng = np.random.default_rng(m * 1000 + k * 10 + n)
    a, b = rng.integers(-128, 128, (m, k)), rng.integers(-128, 128, (k, n))
    run_case(_mac("mac8x8"), {"a": a, "b": b}, {"a": "col", "b": "row", "c": "row"})


@pytest.mark.parametrize("m,k,n", SHAPES)
def test_mac_array_fused_requant(m, k, n):
    rng = np.random.default_rng(m + k + n)
    a, b = rng.integers(-128, 128, (m, k)), rng.integers(-128, 128, (k, n))
    run_case(_mac("mac8x8_requant"), {"a": a, "b": b, **_rq(rng, n)},
             {"a": "col", "b": "row", "c": "row"})


def test_mac_array_int4_operand():
    rng = np.random.default_rng(4)
    a, b = rng.integers(-8, 8, (7, 10)), rng.integers(-128, 128, (10, 6))
    run_case(_mac("mac4x4_int4x8_sat"), {"a": a, "b": b}, {"a": "col", "b": "row", "c": "row"})


@pytest.mark.parametrize("m,k,n", [(16, 16, 16), (96, 20, 33), (5, 40, 17), (1, 1, 1)])
def test_mac_array_weight_stationary(m, k, n):
    rng = np.random.default_rng(m * 7 + k + n)
    a, b = rng.integers(-128, 128, (m, k)), rng.integers(-128, 128, (k, n))
    run_case(_mac("mac16x16_ws", tile_m=32), {"a": a, "b": b}, {"a": "row", "b": "row", "c": "row"})


def test_mac_array_refuses_what_it_cannot_play():
    rng = np.random.default_rng(1)
    a, b = rng.integers(-128, 128, (8, 4)), rng.integers(-128, 128, (4, 8))
    with pytest.raises(ProgramError, match="mac_array a: row layout"):
        run_case(_mac("mac8x8"), {"a": a, "b": b}, {"a": "row", "b": "row", "c": "row"})
    with pytest.raises(ProgramError, match="mac_array c: col layout"):
        run_case(_mac("mac8x8"), {"a": a, "b": b}, {"a": "col", "b": "row", "c": "col"})
    with pytest.raises(ProgramError, match="not a multiple of tile_m 128"):
        a = rng.integers(-128, 128, (130, 4))
        run_case(_mac("mac16x16_ws"), {"a": a, "b": b}, {"a": "row", "b": "row", "c": "row"})


@pytest.mark.parametrize("shape", [(5, 7), (1, 1), (64, 64), (3, 33)])
@pytest.mark.parametrize("lin,lout", [("row", "row"), ("row", "col"), ("col", "row")])
def test_softmax_rows_any_layout(shape, lin, lout):
    rng = np.random.default_rng(shape[0] * 64 + shape[1])
    run_case(load_config("configs/softmax64.yaml"), {"x": rng.integers(-128, 128, shape)},
             {"x": lin, "y": lout})


def test_softmax_with_lanes_is_refused():
    cfg = parse_config({**config_to_dict(load_config("configs/softmax64.yaml")), "lanes": 4},
                       "t")
    with pytest.raises(ProgramError, match="softmax with 4 lanes"):
        run_case(cfg, {"x": np.zeros((2, 8), np.int64)}, {"x": "row", "y": "row"})


@pytest.mark.parametrize("name,lanes", [("gelu8", 1), ("gelu16", 1), ("gelu8", 4)])
@pytest.mark.parametrize("shape", [(6, 8), (1, 1), (9, 17)])
@pytest.mark.parametrize("lin,lout", [("row", "row"), ("col", "row"), ("row", "col")])
def test_gelu(name, lanes, shape, lin, lout):
    cfg = load_config(f"configs/{name}.yaml")
    if lanes > 1:
        cfg = parse_config({**config_to_dict(cfg), "lanes": lanes}, "t")
    fmt = cfg.inp
    rng = np.random.default_rng(shape[0] * 3 + shape[1])
    x = rng.integers(fmt.min_code, fmt.max_code + 1, shape)
    if lanes > 1 and ((shape[1] % lanes and shape[0] > 1) or "col" in (lin, lout)):
        with pytest.raises(ProgramError, match="lanes over a"):
            run_case(cfg, {"x": x}, {"x": lin, "y": lout})
        return
    run_case(cfg, {"x": x}, {"x": lin, "y": lout})


@pytest.mark.parametrize("r,n", [(3, 10), (1, 1), (9, 64), (4, 8)])
@pytest.mark.parametrize("lanes", [4, 1])
def test_requant_unit(r, n, lanes):
    cfg = load_config("configs/requant8.yaml")
    if lanes != 4:
        cfg = parse_config({**config_to_dict(cfg), "lanes": lanes}, "t")
    rng = np.random.default_rng(r * 100 + n)
    acc = rng.integers(-(1 << 20), 1 << 20, (r, n))
    run_case(cfg, {"acc": acc, **_rq(rng, n)}, {"acc": "row", "y": "row"})
    if lanes == 1:
        run_case(cfg, {"acc": acc, **_rq(rng, n)}, {"acc": "col", "y": "col"})


def _sparse_w(rng, o, k, n, m):
    w = rng.integers(-128, 128, (o, k))
    for r in range(o):
        for g in range(0, k, m):
            idx = rng.permutation(np.arange(g, min(k, g + m)))
            w[r, idx[n:]] = 0
    return w


@pytest.mark.parametrize("mode", ["2:4", "1:4", "4:4"])
@pytest.mark.parametrize("o,k,b", [(6, 20, 5), (1, 1, 1), (16, 64, 3), (3, 70, 8)])
def test_sparse_chain(mode, o, k, b):
    cfg = load_config("configs/sparse16.yaml")
    n, m = (int(v) for v in mode.split(":"))
    rng = np.random.default_rng(o * 100 + k + b)
    arrays = {"w": _sparse_w(rng, o, k, n, m), "x": rng.integers(-128, 128, (k, b))}
    run_case(cfg, arrays, {"y": "row"}, mode=mode)
    run_case(cfg, arrays, {"y": "col"}, mode=mode)


def test_sparse_chain_fused_requant():
    cfg = parse_config({**config_to_dict(load_config("configs/sparse16.yaml")),
                        "requant": {"rounding": "single", "per": "channel"}}, "t")
    rng = np.random.default_rng(9)
    arrays = {"w": _sparse_w(rng, 7, 30, 2, 4), "x": rng.integers(-128, 128, (30, 4)),
              **_rq(rng, 7)}
    run_case(cfg, arrays, {"y": "row"}, mode="2:4")


def test_a_family_without_program_streams_says_so():
    from types import SimpleNamespace

    from generators.family import UnitFamily

    with pytest.raises(ProgramError, match="unit family other cannot run from the tensor "
                       "memory"):
        UnitFamily.program_streams(SimpleNamespace(name="other"), None, (1,), {}, {})


def _chain_sums(params, w_beats, x_data):
    """What the chain computes from its beats alone: in the beat's mode n:m stage s < P*n
    multiplies lane (s // n) * m + idx[s] of the x beat; summed over the passes until last."""
    out, acc = [], 0
    for t in range(len(w_beats["last"])):
        nm = params.mode_list[int(w_beats["mode"][t])]
        used = params.groups_per_pass(nm) * nm.n
        lanes = (np.arange(used) // nm.n) * params.m + w_beats["idx"][t, :used]
        acc += int((w_beats["w"][t, :used].astype(object) *
                    x_data[t, lanes].astype(object)).sum())
        if w_beats["last"][t]:
            out.append(acc)
            acc = 0
    return params.acc.apply_overflow(np.array(out, dtype=object), params.overflow)


@pytest.mark.parametrize("word", [32, 16])
@pytest.mark.parametrize("mode", ["2:4", "1:4", "4:4"])
@pytest.mark.parametrize("o,k,b", [(6, 20, 5), (1, 1, 1), (3, 70, 8), (2, 64, 3)])
def test_sparse_chain_x_from_a_col_place(mode, o, k, b, word):
    """x [K, B] stored by columns is read straight as x_stream beats: on the lanes that matter
    (the pass's positions below K) exactly the schedule's; the rest, read from the next column
    or from the junk after the tensor (x_overread_bytes of it), leaves the product unchanged."""
    cfg = load_config("configs/sparse16.yaml")
    fam = family(cfg.unit)
    n, m = (int(v) for v in mode.split(":"))
    rng = np.random.default_rng(o * 100 + k + b)
    arrays = {"w": _sparse_w(rng, o, k, n, m), "x": rng.integers(-128, 128, (k, b))}
    streams, tmd = _design(cfg, word)
    tm = P.TensorMemory(tmd["banks"], tmd["bank_bytes"], tmd["word_bytes"])
    kp, passes = cfg.k_per_pass(mode), cfg.passes(k, mode)
    assert cfg.x_pass_bytes(mode) == kp       # int8
    # w raw in bank 0; x by columns in bank 1, each column padded to 32 bytes only (so a
    # pass may run into the next column) and random junk after it; y in bank 2
    raw = fam.raw_operands(cfg, arrays, mode=mode)
    pitch = P.raw_pitch(streams["w_stream"]["beat_bytes"], word)
    tm.write(0, 0, P.raw_tensor_bytes(streams["w_stream"]["fields"], raw["w"], pitch))
    ld = _up(k, word)
    xbytes = P.layout_bytes(arrays["x"], "col", 8, ld)
    tm.write(1, 64, xbytes)
    tm.mem[1][64 + len(xbytes):] = rng.integers(0, 256, tmd["bank_bytes"] - 64 - len(xbytes))
    places = {"w": Place(0, 0, "raw", pitch), "x": Place(1, 64, "col", ld, (k, b)),
              "y": Place(2, 0, "row", _up(b * 4, word))}
    ins, _, ctx = fam.schedule(cfg, arrays, mode=mode)
    code = cfg.mode_code(mode)
    descs = fam.program_streams(cfg, (o, k, b), places, streams, mode=mode)
    try:
        cfg.check_x_col(word, k, mode)
    except ProgramError as err:
        # the pass stride is below the beat's alignment: the board refuses the descriptor
        assert passes > 1 and mode == "4:4" and word == 32, err
        assert str(err) == ("sparse_chain x: a col place steps 16 bytes per pass in mode 4:4, "
                            "not a multiple of 32 (64-lane beats in 32-byte words) (allowed: "
                            "raw x, or col x with K <= 16, or modes 2:4, 1:4)")
        with pytest.raises(ProgramError, match="stride 16 is not a multiple of 32"):
            P.check_descriptor(descs["x_stream"], streams["x_stream"]["fields"],
                               tmd["bank_bytes"], tmd["word_bytes"], tmd["banks"], "x_stream")
        return
    for s, d in descs.items():
        P.check_descriptor(d, streams[s]["fields"], tmd["bank_bytes"], tmd["word_bytes"],
                           tmd["banks"], s)
    d = descs["x_stream"]
    assert d.kind == P.DATA and d.nbytes == cfg.x_lanes
    # the last beat ends exactly x_overread_bytes past the last pass of the last column
    end = int(P.addresses(d).max()) + d.nbytes
    assert end == 64 + (b - 1) * ld + passes * cfg.x_pass_bytes(mode) + cfg.x_overread_bytes(mode)
    got = P.play(tm.mem[1], d, streams["x_stream"]["fields"], code)["data"]
    want = np.asarray(ins["x_stream"]["data"])
    assert got.shape == want.shape == (o * b * passes, cfg.x_lanes)
    pos = (np.arange(o * b * passes) % passes)[:, None] * kp + np.arange(cfg.x_lanes)[None]
    matters = (np.arange(cfg.x_lanes)[None] < kp) & (pos < k)
    assert np.array_equal(got[matters], want[matters])
    if passes * kp > ld or cfg.x_overread_bytes(mode):
        assert not np.array_equal(got, want)   # the junk is really there
    wb = P.play(tm.mem[0], descs["w_stream"], streams["w_stream"]["fields"], code)
    y = _chain_sums(cfg, wb, got).reshape(o, b)
    assert np.array_equal(y, fam.golden(cfg, arrays, mode=mode)["y"])


@pytest.mark.parametrize("fmt,lanes", [("int8", 1), ("int16", 1), ("uint32", 1),
                                       ("int8", 4), ("int4", 2)])
@pytest.mark.parametrize("shape", [(13, 7), (1, 1), (8, 16)])
@pytest.mark.parametrize("lin,lout", [("row", "row"), ("row", "col"), ("col", "row"),
                                      ("col", "col")])
def test_copy(fmt, lanes, shape, lin, lout):
    from generators.copy import CopyParams
    from generators.numerics import Format

    cfg = CopyParams(name="cp", format=Format.parse(fmt), lanes=lanes)
    rng = np.random.default_rng(shape[0] * 5 + shape[1] + lanes)
    x = rng.integers(cfg.format.min_code, cfg.format.max_code + 1, shape)
    if lanes > 1 and ((shape[1] % lanes and shape[0] > 1) or "col" in (lin, lout)):
        with pytest.raises(ProgramError, match="lanes over a"):
            run_case(cfg, {"x": x}, {"x": lin, "y": lout})
        return
    run_case(cfg, {"x": x}, {"x": lin, "y": lout})
    run_case(cfg, {"x": x}, {"x": lin, "y": lout}, pad=2)   # ld: rounded to the word only


def test_copy_of_nibbles_one_by_one_is_refused():
    from generators.copy import CopyParams
    from generators.numerics import Format

    cfg = CopyParams(name="cp", format=Format.parse("int4"), lanes=1)
    with pytest.raises(ProgramError, match="copy x: 1 lanes of 4-bit storage are not whole bytes"):
        run_case(cfg, {"x": np.zeros((3, 4), np.int64)}, {"x": "row", "y": "col"})
