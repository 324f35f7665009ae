"""The Python reference board (model://) on protocol bytes, and the open_board API on it."""

import json
import random

import numpy as np
import pytest
import sparse_cases

from generators.board_info import describe, describe_bytes
from generators.config import BoardConfig, load_config, parse_config
from generators.errors import ArrayError, UserError
from generators.mac_array import family as mac
from generators.sparse_chain import family as sparse
from host import open_board
from host import protocol as p
from host.board import Board, BoardError
from host.model import ModelBoard
from host.tensor import pack_beats
from host.transport import ModelTransport, open_transport

DEMO = "configs/ulx3s_units.yaml"


@pytest.fixture(scope="module")
def demo_cfg():
    return load_config(DEMO)


@pytest.fixture
def model(demo_cfg):
    return ModelBoard(demo_cfg)


def ask(board: ModelBoard, op, seq, payload=b"", ver=1) -> p.Packet:
    out = board.feed(p.encode_frame(op, seq, payload, ver))
    (pkt,) = p.FrameDecoder().feed(out)
    assert pkt.seq == seq
    return pkt


def nak_code(pkt: p.Packet, op) -> int:
    assert pkt.op == p.NAK_OP and pkt.payload[0] == op, pkt
    return pkt.payload[1]


# -- the description -------------------------------------------------------------------------


def test_description_fields(demo_cfg):
    d = describe(demo_cfg)
    assert d["protocol"] == 1 and d["name"] == "ulx3s_units" and d["board"] == "ulx3s"
    assert len(d["hash"]) == 16 and d["max_payload"] == 1024 and d["clock_hz"] > 0
    bufs = [s["buffer"] for u in d["units"] for s in u["streams"].values()]
    assert bufs == list(range(len(bufs)))
    for u in d["units"]:
        for s in u["streams"].values():
            assert s["depth"] == demo_cfg.buffer_bytes // s["beat_bytes"]
    assert d["units"][1]["modes"] == {"2:4": 0, "1:4": 1, "4:4": 2}
    assert d["units"][0]["modes"] == {}
    # the hash follows the design
    other = parse_config({**json.loads(json.dumps(demo_cfg.model_dump(mode="json"))),
                          "buffer_bytes": 4096}, "x")
    assert describe(other)["hash"] != d["hash"]


def test_info_in_pieces(model, demo_cfg):
    want = describe_bytes(demo_cfg)
    got, off = b"", 0
    while True:
        total, chunk = p.parse_info_reply(p.reply_payload(ask(model, p.Op.INFO, 1 + off,
                                                             off.to_bytes(2, "little")),
                                                         p.Op.INFO, 1 + off), off)
        got += chunk
        off += len(chunk)
        if off >= total:
            break
    assert got == want and len(want) > 1022  # more than one piece
    assert nak_code(ask(model, p.Op.INFO, 9, (len(want) + 1).to_bytes(2, "little")),
                    p.Op.INFO) == p.NakCode.OUT_OF_RANGE


# -- requests on the reference board ---------------------------------------------------------


