"""`tensorfab board info|run|bench`, and the socket transport against a TCP server that serves
the reference board (as `tensorfab serve` serves the simulated one)."""

import socket
import threading

import numpy as np
import pytest

from generators.config import load_config
from generators.mac_array import family as mac
from host import open_board
from host.model import ModelBoard
from tensorfab.cli import main

DEMO = "configs/ulx3s_units.yaml"


class _Server:
    """A TCP server in a thread: answers with a ModelBoard, or stays silent."""

    def __init__(self, board: ModelBoard | None):
        self.board = board
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.sock.settimeout(10)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        conn.settimeout(10)
        with conn:
            while True:
                try:
                    data = conn.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                if self.board is not None:
                    conn.sendall(self.board.feed(data))

    def close(self):
        self.sock.close()
        self.thread.join(5)


@pytest.fixture
def served():
    srv = _Server(ModelBoard(load_config(DEMO)))
    yield f"socket://127.0.0.1:{srv.port}"
    srv.close()


def test_socket_transport_end_to_end(served, rng):
    a = rng.integers(-128, 128, (10, 20))
    b = rng.integers(-128, 128, (20, 9))
    with open_board(served, timeout=2) as board:
        assert board.info()["name"] == "ulx3s_units"
        pm = mac.params(load_config(DEMO).units[0])
        assert np.array_equal(board.gemm(a, b), mac.golden(pm, {"a": a, "b": b})["c"])


def test_board_info(capsys):
    assert main(["board", "info", "--url", f"model://{DEMO}"]) == 0
    out = capsys.readouterr().out
    assert "ulx3s_units on ulx3s" in out and "a_stream" in out and "modes 2:4, 1:4, 4:4" in out
    assert main(["board", "info", "--url", f"model://{DEMO}", "--json"]) == 0
    assert '"hash"' in capsys.readouterr().out


def test_board_run_matches_tensorfab_run(tmp_path, served, rng, capsys):
    inp = tmp_path / "in.npz"
    np.savez(inp, w=np.where(np.arange(40).reshape(5, 8) % 4 < 2, 3, 0), x=np.ones((8, 3), int))
    assert main(["board", "run", "--url", served, "sparse16", "--inputs", str(inp),
                 "--out", str(tmp_path / "board.npz"), "--mode", "2:4"]) == 0
    cfg = tmp_path / "sparse16.yaml"
    cfg.write_text("{name: sparse16, unit: sparse_chain, length: 16, m: 4, modes: ['2:4', "
                   "'1:4', '4:4'], w: int8, x: int8, acc: int32}\n")
    assert main(["run", str(cfg), "--inputs", str(inp), "--out", str(tmp_path / "g.npz"),
                 "--mode", "2:4"]) == 0
    with np.load(tmp_path / "board.npz") as got, np.load(tmp_path / "g.npz") as want:
        assert np.array_equal(got["y"], want["y"])
    assert "1 run," in capsys.readouterr().err


def test_board_bench(capsys):
    assert main(["board", "bench", "--url", f"model://{DEMO}", "--bytes", "100000"]) == 0
    out = capsys.readouterr().out
    assert "payload bytes" in out and "MB/s" in out and "overhead" in out


@pytest.mark.parametrize("argv,msg", [
    (["board", "info", "--url", "gopher://x"], "gopher://x: unknown URL scheme 'gopher'"),
    (["board", "run", "--url", f"model://{DEMO}", "mac8x8", "--inputs", "nope.npz", "--out",
      "o.npz"], "nope.npz: no such file"),
    (["board", "run", "--url", f"model://{DEMO}", "fft", "--inputs", "IN", "--out", "o.npz"],
     "the design has no fft unit"),
    (["board", "bench", "--url", f"model://{DEMO}", "--bytes", "0"], "--bytes 0"),
])
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, argv, msg):
    if "IN" in argv:
        np.savez(tmp_path / "in.npz", a=np.ones((1, 1), int), b=np.ones((1, 1), int))
        argv = [str(tmp_path / "in.npz") if x == "IN" else x for x in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert msg in err and err.count("\n") == 1


def test_bad_arrays_exit_2(tmp_path, capsys):
    np.savez(tmp_path / "in.npz", a=np.ones((2, 3), int), b=np.ones((4, 2), int))
    assert main(["board", "run", "--url", f"model://{DEMO}", "mac8x8", "--inputs",
                 str(tmp_path / "in.npz"), "--out", str(tmp_path / "o.npz")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(str(tmp_path / "in.npz") + ": a: shape") and err.count("\n") == 1


def test_unresponsive_board_exits_2(capsys):
    srv = _Server(None)
    try:
        url = f"socket://127.0.0.1:{srv.port}"
        assert main(["board", "info", "--url", url, "--timeout", "0.05", "--retries", "2"]) == 2
    finally:
        srv.close()
    assert capsys.readouterr().err == f"{url}: no reply after 3 tries (timeout 0.05 s)\n"
