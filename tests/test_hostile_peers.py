"""Hostile and broken peers (issue 20): each case of the issue, reproduced on real sockets,
processes and files, with what must happen instead. The simulated board cases share one
served demo board (built once, see test_board_served.py); `make regress` runs the long
versions (test names ending in _long)."""

from __future__ import annotations

import copy
import json
import random
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
from peers import (
    PeerServer,
    flood_reads,
    free_port,
    give_up_write,
    header_only_npz,
    info_bytes,
    lying_description,
    model_with_description,
    npz_bomb,
    one_byte_info,
    packets,
    peak_rss_of,
    read_until_closed,
    rss_kib,
    silent_client,
)

from generators.errors import UserError
from host import protocol as p
from host.board import Board, BoardError, open_board
from host.transport import ModelTransport

DEMO = "configs/ulx3s_units.yaml"
TF = [sys.executable, "-m", "tensorfab"]
IDLE = 2.0  # the served board's --idle-timeout in these tests


def _tf(capsys, *args) -> tuple[int, str]:
    """``tensorfab ARGS`` in this process (the modules are loaded already): exit status and
    stderr."""
    from tensorfab.cli import main

    capsys.readouterr()
    code = main([str(a) for a in args])
    return code, capsys.readouterr().err


# -- the simulated board: sessions, memory, logging ---------------------------------------------

@pytest.fixture(scope="module")
def served():
    import sim.board as sb
    from generators.config import load_config

    port = free_port()
    proc = sb.start(load_config(DEMO), port, timeout=600, idle_timeout=IDLE,
                    stderr=subprocess.DEVNULL)
    yield proc, port
    proc.terminate()
    proc.wait(timeout=10)
    assert proc.returncode in (0, -15), "the board crashed"


def _url(port):
    return f"socket://127.0.0.1:{port}"


@pytest.mark.rtl
@pytest.mark.xdist_group("demo_board")
def test_second_host_is_refused_at_once(served):
    proc, port = served
    with open_board(_url(port)) as first:
        t0 = time.monotonic()
        with pytest.raises(BoardError, match="board busy: another host is connected") as err:
            open_board(_url(port))
        took = time.monotonic() - t0
        assert "\n" not in str(err.value)
        assert took < 1.0, f"refused after {took:.2f} s"
        assert first.status().busy == 0  # the first host is not disturbed
    # and once it left, the next host gets the board
    with open_board(_url(port)) as again:
        again.status()


@pytest.mark.rtl
@pytest.mark.xdist_group("demo_board")
def test_silent_client_is_closed_after_the_idle_timeout(served):
    proc, port = served
    sock = silent_client(port)
    got, took = read_until_closed(sock, IDLE + 5)
    sock.close()
    assert [(q.op, q.payload) for q in packets(got)] == [(p.NAK_OP, bytes([0, p.NakCode.IDLE]))]
    assert IDLE - 0.2 <= took <= IDLE + 1.0, took
    with open_board(_url(port)) as board:  # the board is free again
        board.status()


@pytest.mark.rtl
@pytest.mark.xdist_group("demo_board")
def test_requests_of_a_refused_host_never_run(served):
    proc, port = served
    with open_board(_url(port)) as first:
        first.write(0, 0, bytes(9 * 4))
        # a second host sends a WRITE while the first holds the board, and gives up
        got = give_up_write(port, 0, bytes([0x5A]) * 36)
        assert [q.payload for q in packets(got)] == [bytes([0, p.NakCode.BUSY])]
    with open_board(_url(port)) as later:
        assert later.read(0, 0, 4) == bytes(36), "a refused host's WRITE was executed"


@pytest.mark.rtl
@pytest.mark.xdist_group("demo_board")
def test_a_client_that_never_reads_keeps_board_memory_bounded(served):
    proc, port = served
    with open_board(_url(port)) as b:  # settle the allocator: one ordinary session first
        b.read(0, 0, 100)
    before = rss_kib(proc.pid)
    sent, sock = flood_reads(port, IDLE * 0.75)
    grown = rss_kib(proc.pid) - before
    print(f"a non-reading client sent {sent} bytes of READs; board RSS +{grown} KiB")
    # 64 KiB of input and 64 KiB of replies at most, plus socket and allocator slack
    assert grown < 1024, f"RSS grew {grown} KiB for {sent} bytes of unanswered READs"
    assert sent > 64 << 10  # it did send far more than the harness holds
    # stuck with nothing moving, it is an idle session: closed after the idle timeout (seen
    # by the next host getting the board; the flood's socket is never read, which would
    # move bytes again)
    t0 = time.monotonic()
    while True:
        try:
            with open_board(_url(port)) as board:
                board.status()
            break
        except BoardError as err:
            assert "board busy" in str(err)
            assert time.monotonic() - t0 < IDLE + 10, "a non-reading client holds the board"
            time.sleep(0.2)
    freed = time.monotonic() - t0
    print(f"the non-reading client's session closed {freed:.1f} s after its last send")
    sock.close()
    with open_board(_url(port)) as board:  # the board serves the next host
        assert board.status().busy == 0


