"""The protocol-2 board's RTL (docs/programs.md): the address generators (boards/agen.py)
against host.program.play/store in Amaranth's simulator, and the board core's tensor memory,
program memory and PROG_RUN driven through its byte streams."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from amaranth.hdl import Value, signed, unsigned
from amaranth.lib import data
from amaranth.sim import Simulator

from boards.agen import Player, Storer
from generators.emit import _fields
from host import program as P

WB = 8          # word bytes of the generator tests
BANK = 1024     # bank bytes of the generator tests

LAYOUTS = {
    # int8 lanes with a flag (mac_array's a stream)
    "int8x2_last": data.StructLayout({"data": data.ArrayLayout(signed(8), 2), "last": 1}),
    # int4 lanes (nibbles), two flags and a mode field
    "int4x3_flags_mode": data.StructLayout({"data": data.ArrayLayout(signed(4), 3),
                                            "first": 1, "last": 1, "mode": 2}),
    # 12-bit lanes stored in 16 bits, four of them: 8 bytes (one word)
    "u12x4": data.StructLayout({"data": data.ArrayLayout(unsigned(12), 4)}),
    # int32 lanes, 3 of them: 12 bytes, two words per beat
    "int32x3": data.StructLayout({"data": data.ArrayLayout(signed(32), 3)}),
    # a plain 6-bit shape
    "plain6": unsigned(6),
    # a raw-only stream (a 3-bit field): 3 bytes
    "raw_only": data.StructLayout({"data": data.ArrayLayout(signed(8), 2), "tag": 3}),
}


#: (layout, kind): every layout raw, and data where the layout allows it
CASES = [(n, k) for n in sorted(LAYOUTS) for k in (P.DATA, P.RAW)
         if not (k == P.DATA and n == "raw_only")]


def _random_descriptor(rng, fields, kind):
    nbytes = P.stream_nbytes(fields, kind)
    al = P.alignment(nbytes, WB)
    for _ in range(1000):
        count = tuple(int(c) for c in rng.integers(1, 4, P.LOOPS))
        stride = tuple(int(s) * al for s in rng.integers(-6, 7, P.LOOPS))
        base = int(rng.integers(0, BANK // al)) * al
        nflags = sum(1 for n, s in fields.items() if n not in ("data", "mode") and
                     s["width"] == 1)
        first = tuple(int(x) for x in rng.integers(0, 16, nflags)) + (0,) * (4 - nflags)
        last = tuple(int(x) for x in rng.integers(0, 16, nflags)) + (0,) * (4 - nflags)
        d = P.Descriptor(0, kind, nbytes, base, count, stride, first, last)
        try:
            P.check_descriptor(d, fields, BANK, WB, 1)
        except P.ProgramError:
            continue
        return d
    raise AssertionError("no descriptor found")


def _words(bank: np.ndarray) -> list[int]:
    return [int.from_bytes(bank[i:i + WB].tobytes(), "little") for i in range(0, BANK, WB)]


def _run_player(layout, d, mem, mode, rng, stall):
    dut = Player(layout, WB, (BANK // WB - 1).bit_length())
    words = _words(mem)
    got = []
    n = d.beats
    out = {"cycles": 0}

    async def tb(ctx):
        ctx.set(dut.desc, int.from_bytes(d.pack(), "little"))
        ctx.set(dut.mode, mode)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        ctx.set(dut.run, 1)
        pending = None
        for cyc in range(40 * n + 50):
            ctx.set(dut.rdata, words[pending] if pending is not None else 0)
            pending = None
            if ctx.get(dut.req):
                g = not stall or rng.random() < 0.6
                ctx.set(dut.grant, g)
                if g:
                    pending = ctx.get(dut.addr)
            else:
                ctx.set(dut.grant, 0)
            ready = not stall or rng.random() < 0.7
            ctx.set(dut.port.ready, ready)
            if ready and ctx.get(dut.port.valid):
                got.append(ctx.get(Value.cast(dut.port.payload)))
            if ctx.get(dut.done):
                out["cycles"] = cyc
                break
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    return got, out["cycles"]


def _expected_payloads(layout, d, mem, mode):
    fields = _fields(layout)
    beats = P.play(mem, d, fields, mode)
    from host.tensor import pack_beats
    raw = pack_beats(fields, beats)
    return [int.from_bytes(r.tobytes(), "little") for r in raw]


@pytest.mark.parametrize("name,kind", CASES)
def test_player_plays_the_reference(name, kind):
    layout = LAYOUTS[name]
    fields = _fields(layout)
    rng = np.random.default_rng(zlib.crc32(f"{name}{kind}".encode()))
    for trial in range(3):
        mem = rng.integers(0, 256, BANK).astype(np.uint8)
        d = _random_descriptor(rng, fields, kind)
        mode = int(rng.integers(0, 4))
        got, _ = _run_player(layout, d, mem, mode, rng, stall=trial > 0)
        want = _expected_payloads(layout, d, mem, mode)
        assert got == want, (name, kind, d)


def test_player_one_beat_per_cycle():
    layout = LAYOUTS["int8x2_last"]
    d = P.Descriptor(0, P.DATA, 2, 6, (1, 1, 4, 8), (0, 0, 16, 2), last=(0b1000,))
    mem = np.arange(BANK, dtype=np.uint64).astype(np.uint8)
    rng = np.random.default_rng(0)
    got, cycles = _run_player(layout, d, mem, 0, rng, stall=False)
    assert got == _expected_payloads(layout, d, mem, 0)
    assert cycles <= d.beats + 3


def _run_storer(layout, d, beats_payload, mem, rng, stall):
    dut = Storer(layout, WB, (BANK // WB - 1).bit_length())
    state = {"taken": 0, "cycles": 0}

    async def tb(ctx):
        ctx.set(dut.desc, int.from_bytes(d.pack(), "little"))
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        ctx.set(dut.run, 1)
        for cyc in range(40 * len(beats_payload) + 50):
            g = ctx.get(dut.req) and (not stall or rng.random() < 0.6)
            ctx.set(dut.grant, g)
            if g:
                a, wd, be = ctx.get(dut.addr), ctx.get(dut.wdata), ctx.get(dut.be)
                for k in range(WB):
                    if be >> k & 1:
                        mem[a * WB + k] = wd >> (8 * k) & 0xFF
            t = state["taken"]
            offer = t < len(beats_payload) and (not stall or rng.random() < 0.7)
            ctx.set(dut.port.valid, offer)
            if offer:
                ctx.set(Value.cast(dut.port.payload), beats_payload[t])
                if ctx.get(dut.port.ready):
                    state["taken"] += 1
            if ctx.get(dut.done):
                state["cycles"] = cyc
                break
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    return state


@pytest.mark.parametrize("name,kind", CASES)
def test_storer_stores_the_reference(name, kind):
    from host.tensor import unpack_beats

    layout = LAYOUTS[name]
    fields = _fields(layout)
    rng = np.random.default_rng(zlib.crc32(f"store{name}{kind}".encode()))
    for trial in range(3):
        d = _random_descriptor(rng, fields, kind)
        total = max(s["offset"] + s["width"] for s in fields.values())
        nb = (total + 7) // 8
        # random payloads (two more than the descriptor takes: the storer must refuse them)
        payloads = [int(x) for x in rng.integers(0, 1 << min(total, 62), d.beats + 2)]
        if total > 62:
            payloads = [p | int(rng.integers(0, 1 << (total - 62))) << 62 for p in payloads]
        init = rng.integers(0, 256, BANK).astype(np.uint8)
        mem = init.copy()
        st = _run_storer(layout, d, payloads, mem, rng, stall=trial > 0)
        assert st["taken"] == d.beats
        want = init.copy()
        raw = np.array([list(p.to_bytes(nb, "little")) for p in payloads[:d.beats]],
                       dtype=np.uint8)
        beats = unpack_beats(fields, raw.reshape(-1), n=d.beats)
        P.store(want, d, fields, beats)
        assert mem.tobytes() == want.tobytes(), (name, kind, d)


# -- the board core: tensor memory, program memory and programs through the byte streams ------

import struct  # noqa: E402

from host.protocol import NAK_OP, NakCode, Op, decode_packet, encode_frame  # noqa: E402

TM_CFG = {"name": "tmt", "board": "ulx3s", "buffer_bytes": 256,
          "tensor_memory": {"banks": 4, "bytes": 4096, "word_bytes": 8, "program_bytes": 512},
          "units": [{"name": "mac", "unit": "mac_array", "rows": 2, "cols": 2, "a": "int8",
                     "b": "int8", "acc": "int32"},
                    {"name": "g", "unit": "gelu", "in": "fixed<8,3>", "out": "fixed<8,3>"}]}


def _tm_cfg():
    from generators.config import parse_config
    return parse_config(TM_CFG, "tmt")


def _serve(requests, max_cycles=400_000):
    """Feed the request frames ``[(op, payload)]`` one at a time to a fresh :class:`BoardCore`
    of ``TM_CFG`` and return the decoded reply packets and the core's cycles per request."""
    from boards.top import BoardCore

    core = BoardCore(_tm_cfg())
    replies, cycles = [], []

    async def tb(ctx):
        ctx.set(core.tx.ready, 1)
        budget = max_cycles
        for seq, req in enumerate(requests):
            op, payload = req[:2]
            frame = encode_frame(op, req[2] if len(req) > 2 else seq, payload)
            t0, i = budget, 0
            while i < len(frame):
                ctx.set(core.rx.valid, 1)
                ctx.set(core.rx.payload, frame[i])
                if ctx.get(core.rx.ready):
                    i += 1
                await ctx.tick()
                budget -= 1
            ctx.set(core.rx.valid, 0)
            out = bytearray()
            while budget > 0:
                b = ctx.get(core.tx.payload) if ctx.get(core.tx.valid) else None
                await ctx.tick()
                budget -= 1
                if b == 0:
                    break
                if b is not None:
                    out.append(b)
            assert budget > 0, "no reply"
            replies.append(decode_packet(bytes(out)))
            cycles.append(t0 - budget)

    sim = Simulator(core)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    return replies, cycles


