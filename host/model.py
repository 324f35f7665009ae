"""``model://CONFIG``: the Python reference board.

:class:`ModelBoard` speaks protocol v1 byte for byte like the RTL board (docs/protocol.md): the
same design description (:func:`generators.board_info.describe_bytes`), one buffer of
``buffer_bytes`` per unit stream holding beats, the duplicate-request cache, NAKs and
counters. A RUN turns the input beats back into arrays with the family's ``unschedule``, runs
the family's one golden model, and stores the result as the output beats the unit would emit
(``schedule`` + ``disassemble``). It is fed bytes and returns bytes; :mod:`host.transport`
wraps it as a transport. Building the description imports Amaranth (for the stream layouts),
so this module is loaded only for ``model://`` URLs.
"""

from __future__ import annotations

import json

import numpy as np

from generators.errors import UserError

from . import protocol as p
from .tensor import pack_beats, unpack_beats

__all__ = ["ModelBoard", "board_config"]


def board_config(path: str):
    """A board design from a config file; a unit config becomes a one-unit design on the
    reference board (``board: ulx3s``, default buffers)."""
    from generators.config import BoardConfig, load_config

    cfg = load_config(path)
    if isinstance(cfg, BoardConfig):
        return cfg
    return BoardConfig(name=cfg.name, board="ulx3s", units=(cfg,))


def _beat_mask(spec: dict) -> np.ndarray:
    """Per byte of a beat, the bits a buffer keeps: those below the stream's payload width
    (the highest field bit + 1)."""
    width = max(f["offset"] + f["width"] for f in spec["fields"].values())
    bits = np.arange(8 * spec["beat_bytes"]) < width
    return np.packbits(bits.reshape(-1, 8), axis=1, bitorder="little").reshape(-1)


class _Unit:
    def __init__(self, cfg, desc: dict):
        from generators.units import family

        self.fam = family(cfg.unit)
        self.params = self.fam.params(cfg)
        self.desc = desc
        self.streams = list(desc["streams"].items())
        self.modes = {code: mode for mode, code in desc.get("modes", {}).items()}