@pytest.mark.rtl
@pytest.mark.xdist_group("demo_board")
def test_a_full_stderr_pipe_never_blocks_the_board(served):
    import sim.board as sb
    from generators.config import load_config

    _, _ = served  # built
    port = free_port()
    # nobody reads this pipe: the harness's lines must never block it
    proc = sb.start(load_config(DEMO), port, timeout=60, stderr=subprocess.PIPE)
    try:
        with open_board(_url(port)) as holder:
            n = 1500  # ~80 KB of log lines: more than a 64 KiB pipe holds
            for _ in range(n):
                s = socket.create_connection(("127.0.0.1", port), timeout=5)
                assert s.recv(64)  # the BUSY NAK
                s.close()
            t0 = time.monotonic()
            holder.status()
            assert time.monotonic() - t0 < 2.0
        with open_board(_url(port)) as board:
            board.status()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        tail = proc.stderr.read()
    assert proc.returncode in (0, -15)
    assert "refused a second host" in tail


@pytest.mark.rtl
@pytest.mark.regress
@pytest.mark.xdist_group("demo_board")
def test_ten_thousand_refused_hosts_long(served):
    """10^4 hosts knocking while one works: each refused, the board's memory flat, the
    working host's results right."""
    proc, port = served
    with open_board(_url(port)) as holder:
        before = rss_kib(proc.pid)
        data = bytes(range(256)) * 4
        for i in range(10_000):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(b"\x00" + p.write_request(i, 0, 0, data[:9 * 8]))
            got = s.recv(64)
            assert [q.payload for q in packets(got)] == [bytes([0, p.NakCode.BUSY])]
            s.close()
            if i % 1000 == 0:
                holder.write(0, 0, bytes(9 * 8))
                assert holder.read(0, 0, 8) == bytes(9 * 8)
        grown = rss_kib(proc.pid) - before
    assert grown < 1024, grown


# -- a board that lies in INFO ----------------------------------------------------------------


def _model_board(raw: bytes, **kw) -> Board:
    return Board(ModelTransport("model://liar", model_with_description(raw)), timeout=0.2,
                 retries=1, **kw)


def _nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


LIES = {
    "max_payload_5": (lying_description(max_payload=5), "max_payload = 5"),
    "max_payload_below_a_beat": (lying_description(max_payload=30), "max_payload = 30"),
    "max_payload_over_protocol": (lying_description(max_payload=5000), "max_payload = 5000"),
    "max_payload_text": (lying_description(max_payload="abc"), "max_payload = 'abc'"),
    "deep_json": (b'{"units":' + _nested(30000) + b"}", "nested 30001 deep"),
    "streams_list": (lying_description(streams=[1, 2]), "streams is a list"),
    "stream_not_object": (lying_description(streams={"a": 3}), "streams.a is a int"),
    "beat_bytes_0": (lying_description(unit0_stream0={"beat_bytes": 0}), "beat_bytes = 0"),
    "depth_0": (lying_description(unit0_stream0={"depth": 0}), "depth = 0"),
    "depth_bool": (lying_description(unit0_stream0={"depth": True}), "is a bool"),
    "units_missing": (lying_description(units=None), "units is a null"),
    "protocol_9": (lying_description(protocol=9), "protocol = 9"),
    "not_json": (b"\xff\xfe", "not UTF-8"),
    "nan": (b'{"protocol": NaN}', "NaN is not JSON"),
    "top_list": (b"[1, 2]", "the description is a list"),
}


@pytest.mark.parametrize("name", sorted(LIES))
def test_a_lying_info_is_one_board_error(name):
    desc, needle = LIES[name]
    with pytest.raises(BoardError) as err:
        _model_board(info_bytes(desc))
    msg = str(err.value)
    assert needle in msg and "\n" not in msg and msg.startswith("model://liar: "), msg


def test_random_lies_never_crash_the_host():
    _random_lies(300, seed=1)


@pytest.mark.regress
def test_random_lies_never_crash_the_host_long():
    _random_lies(5000, seed=2)