def test_write_read_and_naks(model):
    bb = 9  # a_stream of mac8x8: 8 int8 lanes + last
    data = bytes(range(2 * bb))
    assert ask(model, p.Op.WRITE, 1, b"\x00" + (5).to_bytes(4, "little") + data).op == 0x82
    pkt = ask(model, p.Op.READ, 2, b"\x00" + (5).to_bytes(4, "little") + (2).to_bytes(2, "little"))
    # a beat's 65 payload bits are kept; its 7 pad bits read back as 0, as on the RTL board
    kept = bytes(b & (0x01 if i % bb == bb - 1 else 0xFF) for i, b in enumerate(data))
    assert pkt.op == 0x83 and pkt.payload == kept and kept != data
    cases = [
        (p.Op.WRITE, b"\x00\x00\x00\x00\x00" + data[:5], p.NakCode.BAD_BUFFER),   # not whole
        (p.Op.WRITE, b"\x63\x00\x00\x00\x00" + data, p.NakCode.BAD_BUFFER),        # buffer 99
        (p.Op.WRITE, b"\x00" + (1819).to_bytes(4, "little") + data, p.NakCode.OUT_OF_RANGE),
        (p.Op.READ, b"\x00\x00\x00\x00\x00\xe8\x03", p.NakCode.OUT_OF_RANGE),     # > payload
        (p.Op.READ, b"\x00\x00\x00\x00\x00", p.NakCode.BAD_LENGTH),
        (p.Op.STATUS, b"\x01", p.NakCode.BAD_LENGTH),
        (0x33, b"", p.NakCode.BAD_OP),
        (p.Op.RUN, p.run_payload(7, 0, (1, 1, 1), (1, 1, 1)), p.NakCode.BAD_UNIT),
        (p.Op.RUN, p.run_payload(0, 1, (1, 1, 1), (1, 1, 8)), p.NakCode.BAD_MODE),
        (p.Op.RUN, p.run_payload(1, 3, (1, 1, 1), (1, 1, 1)), p.NakCode.BAD_MODE),
        (p.Op.RUN, p.run_payload(0, 0, (1, 1, 1), (0, 1, 8)), p.NakCode.BAD_RUN),
        (p.Op.RUN, p.run_payload(0, 0, (1, 1, 1), (1, 1, 9999)), p.NakCode.BAD_RUN),
        (p.Op.RUN, p.run_payload(0, 0, (1, 1, 1), (1, 1)), p.NakCode.BAD_LENGTH),
        (p.Op.RUN, p.run_payload(0, 0, (5, 5, 5), (1, 1, 8)), p.NakCode.BAD_RUN),  # not dims
    ]
    for i, (op, payload, code) in enumerate(cases):
        assert nak_code(ask(model, op, 100 + i, payload), op) == code, (op, payload)
    assert nak_code(ask(model, p.Op.STATUS, 200, b"", ver=2), p.Op.STATUS) == \
        p.NakCode.BAD_VERSION
    st = p.parse_status_reply(ask(model, p.Op.STATUS, 201).payload)
    assert st.naks == len(cases) + 1 and st.runs == 0


def _mac_run_frames(p_mac, a, b, seq0=10):
    inputs, outs, _ = mac.schedule(p_mac, {"a": a, "b": b})
    desc = describe(load_config(DEMO))["units"][0]["streams"]
    frames = []
    for i, name in enumerate(("a_stream", "b_stream")):
        beats = pack_beats(desc[name]["fields"], inputs[name])
        frames.append(p.write_request(seq0 + i, i, 0, beats.tobytes()))
    counts = (len(inputs["a_stream"]["data"]), len(inputs["b_stream"]["data"]), outs["c_stream"])
    return frames, counts


def test_run_executes_once_per_seq(model, demo_cfg, rng):
    params = mac.params(demo_cfg.units[0])
    a = rng.integers(-128, 128, (3, 4))
    b = rng.integers(-128, 128, (4, 5))
    frames, counts = _mac_run_frames(params, a, b)
    for f in frames:
        model.feed(f)
    run = p.run_request(20, 0, 0, (3, 4, 5), counts)
    first = model.feed(run)
    assert model.feed(run) == first            # the retry gets the same reply ...
    assert model.runs == 1                     # ... without a second run
    cycles, stored = p.parse_run_reply(p.FrameDecoder().feed(first)[0].payload, 1)
    assert stored == (counts[2],) and cycles == mac.expected_cycles(params, {"a": a, "b": b})
    pkt = ask(model, p.Op.READ, 21, b"\x02\x00\x00\x00\x00" + counts[2].to_bytes(2, "little"))
    c = np.frombuffer(pkt.payload, "<i4").reshape(8, 8)[:3, :5]
    assert np.array_equal(c, mac.golden(params, {"a": a, "b": b})["c"])
    # the same seq and op with another payload is a new request
    model.feed(p.encode_frame(p.Op.RUN, 20, p.run_payload(0, 0, (3, 4, 5), counts[:2] + (1,))))
    assert model.runs == 2


def test_counters_and_clear(model):
    good = p.status_request(1)
    bad = bytearray(good)
    bad[3] ^= 0x40
    assert model.feed(bytes(bad)) == b""                      # dropped, counted
    assert model.feed(b"\x07\x01\x02\x00") == b""             # bad COBS, counted
    st = p.parse_status_reply(ask(model, p.Op.STATUS, 2).payload)
    assert (st.crc_errors, st.bad_frames) == (1, 1)
    assert ask(model, p.Op.CLEAR, 3).op == 0x86
    st = p.parse_status_reply(ask(model, p.Op.STATUS, 4).payload)
    assert st == p.Status(0, 0, 0, 0, 0, 0)


