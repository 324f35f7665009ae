"""Hostile and broken peers for the tests (tests/test_hostile_peers.py, tests/conformance.py):
clients that hold the simulated board and say nothing, that send and never read, that give up;
boards that lie in INFO or answer it slowly; archives that inflate into huge arrays. Each is
the smallest real thing that does what one bad peer does, on real sockets and files."""

from __future__ import annotations

import json
import os
import socket
import struct
import threading
import time
import zipfile
from pathlib import Path

from host import protocol as p


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid: int) -> int:
    """Resident memory of process ``pid`` now (VmRSS, KiB)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def silent_client(port: int) -> socket.socket:
    """Connect and say nothing (the caller closes it)."""
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def read_until_closed(sock: socket.socket, limit: float) -> tuple[bytes, float]:
    """Everything ``sock`` receives until the peer closes it (or ``limit`` seconds pass), and
    the seconds it took."""
    t0 = time.monotonic()
    got = b""
    sock.settimeout(0.05)
    while time.monotonic() - t0 < limit:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            break
        if not chunk:
            break
        got += chunk
    return got, time.monotonic() - t0


def packets(data: bytes) -> list[p.Packet]:
    return p.FrameDecoder().feed(data)


def flood_reads(port: int, seconds: float, buf: int = 0, count: int = 100
                ) -> tuple[int, socket.socket]:
    """A client that sends READ requests (``count`` beats each) for ``seconds`` and never
    reads a reply; returns the request bytes the board took and the socket, still open and
    unread (or closed by the board: a send then fails and the flood stops)."""
    sock = socket.socket()
    # a small receive window, so that the replies back up within a few of them and not after
    # megabytes of kernel buffers (the server's side is what is measured)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    sock.setblocking(False)
    sent = 0
    seq = 0
    pending = b""
    t_end = time.monotonic() + seconds
    while time.monotonic() < t_end:
        if not pending:
            pending = b"".join(p.read_request(seq + i, buf, 0, count) for i in range(64))
            seq += 64
        try:
            n = sock.send(pending)
        except BlockingIOError:
            time.sleep(0.01)  # the board stopped reading us: back-pressure
            continue
        except OSError:  # the board closed the session
            break
        sent += n
        pending = pending[n:]
    sock.setblocking(True)
    return sent, sock


def give_up_write(port: int, buf: int, data: bytes) -> bytes:
    """Connect, send one WRITE (seq 7) of ``data`` at beat 0 of ``buf``, read what arrives
    within 0.5 s, and give up (close). Returns the bytes received."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(b"\x00" + p.write_request(7, buf, 0, data))
    got, _ = read_until_closed(sock, 0.5)
    sock.close()
    return got


# -- boards that lie ---------------------------------------------------------------------------


def lying_description(cfg_path: str = "configs/ulx3s_units.yaml", **edits) -> dict:
    """The true description of ``cfg_path`` with ``edits`` applied: ``key=value`` on the top
    level; ``unit0_stream0={...}`` merges into the first stream of the first unit;
    ``streams=...`` replaces the first unit's streams."""
    from generators.board_info import describe
    from generators.config import load_config

    desc = describe(load_config(cfg_path))
    for key, val in edits.items():
        if key == "unit0_stream0":
            first = next(iter(desc["units"][0]["streams"].values()))
            first.update(val)
        elif key == "streams":
            desc["units"][0]["streams"] = val
        else:
            desc[key] = val
    return desc


_MODELS: dict = {}


def model_with_description(raw: bytes, cfg_path: str = "configs/ulx3s_units.yaml"):
    """The reference board of ``cfg_path`` (fresh: power-on state) answering INFO with
    ``raw`` instead."""
    import copy

    from host.model import ModelBoard, board_config

    if cfg_path not in _MODELS:  # building one describes the design (Amaranth): once
        _MODELS[cfg_path] = ModelBoard(board_config(cfg_path))
    board = copy.copy(_MODELS[cfg_path])
    board.power_on()
    board.description = bytes(raw)
    return board


