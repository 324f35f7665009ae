"""Fault injection against the served simulated board (Verilator + TCP harness), through the
same fault-injecting transport as the model:// suite (host.transport.FaultyTransport): dropped
bytes, flipped bits, truncated chunks, garbage between frames, and board resets in the middle
of transfers (the harness resets the board on SIGUSR1, see sim.board.reset). Every result is
compared with the golden model: 0 wrong results accepted, every operation completes (no
hang: every wait is bounded by the timeouts below), and random bytes never wedge the board.

`make test` runs a modest count; `make regress` injects at least 10**4 faults and asserts the
counts."""

from __future__ import annotations

import socket
import time

import numpy as np
import pytest
from test_board_served import free_port

from generators.config import load_config
from generators.units import family
from host import protocol as p
from host.board import Board, BoardError
from host.transport import FaultyTransport, SocketTransport

# every test of the demo board on one xdist worker: it builds the board once while the
# other worker runs other tests, instead of waiting on the build lock (`--dist loadgroup`)
pytestmark = [pytest.mark.rtl, pytest.mark.xdist_group("demo_board")]

DEMO = "configs/ulx3s_units.yaml"
T = 0.03        # reply timeout: the simulated board answers a request in a few ms
RETRIES = 15


@pytest.fixture(scope="module")
def served():
    import sim.board as sb

    cfg = load_config(DEMO)
    port = free_port()
    proc = sb.start(cfg, port, timeout=900)
    yield cfg, port, proc
    proc.terminate()
    proc.wait(timeout=10)
    proc.stdout.close()


def _open(served, seed: int, resets=(), **faults) -> tuple[Board, FaultyTransport]:
    import sim.board as sb

    cfg, port, proc = served
    inner = SocketTransport(f"socket://127.0.0.1:{port}", "127.0.0.1", port, T)
    link = FaultyTransport(inner, seed=seed, reset=lambda: sb.reset(proc), **faults)
    link.reset_at = set(resets)
    try:
        return Board(link, timeout=T, retries=RETRIES, progress=False), link
    except BaseException:
        link.close()
        raise


class Tally:
    """Operations run, results checked, wrong results, operations given up."""

    def __init__(self):
        self.ops = self.wrong = self.gave_up = self.faults = self.resets = 0
        self.retries = self.discarded = self.resets_seen = 0

    def add_link(self, board: Board, link: FaultyTransport):
        self.faults += link.damaged + link.resets
        self.resets += link.resets
        self.retries += board.stats["retries"]
        self.discarded += board.stats["discarded"]
        self.resets_seen += board.stats["resets"]


def _workload(board: Board, cfg, rng, tally: Tally, scale: int = 1) -> None:
    """One small operation on each unit (a GEMM of several RUNs on the MAC array), each
    compared with its family's golden model."""
    fams = {u.unit: (family(u.unit), family(u.unit).params(u)) for u in cfg.units}

    def check(kind, call, arrays, out_name, **opts):
        fam, params = fams[kind]
        tally.ops += 1
        try:
            got = call()
        except BoardError:
            tally.gave_up += 1
            return
        want = fam.golden(params, arrays, **opts)[out_name]
        if got.shape != want.shape or not np.array_equal(got, want):
            tally.wrong += 1

    a = rng.integers(-128, 128, (9 * scale, 40))
    b = rng.integers(-128, 128, (40, 11))
    check("mac_array", lambda: board.gemm(a, b), {"a": a, "b": b}, "c")
    x = rng.integers(-128, 128, (3 * scale, 64))
    check("softmax", lambda: board.softmax(x), {"x": x}, "y")
    g = rng.integers(-128, 128, (50 * scale,))
    check("gelu", lambda: board.gelu(g), {"x": g}, "y")
    w = rng.integers(-128, 128, (5, 32))
    w.reshape(5, 8, 4)[:, :, 2:] = 0          # 2:4 along K
    xs = rng.integers(-128, 128, (32, 3 * scale))
    check("sparse_chain", lambda: board.sparse_matmul(w, xs, mode="2:4"), {"w": w, "x": xs},
          "y", mode="2:4")


MIXES = [dict(drop=0.04), dict(flip=0.06), dict(truncate=0.04), dict(garbage=0.08),
         dict(drop=0.02, flip=0.03, truncate=0.02, garbage=0.03)]