def _serve_verilator(requests):
    """As :func:`_serve`, on the simulated board (Verilator, the TCP harness of sim/board;
    built once per design and cached)."""
    import socket
    import subprocess

    from host.protocol import FrameDecoder
    from sim import board

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = board.start(_tm_cfg(), port, stderr=subprocess.DEVNULL)
    replies = []
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=120)
        dec = FrameDecoder()
        for seq, req in enumerate(requests):
            op, payload = req[:2]
            sock.sendall(encode_frame(op, req[2] if len(req) > 2 else seq, payload))
            got = []
            while not got:
                chunk = sock.recv(65536)
                assert chunk, "board closed the connection"
                got = dec.feed(chunk)
            replies.append(got[0])
        sock.close()
    finally:
        proc.kill()
        proc.wait()
    return replies, None


@pytest.fixture(params=[pytest.param("amaranth", marks=pytest.mark.regress),
                        pytest.param("verilator", marks=pytest.mark.rtl)])
def serve(request):
    """The whole board top through Verilator, or (``make regress``: about a minute per test
    on a loaded machine) the board core in Amaranth's simulator."""
    if request.param == "amaranth":
        return _serve
    from sim import board, toolenv
    toolenv.ensure()
    if not toolenv.have("verilator"):
        pytest.skip("Verilator is not installed")
    del board
    return _serve_verilator