class PeerServer:
    """A TCP server on 127.0.0.1 that answers every connection with ``answer(bytes) ->
    bytes`` (a reference board's ``feed``, or any function), one connection at a time, in a
    daemon thread; ``delay`` seconds before each reply. Use as a context manager."""

    def __init__(self, answer, delay: float = 0.0):
        self.answer, self.delay = answer, delay
        self.port = free_port()
        self._stop = threading.Event()
        self._srv = socket.socket()
        self._srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._srv.bind(("127.0.0.1", self.port))
        self._srv.listen(4)
        self._srv.settimeout(0.1)
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def url(self) -> str:
        return f"socket://127.0.0.1:{self.port}"

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=5)
        self._srv.close()

    def _serve(self):
        while not self._stop.is_set():
            try:
                conn, _ = self._srv.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(0.1)
            with conn:
                while not self._stop.is_set():
                    try:
                        data = conn.recv(65536)
                    except TimeoutError:
                        continue
                    except OSError:
                        break
                    if not data:
                        break
                    out = self.answer(data)
                    if out:
                        if self.delay:
                            time.sleep(self.delay)
                        try:
                            conn.sendall(out)
                        except OSError:
                            break


def one_byte_info(total: int = 60000):
    """``answer`` for :class:`PeerServer`: a board whose INFO gives one byte per reply of a
    ``total``-byte description (a download of ``total`` round trips)."""
    dec = p.FrameDecoder()

    def answer(data: bytes) -> bytes:
        out = b""
        for pkt in dec.feed(data):
            if pkt.op == p.Op.INFO:
                off = int.from_bytes(pkt.payload[:2], "little")
                out += p.ack_frame(pkt.op, pkt.seq, p.info_reply(total, b" " if off < total
                                                                 else b""))
        return out

    return answer


# -- files that lie ----------------------------------------------------------------------------


def npz_bomb(path: str | Path, name: str = "a", nbytes: int = 800 << 20,
             shape: tuple | None = None) -> Path:
    """A real deflated ``.npz`` of one int8 array of ``nbytes`` zeros (800 MiB: about 800 KB
    on disk, the issue's bomb), written in pieces so making it takes little memory."""
    path = Path(path)
    shape = shape or (nbytes,)
    header = {"descr": "|i1", "fortran_order": False, "shape": tuple(shape)}
    text = repr(header).encode("latin1")
    pad = 64 - (10 + len(text) + 1) % 64
    text += b" " * pad + b"\n"
    head = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text
    zero = bytes(8 << 20)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        with z.open(f"{name}.npy", "w", force_zip64=True) as fh:
            fh.write(head)
            left = nbytes
            while left > 0:
                n = min(left, len(zero))
                fh.write(zero[:n])
                left -= n
    return path


def header_only_npz(path: str | Path, shape: tuple, descr: str = "|i1") -> Path:
    """An ``.npz`` whose one member's header claims ``shape`` with only a few data bytes
    after it (what the size check must catch without reading further)."""
    path = Path(path)
    header = {"descr": descr, "fortran_order": False, "shape": tuple(shape)}
    text = repr(header).encode("latin1")
    text += b" " * (64 - (10 + len(text) + 1) % 64) + b"\n"
    body = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text + b"\x00" * 64
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("a.npy", body)
    return path


# Runs its arguments as a child and prints ``exit status`` and ``peak RSS (KiB)`` of that child
# from os.wait4. A small process in between is needed: Linux counts into a process's ru_maxrss
# the RSS its parent had when it forked it (the exec'd image inherits the high-water mark), so
# measured straight from a large test process (an xdist worker that imported torch) a 60 MiB
# command reports hundreds of MiB.
_RSS_WRAPPER = """
import os, subprocess, sys
proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)
_, status, usage = os.wait4(proc.pid, 0)
print(os.waitstatus_to_exitcode(status), usage.ru_maxrss, flush=True)
"""


def peak_rss_of(cmd: list[str], env: dict | None = None, timeout: float = 60.0
                ) -> tuple[int, float, bytes, int]:
    """Run ``cmd``; ``(exit status, seconds, stderr, peak RSS in KiB)`` of that one process
    (``os.wait4`` in a small wrapper process: its own rusage, neither that of earlier children
    nor the high-water mark of this, possibly large, process)."""
    import signal
    import subprocess
    import sys

    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-c", _RSS_WRAPPER, *cmd], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        return -9, time.monotonic() - t0, err, 0
    code, rss = (int(v) for v in out.split())
    return code, time.monotonic() - t0, err, rss


def info_bytes(desc) -> bytes:
    return json.dumps(desc, separators=(",", ":")).encode() if not isinstance(desc, bytes) \
        else desc