def _round(served, seed: int, mix: dict, resets, tally: Tally, rng, scale: int = 1) -> None:
    cfg = served[0]
    board, link = _open(served, seed, resets, **mix)
    try:
        _workload(board, cfg, rng, tally, scale)
    finally:
        tally.add_link(board, link)
        board.close()


def _healthy(served) -> None:
    """A clean connection still gets the design description and a right GEMM."""
    cfg, port, _ = served
    board = Board(SocketTransport(f"socket://127.0.0.1:{port}", "127.0.0.1", port, 2.0),
                  timeout=2.0, retries=2, progress=False)
    try:
        assert board.info()["name"] == cfg.name
        a = np.arange(12).reshape(3, 4) - 6
        mac = cfg.units[0]
        want = family(mac.unit).golden(family(mac.unit).params(mac), {"a": a, "b": a.T})["c"]
        assert np.array_equal(board.gemm(a, a.T), want)
    finally:
        board.close()


TEST_FAULTS = 150


def test_faults_on_the_served_board(served, rng):
    """Every kind of fault and resets mid-transfer, until TEST_FAULTS were injected: all
    results right, every operation completed."""
    tally = Tally()
    t0 = time.monotonic()
    i = 0
    while tally.faults < TEST_FAULTS:
        mix = MIXES[i % len(MIXES)]
        _round(served, 100 + i, mix, (7 + 5 * (i % 7),) if i % 2 == 0 else (), tally, rng)
        i += 1
        assert i < 100, "too few faults injected"
    print(f"{tally.faults} faults ({tally.resets} resets) in {i} rounds, {tally.ops} "
          f"operations, {tally.retries} retries, {tally.discarded} replies discarded, "
          f"{tally.resets_seen} resets detected, {time.monotonic() - t0:.1f} s")
    assert tally.wrong == 0 and tally.gave_up == 0
    assert tally.faults >= TEST_FAULTS and tally.resets >= 3 and tally.retries > 0
    assert tally.resets_seen > 0
    _healthy(served)


def test_random_bytes_never_wedge_the_board(served, rng):
    """Random bytes (zeros included), half frames, oversized frames, abrupt disconnects:
    a valid INFO succeeds afterwards, and STATUS counted the damage."""
    cfg, port, _ = served
    for i in range(6):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            for _ in range(4):
                n = int(rng.integers(1, 6000))
                data = rng.integers(0, 256, n, dtype=np.uint8)
                if i % 2:
                    data[data == 0] = 1      # no delimiter at all: an oversized frame
                s.sendall(data.tobytes())
            if i == 5:
                s.sendall(p.encode_frame(p.Op.WRITE, 9, b"\x00" * 900)[:300])  # a half frame
            time.sleep(0.05)
            # leave without reading: the harness drops what it had queued for us
    board = Board(SocketTransport(f"socket://127.0.0.1:{port}", "127.0.0.1", port, 2.0),
                  timeout=2.0, retries=2, progress=False)
    try:
        assert board.info()["name"] == cfg.name
        st = board.status()
        assert st.crc_errors + st.bad_frames > 0
    finally:
        board.close()
    _healthy(served)


REGRESS_FAULTS = 10 ** 4


@pytest.mark.regress
@pytest.mark.parametrize("part", [0, 1])
def test_ten_thousand_faults(served, rng, part):
    """Half of >= 10**4 injected faults per part (two parts, for two workers): rounds of the
    workload under every fault mix with resets at random points."""
    tally = Tally()
    t0 = time.monotonic()
    want = REGRESS_FAULTS // 2
    i = 0
    while tally.faults < want:
        mix = MIXES[i % len(MIXES)]
        mix = {k: min(0.5, 3 * v) for k, v in mix.items()}   # denser faults: more per second
        resets = tuple(int(v) for v in rng.integers(3, 120, int(rng.integers(0, 3))))
        _round(served, 1000 * part + i, mix, resets, tally, rng, scale=3)
        i += 1
    print(f"part {part}: {tally.faults} faults ({tally.resets} resets) in {i} rounds, "
          f"{tally.ops} operations, {tally.retries} retries, {tally.discarded} replies "
          f"discarded, {tally.resets_seen} resets detected, {time.monotonic() - t0:.0f} s")
    assert tally.faults >= want
    assert tally.wrong == 0 and tally.gave_up == 0
    _healthy(served)