def _ack(p, op):
    assert p.op == op | 0x80, (p.op, p.payload)
    return p.payload


def test_core_tm_write_read_any_alignment():
    rng = np.random.default_rng(5)
    data = rng.integers(0, 256, 21).astype(np.uint8).tobytes()
    more = bytes([0xAA, 0x55, 0x00])
    x = np.array([-128, -7, 0, 9, 127])
    gelu_in = b"".join(struct.pack("<bB", int(v), int(i == 4)) for i, v in enumerate(x))
    reqs = [(Op.TM_WRITE, struct.pack("<BI", 2, 13) + data),
            (Op.TM_WRITE, struct.pack("<BI", 2, 20) + more),
            (Op.TM_READ, struct.pack("<BIH", 2, 11, 26)),
            (Op.TM_READ, struct.pack("<BIH", 1, 11, 4)),
            (Op.TM_READ, struct.pack("<BIH", 2, 1020, 5)),   # past the bank
            (Op.TM_READ, struct.pack("<BIH", 4, 0, 1)),      # no such bank
            (Op.TM_WRITE, struct.pack("<BI", 0, 1023) + b"ab"),
            (Op.PROG_WRITE, struct.pack("<I", 510) + b"abc"),
            (Op.PROG_WRITE, struct.pack("<I", 0) + b"abc"),
            # protocol 1's buffers and RUN are still there: a GELU RUN of 5 beats
            (Op.WRITE, struct.pack("<BI", 3, 0) + gelu_in),
            (Op.RUN, struct.pack("<BB3I2I", 1, 0, 5, 0, 0, 5, 5)),
            (Op.READ, struct.pack("<BIH", 4, 0, 5))]
    rep, _ = _serve(reqs)
    ref = bytearray(1024)
    ref[13:13 + 21] = data
    ref[20:23] = more
    assert _ack(rep[0], Op.TM_WRITE) == b"" and _ack(rep[1], Op.TM_WRITE) == b""
    assert _ack(rep[2], Op.TM_READ) == bytes(ref[11:37])
    assert _ack(rep[3], Op.TM_READ) == bytes(4)
    for p, code in ((rep[4], NakCode.OUT_OF_RANGE), (rep[5], NakCode.BAD_BUFFER),
                    (rep[6], NakCode.OUT_OF_RANGE), (rep[7], NakCode.OUT_OF_RANGE)):
        assert p.op == NAK_OP and p.payload[1] == code, (p.op, p.payload)
    assert _ack(rep[8], Op.PROG_WRITE) == b""
    from generators.units import family
    gelu = family("gelu")
    want = gelu.golden(gelu.params(_tm_cfg().units[1]), {"x": x})["y"]
    assert _ack(rep[9], Op.WRITE) == b""
    cycles, stored = struct.unpack("<2I", _ack(rep[10], Op.RUN))
    assert stored == 5
    got = np.frombuffer(_ack(rep[11], Op.READ), np.int8)[0::2]
    assert np.array_equal(got, want)


