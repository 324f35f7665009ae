"""model:// speaks protocol 2 (docs/programs.md): TM_WRITE/TM_READ, PROG_WRITE/PROG_RUN with
the board's checks (a program checked whole: a refused one changes nothing), the duplicate
rule for PROG_RUN, and protocol-1 designs unchanged."""

from pathlib import Path

import numpy as np
import pytest

from generators.config import BoardConfig
from generators.errors import UserError
from generators.tm import Place
from host import open_board
from host import program as P
from host import protocol as p
from host.board import Board, BoardError
from host.model import ModelBoard, board_config
from host.transport import ModelTransport

DESIGN = str(Path(__file__).parent / "tm_design.yaml")


@pytest.fixture
def board():
    with open_board("model://" + DESIGN, timeout=0.05, progress=False) as b:
        yield b


def _mac_program(board, a, b, unit="mac"):
    """A one-op program: c = a @ b on the plain MAC array, a in bank 0 (col), b in bank 1
    (row), c in bank 2 (row)."""
    u = board.unit(unit)
    streams = board.info()["units"][u.index]["streams"]
    m, k = a.shape
    n = b.shape[1]
    lda = -(-(-(-m // 8) * 8) // 32) * 32
    ldb = -(-(-(-n // 8) * 8) // 32) * 32
    ldc = ldb * 4
    board.tm_write(0, 0, P.layout_bytes(a, "col", 8, lda, k))
    board.tm_write(1, 0, P.layout_bytes(b, "row", 8, ldb, k))
    places = {"a": Place(0, 0, "col", lda), "b": Place(1, 0, "row", ldb),
              "c": Place(2, 0, "row", ldc)}
    fam, params = u.family()
    descs = fam.program_streams(params, (m, k, n), places, streams)
    return P.Program((P.Op(u.index, 0, (m, k, n), tuple(descs.values())),)), ldc


def test_tm_write_read_round_trip_in_chunks(board):
    data = bytes(np.random.default_rng(1).integers(0, 256, 3000, dtype=np.uint8))
    board.tm_write(3, 100, data)
    assert board.tm_read(3, 100, 3000) == data
    assert board.tensor_memory == {"banks": 4, "bank_bytes": 65536, "word_bytes": 32}


@pytest.mark.parametrize("m,k,n", [(8, 8, 8), (19, 30, 13)])
def test_a_program_runs_a_gemm(board, m, k, n):
    rng = np.random.default_rng(m)
    a, b = rng.integers(-128, 128, (m, k)), rng.integers(-128, 128, (k, n))
    prog, ldc = _mac_program(board, a, b)
    board.prog_write(0, P.to_bytes(prog))
    total, per_op = board.prog_run(0, 1)
    _, params = board.unit("mac").family()
    assert per_op == (params.expected_cycles(m, k, n),) and total == per_op[0]
    c = P.layout_codes(board.tm_read(2, 0, m * ldc), "row", (m, n), 32, True, ldc)
    assert np.array_equal(c, a @ b)


def test_a_bad_program_is_refused_whole_and_changes_nothing(board):
    rng = np.random.default_rng(2)
    a, b = rng.integers(-128, 128, (8, 8)), rng.integers(-128, 128, (8, 8))
    good, _ = _mac_program(board, a, b)
    op = good.ops[0]
    before = board.tm_read(2, 0, 256)
    d = op.streams[0]
    bad_ops = [
        P.Op(99, 0, op.dims, op.streams),                          # no such unit
        P.Op(op.unit, 0, op.dims, op.streams[:2]),                 # wrong nstreams
        P.Op(op.unit, 0, op.dims, op.streams, kind=7),             # unknown op kind
        P.Op(op.unit, 3, op.dims, op.streams),                     # a mode it has not
        P.Op(op.unit, 0, (8, 8, 16), op.streams),                  # beats do not match dims
        P.Op(op.unit, 0, op.dims, (P.Descriptor(d.bank, d.kind, d.nbytes, 65536 - 8,
                                                d.count, d.stride, d.first, d.last),)
             + op.streams[1:]),                                    # outside the bank
    ]
    for bad in bad_ops:
        # a good op first: it must not run either
        board.prog_write(0, P.to_bytes(P.Program((op, bad))))
        with pytest.raises(BoardError, match="PROG_RUN refused by the board: BAD_PROGRAM"):
            board.prog_run(0, 2)
        assert board.tm_read(2, 0, 256) == before
    # beats that no schedule makes (non-zero padding under a ragged tile): refused at run
    board.tm_write(0, 0, bytes([1]) * 256)
    small = P.Op(op.unit, 0, (5, 8, 8), tuple(
        P.Descriptor(s.bank, s.kind, s.nbytes, s.base, s.count, s.stride, s.first, s.last)
        for s in op.streams))
    board.prog_write(0, P.to_bytes(P.Program((small,))))
    with pytest.raises(BoardError, match="BAD_PROGRAM"):
        board.prog_run(0, 1)
    assert board.tm_read(2, 0, 256) == before
    # and the board still runs a good program
    good, ldc = _mac_program(board, a, b)
    board.prog_write(0, P.to_bytes(good))
    board.prog_run(0, 1)
    c = P.layout_codes(board.tm_read(2, 0, 8 * ldc), "row", (8, 8), 32, True, ldc)
    assert np.array_equal(c, a @ b)
    assert board.status().naks == len(bad_ops) + 1


def _nak(mb, op, payload):
    reply = mb.feed(p.encode_frame(op, 5, payload))
    pkt = p.FrameDecoder().feed(reply)[0]
    try:
        p.reply_payload(pkt, op, 5)
    except p.NakError as nak:
        return nak.code
    return None


def test_request_naks():
    mb = ModelBoard(board_config(DESIGN))
    assert _nak(mb, p.Op.TM_WRITE, p.tm_write_payload(4, 0, b"x")) == p.NakCode.BAD_BUFFER
    assert _nak(mb, p.Op.TM_WRITE, p.tm_write_payload(0, 65535, b"xy")) == \
        p.NakCode.OUT_OF_RANGE
    assert _nak(mb, p.Op.TM_WRITE, b"\x00") == p.NakCode.BAD_LENGTH
    assert _nak(mb, p.Op.TM_READ, p.tm_read_payload(0, 0, 2000)) == p.NakCode.OUT_OF_RANGE
    assert _nak(mb, p.Op.TM_READ, p.tm_read_payload(0, 65000, 1000)) == p.NakCode.OUT_OF_RANGE
    assert _nak(mb, p.Op.PROG_WRITE, p.prog_write_payload(4095, b"ab")) == \
        p.NakCode.OUT_OF_RANGE
    assert _nak(mb, p.Op.PROG_RUN, b"\x00\x00") == p.NakCode.BAD_LENGTH
    assert _nak(mb, p.Op.PROG_RUN, p.prog_run_payload(5000)) == p.NakCode.BAD_PROGRAM
    # program memory of zeros: a program of 0 ops runs in 0 cycles
    assert _nak(mb, p.Op.PROG_RUN, p.prog_run_payload(0)) is None
    # ends inside an op
    assert _nak(mb, p.Op.PROG_WRITE, p.prog_write_payload(0, b"\x01\x00\x01")) is None
    assert _nak(mb, p.Op.PROG_RUN, p.prog_run_payload(0)) == p.NakCode.BAD_PROGRAM


def test_a_retried_prog_run_never_runs_twice():
    mb = ModelBoard(board_config(DESIGN))
    b = Board(ModelTransport("model://t", mb), timeout=0.05, progress=False)
    rng = np.random.default_rng(3)
    a, w = rng.integers(-128, 128, (8, 8)), rng.integers(-128, 128, (8, 8))
    prog, _ = _mac_program(b, a, w)
    b.prog_write(0, P.to_bytes(prog))
    frame = p.prog_run_request(77, 0)
    r1 = mb.feed(frame)
    runs = mb.runs
    mem = [m.copy() for m in mb.tm.mem]
    assert mb.feed(frame) == r1 and mb.runs == runs == 1
    assert all(np.array_equal(x, y) for x, y in zip(mem, mb.tm.mem, strict=True))
    total, per = p.parse_prog_run_reply(p.reply_payload(p.FrameDecoder().feed(r1)[0],
                                                        p.Op.PROG_RUN, 77), 1)
    assert total == per[0] > 0


def test_protocol_1_designs_refuse_the_new_ops():
    cfg = board_config(DESIGN)
    v1 = BoardConfig(name="v1", board="ulx3s", units=cfg.units[1:2])
    mb = ModelBoard(v1)
    for op, payload in [(p.Op.TM_WRITE, p.tm_write_payload(0, 0, b"x")),
                        (p.Op.PROG_RUN, p.prog_run_payload(0))]:
        assert _nak(mb, op, payload) == p.NakCode.BAD_OP
    b = Board(ModelTransport("model://v1", mb), timeout=0.05, progress=False)
    assert b.info()["protocol"] == 1 and b.tensor_memory is None
    with pytest.raises(UserError, match="needs a design with a tensor memory"):
        b.tm_write(0, 0, b"x")


def test_protocol_2_payloads_round_trip():
    assert p.parse_tm_write_request(p.tm_write_payload(3, 70000, b"abc")) == (3, 70000, b"abc")
    assert p.parse_tm_read_request(p.tm_read_payload(1, 5, 900)) == (1, 5, 900)
    assert p.parse_prog_write_request(p.prog_write_payload(12, b"\x01")) == (12, b"\x01")
    assert p.parse_prog_run_request(p.prog_run_payload(40)) == 40
    assert p.parse_prog_run_reply(p.prog_run_reply(30, [10, 20]), 2) == (30, (10, 20))
    with pytest.raises(p.ReplyMismatch, match="PROG_RUN reply of 12 bytes .expected 8"):
        p.parse_prog_run_reply(p.prog_run_reply(30, [10, 20]), 1)
    with pytest.raises(p.ReplyMismatch, match="TM_READ reply of 2 bytes"):
        p.parse_tm_read_reply(b"ab", 3)
    for parse, bad in [(p.parse_tm_write_request, b"\x00\x01"),
                       (p.parse_tm_read_request, b"\x00" * 6),
                       (p.parse_prog_write_request, b"\x00"),
                       (p.parse_prog_run_request, b"\x00" * 5)]:
        with pytest.raises(p.NakError) as err:
            parse(bad)
        assert err.value.code == p.NakCode.BAD_LENGTH