def _random_lies(n: int, seed: int) -> None:
    """Random edits of every field of a true description: each opens or is a BoardError."""
    rng = random.Random(seed)
    true = lying_description()
    junk = [None, True, -1, 0, 1, 2**40, "x", "", [], {}, [1], {"a": 1}, 1.5, 10**400]
    opened = refused = 0
    for _ in range(n):
        desc = json.loads(json.dumps(true))
        for _ in range(rng.randint(1, 3)):
            node, key = desc, None
            path = []
            while isinstance(node, (dict, list)) and node and rng.random() < 0.8:
                keys = list(node) if isinstance(node, dict) else list(range(len(node)))
                key = rng.choice(keys)
                path.append((node, key))
                node = node[key]
            if path:
                parent, key = path[-1]
                parent[key] = copy.deepcopy(rng.choice(junk))
        raw = json.dumps(desc).encode() if rng.random() < 0.9 else \
            json.dumps(desc).encode()[:rng.randrange(1, 200)]
        try:
            b = _model_board(raw)
        except BoardError as err:
            assert "\n" not in str(err)
            refused += 1
            continue
        opened += 1
        b.close()
    assert refused > n // 4, (opened, refused)


def test_a_lying_max_payload_returns_no_stale_data(tmp_path, capsys):
    """The issue's silent wrong result: max_payload <= 5 made the host send no WRITE and
    return the previous session's product. Now `board run` exits 2 naming the field, and
    writes nothing."""
    from host.model import ModelBoard, board_config

    good = ModelBoard(board_config(DEMO))
    liar = model_with_description(info_bytes(lying_description(max_payload=5)))
    liar.buffers = good.buffers  # the stale product of an earlier session is there
    rng = np.random.default_rng(0)
    a = rng.integers(-8, 8, (4, 6), dtype=np.int8)
    b = rng.integers(-8, 8, (6, 3), dtype=np.int8)
    np.savez(tmp_path / "in.npz", a=a, b=b)
    with PeerServer(liar.feed) as srv:
        code, err = _tf(capsys, "board", "run", "mac8x8", "--url", srv.url, "--inputs",
                        tmp_path / "in.npz", "--out", tmp_path / "out.npz", "--timeout", "0.3",
                        "--retries", "1")
    assert code == 2, err
    assert err.count("\n") == 1 and "max_payload = 5" in err, err
    assert not (tmp_path / "out.npz").exists()


def test_a_slow_info_download_has_a_deadline():
    with PeerServer(one_byte_info()) as srv:
        t0 = time.monotonic()
        with pytest.raises(BoardError, match="info_deadline = 1 s"):
            open_board(srv.url, timeout=5.0, retries=3, info_deadline=1.0)
        took = time.monotonic() - t0
    assert took < 2.0, took  # not timeout x tries, nor 60,000 pieces


def test_run_raw_checks_its_arguments():
    with open_board(f"model://{DEMO}") as board:
        for kw, needle in ((dict(unit=9), "unit 9"), (dict(unit=-1), "unit -1"),
                           (dict(beats=(2**32, 1, 1)), "beats"), (dict(beats=(1, 1)), "beats"),
                           (dict(dims=(1, 1)), "dims"), (dict(mode=256), "mode 256")):
            args = dict(unit=0, mode=0, dims=(1, 1, 1), beats=(1, 1, 1)) | kw
            with pytest.raises(UserError, match=needle) as err:
                board.run_raw(**args)
            assert "\n" not in str(err.value) and not isinstance(err.value, BoardError)


# -- files that lie -----------------------------------------------------------------------------


def _bomb_refused(path, cfg="configs/mac8x8.yaml"):
    """The refusal: in this process (its time: the header check), and by `tensorfab run` (its
    exit status, one line, and its peak RSS; its time is mostly the interpreter's start)."""
    from host.files import load_inputs

    t0 = time.perf_counter()
    with pytest.raises(UserError, match="--max-bytes"):
        load_inputs(str(path))
    took = time.perf_counter() - t0
    code, wall, err, peak = peak_rss_of([*TF, "run", cfg, "--inputs", str(path), "--out",
                                         str(path.with_name("out.npz"))])
    text = err.decode()
    print(f"npz bomb {path.stat().st_size} bytes on disk: refused in {took * 1e3:.1f} ms; "
          f"tensorfab run: exit {code} in {wall:.2f} s, peak RSS {peak / 1024:.0f} MiB: "
          f"{text.strip()}")
    assert code == 2 and text.count("\n") == 1 and "--max-bytes" in text, text
    assert peak < 200 * 1024, f"peak RSS {peak} KiB"
    return took


