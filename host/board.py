"""The host driver: a board (real, simulated or the Python reference) behind a transport.

>>> with open_board("model://configs/demo.yaml") as board:       # doctest: +SKIP
...     board.info()["units"][0]["name"]
...     c = board.gemm(a, b)                  # same result as `tensorfab run` on the unit
...     y = board.sparse_matmul(w, x, mode="2:4")

Every request is a protocol v1 frame (:mod:`host.protocol`) with a fresh sequence number; its
reply is awaited at most ``timeout`` seconds (plus the expected run time for RUN), then the same
bytes are sent again, up to ``retries`` times; replies that do not match (CRC, COBS, ``seq``,
``op``, length) are discarded. The board answers a repeated request from its cache without
executing it again, so retries are safe. A NAK is final.

Unit operations validate their arrays exactly like ``tensorfab run`` (the family's
``check_inputs``) before anything is sent, schedule them with the family's own ``schedule``,
split problems larger than the board's buffers into several RUNs (along M and N, or O and B;
K must fit), and check after every RUN that the board did not reset in between (the STATUS
counters; see docs/protocol.md, "Board reset"), re-sending the chunk if it did.
"""

from __future__ import annotations

import json
import math
import random
import time
from contextlib import nullcontext

import numpy as np
from tqdm import tqdm

from generators.errors import ArrayError, UserError

from . import protocol as p
from .info import DEFAULT_INFO_DEADLINE, InfoError, parse_info
from .tensor import as_code_arrays, pack_beats, unpack_beats
from .transport import Transport, open_transport

__all__ = ["open_board", "Board", "BoardError", "DEFAULT_TIMEOUT", "DEFAULT_RETRIES"]

DEFAULT_TIMEOUT = 1.0
DEFAULT_RETRIES = 5
#: Rounds of one chunk (write, run, read) that may be lost to board resets before giving up.
RESET_ROUNDS = 3


class BoardError(UserError):
    """A board that does not answer, refuses a request, or answers something impossible.
    ``str(err)`` is one line starting with the board's URL; ``nak`` is the board's
    :class:`~host.protocol.NakError` when it refused the request."""

    def __init__(self, message: str, nak: p.NakError | None = None):
        super().__init__(message)
        self.nak = nak


def open_board(url: str, timeout: float = DEFAULT_TIMEOUT, retries: int = DEFAULT_RETRIES,
               progress: bool | None = None,
               info_deadline: float = DEFAULT_INFO_DEADLINE) -> Board:
    """Connect to the board at ``url`` and read its design description.

    Parameters
    ----------
    url:
        ``socket://HOST:PORT``, ``serial://DEVICE[?baud=N]`` or a device path, or
        ``model://CONFIG`` (see :mod:`host.transport`).
    timeout:
        Seconds to wait for each reply before re-sending the request (RUN waits longer by the
        expected run time).
    retries:
        Re-sends of one request before giving up with :class:`BoardError`.
    progress:
        Show a tqdm progress bar on transfers that take longer than a second: True, False,
        or None (only when stderr is a terminal).
    info_deadline:
        Seconds the whole design-description download may take (all its INFO pieces).

    Raises
    ------
    UserError
        A bad URL, a board that cannot be reached or does not answer (after retries), or a
        design description that cannot be read.
    """
    if not (isinstance(timeout, (int, float)) and math.isfinite(timeout) and timeout > 0):
        raise UserError(f"timeout {timeout!r} is not allowed (allowed: seconds > 0)")
    if not (isinstance(retries, int) and 0 <= retries <= 1000):
        raise UserError(f"retries {retries!r} is not allowed (allowed: 0..1000)")
    if not (isinstance(info_deadline, (int, float)) and math.isfinite(info_deadline)
            and info_deadline > 0):
        raise UserError(f"info_deadline {info_deadline!r} is not allowed (allowed: seconds > 0)")
    transport = open_transport(url, timeout)
    try:
        return Board(transport, timeout=timeout, retries=retries, progress=progress,
                     info_deadline=info_deadline)
    except BaseException:
        transport.close()
        raise


def _ints_in(values, lo: int, hi: int) -> bool:
    return all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and lo <= v <= hi
               for v in values)