def test_random_bytes_never_wedge_the_model_board(model):
    r = random.Random(5)
    for n in (1, 10, 1000, 5000, 70000):
        junk = r.randbytes(n)
        model.feed(junk)
        assert model.decoder.pending <= p.COBS_MAX
    model.feed(bytes([r.randrange(1, 256) for _ in range(3000)]))   # no 0x00 at all
    assert model.decoder.pending <= p.COBS_MAX
    pkt = p.FrameDecoder().feed(model.feed(b"\x00" + p.info_request(77, 0)))
    assert pkt and pkt[-1].seq == 77 and pkt[-1].op == 0x81


# -- the driver API ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_board():
    with open_board("model://" + DEMO, timeout=0.05, progress=False) as b:
        yield b


def test_info_and_units(demo_board, demo_cfg):
    info = demo_board.info()
    assert info["hash"] == describe(demo_cfg)["hash"]
    assert [u["name"] for u in info["units"]] == ["mac8x8", "sparse16", "softmax64", "gelu8"]
    info["units"].clear()                         # a copy: the board's own is untouched
    assert demo_board.info()["units"]


def test_gemm_and_sparse_match_the_golden_models(demo_board, demo_cfg, rng):
    pm = mac.params(demo_cfg.units[0])
    for m, k, n in [(1, 1, 1), (8, 8, 8), (37, 50, 29), (20, 300, 70)]:
        a = rng.integers(-128, 128, (m, k))
        b = rng.integers(-128, 128, (k, n))
        assert np.array_equal(demo_board.gemm(a, b), mac.golden(pm, {"a": a, "b": b})["c"])
    assert np.array_equal(demo_board.run("mac8x8", {"a": a, "b": b})["c"],
                          mac.golden(pm, {"a": a, "b": b})["c"])
    ps = sparse.params(demo_cfg.units[1])
    for mode in ps.modes:
        w, x = sparse_cases.random_operands(ps, mode, 30, 100, 7, rng)
        y = demo_board.sparse_matmul(w, x, mode=mode)
        assert np.array_equal(y, sparse.golden(ps, {"w": w, "x": x}, mode=mode)["y"])
    w, x = sparse_cases.random_operands(ps, "2:4", 3, 9, 2, rng)
    assert np.array_equal(demo_board.sparse_matmul(w, x),        # default: first mode
                          sparse.golden(ps, {"w": w, "x": x})["y"])


@pytest.mark.parametrize("dataflow", ["output_stationary", "weight_stationary"])
def test_split_into_several_runs(dataflow, rng):
    cfg = BoardConfig(name="tiny", board="icebreaker", buffer_bytes=256, units=(
        parse_config({"name": "m", "unit": "mac_array", "rows": 2, "cols": 3, "a": "int8",
                      "b": "int4", "acc": "int16", "overflow": "sat", "dataflow": dataflow,
                      "tile_m": 5}, "x"),
        parse_config({"name": "s", "unit": "sparse_chain", "length": 4, "m": 4,
                      "modes": ["2:4", "4:4"], "w": "int8", "x": "int8", "acc": "int32"}, "x")))
    board = Board(ModelTransport("model://tiny", ModelBoard(cfg)), timeout=0.05, progress=False)
    pm = mac.params(cfg.units[0])
    a = rng.integers(-128, 128, (23, 40))
    b = rng.integers(-8, 8, (40, 17))
    # extreme rows and columns whose exact sums (40 * 1024 = 40960) exceed the int16
    # accumulator: a board that ignored `overflow: sat` (or wrapped) would get these wrong
    a[:3], b[:, :2] = -128, -8
    a[3], b[:, 2] = 127, 7
    want = mac.golden(pm, {"a": a, "b": b})["c"]
    exact = a @ b
    assert (want[:3, :2] == pm.acc.max_code).all() and (exact[:3, :2] > pm.acc.max_code).all()
    assert not np.array_equal(want, exact)
    assert np.array_equal(board.gemm(a, b), want)
    assert board.last_run["runs"] > 1
    ps = sparse.params(cfg.units[1])
    w, x = sparse_cases.random_operands(ps, "2:4", 9, 30, 6, rng)
    assert np.array_equal(board.sparse_matmul(w, x), sparse.golden(ps, {"w": w, "x": x})["y"])
    assert board.last_run["runs"] > 1
    with pytest.raises(ArrayError, match=r"K = 5000 is too long .* K <= \d+"):
        board.gemm(np.zeros((2, 5000), np.int64), np.zeros((5000, 2), np.int64))


