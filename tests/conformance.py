"""A differential corpus of requests for the reference board (``model://``) and the RTL board:
the same bytes go to both and the replies are compared byte for byte (tests/test_conformance.py).

The corpus is seeded (``corpus(desc, n, seed)``: the same seed gives the same bytes, so a
difference can be replayed) and mixes well-formed requests of every op, malformed ones (each
check of docs/protocol.md's NAK order), random ops and bytes, damaged frames (CRC, COBS,
length, version, over-long), duplicates and state-changing sequences (writes read back,
scheduled RUNs, tensor-memory scatters read back). Each item is followed by ``0x00`` and a
STATUS request: the 0x00 ends whatever partial frame the item left, and the STATUS reply both
marks the end of the item's replies and compares the counters after every item.

Ops plug in by one table, :data:`OPS`: an op's entry gives its well-formed and malformed
payloads; ops of the tensor memory and programs are used on protocol-2 designs only.

The fields allowed to differ (docs/protocol.md, "model:// and the RTL board") are the
``cycles`` of RUN and PROG_RUN replies: the reference board answers with the family's
``expected_cycles``; :func:`compare` accepts exactly those bytes and nothing else.
"""

from __future__ import annotations

import random
import socket
import struct
from dataclasses import dataclass, field

import numpy as np

from host import protocol as p
from host.tensor import pack_beats

SYNC_OP = p.Op.STATUS


@dataclass
class Ctx:
    """What the generators know of the design (from its description)."""

    desc: dict
    rng: random.Random
    buffers: list = field(default_factory=list)  # stream specs by buffer id
    families: dict = field(default_factory=dict)  # unit index -> (family, params) or None

    def __post_init__(self):
        self.buffers = sorted((s for u in self.desc["units"] for s in u["streams"].values()),
                              key=lambda s: s["buffer"])
        self.tm = self.desc.get("tensor_memory")
        self.pbytes = int(self.desc.get("program_bytes", 0))
        self.mp = self.desc["max_payload"]

    def u32(self) -> int:
        r = self.rng
        return r.choice([0, 1, 2, r.randrange(1 << 8), r.randrange(1 << 16), r.randrange(1 << 32),
                         (1 << 32) - 1, (1 << 31)])

    def u16(self) -> int:
        r = self.rng
        return r.choice([0, 1, r.randrange(1 << 8), r.randrange(1 << 16), 0xFFFF, self.mp,
                         self.mp + 1])

    def data(self, n: int) -> bytes:
        return self.rng.randbytes(n)


# -- per-op payloads ---------------------------------------------------------------------------


def _info_good(c: Ctx) -> bytes:
    total = len_info(c)
    return struct.pack("<H", c.rng.choice([0, c.rng.randrange(total + 1), total]))


def _info_bad(c: Ctx) -> bytes:
    r = c.rng
    return r.choice([b"", b"\x00", b"\x00\x00\x00", struct.pack("<H", len_info(c) + 1 +
                                                                 r.randrange(100))])


def len_info(c: Ctx) -> int:
    return c.desc["_info_len"]