class ModelBoard:
    """A board design executed in Python, behind the protocol bytes.

    Parameters
    ----------
    cfg:
        The :class:`~generators.config.BoardConfig` (see :func:`board_config`).
    """

    def __init__(self, cfg):
        from generators.board_info import describe_bytes

        self.cfg = cfg
        self.description = describe_bytes(cfg)
        self.desc = json.loads(self.description)
        self.max_payload = self.desc["max_payload"]
        self.units = [_Unit(u, d) for u, d in zip(cfg.units, self.desc["units"], strict=True)]
        self.buffers_spec = [s for u in self.desc["units"] for s in u["streams"].values()]
        # a beat's bits past its payload width are not stored (the RTL buffers hold
        # ``payload_width`` bits): the mask of the bits kept, per beat byte
        self._beat_masks = [_beat_mask(s) for s in self.buffers_spec]
        self.tm_spec = self.desc.get("tensor_memory")
        self.program_bytes = int(self.desc.get("program_bytes", 0))
        self.power_on()

    def power_on(self) -> None:
        """The state after configuration or a reset: buffers zero, counters zero, no cache."""
        self.buffers = [bytearray(s["depth"] * s["beat_bytes"]) for s in self.buffers_spec]
        self.tm = None
        if self.tm_spec is not None:
            from .program import TensorMemory

            t = self.tm_spec
            self.tm = TensorMemory(t["banks"], t["bank_bytes"], t["word_bytes"])
            self.program = bytearray(self.program_bytes)
        self.decoder = p.FrameDecoder(self.max_payload)
        self.naks = 0
        self.runs = 0
        self._last: tuple | None = None  # (seq, op, crc) of the last request answered
        self._last_reply = b""

    reset = power_on

    # -- bytes in, bytes out -----------------------------------------------------------------

    def feed(self, data: bytes) -> bytes:
        """Take bytes from the host; return the reply bytes they cause."""
        out = bytearray()
        for pkt in self.decoder.feed(data):
            out += self._answer(pkt)
        return bytes(out)

    def _answer(self, pkt: p.Packet) -> bytes:
        # As the RTL engine: the version is checked first (a frame of another version is
        # refused every time it comes), then the duplicate key (seq, op, crc), the CRC being
        # the packet's own last two bytes (docs/protocol.md, "Duplicates").
        crc = p.crc16(p.encode_packet(pkt.op, pkt.seq, pkt.payload, pkt.ver)[:-2])
        key = (pkt.seq, pkt.op, crc)
        if pkt.ver == p.VERSION and key == self._last:
            return self._last_reply  # a retry: answer again, do not execute again
        try:
            if pkt.ver != p.VERSION:
                raise p.NakError(pkt.op, p.NakCode.BAD_VERSION)
            reply = p.ack_frame(pkt.op, pkt.seq, self._execute(pkt.op, pkt.payload))
        except p.NakError as nak:
            self.naks += 1
            reply = p.nak_frame(pkt.op, pkt.seq, nak.code)
        self._last, self._last_reply = key, reply
        return reply

    # -- requests ----------------------------------------------------------------------------

    def _execute(self, op: int, payload: bytes) -> bytes:
        if op == p.Op.INFO:
            offset = p.parse_info_request(payload)
            total = len(self.description)
            if offset > total:
                raise p.NakError(op, p.NakCode.OUT_OF_RANGE)
            chunk = self.description[offset:offset + self.max_payload - 2]
            return p.info_reply(total, chunk)
        if op == p.Op.WRITE:
            buf, beat, data = p.parse_write_request(payload)
            spec = self._buffer(op, buf)
            if len(data) % spec["beat_bytes"]:
                raise p.NakError(op, p.NakCode.BAD_BUFFER)
            count = len(data) // spec["beat_bytes"]
            if beat + count > spec["depth"]:
                raise p.NakError(op, p.NakCode.OUT_OF_RANGE)
            start = beat * spec["beat_bytes"]
            if count:
                kept = np.frombuffer(data, np.uint8).reshape(count, -1) & self._beat_masks[buf]
                self.buffers[buf][start:start + len(data)] = kept.tobytes()
            return b""
        if op == p.Op.READ:
            buf, beat, count = p.parse_read_request(payload)
            spec = self._buffer(op, buf)
            if count * spec["beat_bytes"] > self.max_payload or beat + count > spec["depth"]:
                raise p.NakError(op, p.NakCode.OUT_OF_RANGE)
            start = beat * spec["beat_bytes"]
            return bytes(self.buffers[buf][start:start + count * spec["beat_bytes"]])
        if op == p.Op.RUN:
            # the RTL's order: too short for unit and mode, no such unit, then the unit's
            # own length (docs/protocol.md, "NAK order for RUN")
            if len(payload) < 2:
                raise p.NakError(op, p.NakCode.BAD_LENGTH)
            if payload[0] >= len(self.units):
                raise p.NakError(op, p.NakCode.BAD_UNIT)
            return self._run(p.parse_run_request(payload, len(self.units[payload[0]].streams)))
        if op == p.Op.STATUS:
            p.parse_empty_request(op, payload)
            d = self.decoder
            # ``overflows`` counts bytes lost to a full receive FIFO (a UART's); this board
            # takes every byte, like the RTL's byte face (an over-long frame is a bad frame)
            return p.status_reply(p.Status(0, d.crc_errors, d.bad_frames, 0, self.naks,
                                           self.runs))
        if op == p.Op.CLEAR:
            p.parse_empty_request(op, payload)
            d = self.decoder
            d.crc_errors = d.bad_frames = d.overflows = 0
            self.naks = self.runs = 0
            return b""
        if self.tm is not None and op in (p.Op.TM_WRITE, p.Op.TM_READ, p.Op.PROG_WRITE,
                                          p.Op.PROG_RUN, p.Op.TM_SCATTER):
            return self._execute_v2(op, payload)
        raise p.NakError(op, p.NakCode.BAD_OP)

    # -- protocol 2 (docs/programs.md) -------------------------------------------------------

    def _tm_range(self, op: int, bank: int, addr: int, n: int) -> None:
        if bank >= self.tm.banks:
            raise p.NakError(op, p.NakCode.BAD_BUFFER)
        if addr + n > self.tm.bank_bytes:
            raise p.NakError(op, p.NakCode.OUT_OF_RANGE)

    def _execute_v2(self, op: int, payload: bytes) -> bytes:
        if op == p.Op.TM_WRITE:
            bank, addr, data = p.parse_tm_write_request(payload)
            self._tm_range(op, bank, addr, len(data))
            self.tm.write(bank, addr, data)
            return b""
        if op == p.Op.TM_SCATTER:
            bank, addr, chunk, pitch, count, data = p.parse_tm_scatter_request(payload)
            self._tm_range(op, bank, addr, (count - 1) * pitch + chunk)
            pieces = np.resize(np.frombuffer(data, np.uint8), chunk * count)
            at = addr + np.arange(count)[:, None] * pitch + np.arange(chunk)
            self.tm.mem[bank][at.reshape(-1)] = pieces
            return b""
        if op == p.Op.TM_READ:
            bank, addr, count = p.parse_tm_read_request(payload)
            if bank < self.tm.banks and count > self.max_payload:
                raise p.NakError(op, p.NakCode.OUT_OF_RANGE)  # after BAD_BUFFER, as the RTL
            self._tm_range(op, bank, addr, count)
            return self.tm.read(bank, addr, count)
        if op == p.Op.PROG_WRITE:
            addr, data = p.parse_prog_write_request(payload)
            if addr + len(data) > self.program_bytes:
                raise p.NakError(op, p.NakCode.OUT_OF_RANGE)
            self.program[addr:addr + len(data)] = data
            return b""
        addr = p.parse_prog_run_request(payload)
        return self._prog_run(addr)

    def check_program(self, addr: int):
        """The program at ``addr`` of program memory, checked whole (``ProgramError`` for
        anything the board refuses): op kinds, units, stream counts, modes, descriptors,
        beat counts per stream for the op's dims, and the reply size."""
        from . import program as P

        if addr >= self.program_bytes:
            raise P.ProgramError(f"program address {addr} (allowed: 0..{self.program_bytes - 1})")
        prog = P.from_bytes(bytes(self.program), addr)
        if 4 + 4 * len(prog.ops) > self.max_payload:
            raise P.ProgramError(f"{len(prog.ops)} ops (allowed: at most "
                                 f"{(self.max_payload - 4) // 4}: the reply's cycles)")
        t = self.tm
        for i, o in enumerate(prog.ops):
            if o.kind != P.UNIT_OP:
                raise P.ProgramError(f"op {i}: kind {o.kind} (allowed: {P.UNIT_OP})")
            if o.unit >= len(self.units):
                raise P.ProgramError(f"op {i}: unit {o.unit} (allowed: 0..{len(self.units) - 1})")
            unit = self.units[o.unit]
            if len(o.streams) != len(unit.streams):
                raise P.ProgramError(f"op {i}: {len(o.streams)} streams (allowed: "
                                     f"{len(unit.streams)})")
            opts = self._mode_opts(unit, o.mode, i)
            dims = tuple(int(d) for d in o.dims)
            try:
                want = unit.fam.stream_beats(unit.params, dims, **opts)
            except (ValueError, KeyError, TypeError, UserError):
                raise P.ProgramError(f"op {i}: dims {dims} the unit cannot take") from None
            for (name, spec), d in zip(unit.streams, o.streams, strict=True):
                P.check_descriptor(d, spec["fields"], t.bank_bytes, t.word_bytes, t.banks,
                                   f"op {i} {name}")
                if d.beats != want.get(name, d.beats):
                    raise P.ProgramError(f"op {i} {name}: {d.beats} beats (allowed: "
                                         f"{want[name]} for dims {dims})")
        return prog

    def _mode_opts(self, unit, mode: int, i: int) -> dict:
        from .program import ProgramError

        if unit.modes:
            if mode not in unit.modes:
                raise ProgramError(f"op {i}: mode {mode} (allowed: {sorted(unit.modes)})")
            return {"mode": unit.modes[mode]}
        if mode != 0:
            raise ProgramError(f"op {i}: mode {mode} (allowed: 0)")
        return {}

    def _prog_run(self, addr: int) -> bytes:
        """Check the program whole, run it on a copy of the tensor memory (an op whose beats
        no schedule makes refuses the whole program), then keep the copy."""
        from . import program as P

        op = p.Op.PROG_RUN
        try:
            prog = self.check_program(addr)
        except P.ProgramError:
            raise p.NakError(op, p.NakCode.BAD_PROGRAM) from None
        mem = [bank.copy() for bank in self.tm.mem]
        cycles = []
        for o in prog.ops:
            unit = self.units[o.unit]
            opts = self._mode_opts(unit, o.mode, 0)
            dims = tuple(int(d) for d in o.dims)
            inputs = {}
            for (name, spec), d in zip(unit.streams, o.streams, strict=True):
                if spec["dir"] == "in":
                    inputs[name] = P.play(mem[d.bank], d, spec["fields"], o.mode)
            try:
                arrays = unit.fam.unschedule(unit.params, inputs, dims, **opts)
                arrays = unit.fam.check_inputs(unit.params, arrays, **opts)
            except (ValueError, KeyError, UserError):
                raise p.NakError(op, p.NakCode.BAD_PROGRAM) from None
            outputs = unit.fam.golden(unit.params, arrays, **opts)
            _, _, ctx = unit.fam.schedule(unit.params, arrays, **opts)
            beats = unit.fam.disassemble(unit.params, ctx, outputs)
            for (name, spec), d in zip(unit.streams, o.streams, strict=True):
                if spec["dir"] == "out":
                    P.store(mem[d.bank], d, spec["fields"], beats[name])
            cycles.append(unit.fam.expected_cycles(unit.params, arrays, **opts))
        self.tm.mem = mem
        self.runs += 1
        return p.prog_run_reply(sum(cycles), cycles)

    def _buffer(self, op: int, buf: int) -> dict:
        if buf >= len(self.buffers_spec):
            raise p.NakError(op, p.NakCode.BAD_BUFFER)
        return self.buffers_spec[buf]

    def _run(self, req: p.RunRequest) -> bytes:
        op = p.Op.RUN
        if req.unit >= len(self.units):
            raise p.NakError(op, p.NakCode.BAD_UNIT)
        unit = self.units[req.unit]
        if len(req.beats) != len(unit.streams):
            raise p.NakError(op, p.NakCode.BAD_LENGTH)
        opts = {}
        if unit.modes:
            if req.mode not in unit.modes:
                raise p.NakError(op, p.NakCode.BAD_MODE)
            opts["mode"] = unit.modes[req.mode]
        elif req.mode != 0:
            raise p.NakError(op, p.NakCode.BAD_MODE)
        inputs, wanted = {}, {}
        for (name, spec), n in zip(unit.streams, req.beats, strict=True):
            if n > spec["depth"] or (spec["dir"] == "in" and n == 0):
                raise p.NakError(op, p.NakCode.BAD_RUN)
            if spec["dir"] == "in":
                data = self.buffers[spec["buffer"]][:n * spec["beat_bytes"]]
                inputs[name] = unpack_beats(spec["fields"], data, n)
            else:
                wanted[name] = n
        try:
            arrays = unit.fam.unschedule(unit.params, inputs, req.dims, **opts)
            arrays = unit.fam.check_inputs(unit.params, arrays, **opts)
        except (ValueError, KeyError, UserError):
            # Beats that the family's schedule cannot have made (or codes outside the
            # formats): the RTL would stream them anyway; the reference board cannot model them.
            raise p.NakError(op, p.NakCode.BAD_RUN) from None
        outputs = unit.fam.golden(unit.params, arrays, **opts)
        _, _, ctx = unit.fam.schedule(unit.params, arrays, **opts)
        beats = unit.fam.disassemble(unit.params, ctx, outputs)
        stored = []
        for name, spec in unit.streams:
            if spec["dir"] != "out":
                continue
            fields = beats[name]
            n = min(wanted[name], len(next(iter(fields.values()))))
            data = pack_beats(spec["fields"], {f: np.asarray(v)[:n] for f, v in fields.items()},
                              spec["beat_bytes"])
            self.buffers[spec["buffer"]][:data.size] = data.tobytes()
            stored.append(n)
        self.runs += 1
        cycles = unit.fam.expected_cycles(unit.params, arrays, **opts)
        return p.run_reply(cycles, stored)