def test_an_npz_bomb_is_refused_quickly(tmp_path):
    # 160 MiB of int8 zeros deflated to ~0.7 MB: 1.25 GiB as int64 codes, over the 1 GiB
    # default (make regress: the issue's 800 MiB)
    path = npz_bomb(tmp_path / "bomb.npz", nbytes=160 << 20)
    assert _bomb_refused(path) < 1.0
    # a header that claims more than it holds is refused on the header alone
    from host.files import load_inputs

    with pytest.raises(UserError, match=r"shape \[1099511627776\] \(int8\) takes 8.0 TiB"):
        load_inputs(str(header_only_npz(tmp_path / "liar.npz", (1 << 40,))))


@pytest.mark.regress
def test_the_issues_npz_bomb_is_refused_long(tmp_path):
    path = npz_bomb(tmp_path / "bomb.npz", nbytes=800 << 20)  # the issue's 800 MiB array
    assert _bomb_refused(path) < 1.0


def test_max_bytes_is_a_limit_both_ways(tmp_path, capsys):
    np.savez(tmp_path / "in.npz", a=np.ones((4, 6), np.int8), b=np.ones((6, 3), np.int8))
    out = tmp_path / "o.npz"
    code, err = _tf(capsys, "run", "configs/mac8x8.yaml", "--inputs", tmp_path / "in.npz",
                    "--out", out, "--max-bytes", "100")
    assert code == 2 and "--max-bytes 100" in err and err.count("\n") == 1, err
    assert not out.exists()
    code, err = _tf(capsys, "run", "configs/mac8x8.yaml", "--inputs", tmp_path / "in.npz",
                    "--out", out, "--max-bytes", "400")  # (24 + 18) codes x 8 bytes = 336
    assert code == 0, err
    assert np.array_equal(np.load(out)["c"], np.full((4, 3), 6))


@pytest.mark.parametrize("command", ["run", "board run"])
def test_out_without_suffix_never_overwrites_the_input(tmp_path, capsys, command):
    inp = tmp_path / "in.npz"
    np.savez(inp, a=np.ones((2, 2), np.int8), b=np.ones((2, 2), np.int8))
    before = inp.read_bytes()
    if command == "run":
        args = ["run", "configs/mac8x8.yaml"]
    else:
        args = ["board", "run", "mac8x8", "--url", f"model://{DEMO}"]
    code, err = _tf(capsys, *args, "--inputs", inp, "--out", tmp_path / "in")
    assert code == 2 and err.count("\n") == 1, err
    assert "would overwrite the input" in err and "in.npz" in err
    assert inp.read_bytes() == before
    # a suffix-less name that is not the input is written as numpy.savez names it
    code, err = _tf(capsys, *args, "--inputs", inp, "--out", tmp_path / "res")
    assert code == 0, err
    assert f"wrote {tmp_path / 'res.npz'}" in err
    assert np.array_equal(np.load(tmp_path / "res.npz")["c"], np.full((2, 2), 2))


# -- a restart on the same port -------------------------------------------------------------


def test_a_port_in_time_wait_is_free_to_serve():
    """A board stopped with a client connected leaves its port in TIME_WAIT for about 60 s;
    `tensorfab serve --port` on it must not refuse it (the harness binds with SO_REUSEADDR)."""
    from tensorfab.cli import _free_port

    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]
    cli = socket.create_connection(("127.0.0.1", port))
    conn, _ = srv.accept()
    conn.close()  # the server side closes first: its port goes to TIME_WAIT
    srv.close()
    cli.recv(1)
    cli.close()
    with socket.socket() as plain:  # without SO_REUSEADDR the port is refused meanwhile
        with pytest.raises(OSError):
            plain.bind(("127.0.0.1", port))
    assert _free_port(str(port)) == port


@pytest.mark.rtl
@pytest.mark.regress
@pytest.mark.xdist_group("demo_board")
def test_serve_restarts_on_the_same_port_long(served):
    port = free_port()
    for round_ in range(2):
        proc = subprocess.Popen([*TF, "serve", DEMO, "--port", str(port)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            url = proc.stdout.readline().strip()
            assert url == _url(port), (round_, proc.stderr.read() if not url else url)
            with open_board(url) as board:
                board.status()
                proc.terminate()  # stopped with the client connected: TIME_WAIT
                proc.wait(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_max_bytes_takes_a_positive_count():
    import argparse

    from tensorfab.cli import max_bytes_arg

    assert max_bytes_arg("400") == 400
    for bad in ("0", "-1", "1e3", "lots"):
        with pytest.raises(argparse.ArgumentTypeError, match="allowed: a byte count >= 1"):
            max_bytes_arg(bad)


@pytest.mark.parametrize("value", ["0", "-3", "nan", "inf"])
def test_serve_refuses_a_bad_idle_timeout(capsys, value):
    code, err = _tf(capsys, "serve", DEMO, "--port", "5555", "--idle-timeout", value)
    assert code == 2 and err.count("\n") == 1 and "allowed: seconds > 0" in err, err