def _write_good(c: Ctx) -> bytes:
    r = c.rng
    buf = r.randrange(len(c.buffers))
    s = c.buffers[buf]
    n = r.randrange(0, min(s["depth"], (c.mp - 5) // s["beat_bytes"]) + 1)
    beat = r.randrange(0, s["depth"] - n + 1)
    return struct.pack("<BI", buf, beat) + c.data(n * s["beat_bytes"])


def _write_bad(c: Ctx) -> bytes:
    r = c.rng
    buf = r.randrange(len(c.buffers))
    s = c.buffers[buf]
    kind = r.randrange(4)
    if kind == 0:
        return c.data(r.randrange(5))                                  # BAD_LENGTH
    if kind == 1:
        return struct.pack("<BI", r.randrange(len(c.buffers), 256), 0) + c.data(r.randrange(20))
    if kind == 2 and s["beat_bytes"] > 1:                              # not whole beats
        return struct.pack("<BI", buf, 0) + c.data(s["beat_bytes"] * r.randrange(3) +
                                                     r.randrange(1, s["beat_bytes"]))
    n = r.randrange(1, 4)                                              # past the end
    return struct.pack("<BI", buf, r.choice([s["depth"] - n + 1, s["depth"], c.u32()])) + \
        c.data(n * s["beat_bytes"])


def _read_good(c: Ctx) -> bytes:
    r = c.rng
    buf = r.randrange(len(c.buffers))
    s = c.buffers[buf]
    n = r.randrange(0, min(s["depth"], c.mp // s["beat_bytes"]) + 1)
    return struct.pack("<BIH", buf, r.randrange(0, s["depth"] - n + 1), n)


def _read_bad(c: Ctx) -> bytes:
    r = c.rng
    buf = r.randrange(len(c.buffers))
    s = c.buffers[buf]
    return r.choice([
        c.data(r.choice([0, 6, 8])),
        struct.pack("<BIH", r.randrange(len(c.buffers), 256), 0, 1),
        struct.pack("<BIH", buf, 0, c.mp // s["beat_bytes"] + 1 + r.randrange(4)),
        struct.pack("<BIH", buf, c.u32(), r.randrange(1, 4)),
        struct.pack("<BIH", buf, 0, 0xFFFF),
    ])


def _run_bad(c: Ctx) -> bytes:
    """A RUN every board refuses before streaming (each check of the NAK order)."""
    r = c.rng
    units = c.desc["units"]
    ui = r.randrange(len(units))
    u = units[ui]
    streams = list(u["streams"].values())
    nmodes = max(1, len(u.get("modes") or {}))
    kind = r.randrange(6)
    counts = [r.randrange(1, s["depth"] + 1) for s in streams]
    mode = r.randrange(nmodes)
    dims = [c.u32() for _ in range(3)]
    if kind == 0:
        return c.data(r.randrange(2))                                   # too short
    if kind == 1:                                                       # no such unit
        return bytes([r.randrange(len(units), 256), 0]) + c.data(r.choice([0, 12, 14, 26]))
    if kind == 2:                                                       # the unit's length
        n = r.choice([k for k in range(0, 8) if k != len(streams)])
        return struct.pack(f"<BB3I{n}I", ui, mode, *dims, *([1] * n))[:r.choice([2, 99])]
    if kind == 3:                                                       # mode
        mode = r.randrange(nmodes, 256)
    elif kind == 4:                                                     # a count too large
        j = r.randrange(len(streams))
        counts[j] = streams[j]["depth"] + 1 + r.randrange(1 << 20)
    else:                                                               # an input count of 0
        ins = [j for j, s in enumerate(streams) if s["dir"] == "in"]
        counts[r.choice(ins)] = 0
    return struct.pack(f"<BB3I{len(counts)}I", ui, mode, *dims, *counts)


def _empty_good(c: Ctx) -> bytes:
    return b""


def _empty_bad(c: Ctx) -> bytes:
    return c.data(c.rng.randrange(1, 20))


def _tm_range(c: Ctx) -> tuple[int, int, int]:
    r = c.rng
    tm = c.tm
    bank = r.randrange(tm["banks"])
    n = r.randrange(0, min(tm["bank_bytes"], c.mp - 5) + 1)
    return bank, r.randrange(0, tm["bank_bytes"] - n + 1), n


def _tm_write_good(c: Ctx) -> bytes:
    bank, addr, n = _tm_range(c)
    return p.tm_write_payload(bank, addr, c.data(n))


def _tm_write_bad(c: Ctx) -> bytes:
    r = c.rng
    tm = c.tm
    return r.choice([
        c.data(r.randrange(5)),
        p.tm_write_payload(r.randrange(tm["banks"], 256), 0, c.data(r.randrange(9))),
        p.tm_write_payload(r.randrange(tm["banks"]), tm["bank_bytes"] - r.randrange(4),
                           c.data(r.randrange(5, 40))),
        p.tm_write_payload(r.randrange(tm["banks"]), c.u32(), c.data(1 + r.randrange(9))),
    ])


def _tm_read_good(c: Ctx) -> bytes:
    bank, addr, n = _tm_range(c)
    return p.tm_read_payload(bank, addr, min(n, c.mp))


def _tm_read_bad(c: Ctx) -> bytes:
    r = c.rng
    tm = c.tm
    return r.choice([
        c.data(r.choice([0, 6, 8])),
        p.tm_read_payload(r.randrange(tm["banks"], 256), 0, r.choice([1, c.mp + 1, 0xFFFF])),
        p.tm_read_payload(r.randrange(tm["banks"]), 0, c.mp + 1 + r.randrange(100)),
        p.tm_read_payload(r.randrange(tm["banks"]), c.u32(), r.randrange(1, 9)),
        p.tm_read_payload(r.randrange(tm["banks"]), tm["bank_bytes"], 1),
    ])


def _tm_scatter_good(c: Ctx) -> bytes:
    r = c.rng
    tm = c.tm
    chunk = r.choice([1, 2, 3, r.randrange(1, 40)])
    pitch = chunk + r.choice([0, 0, 1, r.randrange(64)])
    count = r.choice([1, 2, r.randrange(1, 50), r.randrange(1, 400)])
    span = (count - 1) * pitch + chunk
    if span > tm["bank_bytes"]:
        count = max(1, (tm["bank_bytes"] - chunk) // pitch + 1)
        span = (count - 1) * pitch + chunk
    addr = r.randrange(0, tm["bank_bytes"] - span + 1)
    cap = c.mp - p.TM_SCATTER_HEAD
    n = r.choice([1, chunk, min(chunk * count, cap), r.randrange(1, min(chunk * count, cap) + 1)])
    return p.tm_scatter_payload(r.randrange(tm["banks"]), addr, chunk, pitch, count,
                                c.data(max(1, min(n, cap))))


def _tm_scatter_bad(c: Ctx) -> bytes:
    r = c.rng
    tm = c.tm
    good = _tm_scatter_good(c)
    bank, addr, chunk, pitch, count = struct.unpack_from("<BIHHH", good)
    kind = r.randrange(6)
    if kind == 0:
        return good[:r.randrange(p.TM_SCATTER_HEAD + 1)]               # no data
    if kind == 1:
        chunk = 0
    elif kind == 2:
        count = 0
    elif kind == 3:
        pitch = r.randrange(max(1, chunk))                              # pieces overlap
        chunk = max(chunk, pitch + 1)
    elif kind == 4:
        bank = r.randrange(tm["banks"], 256)
    else:
        addr = r.choice([tm["bank_bytes"], c.u32(), tm["bank_bytes"] - 1])
        count = r.choice([count, 0xFFFF])
    return struct.pack("<BIHHH", bank, addr, chunk, pitch, count) + good[p.TM_SCATTER_HEAD:]


def _prog_write_good(c: Ctx) -> bytes:
    r = c.rng
    n = r.randrange(0, min(c.pbytes, c.mp - 4) + 1)
    return p.prog_write_payload(r.randrange(0, c.pbytes - n + 1), c.data(n))


def _prog_write_bad(c: Ctx) -> bytes:
    r = c.rng
    return r.choice([c.data(r.randrange(4)),
                     p.prog_write_payload(c.pbytes - r.randrange(3), c.data(r.randrange(4, 20))),
                     p.prog_write_payload(c.u32() | 1 << 31, c.data(1))])


def _prog_run_bad(c: Ctx) -> bytes:
    r = c.rng
    return r.choice([c.data(r.choice([0, 3, 5])), p.prog_run_payload(c.pbytes),
                     p.prog_run_payload(c.u32() | 1 << 31)])


@dataclass(frozen=True)
class OpSpec:
    """An op of the corpus: its well-formed payloads, its malformed ones, and the design
    protocols it exists on."""

    good: object
    bad: object
    protocols: tuple = (1, 2)


#: The corpus's ops (a new op: one line here). PROG_RUN has no random well-formed payload:
#: its programs come from :func:`_program_items` (the reference board checks them whole).
OPS = {
    p.Op.INFO: OpSpec(_info_good, _info_bad),
    p.Op.WRITE: OpSpec(_write_good, _write_bad),
    p.Op.READ: OpSpec(_read_good, _read_bad),
    p.Op.RUN: OpSpec(_run_bad, _run_bad),
    p.Op.STATUS: OpSpec(_empty_good, _empty_bad),
    p.Op.CLEAR: OpSpec(_empty_good, _empty_bad),
    p.Op.TM_WRITE: OpSpec(_tm_write_good, _tm_write_bad, (2,)),
    p.Op.TM_READ: OpSpec(_tm_read_good, _tm_read_bad, (2,)),
    p.Op.TM_SCATTER: OpSpec(_tm_scatter_good, _tm_scatter_bad, (2,)),
    p.Op.PROG_WRITE: OpSpec(_prog_write_good, _prog_write_bad, (2,)),
    p.Op.PROG_RUN: OpSpec(_prog_run_bad, _prog_run_bad, (2,)),
}


# -- items -------------------------------------------------------------------------------------


def _ops(c: Ctx) -> list:
    return [op for op, spec in OPS.items() if c.desc["protocol"] in spec.protocols]


def _frame(c: Ctx, op: int, payload: bytes, seq: int | None = None, ver: int = 1) -> bytes:
    return p.encode_frame(op, c.rng.randrange(1 << 16) if seq is None else seq, payload, ver)


def _random_arrays(fam, params, rng: np.random.Generator):
    """Small arrays the unit takes (its ``check_inputs`` decides), or None."""
    for _ in range(20):
        names = fam.in_arrays
        lo = int(rng.choice([-1, 0]))
        if names == ("a", "b"):
            m, k, n = (int(x) for x in rng.integers(1, 6, 3))
            arrays = {"a": rng.integers(lo, 2, (m, k)), "b": rng.integers(lo, 2, (k, n))}
        elif names == ("w", "x"):
            o, k, b = int(rng.integers(1, 5)), 4 * int(rng.integers(1, 3)), int(rng.integers(1, 4))
            w = rng.integers(lo, 2, (o, k)) * (rng.random((o, k)) < 0.3)
            arrays = {"w": w, "x": rng.integers(lo, 2, (k, b))}
        elif names == ("x",):
            shape = (int(rng.integers(1, 4)), int(rng.integers(1, 9)))
            arrays = {"x": rng.integers(lo, 2, shape)}
        else:
            return None
        try:
            return fam.check_inputs(params, arrays, **({"mode": fam.mode(params, None)}
                                                       if fam.has_modes else {}))
        except Exception:
            continue
    return None


def _run_items(c: Ctx, nprng: np.random.Generator) -> list[bytes] | None:
    """A scheduled RUN: write each input stream's beats, RUN, read every output buffer."""
    from generators.config import parse_config
    from generators.units import family

    ui = c.rng.randrange(len(c.desc["units"]))
    u = c.desc["units"][ui]
    if ui not in c.families:
        try:
            cfg = parse_config(u["config"], u["name"])
            c.families[ui] = (family(cfg.unit), family(cfg.unit).params(cfg))
        except Exception:
            c.families[ui] = None
    if c.families[ui] is None:
        return None
    fam, params = c.families[ui]
    if getattr(params, "requant", None) is not None:
        return None  # its epilogue needs real multipliers: covered by the board's own tests
    arrays = _random_arrays(fam, params, nprng)
    if arrays is None:
        return None
    opts = {"mode": fam.mode(params, None)} if fam.has_modes else {}
    inputs, outs, _ = fam.schedule(params, arrays, **opts)
    frames, counts = [], []
    for s in u["streams"].values():
        if s["dir"] == "in":
            beats = pack_beats(s["fields"], inputs[_name(u, s)], s["beat_bytes"])
            if len(beats) > s["depth"]:
                return None
            per = (c.mp - 5) // s["beat_bytes"]
            for i in range(0, len(beats), per):
                frames.append(_frame(c, p.Op.WRITE, struct.pack("<BI", s["buffer"], i)
                                     + beats[i:i + per].tobytes()))
            counts.append(len(beats))
        else:
            n = int(outs[_name(u, s)])
            if n > s["depth"]:
                return None
            counts.append(n)
    dims = tuple(int(d) for d in fam.shape_key(arrays))
    dims += (0,) * (3 - len(dims))
    mode = u["modes"][opts["mode"]] if opts else 0
    frames.append(_frame(c, p.Op.RUN, p.run_payload(ui, mode, dims, counts)))
    for s, n in zip(u["streams"].values(), counts, strict=True):
        if s["dir"] == "out":
            per = c.mp // s["beat_bytes"]
            for i in range(0, n, per):
                frames.append(_frame(c, p.Op.READ, struct.pack("<BIH", s["buffer"], i,
                                                               min(per, n - i))))
    return frames


def _name(u: dict, s: dict) -> str:
    return next(k for k, v in u["streams"].items() if v is s)


def _program_items(c: Ctx, model) -> list[bytes] | None:
    """PROG_WRITE of random program bytes the reference board's whole-program check refuses,
    then PROG_RUN of them (both boards must refuse: BAD_PROGRAM)."""
    from host import program as P

    r = c.rng
    n = r.randrange(2, min(c.pbytes, 200))
    addr = r.randrange(0, c.pbytes - n + 1)
    data = bytearray(c.data(n))
    data[:2] = struct.pack("<H", r.randrange(0, 4))  # a few ops
    trial = bytearray(model.program)
    trial[addr:addr + n] = data
    saved = model.program
    model.program = trial
    try:
        model.check_program(addr)
        return None  # a program the reference board would run: not a random item
    except (P.ProgramError, ValueError, IndexError, struct.error):
        pass
    finally:
        model.program = saved
    return [_frame(c, p.Op.PROG_WRITE, p.prog_write_payload(addr, bytes(data))),
            _frame(c, p.Op.PROG_RUN, p.prog_run_payload(addr))]


KINDS = ("good", "bad", "random_op", "garbage", "bad_crc", "bad_length", "bad_version",
         "over_long", "duplicate", "version_then_same", "write_read", "run", "clear",
         "scatter_read", "program")


def corpus(desc: dict, info_len: int, n: int, seed: int, model=None) -> list[tuple[str, bytes]]:
    """``n`` items ``(kind, bytes)`` for the design described by ``desc`` (seeded). ``model``
    (a :class:`host.model.ModelBoard` of the design) is needed for the program items."""
    desc = dict(desc, _info_len=info_len)
    c = Ctx(desc, random.Random(seed))
    nprng = np.random.default_rng(seed)
    r = c.rng
    ops = _ops(c)
    kinds = [k for k in KINDS if desc["protocol"] == 2 or k not in ("scatter_read", "program")]
    weights = {"good": 6, "bad": 6, "run": 2, "write_read": 2}
    out: list[tuple[str, bytes]] = []
    while len(out) < n:
        kind = r.choices(kinds, [weights.get(k, 1) for k in kinds])[0]
        item = _item(c, kind, ops, nprng, model)
        if item is not None:
            out.append((kind, item))
    return out


def _item(c: Ctx, kind: str, ops: list, nprng, model) -> bytes | None:
    r = c.rng
    if kind in ("good", "bad"):
        op = r.choice(ops)
        spec = OPS[op]
        return _frame(c, op, (spec.good if kind == "good" else spec.bad)(c))
    if kind == "random_op":
        return _frame(c, r.choice([0, r.randrange(256), 0x7F, 0x80 | r.randrange(12)]),
                      c.data(r.randrange(0, 16)))
    if kind == "garbage":
        return c.data(r.choice([1, 2, 7, r.randrange(300)]))
    if kind == "bad_crc":
        f = bytearray(p.encode_packet(r.choice(ops), r.randrange(1 << 16),
                                      OPS[r.choice(ops)].good(c)))
        f[r.randrange(len(f))] ^= 1 << r.randrange(8)
        return p.cobs_encode(bytes(f)) + b"\x00"
    if kind == "bad_length":
        pkt = bytearray(p.encode_packet(p.Op.STATUS, r.randrange(1 << 16), c.data(r.randrange(6))))
        cut = r.choice([r.randrange(1, len(pkt)), len(pkt) + r.randrange(1, 9)])
        body = bytes(pkt[:cut]) if cut < len(pkt) else bytes(pkt) + c.data(cut - len(pkt))
        return p.cobs_encode(body) + b"\x00"
    if kind == "bad_version":
        op = r.choice(ops)
        return _frame(c, op, OPS[op].good(c), ver=r.choice([0, 2, 255]))
    if kind == "over_long":
        return bytes(r.randrange(1, 256) for _ in range(p.COBS_MAX + r.choice([-1, 0, 1, 2, 500])))
    if kind == "duplicate":
        op = r.choice([p.Op.WRITE, p.Op.INFO, p.Op.STATUS, p.Op.CLEAR, r.choice(ops)])
        f = _frame(c, op, OPS[op].good(c) if r.random() < 0.7 else OPS[op].bad(c))
        return f + (b"\x00" if r.random() < 0.5 else b"") + f
    if kind == "version_then_same":
        op = r.choice(ops)
        seq = r.randrange(1 << 16)
        pl = OPS[op].good(c)
        return _frame(c, op, pl, seq, ver=2) + _frame(c, op, pl, seq)
    if kind == "write_read":
        w = _write_good(c)
        buf, beat = struct.unpack_from("<BI", w)
        n = (len(w) - 5) // c.buffers[buf]["beat_bytes"]
        return _frame(c, p.Op.WRITE, w) + _frame(c, p.Op.READ, struct.pack("<BIH", buf, beat, n))
    if kind == "clear":
        return _frame(c, p.Op.STATUS, b"") + _frame(c, p.Op.CLEAR, b"") + \
            _frame(c, p.Op.STATUS, b"")
    if kind == "run":
        frames = _run_items(c, nprng)
        return b"".join(frames) if frames else None
    if kind == "scatter_read":
        s = _tm_scatter_good(c)
        bank, addr, chunk, pitch, count = struct.unpack_from("<BIHHH", s)
        span = (count - 1) * pitch + chunk
        reads = [_frame(c, p.Op.TM_READ, p.tm_read_payload(bank, a, min(c.mp, addr + span - a)))
                 for a in range(addr, addr + span, c.mp)]
        return _frame(c, p.Op.TM_SCATTER, s) + b"".join(reads)
    if kind == "program":
        if model is None:
            return None
        frames = _program_items(c, model)
        return b"".join(frames) if frames else None
    raise ValueError(kind)


# -- running and comparing ---------------------------------------------------------------------


def sync_frame(seq: int) -> bytes:
    """What follows every item: 0x00 (ends a partial frame) and a STATUS request."""
    return b"\x00" + p.status_request(seq)


def run_model(board, items, seq0: int = 0x5000) -> list[bytes]:
    """The reply bytes of every item on a :class:`host.model.ModelBoard` (its ``feed``)."""
    return [board.feed(data + sync_frame((seq0 + i) & 0xFFFF)) for i, (_, data) in
            enumerate(items)]


class SocketBoard:
    """The RTL board over the simulated board's TCP socket."""

    def __init__(self, port: int, timeout: float = 60.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.pending = b""

    def close(self):
        self.sock.close()

    def exchange(self, data: bytes, seq: int) -> bytes:
        """Send ``data`` + the sync STATUS; return every reply byte up to and including the
        sync's reply."""
        self.sock.sendall(data + sync_frame(seq))
        dec = p.FrameDecoder()
        got = bytearray()
        buf = self.pending
        while True:
            while b"\x00" in buf:
                i = buf.index(b"\x00") + 1
                one, buf = buf[:i], buf[i:]
                got += one
                for pkt in dec.feed(one):
                    if pkt.op == SYNC_OP | p.ACK_BIT and pkt.seq == seq:
                        self.pending = buf
                        return bytes(got)
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise ConnectionError("the board closed the connection")
            buf += chunk


def run_socket(board: SocketBoard, items, seq0: int = 0x5000) -> list[bytes]:
    return [board.exchange(data, (seq0 + i) & 0xFFFF) for i, (_, data) in enumerate(items)]


#: Reply ops whose first ``cycles`` bytes may differ, and how many (docs/protocol.md).
CYCLES_MAY_DIFFER = {p.Op.RUN | p.ACK_BIT: "RUN cycles", p.Op.PROG_RUN | p.ACK_BIT:
                     "PROG_RUN cycles"}


def _packets(raw: bytes) -> list[tuple]:
    dec = p.FrameDecoder()
    return [(q.ver, q.op, q.seq, q.payload) for q in dec.feed(raw)]


def compare(model: bytes, rtl: bytes) -> str | None:
    """None if the replies are the same bytes, or differ only in the fields allowed to
    differ (:data:`CYCLES_MAY_DIFFER`); else a one-line description of the difference."""
    if model == rtl:
        return None
    a, b = _packets(model), _packets(rtl)
    if len(a) != len(b):
        return f"{len(a)} reply frames on model://, {len(b)} on the RTL board"
    for x, y in zip(a, b, strict=True):
        if x == y:
            continue
        if x[:3] == y[:3] and x[1] in CYCLES_MAY_DIFFER and len(x[3]) == len(y[3]):
            if x[1] == p.Op.RUN | p.ACK_BIT and x[3][4:] == y[3][4:]:
                continue  # cycles u32, then the beats stored
            if x[1] == p.Op.PROG_RUN | p.ACK_BIT:
                continue  # total and per-op cycles: all of it is cycles
        return (f"op 0x{x[1]:02x} seq {x[2]}: model:// {x[3][:24].hex()} vs RTL "
                f"{y[3][:24].hex()} (op 0x{y[1]:02x})")
    return "the same packets in different bytes"
