"""`tensorfab serve`: one-line errors, and the served demo driven by the host package
(`host.open_board` over socket://) against the golden models; the pin-level UART face."""

from __future__ import annotations

import signal
import socket
import struct
import subprocess
import sys
import time

import numpy as np
import pytest
from board_wire import parse_status
from cli_helpers import tf
from test_board_link import SMALL
from test_board_served import Client, free_port

from generators.board_info import describe_bytes
from generators.config import parse_config

TENSORFAB = [sys.executable, "-m", "tensorfab"]  # the served demo: a real process to stop


def test_serve_refuses_a_unit_config():
    r = tf("serve", "configs/mac8x8.yaml", "--port", "5555")
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "not a board design" in r.stderr


def test_serve_refuses_bad_ports(tmp_path):
    r = tf("serve", "configs/ulx3s_units.yaml", "--port", "http")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "1..65535" in r.stderr
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        r = tf("serve", "configs/ulx3s_units.yaml", "--port", str(port))
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and f"{port}" in r.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nboard: ulx3s\nunits: []\n")
    r = tf("serve", str(bad), "--port", "5555")
    assert r.returncode == 2 and r.stderr.count("\n") == 1


@pytest.mark.rtl
@pytest.mark.xdist_group("demo_board")  # see test_board_served.py
def test_served_demo_with_open_board(rng):
    from generators.config import load_config
    from generators.units import family
    from host import open_board

    cfg = load_config("configs/ulx3s_units.yaml")
    port = free_port()
    proc = subprocess.Popen([*TENSORFAB, "serve", "configs/ulx3s_units.yaml", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().strip()
        assert url == f"socket://127.0.0.1:{port}", proc.stderr.read() if not url else url
        with open_board(url) as board:
            assert board.info()["hash"] == parse_json(describe_bytes(cfg))["hash"]
            a = rng.integers(-128, 128, (21, 300))
            b = rng.integers(-128, 128, (300, 13))
            mac = family("mac_array")
            mp = mac.params(cfg.units[0])
            np.testing.assert_array_equal(board.gemm(a, b), mac.golden(mp, {"a": a, "b": b})["c"])
            sp = family("sparse_chain")
            spp = sp.params(cfg.units[1])
            w = rng.integers(-128, 128, (10, 64))
            w.reshape(10, 16, 4)[:, :, 1:] = 0  # 1:4
            x = rng.integers(-128, 128, (64, 7))
            want = sp.golden(spp, {"w": w, "x": x}, mode="1:4")["y"]
            np.testing.assert_array_equal(board.sparse_matmul(w, x, mode="1:4"), want)
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err


def parse_json(data: bytes) -> dict:
    import json

    return json.loads(data)


@pytest.mark.rtl
def test_pin_level_uart():
    """The UART face at 3 Mbaud from 25 MHz, pins driven by the harness: INFO, WRITE/READ,
    a RUN, STATUS."""
    import sim.board as sb

    cfg = parse_config(SMALL, "<tiny>")
    port = free_port()
    proc = sb.start(cfg, port, "uart", timeout=600)
    try:
        c = Client(port)
        t0 = time.perf_counter()
        assert c.info() == describe_bytes(cfg)
        c.ok(0x02, struct.pack("<BI", 0, 5) + bytes(range(1, 10)))
        assert c.ok(0x03, struct.pack("<BIH", 0, 5, 3)) == bytes([1, 2, 1, 4, 5, 0, 7, 8, 1])
        body = c.ok(0x04, struct.pack("<BB3I3I", 0, 0, 2, 1, 2, 1, 1, 0))
        assert len(body) == 8
        st = parse_status(c.ok(0x05))
        assert (st["runs"], st["crc_errors"], st["bad_frames"], st["overflows"]) == (1, 0, 0, 0)
        print(f"pin-level exchange in {time.perf_counter() - t0:.2f} s")
        c.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_bitstream_boards():
    from boards.platforms import platform
    from generators.errors import UserError

    assert platform("ulx3s").default_clk_frequency == 25e6
    assert platform("icebreaker").default_clk_frequency == 12e6
    with pytest.raises(UserError, match="no open bitstream flow"):
        platform("pynq_z2")
    r = tf("bitstream", "configs/mac8x8.yaml", "--out", "out/never")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "not a board design" in r.stderr
