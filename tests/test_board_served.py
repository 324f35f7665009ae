"""The served simulated board (Verilator + TCP harness) end to end: the demo design's INFO,
a GEMM on its MAC array and a sparse matmul on its chain, compared with the golden models;
garbage on the wire; reconnects. The wire bytes are built here from docs/protocol.md alone."""

from __future__ import annotations

import socket
import struct
import time

import numpy as np
import pytest
from board_wire import frame, parse_reply, parse_status

from generators.board_info import describe, describe_bytes
from generators.config import load_config
from generators.units import family
from sim.streams import pack_payloads, unpack_payloads

# every test of the demo board on one xdist worker: it builds the board once while the
# other worker runs other tests, instead of waiting on the build lock (`--dist loadgroup`)
pytestmark = [pytest.mark.rtl, pytest.mark.xdist_group("demo_board")]

DEMO = "configs/ulx3s_units.yaml"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Client:
    """A minimal protocol client on a socket (no retries: the TCP link loses nothing)."""

    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.seq = 0
        self.buf = b""

    def close(self):
        self.sock.close()

    def recv_frame(self) -> bytes:
        while b"\x00" not in self.buf:
            chunk = self.sock.recv(65536)
            assert chunk, "board closed the connection"
            self.buf += chunk
        i = self.buf.index(b"\x00") + 1
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def request(self, op: int, payload: bytes = b"", seq: int | None = None):
        if seq is None:
            self.seq = (self.seq + 1) & 0xFFFF
            seq = self.seq
        self.sock.sendall(frame(op, seq, payload))
        rop, rseq, body = parse_reply(self.recv_frame())
        assert rseq == seq
        return rop, body

    def ok(self, op: int, payload: bytes = b"") -> bytes:
        rop, body = self.request(op, payload)
        assert rop == op | 0x80, f"op {op:#x}: reply {rop:#x} {body.hex()}"
        return body

    def info(self) -> bytes:
        body = self.ok(0x01, struct.pack("<H", 0))
        total = struct.unpack("<H", body[:2])[0]
        got = body[2:]
        while len(got) < total:
            got += self.ok(0x01, struct.pack("<H", len(got)))[2:]
        return got

    def write(self, buf: int, beat_bytes: int, beats: list[int]):
        per = 1019 // beat_bytes
        for start in range(0, len(beats), per):
            chunk = beats[start:start + per]
            data = b"".join(v.to_bytes(beat_bytes, "little") for v in chunk)
            self.ok(0x02, struct.pack("<BI", buf, start) + data)

    def read(self, buf: int, beat_bytes: int, n: int) -> list[int]:
        per = 1024 // beat_bytes
        out = []
        for start in range(0, n, per):
            count = min(per, n - start)
            body = self.ok(0x03, struct.pack("<BIH", buf, start, count))
            out += [int.from_bytes(body[i:i + beat_bytes], "little")
                    for i in range(0, len(body), beat_bytes)]
        return out

    def run_unit(self, desc: dict, index: int, arrays: dict, mode: str | None = None):
        """Schedule, write, RUN, read, assemble: the unit's outputs and the RUN cycles."""
        from generators.config import parse_config

        u = desc["units"][index]
        ucfg = parse_config(u["config"], u["name"])
        fam = family(ucfg.unit)
        params = fam.params(ucfg)
        opts = {"mode": mode} if mode else {}
        inputs, outs, ctx = fam.schedule(params, arrays, **opts)
        counts = []
        for sname, s in u["streams"].items():
            if s["dir"] == "in":
                beats = pack_payloads(s["fields"], inputs[sname])
                self.write(s["buffer"], s["beat_bytes"], beats)
                counts.append(len(beats))
            else:
                counts.append(outs[sname])
        dims = fam.shape_key(arrays)
        code = u["modes"][mode] if mode else 0
        body = self.ok(0x04, struct.pack("<BB3I", index, code, *dims)
                       + struct.pack(f"<{len(counts)}I", *counts))
        cycles, *stored = struct.unpack(f"<I{len(body) // 4 - 1}I", body)
        received = {}
        for sname, s in u["streams"].items():
            if s["dir"] == "out":
                assert stored[0] == outs[sname]
                vals = self.read(s["buffer"], s["beat_bytes"], outs[sname])
                received[sname] = unpack_payloads(s["fields"], vals)
                stored = stored[1:]
        return fam.assemble(params, ctx, received), cycles, fam, params


@pytest.fixture(scope="module")
def served():
    import sim.board as sb

    cfg = load_config(DEMO)
    port = free_port()
    t0 = time.perf_counter()
    proc = sb.start(cfg, port, timeout=600)
    print(f"board up in {time.perf_counter() - t0:.1f} s")
    yield cfg, port
    proc.terminate()
    proc.wait(timeout=10)


def test_info_is_the_description(served):
    cfg, port = served
    c = Client(port)
    try:
        assert c.info() == describe_bytes(cfg)
    finally:
        c.close()


def test_gemm_and_sparse_match_golden(served, rng):
    cfg, port = served
    desc = describe(cfg)
    c = Client(port)
    try:
        c.ok(0x06)
        a = rng.integers(-128, 128, (19, 37))
        b = rng.integers(-128, 128, (37, 11))
        out, cycles, fam, params = c.run_unit(desc, 0, {"a": a, "b": b})
        np.testing.assert_array_equal(out["c"], fam.golden(params, {"a": a, "b": b})["c"])
        assert cycles == params.expected_cycles(19, 37, 11)
        from generators.sparse_chain import compress  # noqa: F401  (the family's own model)

        sp = family("sparse_chain")
        sparams = sp.params(cfg.units[1])
        w = rng.integers(-128, 128, (6, 32))
        w.reshape(6, 8, 4)[:, :, 2:] = 0  # 2:4 sparse in groups of 4 along K
        x = rng.integers(-128, 128, (32, 5))
        arrays = sp.check_inputs(sparams, {"w": w, "x": x}, mode="2:4")
        out, cycles, fam, params = c.run_unit(desc, 1, arrays, mode="2:4")
        np.testing.assert_array_equal(out["y"], sp.golden(sparams, arrays, mode="2:4")["y"])
        status = parse_status(c.ok(0x05))
        assert status["runs"] == 2 and status["crc_errors"] == status["bad_frames"] == 0
    finally:
        c.close()


def test_garbage_and_reconnect(served, rng):
    cfg, port = served
    c = Client(port)
    try:
        c.ok(0x06)
        c.sock.sendall(bytes(rng.integers(1, 256, 3000, dtype=np.uint8)) + b"\x00")
        bad = bytearray(frame(0x05, 77))
        bad[3] ^= 0x10  # corrupt a byte: CRC error (or a bad frame)
        c.sock.sendall(bytes(bad))
        status = parse_status(c.ok(0x05))
        assert status["crc_errors"] + status["bad_frames"] >= 2
    finally:
        c.close()
    c = Client(port)  # a second client after the first left
    try:
        assert c.info() == describe_bytes(cfg)
    finally:
        c.close()