class _Unit:
    """One unit of the design, as the description names it."""

    def __init__(self, index: int, desc: dict, url: str):
        self.index = index
        self.name = desc["name"]
        self.kind = desc["unit"]
        self.desc = desc
        self.streams = list(desc["streams"].items())
        self.modes = dict(desc.get("modes") or {})
        self._url = url
        self._fam = None
        self._params = None

    def family(self):
        """(family, params), loaded on first use (a unit this version cannot drive is an error
        only when it is used)."""
        if self._fam is None:
            # local: pydantic and the config models (about 0.5 s) only once a unit is used
            from generators.config import parse_config
            from generators.units import family

            fam = family(self.kind)
            cfg = parse_config(self.desc["config"], f"{self._url}: unit {self.name}")
            self._fam, self._params = fam, fam.params(cfg)
        return self._fam, self._params


class Board:
    """A connected board (see :func:`open_board`). Use as a context manager, or ``close()``.

    Attributes
    ----------
    stats:
        Counters since opening: ``requests``, ``retries``, ``discarded`` (replies distrusted),
        ``resets`` (board resets detected and recovered), ``wire_out``/``wire_in`` (link bytes)
        and ``payload_out``/``payload_in`` (beat bytes written and read).
    last_run:
        ``{"runs", "cycles"}`` of the last unit operation (``cycles`` summed over its RUNs).
    """

    def __init__(self, transport: Transport, timeout: float = DEFAULT_TIMEOUT,
                 retries: int = DEFAULT_RETRIES, progress: bool | None = None,
                 info_deadline: float = DEFAULT_INFO_DEADLINE):
        self.transport = transport
        self.info_deadline = float(info_deadline)
        self.url = transport.url
        self.timeout = float(timeout)
        self.retries = int(retries)
        self.progress = progress
        self.decoder = p.FrameDecoder()
        self._seq = random.randrange(1 << 16)  # a fresh start: no stale duplicate-cache hit
        self.stats = dict(requests=0, retries=0, discarded=0, resets=0, wire_out=0, wire_in=0,
                          payload_out=0, payload_in=0)
        self.last_run: dict = {}
        self._marker: p.Status | None = None
        self._bar = None
        self._send(b"\x00")  # end whatever partial frame the board may hold
        self._desc = self._fetch_info()
        self.max_payload = self._desc["max_payload"]  # checked: header + largest beat fit
        self.units = [_Unit(i, u, self.url) for i, u in enumerate(self._desc["units"])]

    # -- context manager ---------------------------------------------------------------------

    def __enter__(self) -> Board:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.transport.close()

    # -- requests ----------------------------------------------------------------------------

    def _send(self, data: bytes) -> None:
        self.stats["wire_out"] += len(data)
        try:
            self.transport.write(data)
        except UserError:
            # a server that refused or ended the session says why before it closes
            self._session_closed()
            raise

    def _session_closed(self) -> None:
        """Raise the session NAK (BUSY, IDLE) among the bytes still to read, if any."""
        try:
            data = self.transport.read(0.2)
        except UserError:
            return
        for pkt in self.decoder.feed(data):
            code = p.session_code(pkt)
            if code is not None:
                raise BoardError(f"{self.url}: {p.SESSION_CODES[code]}") from None

    def _transact(self, op: int, payload: bytes, parse, wait: float | None = None,
                  nak_ok: bool = False, deadline: float | None = None):
        """Send one request and return ``parse(reply payload)``; retries on silence. An
        overall ``deadline`` (``time.monotonic()``) ends the retries early."""
        self._seq = (self._seq + 1) & 0xFFFF
        seq = self._seq
        frame = p.encode_frame(op, seq, payload)
        wait = self.timeout if wait is None else wait
        tries = self.retries + 1
        self.stats["requests"] += 1
        for attempt in range(tries):
            if attempt:
                self.stats["retries"] += 1
                self._send(b"\x00" + frame)  # the 0x00 ends any frame the board half-holds
            else:
                self._send(frame)
            until = time.monotonic() + wait
            if deadline is not None:
                until = min(until, deadline)
            while (left := until - time.monotonic()) > 0:
                try:
                    data = self.transport.read(left)
                except UserError:
                    self._session_closed()
                    raise
                if not data:
                    continue
                self.stats["wire_in"] += len(data)
                for pkt in self.decoder.feed(data):
                    try:
                        return parse(p.reply_payload(pkt, op, seq))
                    except p.SessionClosed as err:
                        raise BoardError(f"{self.url}: {err}") from None
                    except p.ReplyMismatch:
                        self.stats["discarded"] += 1
                    except p.NakError as nak:
                        if nak_ok:
                            return nak
                        raise BoardError(f"{self.url}: {nak}", nak) from None
            if deadline is not None and time.monotonic() >= deadline:
                break
        raise BoardError(f"{self.url}: no reply after {attempt + 1} tries (timeout {wait:g} s)")

    def _fetch_info(self) -> dict:
        """The design description, read in INFO pieces within ``info_deadline`` seconds and
        checked whole (:func:`host.info.parse_info`) before anything uses it."""
        parts, offset, total = [], 0, None
        start = time.monotonic()
        deadline = start + self.info_deadline
        def late() -> BoardError:
            return BoardError(f"{self.url}: the design description ({offset} of "
                              f"{'?' if total is None else total} bytes read) took longer than "
                              f"info_deadline = {self.info_deadline:g} s")

        while total is None or offset < total:
            if time.monotonic() >= deadline:
                raise late()
            try:
                tot, chunk = self._transact(p.Op.INFO, offset.to_bytes(2, "little"),
                                            lambda pl, o=offset: p.parse_info_reply(pl, o),
                                            deadline=deadline)
            except BoardError as err:
                if err.nak is None and time.monotonic() >= deadline:
                    raise late() from None  # the deadline, not the piece, ran out
                raise
            if total is not None and tot != total:
                raise BoardError(f"{self.url}: the design description changed size while "
                                 "being read (did the board reset?)")
            total = tot
            parts.append(chunk)
            offset += len(chunk)
        try:
            return parse_info(b"".join(parts))
        except InfoError as err:
            raise BoardError(f"{self.url}: the design description is unusable: {err}") \
                from None

    # -- low level ---------------------------------------------------------------------------

    def info(self) -> dict:
        """The design description (docs/protocol.md): name, board, hash, clock_hz,
        max_payload and ``units`` with their config, modes and stream buffers."""
        return json.loads(json.dumps(self._desc))

    def status(self) -> p.Status:
        """The board's counters (STATUS)."""
        return self._transact(p.Op.STATUS, b"", p.parse_status_reply)

    def clear(self) -> None:
        """Zero the board's counters (CLEAR)."""
        self._transact(p.Op.CLEAR, b"", p.parse_clear_reply)
        self._marker = None

    def _buffer(self, buf: int) -> dict:
        for u in self.units:
            for _, s in u.streams:
                if s["buffer"] == buf:
                    return s
        raise UserError(f"buffer {buf} is not a buffer of this design (allowed: 0.."
                        f"{sum(len(u.streams) for u in self.units) - 1})")

    def write(self, buf: int, beat: int, data: bytes) -> None:
        """Write whole beats ``data`` into buffer ``buf`` from beat ``beat`` (as many WRITE
        frames as needed)."""
        spec = self._buffer(buf)
        bb = spec["beat_bytes"]
        data = bytes(data)
        if len(data) % bb or beat < 0 or beat + len(data) // bb > spec["depth"]:
            raise UserError(f"write of {len(data)} bytes at beat {beat} does not fit buffer "
                            f"{buf} (allowed: whole {bb}-byte beats within {spec['depth']})")
        per = (self.max_payload - 5) // bb * bb
        for pos in range(0, len(data), per):
            chunk = data[pos:pos + per]
            self._transact(p.Op.WRITE, buf.to_bytes(1, "little")
                           + (beat + pos // bb).to_bytes(4, "little") + chunk,
                           p.parse_write_reply)
            self.stats["payload_out"] += len(chunk)
            self._tick(len(chunk))

    def read(self, buf: int, beat: int, count: int) -> bytes:
        """Read ``count`` beats of buffer ``buf`` from beat ``beat``."""
        spec = self._buffer(buf)
        bb = spec["beat_bytes"]
        if count < 0 or beat < 0 or beat + count > spec["depth"]:
            raise UserError(f"read of {count} beats at beat {beat} does not fit buffer {buf} "
                            f"(allowed: within {spec['depth']} beats)")
        per = max(1, self.max_payload // bb)
        out = bytearray()
        for pos in range(0, count, per):
            n = min(per, count - pos)
            out += self._transact(p.Op.READ, buf.to_bytes(1, "little")
                                  + (beat + pos).to_bytes(4, "little") + n.to_bytes(2, "little"),
                                  lambda pl, n=n: p.parse_read_reply(pl, n, bb))
            self.stats["payload_in"] += n * bb
            self._tick(n * bb)
        return bytes(out)

    def run_raw(self, unit: int, mode: int, dims, beats, expect_cycles: int = 0):
        """One RUN: ``(cycles, beats stored per output stream)``; the arguments are checked
        against the design (unit index, mode byte, three u32 dims, one u32 count per stream)
        before anything is sent."""
        if isinstance(unit, bool) or not isinstance(unit, int) or \
                not 0 <= unit < len(self.units):
            raise UserError(f"run_raw: unit {unit!r} (allowed: 0..{len(self.units) - 1})")
        u = self.units[unit]
        dims, beats = tuple(dims), tuple(beats)
        u32 = (1 << 32) - 1
        if not _ints_in(dims, 0, u32) or len(dims) != 3:
            raise UserError(f"run_raw: dims {dims!r:.60} (allowed: 3 integers 0..{u32})")
        if len(beats) != len(u.streams) or not _ints_in(beats, 0, u32):
            raise UserError(f"run_raw: beats {beats!r:.60} (allowed: {len(u.streams)} integers "
                            f"0..{u32}, one per stream of unit {u.name})")
        if not _ints_in((mode,), 0, 255):
            raise UserError(f"run_raw: mode {mode!r} (allowed: 0..255)")
        outs = sum(1 for _, s in u.streams if s["dir"] == "out")
        cps = self.transport.cycles_per_second or self._desc.get("clock_hz") or 1e6
        wait = self.timeout + expect_cycles / cps
        return self._transact(p.Op.RUN, p.run_payload(unit, mode, dims, beats),
                              lambda pl: p.parse_run_reply(pl, outs), wait=wait)

    # -- protocol 2: tensor memory and programs (docs/programs.md) ----------------------------

    @property
    def tensor_memory(self) -> dict | None:
        """INFO's ``tensor_memory`` (``banks``, ``bank_bytes``, ``word_bytes``), or ``None`` on
        a protocol-1 design."""
        tm = self._desc.get("tensor_memory")
        return dict(tm) if tm else None

    def _need_tm(self, what: str) -> dict:
        tm = self.tensor_memory
        if tm is None:
            raise UserError(f"{self.url}: {what} needs a design with a tensor memory "
                            f"(protocol 2); this design {self._desc.get('name')} has none")
        return tm

    def tm_write(self, bank: int, addr: int, data: bytes) -> None:
        """Write ``data`` into tensor-memory bank ``bank`` from byte ``addr`` (TM_WRITE
        frames of at most ``max_payload``)."""
        tm = self._need_tm("tm_write")
        data = bytes(data)
        if not 0 <= bank < tm["banks"] or addr < 0 or addr + len(data) > tm["bank_bytes"]:
            raise UserError(f"tm_write of {len(data)} bytes at {addr} of bank {bank} (allowed: "
                            f"banks 0..{tm['banks'] - 1}, bytes 0..{tm['bank_bytes'] - 1})")
        per = self.max_payload - 5
        for pos in range(0, len(data), per):
            chunk = data[pos:pos + per]
            self._transact(p.Op.TM_WRITE, p.tm_write_payload(bank, addr + pos, chunk),
                           p.parse_write_reply)
            self.stats["payload_out"] += len(chunk)

    def tm_scatter(self, bank: int, addr: int, chunk: int, pitch: int, count: int,
                   data: bytes) -> None:
        """Write ``count`` pieces of ``chunk`` bytes, piece ``i`` at ``addr + i * pitch`` of
        bank ``bank``, whose bytes in order are ``data`` repeated (TM_SCATTER frames,
        docs/programs.md): all the pieces (no padding between them crosses the link), one
        piece for every place, or one byte to fill. ``data`` longer than a frame holds must
        be all ``chunk * count`` bytes."""
        tm = self._need_tm("tm_scatter")
        data = bytes(data)
        if chunk < 1 or count < 0 or pitch < chunk or not data or \
                len(data) > chunk * max(count, 1):
            raise UserError(f"tm_scatter of {count} pieces of {chunk} bytes {pitch} apart from "
                            f"{len(data)} bytes (allowed: chunk >= 1, pitch >= chunk, 1 to "
                            "chunk * count bytes of data)")
        if count == 0:
            return
        end = addr + (count - 1) * pitch + chunk
        if not 0 <= bank < tm["banks"] or addr < 0 or end > tm["bank_bytes"]:
            raise UserError(f"tm_scatter to bytes {addr}..{end - 1} of bank {bank} (allowed: "
                            f"banks 0..{tm['banks'] - 1}, bytes 0..{tm['bank_bytes'] - 1})")
        cap = self.max_payload - p.TM_SCATTER_HEAD
        n_data = len(data)
        if n_data > cap and n_data != chunk * count:
            raise UserError(f"tm_scatter data of {n_data} bytes (allowed: at most {cap}, or "
                            f"all {chunk * count} bytes of the pieces)")
        i = 0
        while i < count:
            if n_data <= cap:
                # the repeated data fits a frame: rotate it to where piece i starts
                n = min(count - i, 0xFFFF)
                rot = i * chunk % n_data
                frame = (data[rot:] + data[:rot])[:n * chunk]
            elif chunk > cap:
                # a piece longer than a frame: plain writes
                self.tm_write(bank, addr + i * pitch, data[i * chunk:(i + 1) * chunk])
                i += 1
                continue
            else:
                n = min(count - i, cap // chunk, 0xFFFF)
                frame = data[i * chunk:(i + n) * chunk]
            self._transact(p.Op.TM_SCATTER,
                           p.tm_scatter_payload(bank, addr + i * pitch, chunk, pitch, n, frame),
                           p.parse_write_reply)
            self.stats["payload_out"] += len(frame)
            i += n

    def tm_read(self, bank: int, addr: int, count: int) -> bytes:
        """Read ``count`` bytes of bank ``bank`` from byte ``addr`` (TM_READ frames)."""
        tm = self._need_tm("tm_read")
        if not 0 <= bank < tm["banks"] or addr < 0 or count < 0 or \
                addr + count > tm["bank_bytes"]:
            raise UserError(f"tm_read of {count} bytes at {addr} of bank {bank} (allowed: "
                            f"banks 0..{tm['banks'] - 1}, bytes 0..{tm['bank_bytes'] - 1})")
        out = bytearray()
        per = self.max_payload
        for pos in range(0, count, per):
            n = min(per, count - pos)
            out += self._transact(p.Op.TM_READ, p.tm_read_payload(bank, addr + pos, n),
                                  lambda pl, n=n: p.parse_tm_read_reply(pl, n))
            self.stats["payload_in"] += n
        return bytes(out)

    def prog_write(self, addr: int, data: bytes) -> None:
        """Write program bytes into program memory from byte ``addr`` (PROG_WRITE frames)."""
        self._need_tm("prog_write")
        size = int(self._desc.get("program_bytes", 0))
        data = bytes(data)
        if addr < 0 or addr + len(data) > size:
            raise UserError(f"a program of {len(data)} bytes at {addr} does not fit the "
                            f"program memory (allowed: {size} bytes)")
        per = self.max_payload - 4
        for pos in range(0, len(data), per):
            chunk = data[pos:pos + per]
            self._transact(p.Op.PROG_WRITE, p.prog_write_payload(addr + pos, chunk),
                           p.parse_write_reply)
            self.stats["payload_out"] += len(chunk)

    def prog_run(self, addr: int = 0, nops: int | None = None, expect_cycles: int = 0
                 ) -> tuple[int, tuple[int, ...]]:
        """Run the program at ``addr`` (one PROG_RUN): ``(total_cycles, cycles per op)``."""
        self._need_tm("prog_run")
        cps = self.transport.cycles_per_second or self._desc.get("clock_hz") or 1e6
        out = self._transact(p.Op.PROG_RUN, p.prog_run_payload(addr),
                             lambda pl: p.parse_prog_run_reply(pl, nops),
                             wait=self.timeout + expect_cycles / cps)
        self.last_run = {"runs": 1, "cycles": out[0], "op_cycles": out[1]}
        return out

    def compile(self, graph, **options):
        """Compile a :class:`host.Graph` for this board (see :mod:`host.graph`): checks the
        design can run it, allocates the tensor memory, writes the weights and the program
        once; returns the callable :class:`host.graph.Program`."""
        from .graph import compile_graph

        return compile_graph(self, graph, **options)

    # -- units -------------------------------------------------------------------------------

    def unit(self, kind_or_name: str) -> _Unit:
        """The unit named ``kind_or_name``, or the first unit of that family."""
        for u in self.units:
            if u.name == kind_or_name:
                return u
        for u in self.units:
            if u.kind == kind_or_name:
                return u
        names = ", ".join(f"{u.name} ({u.kind})" for u in self.units)
        raise UserError(f"{self.url}: the design has no {kind_or_name} unit (units: {names})")

    def gemm(self, a, b, unit: str = "mac_array", requant: dict | None = None) -> np.ndarray:
        """``c = a @ b`` on a mac_array unit, with the accumulator's overflow rule (the codes
        ``tensorfab run`` gives). ``requant``: the epilogue's arrays (``bias``,
        ``multiplier``, ``shift`` per column of ``c`` or scalar; ``zero_point``, ``act_min``,
        ``act_max``) for a unit with the ``requant`` block; ``c`` is then codes of its
        ``out``."""
        return self.run(unit, self._with_requant(unit, {"a": a, "b": b}, requant))["c"]

    def sparse_matmul(self, w, x, mode: str | None = None, unit: str = "sparse_chain",
                      requant: dict | None = None) -> np.ndarray:
        """``y = w @ x`` on a sparse_chain unit; ``w`` must be ``mode``-sparse (default: the
        unit's first mode). ``requant``: as :meth:`gemm`'s, per row of ``y``."""
        return self.run(unit, self._with_requant(unit, {"w": w, "x": x}, requant),
                        mode=mode)["y"]

    def _with_requant(self, unit: str, arrays: dict, requant: dict | None) -> dict:
        """``arrays`` plus the epilogue's; a unit without the epilogue refuses ``requant=``
        (and a unit with it needs one: its ``multiplier`` has no default)."""
        if requant is None:
            return arrays
        from generators.requant.epilogue import PARAM_ARRAYS

        u = self.unit(unit)
        _, params = u.family()
        if getattr(params, "requant", None) is None:
            raise UserError(f"requant=: unit {u.name} ({u.kind}) has no requant epilogue "
                            "(allowed: requant= only for a unit whose config has a requant "
                            "block)")
        if not isinstance(requant, dict):
            raise UserError(f"requant=: expected a dict of arrays, got {type(requant).__name__}")
        extra = sorted(set(requant) - set(PARAM_ARRAYS))
        if extra:
            raise ArrayError(f"requant: unexpected array {extra[0]!r} (allowed: "
                             f"{', '.join(PARAM_ARRAYS)})")
        return {**arrays, **requant}

    def softmax(self, x, unit: str = "softmax") -> np.ndarray:
        """Row-wise softmax codes on a softmax unit (a design without one is an error)."""
        return self.run(unit, {"x": x})["y"]

    def gelu(self, x, unit: str = "gelu") -> np.ndarray:
        """Element-wise GELU codes on a gelu unit (a design without one is an error)."""
        return self.run(unit, {"x": x})["y"]

    def run(self, unit: str, arrays: dict, mode: str | None = None) -> dict:
        """Run ``unit`` (a name, or the first unit of a family) on ``arrays`` (the names of
        ``tensorfab run``); returns the output arrays. Validation happens before anything is
        sent; problems larger than the buffers become several RUNs."""
        u = self.unit(unit)
        fam, params = u.family()
        if mode is not None and not fam.has_modes:
            raise UserError(f"mode {mode!r}: unit {u.name} ({u.kind}) has no modes")
        try:
            mode = fam.mode(params, mode)
        except ValueError as err:
            raise ArrayError(str(err)) from None
        opts = {"mode": mode}
        try:
            arrays = fam.check_inputs(params, as_code_arrays(arrays), **opts)
        except ValueError as err:
            raise ArrayError(str(err)) from None
        mode_code = u.modes[mode] if mode is not None else 0
        chunks = self._plan(u, fam, params, arrays, opts)
        outs = {name: None for name in fam.out_arrays}
        self.last_run = {"runs": 0, "cycles": 0}
        total = sum(self._chunk_bytes(u, fam, params, c, opts) for c in chunks)
        with self._progress(total):
            for sel in chunks:
                part, cycles = self._run_chunk(u, fam, params, sel["arrays"], opts, mode_code)
                self.last_run["runs"] += 1
                self.last_run["cycles"] += cycles
                if len(chunks) == 1:
                    return part
                for name, val in part.items():
                    val = np.asarray(val)
                    if outs.get(name) is None:
                        shape = sel["out_shape"] or (len(arrays["x"]), *val.shape[1:])
                        outs[name] = np.zeros(shape, dtype=val.dtype)
                    outs[name][sel["out_index"]] = val.reshape(outs[name][sel["out_index"]]
                                                               .shape)
        if chunks and chunks[0].get("final_shape") is not None:
            outs = {k: v.reshape(chunks[0]["final_shape"]) for k, v in outs.items()}
        return outs

    # -- splitting ---------------------------------------------------------------------------

    def _plan(self, u: _Unit, fam, params, arrays: dict, opts: dict) -> list[dict]:
        depth = {name: s["depth"] for name, s in u.streams}

        def fits(*dims):
            counts = fam.stream_beats(params, dims, **opts)
            return all(counts[s] <= depth[s] for s in counts)

        whole = {"arrays": arrays}
        shape = tuple(fam.shape_key(arrays))
        if fits(*shape):
            return [whole]
        if fam.split.kind in ("rows", "elements"):
            return self._plan_rows(u, fits, arrays, shape, flat=fam.split.kind == "elements")
        if fam.split.kind != "gemm":
            raise ArrayError(f"shape {shape} needs more beats than unit {u.name}'s buffers "
                             f"on {self.url} hold (buffer_bytes = "
                             f"{self._desc.get('buffer_bytes', '?')}; this unit is not split "
                             "into several runs)")
        d0, k, d2 = shape
        if not fits(1, k, 1):
            lo, hi = 1, k  # the longest K that fits one output element
            while lo < hi:
                mid = (lo + hi + 1) // 2
                lo, hi = (mid, hi) if fits(1, mid, 1) else (lo, mid - 1)
            limit = lo if fits(1, lo, 1) else 0
            raise ArrayError(f"K = {k} is too long for unit {u.name}'s buffers on "
                             f"{self.url} (allowed: K <= {limit} with buffer_bytes = "
                             f"{self._desc.get('buffer_bytes', '?')})")
        best = (0, 1, 1)
        cands = {d2} | {min(d2, 1 << j) for j in range(d2.bit_length() + 1)}
        cands |= {max(1, d2 // (1 << j)) for j in range(d2.bit_length() + 1)}
        for n in sorted(cands, reverse=True):
            if not fits(1, k, n):
                continue
            lo, hi = 1, d0
            while lo < hi:
                mid = (lo + hi + 1) // 2
                lo, hi = (mid, hi) if fits(mid, k, n) else (lo, mid - 1)
            if lo * n > best[0]:
                best = (lo * n, lo, n)
        _, m0, n0 = best
        (ra, rax), (ca, cax) = fam.split.rows, fam.split.cols
        chunks = []
        for i in range(0, d0, m0):
            for j in range(0, d2, n0):
                sub = dict(arrays)
                sub[ra] = np.take(arrays[ra], np.arange(i, min(d0, i + m0)), axis=rax)
                sub[ca] = np.take(arrays[ca], np.arange(j, min(d2, j + n0)), axis=cax)
                for pairs, lo, hi in ((fam.split.row_with, i, min(d0, i + m0)),
                                      (fam.split.col_with, j, min(d2, j + n0))):
                    for name, ax in pairs:   # e.g. MX scales, cut with their operand
                        if name in sub:
                            sub[name] = np.take(arrays[name], np.arange(lo, hi), axis=ax)
                # per-channel parameters go with their rows/columns; scalars go whole
                for names, lo, hi in ((fam.split.row_arrays, i, min(d0, i + m0)),
                                      (fam.split.col_arrays, j, min(d2, j + n0))):
                    for name in names:
                        if name in sub and np.ndim(sub[name]) == 1:
                            sub[name] = np.asarray(arrays[name])[lo:hi]
                chunks.append({"arrays": sub, "out_shape": (d0, d2),
                               "out_index": (slice(i, i + m0), slice(j, j + n0))})
        return chunks

    def _plan_rows(self, u: _Unit, fits, arrays: dict, shape: tuple, flat: bool) -> list[dict]:
        """Chunks of whole rows of ``x`` (of elements, when ``flat``) as large as the buffers
        hold; the output ``y`` has the rows of ``x`` (``flat``: its shape, flattened while
        running)."""
        x = np.asarray(arrays["x"])
        rows = x.reshape(-1) if flat else x
        rest = tuple(shape[1:])
        if not fits(1, *rest):
            raise ArrayError(f"one row of shape {list(x.shape[1:])} needs more beats than unit "
                             f"{u.name}'s buffers on {self.url} hold (buffer_bytes = "
                             f"{self._desc.get('buffer_bytes', '?')})")
        lo, hi = 1, len(rows)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if fits(mid, *rest) else (lo, mid - 1)
        chunks = []
        for i in range(0, len(rows), lo):
            sub = dict(arrays, x=rows[i:i + lo])
            out_shape = (len(rows),) if flat else None
            chunks.append({"arrays": sub, "out_shape": out_shape, "rows": (i, i + lo),
                           "out_index": slice(i, i + lo), "final_shape": x.shape if flat
                           else None})
        return chunks

    def _chunk_bytes(self, u: _Unit, fam, params, chunk: dict, opts: dict) -> int:
        counts = fam.stream_beats(params, fam.shape_key(chunk["arrays"]), **opts)
        return sum(counts[name] * s["beat_bytes"] for name, s in u.streams)

    # -- one RUN, safe against resets --------------------------------------------------------

    def _ensure_marker(self) -> p.Status:
        """STATUS with ``naks >= 1``: a reset zeroes the counters, so a later STATUS whose
        ``runs``/``naks`` fell behind this one shows it (docs/protocol.md, "Board reset")."""
        if self._marker is None:
            st = self.status()
            for _ in range(RESET_ROUNDS):
                if st.naks:
                    break
                # A READ far past max_payload is refused on every design: one NAK to count.
                self._transact(p.Op.READ, b"\x00\x00\x00\x00\x00\xff\xff", lambda pl: None,
                               nak_ok=True)
                st = self.status()
            else:
                raise BoardError(f"{self.url}: the board's NAK counter stays at 0 (it resets "
                                 "continually, or does not count NAKs as docs/protocol.md says)")
            self._marker = st
        return self._marker

    def _run_chunk(self, u: _Unit, fam, params, arrays: dict, opts: dict, mode_code: int):
        inputs, out_counts, ctx = fam.schedule(params, arrays, **opts)
        dims = tuple(int(d) for d in fam.shape_key(arrays))
        dims = dims + (0,) * (3 - len(dims))
        packed, counts = {}, []
        for name, s in u.streams:
            if s["dir"] == "in":
                beats = pack_beats(s["fields"], inputs[name], s["beat_bytes"])
                packed[name] = beats.tobytes()
                counts.append(len(beats))
            else:
                counts.append(int(out_counts[name]))
        for _ in range(RESET_ROUNDS):
            before = self._ensure_marker()
            for name, s in u.streams:
                if s["dir"] == "in":
                    self.write(s["buffer"], 0, packed[name])
            expect = fam.expected_cycles(params, arrays, **opts)
            try:
                cycles, stored = self.run_raw(u.index, mode_code, dims, counts, expect)
            except BoardError as err:
                # The reference board refuses beats no schedule makes, which is what a reset
                # leaves in the buffers; any other refusal is final.
                if err.nak is None or err.nak.code != p.NakCode.BAD_RUN:
                    raise
                if self._counted(before, runs=0, naks=1):
                    raise
                self._reset_seen()
                continue
            raw = {}
            outs = [(name, s) for name, s in u.streams if s["dir"] == "out"]
            for (name, s), n in zip(outs, stored, strict=True):
                if n != out_counts[name]:
                    raise BoardError(f"{self.url}: unit {u.name} stored {n} beats on {name} "
                                     f"(expected {out_counts[name]})")
                raw[name] = self.read(s["buffer"], 0, n)
            after = self._counted(before, runs=1, naks=0)
            if after:
                self._marker = after
                received = {name: unpack_beats(s["fields"], raw[name], out_counts[name])
                            for name, s in outs}
                return fam.assemble(params, ctx, received), cycles
            self._reset_seen()
        raise BoardError(f"{self.url}: the board reset during the operation {RESET_ROUNDS} "
                         "times in a row")

    def _counted(self, mark: p.Status, runs: int, naks: int) -> p.Status | None:
        """STATUS, if the board counted exactly ``runs`` runs and ``naks`` NAKs since
        ``mark``; ``None`` if not (it reset, zeroing its counters, or another host used it)."""
        st = self.status()
        return st if (st.runs, st.naks) == (mark.runs + runs, mark.naks + naks) else None

    def _reset_seen(self) -> None:
        """The board reset (or another host used it) during a chunk: its buffers are not what
        was written. Check it still runs the same design; the caller does the chunk again."""
        self.stats["resets"] += 1
        self._marker = None
        desc = self._fetch_info()
        if desc.get("hash") != self._desc.get("hash"):
            raise BoardError(f"{self.url}: the board now runs another design (hash "
                             f"{desc.get('hash')}, was {self._desc.get('hash')})")

    # -- progress ----------------------------------------------------------------------------

    def _progress(self, total: int):
        if self.progress is False or total <= 0:
            return nullcontext()
        bar = tqdm(total=total, unit="B", unit_scale=True, delay=1.0, leave=False,
                   desc=self.url, disable=None if self.progress is None else False)
        board = self

        class _Ctx:
            def __enter__(self):
                board._bar = bar
                return bar

            def __exit__(self, *exc):
                board._bar = None
                bar.close()

        return _Ctx()

    def _tick(self, n: int) -> None:
        if self._bar is not None:
            self._bar.update(n)