@pytest.mark.parametrize("call,msg", [
    (lambda b: b.gemm(np.ones((2, 3)), np.ones((3, 2), np.int64)), "dtype float64"),
    (lambda b: b.gemm(np.ones((2, 3), np.int64), np.ones((4, 2), np.int64)), "do not chain"),
    (lambda b: b.gemm(np.full((2, 3), 300), np.ones((3, 2), np.int64)), "out of range"),
    (lambda b: b.gemm(np.array([[np.nan]]), np.ones((1, 1), np.int64)), "dtype float64"),
    (lambda b: b.gemm(np.ones((2,), np.int64), np.ones((2, 2), np.int64)), "not 2-D"),
    (lambda b: b.sparse_matmul(np.ones((2, 4), np.int64), np.ones((4, 2), np.int64),
                               mode="2:4"), "non-zero values"),
    (lambda b: b.sparse_matmul(np.zeros((2, 4), np.int64), np.ones((4, 2), np.int64),
                               mode="3:4"), "not a mode"),
    (lambda b: b.softmax(np.full((2, 4), 300)), "out of range"),
    (lambda b: b.gelu(np.zeros((2, 4))), "dtype float64"),
    (lambda b: b.run("fft", {"x": np.zeros((2, 4), np.int64)}), "has no fft unit"),
    (lambda b: b.run("mac8x8", {"a": np.ones((1, 1), np.int64)}), "missing array 'b'"),
    (lambda b: b.run("mac8x8", {"a": np.ones((1, 1), np.int64),
                                "b": np.ones((1, 1), np.int64)}, mode="2:4"), "has no modes"),
])
def test_bad_arguments_fail_before_anything_is_sent(demo_board, call, msg):
    sent = demo_board.stats["wire_out"]
    with pytest.raises(UserError, match=msg) as err:
        call(demo_board)
    assert "\n" not in str(err.value)
    assert demo_board.stats["wire_out"] == sent


@pytest.mark.parametrize("url,msg", [
    ("http://x", "unknown URL scheme 'http'"),
    ("board", "not a board URL"),
    ("socket://localhost", "socket://HOST:PORT"),
    ("socket://localhost:notaport", "socket://HOST:PORT"),
    ("serial://", "serial://DEVICE"),
    ("serial:///dev/x?speed=3", "bad serial options"),
    ("model://", "model://CONFIG"),
    ("model://no/such.yaml", "no such file"),
    ("socket://127.0.0.1:1", "cannot connect"),
    ("/dev/tensorfab-no-such-tty", "cannot open the serial device"),
])
def test_bad_urls(url, msg):
    with pytest.raises(UserError, match=msg) as err:
        open_transport(url, 0.2)
    assert "\n" not in str(err.value)
    assert str(err.value).startswith(url) or url in str(err.value)


def test_open_board_arguments():
    with pytest.raises(UserError, match="timeout"):
        open_board("model://" + DEMO, timeout=0)
    with pytest.raises(UserError, match="retries"):
        open_board("model://" + DEMO, retries=-1)


def test_model_url_takes_a_unit_config(rng):
    with open_board("model://configs/mac4x4_int4x8_sat.yaml", timeout=0.05, progress=True) as b:
        u = b.info()["units"][0]
        cfg = parse_config(u["config"], "x")
        pm = mac.params(cfg)
        a = rng.integers(pm.a.min_code, pm.a.max_code + 1, (6, 40))
        bb = rng.integers(pm.b.min_code, pm.b.max_code + 1, (40, 5))
        assert np.array_equal(b.gemm(a, bb), mac.golden(pm, {"a": a, "b": bb})["c"])


def test_nak_is_final_and_one_line(demo_board):
    with pytest.raises(BoardError, match="READ refused by the board: OUT_OF_RANGE") as err:
        demo_board._transact(p.Op.READ, b"\x00\x00\x00\x00\x00\xff\xff", lambda pl: pl)
    assert str(err.value).startswith("model://")
