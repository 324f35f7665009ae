"""The driver on a damaged link: every result is right or the call fails with one line, nothing
hangs (every wait is bounded by the timeouts below), and nothing grows without bound."""

import random
import time

import numpy as np
import pytest
import sparse_cases

from generators.config import load_config
from generators.mac_array import family as mac
from generators.sparse_chain import family as sparse
from host import protocol as p
from host.board import Board, BoardError
from host.model import ModelBoard
from host.transport import FaultyTransport, ModelTransport, Transport

DEMO = "configs/ulx3s_units.yaml"
T = 0.02  # reply timeout in these tests: the model board answers at once


@pytest.fixture(scope="module")
def cfg():
    return load_config(DEMO)


def _board(cfg, **faults) -> tuple[Board, FaultyTransport]:
    link = FaultyTransport(ModelTransport("model://demo", ModelBoard(cfg)), **faults)
    return Board(link, timeout=T, retries=12, progress=False), link


def _reset_board(cfg, at: int) -> tuple[Board, FaultyTransport, list[int]]:
    """A clean link that resets the reference board just before the ``at``-th write after
    opening; the returned list logs the write count of every reset that really happened."""
    model = ModelBoard(cfg)
    done: list[int] = []
    link = FaultyTransport(ModelTransport("model://demo", model),
                           reset=lambda: (done.append(link.writes), model.reset()))
    board = Board(link, timeout=T, retries=12, progress=False)
    link.reset_at = {link.writes + at}   # counted from the first write after opening
    return board, link, done


def _work(board, cfg, rng):
    """A GEMM of several RUNs and a sparse product; checked against the golden models."""
    pm, ps = mac.params(cfg.units[0]), sparse.params(cfg.units[1])
    a = rng.integers(-128, 128, (20, 300))
    b = rng.integers(-128, 128, (300, 20))
    assert np.array_equal(board.gemm(a, b), mac.golden(pm, {"a": a, "b": b})["c"])
    w, x = sparse_cases.random_operands(ps, "1:4", 5, 64, 3, rng)
    assert np.array_equal(board.sparse_matmul(w, x, mode="1:4"),
                          sparse.golden(ps, {"w": w, "x": x}, mode="1:4")["y"])


@pytest.mark.parametrize("fault", [dict(drop=0.05), dict(flip=0.08), dict(truncate=0.05),
                                   dict(garbage=0.1),
                                   dict(drop=0.02, flip=0.03, truncate=0.02, garbage=0.03)])
def test_damaged_link_gives_right_results(cfg, rng, fault):
    board, link = _board(cfg, seed=len(str(fault)), **fault)
    _work(board, cfg, rng)
    assert link.damaged > 0 and board.stats["retries"] > 0


@pytest.mark.parametrize("at", [3, 9, 14, 20, 26, 33, 41, 57, 61])  # _work makes 62 writes
def test_board_reset_mid_transfer(cfg, rng, at):
    board, link, done = _reset_board(cfg, at)
    _work(board, cfg, rng)
    # the reset really happened, once, at the write asked for (else the test proved nothing)
    assert done == sorted(link.reset_at) and link.resets == 1


def test_reset_is_detected_not_ignored(cfg, rng):
    hits = 0
    for at in range(1, 40, 3):
        board, link, done = _reset_board(cfg, at)
        _work(board, cfg, rng)
        assert done == sorted(link.reset_at), at
        hits += board.stats["resets"]
    assert hits > 0


class _Silent(Transport):
    """Never answers; logs what the driver sends and how long each read may wait."""

    url = "socket://silent:1"

    def __init__(self):
        self.sent: list[bytes] = []
        self.waits: list[float] = []

    def write(self, data):
        self.sent.append(data)

    def read(self, timeout):
        self.waits.append(timeout)
        time.sleep(timeout)
        return b""


class _Hostile(Transport):
    """Answers every request with junk: long runs without 0x00, frames with bad CRC or
    lengths, well-formed replies to other sequence numbers or with impossible lengths."""

    url = "socket://hostile:2"

    def __init__(self, real: ModelBoard):
        self.real = real
        self.rng = random.Random(3)
        self.out = bytearray()
        self.biggest = 0

    def write(self, data):
        for pkt in p.FrameDecoder().feed(data):
            r = self.rng
            good = self.real.feed(p.encode_frame(pkt.op, pkt.seq, pkt.payload))
            if pkt.op == p.Op.INFO:
                self.out += good   # let it open
                continue
            self.out += bytes(r.randrange(1, 256) for _ in range(5000))   # no 0x00
            self.out += b"\x00" + good[:-3] + bytes([good[-3] ^ 1]) + good[-2:]  # bad CRC
            self.out += p.encode_frame(pkt.op | 0x80, pkt.seq ^ 1, b"")          # other seq
            self.out += p.encode_frame(pkt.op | 0x80, pkt.seq, b"\x01" * 1000)   # bad length
            self.out += p.encode_frame(0x7F, pkt.seq, b"\x01")                   # bad NAK
            self.out += r.randbytes(300)

    def read(self, timeout):
        if not self.out:
            time.sleep(timeout)
            return b""
        data, self.out = bytes(self.out[:4096]), self.out[4096:]
        return data


def test_unresponsive_board_fails_in_bounded_time(cfg):
    link = _Silent()
    with pytest.raises(BoardError) as err:
        Board(link, timeout=0.05, retries=3, progress=False)
    assert str(err.value) == "socket://silent:1: no reply after 4 tries (timeout 0.05 s)"
    # bounded by counts, not by a clock: the opening 0x00, then one INFO request sent 4 times
    # (each retry behind a 0x00 that ends any half frame), and no read asked to wait longer
    # than the timeout
    assert link.sent[0] == b"\x00" and len(link.sent) == 5
    frames = [p.FrameDecoder().feed(data) for data in link.sent[1:]]
    assert all(len(f) == 1 and f[0].op == p.Op.INFO for f in frames)
    assert len({f[0].seq for f in frames}) == 1
    assert all(data.startswith(b"\x00") for data in link.sent[2:])
    assert len(link.waits) >= 4 and all(0 < w <= 0.05 for w in link.waits)


def test_hostile_replies_never_accepted(cfg):
    link = _Hostile(ModelBoard(cfg))
    board = Board(link, timeout=0.05, retries=2, progress=False)
    before = dict(board.stats)
    with pytest.raises(BoardError, match="no reply after 3 tries"):
        board.gemm(np.ones((2, 2), np.int64), np.ones((2, 2), np.int64))
    # given up after exactly one request and its 2 retries, whatever the junk
    assert board.stats["requests"] - before["requests"] == 1
    assert board.stats["retries"] - before["retries"] == 2
    assert board.decoder.pending <= p.COBS_MAX
    assert board.stats["discarded"] > 0 and board.decoder.overflows > 0


def test_random_bytes_then_info(cfg):
    model = ModelBoard(cfg)
    link = ModelTransport("model://demo", model)
    r = random.Random(11)
    for _ in range(20):
        link.write(r.randbytes(r.randrange(1, 3000)))
    link.read(0)
    board = Board(link, timeout=T, retries=3, progress=False)   # opens with INFO
    assert board.info()["name"] == "ulx3s_units"