def test_core_tm_scatter_equals_the_reference():
    """TM_SCATTER (strided pieces, one piece replicated, a one-byte fill, the refusals) on the
    board core, reply for reply and byte for byte as model:// (host/model.py) answers."""
    from host.model import ModelBoard
    from host.protocol import FrameDecoder, tm_scatter_payload

    rng = np.random.default_rng(17)
    pieces = rng.integers(0, 256, 5 * 3).astype(np.uint8).tobytes()
    reqs = [(Op.TM_SCATTER, tm_scatter_payload(1, 3, 3, 8, 5, pieces)),      # strided
            (Op.TM_SCATTER, tm_scatter_payload(2, 40, 9, 16, 6, pieces[:9])),  # replicated
            (Op.TM_SCATTER, tm_scatter_payload(2, 100, 50, 50, 1, b"\x5a")),  # a fill
            (Op.TM_SCATTER, tm_scatter_payload(0, 1, 2, 3, 7, pieces[:5])),   # data cycles
            (Op.TM_SCATTER, tm_scatter_payload(0, 1001, 4, 4, 6, b"\x01")),   # past the bank
            (Op.TM_SCATTER, tm_scatter_payload(4, 0, 1, 1, 1, b"\x01")),      # no such bank
            (Op.TM_SCATTER, tm_scatter_payload(0, 0, 4, 3, 2, b"\x01")),      # pitch < chunk
            (Op.TM_SCATTER, tm_scatter_payload(0, 0, 0, 3, 2, b"\x01")),      # chunk 0
            (Op.TM_SCATTER, tm_scatter_payload(0, 0, 1, 1, 0, b"\x01")),      # count 0
            (Op.TM_SCATTER, tm_scatter_payload(0, 0, 1, 1, 1, b"")),          # no data
            (Op.TM_SCATTER, struct.pack("<BIH", 0, 0, 1)),                     # too short
            (Op.TM_SCATTER, tm_scatter_payload(0, 1020, 2, 2, 2, b"ab"))]      # to the end
    reqs += [(Op.TM_READ, struct.pack("<BIH", b, a, 128)) for b in range(4) for a in (0, 896)]
    rep, _ = _serve(reqs)
    ref = ModelBoard(_tm_cfg())
    dec = FrameDecoder()
    for seq, (op, payload) in enumerate(reqs):
        want = dec.feed(ref.feed(encode_frame(op, seq, payload)))
        assert len(want) == 1 and rep[seq] == want[0], (seq, rep[seq], want)
    acks = [isinstance(r.op, int) and r.op == Op.TM_SCATTER | 0x80 for r in rep[:12]]
    assert acks == [True] * 4 + [False] * 7 + [True]
    bank1 = _ack(rep[14], Op.TM_READ)
    for i in range(5):
        assert bank1[3 + 8 * i:6 + 8 * i] == pieces[3 * i:3 * i + 3]
    assert bank1[6:11] == bytes(5)
    assert _ack(rep[16], Op.TM_READ)[40:136 - 88] == pieces[:8]


def _gemm_gelu_program(m, k, n, x_len):
    """a (bank 0) @ b (bank 1) -> c (bank 2) on the 2x2 mac_array, then gelu of x (bank 3 at
    0) -> y (bank 3 at 512); layouts as tests/test_program.py's."""
    r = c = 2
    mb, nb = -(-m // r), -(-n // c)
    da = P.Descriptor(0, P.DATA, r, 0, (1, mb, nb, k), (0, k * r, 0, r), last=(0b1000,))
    db = P.Descriptor(1, P.DATA, c, 8, (1, mb, nb, k), (0, 0, k * c, c))
    dc = P.Descriptor(2, P.DATA, 4 * c, 16, (1, mb, nb, r),
                      (0, r * nb * c * 4, c * 4, nb * c * 4))
    dx = P.Descriptor(3, P.DATA, 1, 0, (x_len,), (1,), last=(0b1000,))
    dy = P.Descriptor(3, P.DATA, 1, 512, (x_len,), (1,))
    # gelu again, x read backwards (a negative stride) into y2 at 600, written backwards
    dx2 = P.Descriptor(3, P.DATA, 1, x_len - 1, (x_len,), (-1,), last=(0b1000,))
    dy2 = P.Descriptor(3, P.DATA, 1, 600 + x_len - 1, (x_len,), (-1,))
    # the GEMM again with a and b in one bank (b's copy at 512 of bank 0): the two players
    # share its read port; c2 at 512 of bank 2
    db2 = P.Descriptor(**{**db.__dict__, "bank": 0, "base": 512})
    dc2 = P.Descriptor(**{**dc.__dict__, "base": 512})
    return P.Program((P.Op(0, 0, (m, k, n), (da, db, dc)), P.Op(1, 0, (x_len, 0, 0), (dx, dy)),
                      P.Op(1, 0, (x_len, 0, 0), (dx2, dy2)),
                      P.Op(0, 0, (m, k, n), (da, db2, dc2))))


def _gemm_operands(rng, m, k, n):
    r = c = 2
    mb, nb = -(-m // r), -(-n // c)
    a = rng.integers(-128, 128, (m, k))
    b = rng.integers(-128, 128, (k, n))
    at = np.zeros((mb * r, k), np.int64)
    at[:m] = a
    bt = np.zeros((k, nb * c), np.int64)
    bt[:, :n] = b
    a_bytes = at.reshape(mb, r, k).transpose(0, 2, 1).astype(np.int8).tobytes()
    b_bytes = bt.reshape(k, nb, c).transpose(1, 0, 2).astype(np.int8).tobytes()
    return a, b, a_bytes, b_bytes, mb * r * nb * c * 4


def test_core_program_runs_gemm_and_gelu(serve):
    from generators.units import family

    m, k, n, x_len = 3, 5, 3, 7
    rng = np.random.default_rng(11)
    a, b, a_bytes, b_bytes, c_bytes = _gemm_operands(rng, m, k, n)
    x = rng.integers(-128, 128, x_len)
    prog = P.to_bytes(_gemm_gelu_program(m, k, n, x_len))
    run = (Op.PROG_RUN, struct.pack("<I", 40))
    reqs = [(Op.TM_WRITE, struct.pack("<BI", 0, 0) + a_bytes),
            (Op.TM_WRITE, struct.pack("<BI", 1, 8) + b_bytes),
            (Op.TM_WRITE, struct.pack("<BI", 3, 0) + x.astype(np.int8).tobytes()),
            (Op.TM_WRITE, struct.pack("<BI", 0, 512) + b_bytes),
            (Op.PROG_WRITE, struct.pack("<I", 40) + prog),
            run,
            # the same PROG_RUN again with the same seq (a retry): answered from the cache
            (*run, 5),
            (Op.TM_READ, struct.pack("<BIH", 2, 16, c_bytes)),
            (Op.TM_READ, struct.pack("<BIH", 3, 512, x_len)),
            (Op.TM_READ, struct.pack("<BIH", 3, 600, x_len)),
            (Op.STATUS, b""),
            (Op.TM_READ, struct.pack("<BIH", 2, 512, c_bytes))]
    rep, _ = serve(reqs)
    assert [_ack(p, op) for p, op in zip(rep[:5], (Op.TM_WRITE,) * 4 + (Op.PROG_WRITE,),
                                         strict=True)] == [b""] * 5
    rep = rep[1:]   # (one more TM_WRITE than the indices below count)
    body = _ack(rep[4], Op.PROG_RUN)
    total, *per_op = struct.unpack(f"<{len(body) // 4}I", body)
    assert len(per_op) == 4 and total == sum(per_op) and all(c > 0 for c in per_op)
    # the GEMM streams 2*2 tiles of k beats: a few cycles more than the beats, not many more
    assert per_op[0] < 4 * k + 40, per_op
    mac = family("mac_array")
    cfg = _tm_cfg()
    want_c = mac.golden(mac.params(cfg.units[0]), {"a": a, "b": b})["c"]
    got_c = np.frombuffer(_ack(rep[6], Op.TM_READ), np.int32).reshape(4, 4)[:m, :n]
    assert np.array_equal(got_c, want_c)
    gelu = family("gelu")
    want_y = gelu.golden(gelu.params(cfg.units[1]), {"x": x})["y"]
    got_y = np.frombuffer(_ack(rep[7], Op.TM_READ), np.int8)
    assert np.array_equal(got_y, want_y)
    assert np.array_equal(np.frombuffer(_ack(rep[8], Op.TM_READ), np.int8), want_y)
    assert rep[5].payload == rep[4].payload and rep[5].op == rep[4].op
    runs = struct.unpack("<I", _ack(rep[9], Op.STATUS)[9:13])[0]
    assert runs == 1   # the retried PROG_RUN did not run again
    assert _ack(rep[10], Op.TM_READ) == _ack(rep[6], Op.TM_READ)
    # sharing a bank's read port costs cycles, and nothing else
    assert per_op[3] > per_op[0], per_op


def _bad_programs():
    """``(what, program bytes)``: each has something the board must refuse (NAK BAD_PROGRAM)
    before its first op runs; host.program's checks agree where they cover it."""
    from generators.board_info import describe

    info = describe(_tm_cfg())
    fields = [{k: v["fields"] for k, v in u["streams"].items()} for u in info["units"]]
    good = _gemm_gelu_program(3, 5, 3, 7)
    gemm, gelu = good.ops[:2]

    def with_desc(j, **kw):
        s = list(gemm.streams)
        s[j] = P.Descriptor(**{**s[j].__dict__, **kw})
        # the reference's check refuses it too
        with pytest.raises(P.ProgramError):
            P.check_descriptor(s[j], fields[0][names[j]], 1024, 8, 4)
        return P.Op(0, 0, gemm.dims, tuple(s))

    names = list(fields[0])
    cases = {
        "bad unit": [gelu, P.Op(2, 0, gemm.dims, gemm.streams)],
        "bad op kind": [P.Op(0, 0, gemm.dims, gemm.streams, kind=2)],
        "wrong nstreams": [P.Op(0, 0, gemm.dims, gemm.streams[:2])],
        "bad mode": [P.Op(1, 1, gelu.dims, gelu.streams)],
        "address past the bank": [with_desc(2, base=1024 - 40)],
        "address below the bank": [with_desc(0, stride=(0, -10, 0, 2), base=0)],
        "misaligned stride": [with_desc(1, stride=(0, 0, 10, 3))],
        "misaligned base": [with_desc(2, base=20)],
        "wrong nbytes": [with_desc(0, nbytes=3)],
        "raw nbytes": [with_desc(0, kind=P.RAW, nbytes=2)],
        "bad kind": [with_desc(0, kind=2)],
        "bad bank": [with_desc(1, bank=4)],
        "zero count": [with_desc(0, count=(0, 2, 2, 5))],
        "bad flag mask": [with_desc(0, last=(0x18,))],
        # the second op is bad: the first must not run either
        "second op bad": [gemm, with_desc(2, base=1024)],
    }
    out = [(what, P.to_bytes(P.Program(tuple(ops)))) for what, ops in cases.items()]
    # more ops than a reply holds
    out.append(("too many ops", struct.pack("<H", 300) + P.to_bytes(P.Program((gelu,)))[2:]))
    return out


def test_core_refuses_bad_programs_before_running(serve):
    from generators.board_info import describe_bytes

    rng = np.random.default_rng(3)
    _, _, a_bytes, b_bytes, c_bytes = _gemm_operands(rng, 3, 5, 3)
    reqs = [(Op.TM_WRITE, struct.pack("<BI", 0, 0) + a_bytes),
            (Op.TM_WRITE, struct.pack("<BI", 1, 8) + b_bytes)]
    bad = _bad_programs()
    for _, prog in bad:
        reqs += [(Op.PROG_WRITE, struct.pack("<I", 0) + prog),
                 (Op.PROG_RUN, struct.pack("<I", 0))]
    # a program running past the end of the program memory
    reqs += [(Op.PROG_WRITE, struct.pack("<I", 500) + struct.pack("<H", 1) + bytes(10)),
             (Op.PROG_RUN, struct.pack("<I", 500)),
             (Op.PROG_RUN, b"\x00")]                         # bad length
    total = len(describe_bytes(_tm_cfg()))
    reqs += [(Op.TM_READ, struct.pack("<BIH", 2, 0, 64)),
             (Op.INFO, struct.pack("<H", total - 6)),
             (Op.STATUS, b"")]
    rep, _ = serve(reqs)
    for i, (what, _) in enumerate(bad):
        assert _ack(rep[2 + 2 * i], Op.PROG_WRITE) == b""
        p = rep[3 + 2 * i]
        assert p.op == NAK_OP and p.payload == bytes([Op.PROG_RUN, NakCode.BAD_PROGRAM]), what
    k = 2 + 2 * len(bad)
    assert rep[k + 1].op == NAK_OP and rep[k + 1].payload[1] == NakCode.BAD_PROGRAM
    assert rep[k + 2].op == NAK_OP and rep[k + 2].payload[1] == NakCode.BAD_LENGTH
    assert _ack(rep[k + 3], Op.TM_READ) == bytes(64)   # no op ran: c's bank untouched
    info = _ack(rep[k + 4], Op.INFO)
    assert info[:2] == total.to_bytes(2, "little") and info[2:] == describe_bytes(_tm_cfg())[-6:]
    assert struct.unpack("<I", _ack(rep[k + 5], Op.STATUS)[9:13])[0] == 0


@pytest.mark.rtl
def test_board_program_watchdog_ends_a_stuck_op():
    """An op whose storer waits for more beats than the unit makes ends after the watchdog's
    65,536 idle cycles; the next op runs and the board still answers (Verilator only: the
    Python simulator would take minutes for the idle cycles)."""
    from generators.units import family
    from sim import toolenv

    toolenv.ensure()
    if not toolenv.have("verilator"):
        pytest.skip("Verilator is not installed")
    x = np.arange(-3, 5)
    dx = P.Descriptor(3, P.DATA, 1, 0, (8,), (1,), last=(0b1000,))
    stuck = P.Op(1, 0, (8, 0, 0), (dx, P.Descriptor(3, P.DATA, 1, 512, (11,), (1,))))
    fine = P.Op(1, 0, (8, 0, 0), (dx, P.Descriptor(3, P.DATA, 1, 600, (8,), (1,))))
    prog = P.to_bytes(P.Program((stuck, fine)))
    rep, _ = _serve_verilator([
        (Op.TM_WRITE, struct.pack("<BI", 3, 0) + x.astype(np.int8).tobytes()),
        (Op.PROG_WRITE, struct.pack("<I", 0) + prog),
        (Op.PROG_RUN, struct.pack("<I", 0)),
        (Op.TM_READ, struct.pack("<BIH", 3, 512, 11)),
        (Op.TM_READ, struct.pack("<BIH", 3, 600, 8))])
    total, c0, c1 = struct.unpack("<3I", _ack(rep[2], Op.PROG_RUN))
    assert c0 >= 65536 and c1 < 100 and total == c0 + c1
    gelu = family("gelu")
    want = gelu.golden(gelu.params(_tm_cfg().units[1]), {"x": x})["y"].astype(np.int8).tobytes()
    assert _ack(rep[3], Op.TM_READ) == want + bytes(3)
    assert _ack(rep[4], Op.TM_READ) == want


@pytest.mark.rtl
def test_board_checks_agree_with_the_reference():
    """Random output descriptors of a GELU op: the board NAKs BAD_PROGRAM exactly when
    host.program.check_descriptor refuses, and a program it accepts stores what
    host.program.store says (Verilator)."""
    from generators.board_info import describe
    from generators.units import family
    from sim import toolenv

    toolenv.ensure()
    if not toolenv.have("verilator"):
        pytest.skip("Verilator is not installed")
    info = describe(_tm_cfg())
    fields = info["units"][1]["streams"]["o_stream"]["fields"]
    rng = np.random.default_rng(21)
    x = rng.integers(-128, 128, 8)
    dx = P.Descriptor(3, P.DATA, 1, 0, (8,), (1,), last=(0b1000,))
    gelu = family("gelu")
    y = gelu.golden(gelu.params(_tm_cfg().units[1]), {"x": x})["y"]
    reqs = [(Op.TM_WRITE, struct.pack("<BI", 3, 0) + x.astype(np.int8).tobytes())]
    cases = []
    for _ in range(40):
        kind = int(rng.integers(0, 2)) if rng.random() < 0.9 else 2
        nbytes = (2 if kind == P.RAW else 1) if rng.random() < 0.85 else int(rng.integers(0, 4))
        count = [1, 1, 1, 1]
        count[int(rng.integers(0, 4))] = 8   # 8 beats: what the unit makes
        if rng.random() < 0.1:
            count[int(rng.integers(0, 4))] = 0
        stride = [int(rng.integers(-300, 300)) if rng.random() < 0.1 else
                  int(rng.integers(-40, 40)) * 2 for _ in range(4)]
        base = int(rng.integers(0, 1100)) if rng.random() < 0.2 else int(rng.integers(0, 500)) * 2
        bank = int(rng.integers(0, 5)) if rng.random() < 0.2 else 2
        masks = [int(rng.integers(0, 16)) if rng.random() < 0.95 else 16 for _ in range(2)]
        d = P.Descriptor(bank, kind, nbytes, base, tuple(count), tuple(stride),
                         first=(masks[0],), last=(masks[1],))
        try:
            P.check_descriptor(d, fields, 1024, 8, 4)
            ok = True
        except P.ProgramError:
            ok = False
        cases.append((d, ok))
        prog = P.to_bytes(P.Program((P.Op(1, 0, (8, 0, 0), (dx, d)),)))
        reqs += [(Op.TM_WRITE, struct.pack("<BI", 2, 0) + bytes(1000)),
                 (Op.TM_WRITE, struct.pack("<BI", 2, 1000) + bytes(24)),
                 (Op.PROG_WRITE, struct.pack("<I", 0) + prog),
                 (Op.PROG_RUN, struct.pack("<I", 0)),
                 (Op.TM_READ, struct.pack("<BIH", 2, 0, 1000)),
                 (Op.TM_READ, struct.pack("<BIH", 2, 1000, 24))]
    assert 5 < sum(ok for _, ok in cases) < 35   # both verdicts are exercised
    rep, _ = _serve_verilator(reqs)
    for t, (d, ok) in enumerate(cases):
        p = rep[1 + 6 * t + 3]
        if not ok:
            assert p.op == NAK_OP and p.payload[1] == NakCode.BAD_PROGRAM, d
            continue
        _ack(p, Op.PROG_RUN)
        want = np.zeros(1024, np.uint8)
        P.store(want, d, fields, gelu.disassemble(gelu.params(_tm_cfg().units[1]), x.shape,
                                                  {"y": y})["o_stream"])
        got = _ack(rep[1 + 6 * t + 4], Op.TM_READ) + _ack(rep[1 + 6 * t + 5], Op.TM_READ)
        assert got == want.tobytes(), d
