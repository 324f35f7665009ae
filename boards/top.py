"""The board top-level: host link, protocol engine, stream buffers and the design's units.

:class:`BoardCore` implements docs/protocol.md on a byte stream: it decodes COBS frames into a
packet RAM (checking the CRC and the length on the way), executes INFO/WRITE/READ/RUN/STATUS/
CLEAR, builds the reply in a reply RAM and sends it COBS-encoded. One request at a time: while a
request executes or its reply is sent, the receive stream is not ready.

:class:`BoardTop` puts a face on it: ``face="bytes"`` exposes the two byte streams (the fast
simulated board, fed by the Verilator harness), ``face="uart"`` the UART pins (real boards and
the pin-level simulation), with a receive FIFO whose overflows STATUS counts.
"""

from __future__ import annotations

import re
from types import SimpleNamespace

from amaranth.hdl import (
    Array,
    Cat,
    ClockDomain,
    ClockSignal,
    Const,
    DomainRenamer,
    Elaboratable,
    Module,
    Mux,
    ResetInserter,
    ResetSignal,
    Shape,
    Signal,
    Value,
    signed,
)
from amaranth.lib import fifo, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from generators.board_info import (
    BOARD_CLOCK_HZ,
    MAX_PAYLOAD,
    beat_bytes,
    buffer_depth,
    describe_bytes,
)
from generators.units import family
from host.program import LOOPS, alignment
from host.protocol import (
    ACK_BIT,
    COBS_MAX,
    CRC_BYTES,
    HEADER_BYTES,
    NAK_OP,
    TM_SCATTER_HEAD,
    VERSION,
    NakCode,
    Op,
)

from .agen import DESC_BITS, DescFields, Player, Storer, StreamLayout, arbitrate
from .crc import INIT, crc16_update
from .uart import UartRx, UartTx, bit_period

PACKET_MAX = HEADER_BYTES + MAX_PAYLOAD + CRC_BYTES
# The protocol's numbers are host.protocol's (one source for both sides of the link). The engine
# compares with ``Op.X.value``, a plain int: Amaranth would cast the enum member itself to a
# 3-bit constant and change the emitted Verilog.

#: A RUN ends when no beat has moved for this many cycles (the host asked for more output
#: beats than the unit makes, or gave inputs that do not fit together): the board answers with
#: the beats it stored instead of wedging.
RUN_WATCHDOG = 1 << 16


class _Stream:
    """One unit stream and its buffer."""

    def __init__(self, name: str, direction: str, width: int, depth: int, port, buffer: int):
        self.name, self.dir, self.width, self.depth = name, direction, width, depth
        self.port, self.buffer = port, buffer
        self.beat_bytes = beat_bytes(width)


class _Runner(Elaboratable):
    """Plays one unit's input buffers into it and captures its outputs (the RUN command).

    Held in reset by the core between runs (``ResetInserter``), so every run starts from a
    clean unit, empty FIFOs and zeroed counters. While ``go`` is high it streams beats
    ``0 .. n-1`` of each input buffer and stores the first ``n`` output beats of each output;
    ``done`` rises when all have moved, or when nothing moved for :data:`RUN_WATCHDOG` cycles.
    """

    FIFO_DEPTH = 4

    def __init__(self, unit, streams: list, own_unit: bool = True):
        self.unit, self.streams = unit, streams
        self.own_unit = own_unit  # else the streams' ports are stand-ins the core connects
        self.go = Signal()
        self.n = {s.name: Signal(32, name=f"n_{s.name}") for s in streams}
        self.raddr = {s.name: Signal(range(s.depth), name=f"raddr_{s.name}")
                      for s in streams if s.dir == "in"}
        self.rdata = {s.name: Signal(s.width, name=f"rdata_{s.name}")
                      for s in streams if s.dir == "in"}
        self.we = {s.name: Signal(name=f"we_{s.name}") for s in streams if s.dir == "out"}
        self.waddr = {s.name: Signal(range(s.depth), name=f"waddr_{s.name}")
                      for s in streams if s.dir == "out"}
        self.wdata = {s.name: Signal(s.width, name=f"wdata_{s.name}")
                      for s in streams if s.dir == "out"}
        self.stored = {s.name: Signal(32, name=f"stored_{s.name}")
                       for s in streams if s.dir == "out"}
        self.cycles = Signal(32)
        self.done = Signal()

    def elaborate(self, platform):
        m = Module()
        if self.own_unit:
            m.submodules.unit = self.unit
        finished, moved, offered = [], [], []
        for s in self.streams:
            port = s.port
            if s.dir == "in":
                q = fifo.SyncFIFO(width=s.width, depth=self.FIFO_DEPTH)
                m.submodules[f"fifo_{s.name}"] = q
                issued = Signal(32, name=f"issued_{s.name}")
                sent = Signal(32, name=f"sent_{s.name}")
                inflight = Signal(name=f"inflight_{s.name}")
                issue = Signal(name=f"issue_{s.name}")
                m.d.comb += [
                    issue.eq(self.go & (issued < self.n[s.name])
                             & (q.level + inflight < self.FIFO_DEPTH)),
                    self.raddr[s.name].eq(issued),
                    q.w_en.eq(inflight),
                    q.w_data.eq(self.rdata[s.name]),
                    port.valid.eq(q.r_rdy),
                    port.payload.eq(q.r_data),
                    q.r_en.eq(port.ready),
                ]
                m.d.sync += inflight.eq(issue)
                with m.If(issue):
                    m.d.sync += issued.eq(issued + 1)
                with m.If(port.valid & port.ready):
                    m.d.sync += sent.eq(sent + 1)
                finished.append(sent >= self.n[s.name])
                moved.append(port.valid & port.ready)
                offered.append(port.valid)
            else:
                stored = self.stored[s.name]
                store = Signal(name=f"store_{s.name}")
                m.d.comb += [
                    port.ready.eq(1),
                    store.eq(self.go & port.valid & (stored < self.n[s.name])),
                    self.we[s.name].eq(store),
                    self.waddr[s.name].eq(stored),
                    self.wdata[s.name].eq(port.payload),
                ]
                with m.If(store):
                    m.d.sync += stored.eq(stored + 1)
                finished.append(stored >= self.n[s.name])
                moved.append(store)

        started = Signal()
        count = Signal(32)
        now = Signal(32)
        any_offer = Signal()
        any_store = Signal()
        m.d.comb += [
            any_offer.eq(Cat(*offered).any()),
            any_store.eq(Cat(*[self.we[k] for k in self.we]).any() if self.we else 0),
            now.eq(Mux(started, count, 0)),
        ]
        with m.If(self.go & (started | any_offer)):
            m.d.sync += [started.eq(1), count.eq(now + 1)]
        with m.If(any_store):
            m.d.sync += self.cycles.eq(now + 1)

        idle = Signal(range(RUN_WATCHDOG + 1))
        with m.If(Cat(*moved).any()):
            m.d.sync += idle.eq(0)
        with m.Elif(self.go & (idle < RUN_WATCHDOG)):
            m.d.sync += idle.eq(idle + 1)
        m.d.comb += self.done.eq(self.go & (Cat(*finished).all() | (idle == RUN_WATCHDOG)))
        return m


def _standin(comp, s: _Stream):
    """A stream interface shaped like unit stream ``s`` of ``comp`` (plain signals)."""
    sig = comp.signature.members[s.name].signature
    return sig.create(path=(f"rs_{s.name}",))


def _le(value, nbytes: int) -> list:
    return [value.word_select(i, 8) if len(value) > 8 * i else Const(0, 8)
            for i in range(nbytes)]


class BoardCore(wiring.Component):
    """The protocol engine of docs/protocol.md on byte streams, with the design's units.

    Parameters
    ----------
    board_cfg : BoardConfig
        The design: its units (instantiated through their family's ``component``) and
        ``buffer_bytes`` per unit stream.

        A design with ``tensor_memory`` (protocol 2, docs/programs.md) keeps all of the
        above and adds the tensor memory's banks, a program memory, a
        :class:`~boards.agen.Player` per unit input stream and a :class:`~boards.agen.Storer`
        per output stream (muxed with the runner onto the unit's ports: ``prog`` says a
        PROG_RUN streams), and serves TM_WRITE, TM_READ, PROG_WRITE and PROG_RUN. PROG_RUN
        checks the whole program
        (the checks of ``host.program.check_descriptor``, plus op kind, unit, stream count,
        mode and the reply size) before its first op runs; then each op loads its
        descriptors, holds the unit and its generators in reset for a cycle and streams until
        every stream has moved its beats (or :data:`RUN_WATCHDOG` cycles without a move). An
        op's cycles count from its first streaming cycle to its last.

    Ports
    -----
    rx : in stream of bytes
        The link's received bytes.
    tx : out stream of bytes
        Bytes to send.
    overflow : in
        A one-cycle pulse per received byte lost before the core (counted in STATUS).
    """

    def __init__(self, board_cfg, gate_units: bool = False):
        self.cfg = board_cfg
        self.gate_units = gate_units
        self.info = describe_bytes(board_cfg)
        if len(self.info) > 0xFFFF:
            raise ValueError(f"design description is {len(self.info)} bytes (allowed: up to "
                             "65535)")
        self.units = []  # (component, [_Stream])
        buf = 0
        for ucfg in board_cfg.units:
            fam = family(ucfg.unit)
            params = fam.params(ucfg)
            comp = fam.component(params)
            modes = len(fam.manifest_extra(params).get("modes", {})) or 1
            streams = []
            for name, member in comp.signature.members.items():
                port = getattr(comp, name)
                width = len(port.payload.as_value())
                direction = "in" if member.flow == In else "out"
                depth = buffer_depth(board_cfg.buffer_bytes, width)
                streams.append(_Stream(name, direction, width, depth, port, buf))
                buf += 1
            self.units.append((comp, streams, modes))
        self.buffers = [s for _, streams, _ in self.units for s in streams]
        sig = {"rx": In(stream.Signature(8)), "tx": Out(stream.Signature(8)),
               "overflow": In(1)}
        if gate_units:
            sig["unit_active"] = Out(len(self.units))
        super().__init__(sig)

    # -- protocol 2: tensor memory, program memory and the program sequencer ------------------
    # (docs/programs.md; only for a design with ``tensor_memory``)

    BODY_TM, BODY_CYC = 3, 4
    #: PROG_RUN's reply holds total_cycles and one u32 per op
    MAX_OPS = (MAX_PAYLOAD - 4) // 4

    def _tm_build(self, m, unit_rst, running, run_unit, prog, proxies):
        """The tensor memory, program memory, the units with a player per input stream and a
        storer per output stream, and the bank arbiters. Returns the engine's handles."""
        tmc = self.cfg.tensor_memory
        x = SimpleNamespace(running=running, run_unit=run_unit, unit_rst=unit_rst, prog=prog)
        x.banks, x.wb = tmc.banks, tmc.word_bytes
        x.bank_bytes = tmc.bank_bytes(self.cfg.board)
        x.pbytes = tmc.program_bytes
        x.lg = x.wb.bit_length() - 1
        words = x.bank_bytes // x.wb
        abits = max(1, (words - 1).bit_length())
        x.max_streams = max(len(s) for _, s, _ in self.units)

        # engine access to the banks (TM_WRITE / TM_READ) while no program runs
        x.bank = Signal(range(max(2, x.banks)))
        x.e_raddr = Signal(abits)
        x.e_waddr = Signal(abits)
        x.e_wdata = Signal(8)
        x.e_we = Signal()
        x.e_be = Signal(x.wb)
        ports = []
        for b in range(x.banks):
            mem = memory.Memory(shape=8 * x.wb, depth=words, init=[])
            m.submodules[f"tm{b}"] = mem
            ports.append((mem.read_port(transparent_for=()), mem.write_port(granularity=8)))
        x.rdata = Array([rp.data for rp, _ in ports])
        m.submodules.progmem = pm = memory.Memory(shape=8, depth=x.pbytes, init=[])
        x.pm_r, x.pm_w = pm.read_port(transparent_for=()), pm.write_port()
        m.submodules.cycmem = cm = memory.Memory(shape=32, depth=self.MAX_OPS, init=[])
        x.cm_r, x.cm_w = cm.read_port(transparent_for=()), cm.write_port()

        # the descriptor of each stream slot of the running op, and the op's mode
        x.slot = [Signal(DESC_BITS, name=f"slot{j}") for j in range(x.max_streams)]
        x.mode = Signal(8)
        x.start = Signal()  # load the descriptors into the running unit's generators
        players, storers = [], []
        x.done, x.moved = [], []
        for i, (comp, streams, _) in enumerate(self.units):
            # the unit beside its runner (as in the runner's reset and clock domain)
            unit = ResetInserter({"sync": unit_rst[i]})(comp)
            if self.gate_units:
                unit = DomainRenamer({"sync": f"u{i}"})(unit)
            m.submodules[f"unit_{self.cfg.units[i].name}"] = unit
            mine = run_unit == i
            done = []
            for j, s in enumerate(streams):
                layout = comp.signature.members[s.name].signature.members["payload"].shape
                sub = proxies[i][j].port  # the runner's stand-in port
                if s.dir == "in":
                    g = Player(layout, x.wb, abits)
                    m.d.comb += [g.mode.eq(x.mode),
                                 s.port.valid.eq(Mux(prog, g.port.valid, sub.valid)),
                                 s.port.payload.eq(Mux(prog, Value.cast(g.port.payload),
                                                       Value.cast(sub.payload))),
                                 g.port.ready.eq(s.port.ready & prog),
                                 sub.ready.eq(s.port.ready & ~prog)]
                    players.append(g)
                else:
                    g = Storer(layout, x.wb, abits)
                    m.d.comb += [g.port.valid.eq(s.port.valid & prog),
                                 sub.valid.eq(s.port.valid & ~prog),
                                 g.port.payload.eq(s.port.payload),
                                 sub.payload.eq(s.port.payload),
                                 s.port.ready.eq(Mux(prog, g.port.ready, sub.ready))]
                    storers.append(g)
                gen = ResetInserter({"sync": unit_rst[i]})(g)
                if self.gate_units:
                    gen = DomainRenamer({"sync": f"u{i}"})(gen)
                m.submodules[f"gen_{self.cfg.units[i].name}_{s.name}"] = gen
                m.d.comb += [g.desc.eq(x.slot[j]), g.start.eq(x.start & mine),
                             g.run.eq(running & prog & mine)]
                done.append(g.done)
                x.moved.append(g.moved)
            x.done.append(Cat(*done).all())

        # fixed-priority bank arbitration: the reads of the players, the writes of the storers
        def bank_of(g):
            return g.desc[0:8]

        rgrant = arbitrate(m, [g.req for g in players], [bank_of(g) for g in players])
        wgrant = arbitrate(m, [g.req for g in storers], [bank_of(g) for g in storers])
        for g, gr in zip(players, rgrant, strict=True):
            m.d.comb += [g.grant.eq(gr), g.rdata.eq(x.rdata[bank_of(g)])]
        for g, gr in zip(storers, wgrant, strict=True):
            m.d.comb += g.grant.eq(gr)
        for b, (rp, wp) in enumerate(ports):
            raddr = x.e_raddr
            for g, gr in zip(players, rgrant, strict=True):
                raddr = Mux(gr & (bank_of(g) == b), g.addr, raddr)
            m.d.comb += rp.addr.eq(raddr)
            waddr, wdata = x.e_waddr, Cat(*[x.e_wdata] * x.wb)
            wen = Mux(x.e_we & (x.bank == b), x.e_be, 0)
            for g, gr in zip(storers, wgrant, strict=True):
                hit = gr & (bank_of(g) == b)
                waddr, wdata = Mux(hit, g.addr, waddr), Mux(hit, g.wdata, wdata)
                wen = Mux(hit, g.be, wen)
            m.d.comb += [wp.addr.eq(waddr), wp.data.eq(wdata), wp.en.eq(wen)]

        # the checks' tables, by (unit, stream slot, kind)
        nb, al = [], []
        for _, streams, _ in self.units:
            for j in range(x.max_streams):
                for kind in (0, 1):
                    if j < len(streams):
                        lay = StreamLayout(streams[j].port.payload.shape())
                        n = lay.nbytes(kind)
                    else:
                        n = 0
                    nb.append(n)
                    al.append(alignment(n, x.wb) if n else 1)
        x.want_nbytes, x.align = nb, al
        x.nstreams = [len(s) for _, s, _ in self.units]
        x.nmodes = [n for _, _, n in self.units]
        return x

    def _tm_exec(self, m, x, u32, hdr, plen, nak, ack):
        """EXEC's branches for the protocol-2 requests."""
        H = HEADER_BYTES
        x.ptr = Signal(33)   # TM/program byte address
        x.n = Signal(16)     # bytes left to move
        x.ri = Signal(range(MAX_PAYLOAD + 1))
        # TM_SCATTER: the piece's start, the byte in it, chunk, pitch, pieces left
        x.sbase = Signal(33)
        x.sc, x.schunk, x.spitch, x.scount = (Signal(16) for _ in range(4))
        with m.Elif(hdr[1] == Op.TM_WRITE.value):
            addr = u32(H + 1)
            with m.If(plen < 5):
                nak(NakCode.BAD_LENGTH)
            with m.Elif(hdr[H] >= x.banks):
                nak(NakCode.BAD_BUFFER)
            with m.Elif(addr + (plen - 5) > x.bank_bytes):
                nak(NakCode.OUT_OF_RANGE)
            with m.Else():
                m.d.sync += [x.bank.eq(hdr[H]), x.ptr.eq(addr), x.n.eq(plen - 5), x.ri.eq(0)]
                m.next = "TW_RD"
        with m.Elif(hdr[1] == Op.TM_SCATTER.value):
            # bank u8, addr u32, chunk u16, pitch u16, count u16, data (repeated)
            addr = u32(H + 1)
            chunk, pitch, count = (Cat(hdr[H + k], hdr[H + k + 1]) for k in (5, 7, 9))
            span = Signal(34)
            m.d.comb += span.eq(addr + (count - 1) * pitch + chunk)
            with m.If((plen <= TM_SCATTER_HEAD) | (chunk == 0) | (count == 0) |
                      (pitch < chunk)):
                nak(NakCode.BAD_LENGTH)
            with m.Elif(hdr[H] >= x.banks):
                nak(NakCode.BAD_BUFFER)
            with m.Elif(span > x.bank_bytes):
                nak(NakCode.OUT_OF_RANGE)
            with m.Else():
                m.d.sync += [x.bank.eq(hdr[H]), x.ptr.eq(addr), x.sbase.eq(addr),
                             x.n.eq(plen - TM_SCATTER_HEAD), x.ri.eq(0), x.sc.eq(0),
                             x.schunk.eq(chunk), x.spitch.eq(pitch), x.scount.eq(count)]
                m.next = "TS_RD"
        with m.Elif(hdr[1] == Op.TM_READ.value):
            addr, count = u32(H + 1), Cat(hdr[H + 5], hdr[H + 6])
            with m.If(plen != 7):
                nak(NakCode.BAD_LENGTH)
            with m.Elif(hdr[H] >= x.banks):
                nak(NakCode.BAD_BUFFER)
            with m.Elif((count > MAX_PAYLOAD) | (addr + count > x.bank_bytes)):
                nak(NakCode.OUT_OF_RANGE)
            with m.Else():
                m.d.sync += [x.bank.eq(hdr[H]), x.ptr.eq(addr), x.n.eq(count)]
                ack(count, (), self.BODY_TM)
        with m.Elif(hdr[1] == Op.PROG_WRITE.value):
            addr = u32(H)
            with m.If(plen < 4):
                nak(NakCode.BAD_LENGTH)
            with m.Elif(addr + (plen - 4) > x.pbytes):
                nak(NakCode.OUT_OF_RANGE)
            with m.Else():
                m.d.sync += [x.ptr.eq(addr), x.n.eq(plen - 4), x.ri.eq(0)]
                m.next = "PW_RD"
        with m.Elif(hdr[1] == Op.PROG_RUN.value):
            with m.If(plen != 4):
                nak(NakCode.BAD_LENGTH)
            with m.Else():
                m.d.sync += [x.ptr.eq(u32(H))]
                m.next = "PR_BEGIN"

    def _tm_states(self, m, x, nak, ack, put, rx_r, ptr, left, body, runs):
        """The engine states of the protocol-2 requests."""
        H = HEADER_BYTES
        wb, lg = x.wb, x.lg

        # TM_WRITE: one byte per two cycles, a byte-enabled word write each
        with m.State("TW_RD"):
            with m.If(x.ri == x.n):
                ack(Const(0, 16))
            with m.Else():
                m.d.comb += rx_r.addr.eq(H + 5 + x.ri)
                m.d.sync += x.ri.eq(x.ri + 1)
                m.next = "TW_PUT"
        with m.State("TW_PUT"):
            m.d.comb += [x.e_waddr.eq(x.ptr >> lg), x.e_wdata.eq(rx_r.data), x.e_we.eq(1),
                         x.e_be.eq(Const(1, wb) << (x.ptr[:lg] if lg else 0))]
            m.d.sync += x.ptr.eq(x.ptr + 1)
            m.next = "TW_RD"
        # TM_SCATTER: as TM_WRITE, the data read cyclically, a piece every pitch bytes
        with m.State("TS_RD"):
            with m.If(x.scount == 0):
                ack(Const(0, 16))
            with m.Else():
                m.d.comb += rx_r.addr.eq(H + TM_SCATTER_HEAD + x.ri)
                m.d.sync += x.ri.eq(Mux(x.ri + 1 == x.n, 0, x.ri + 1))
                m.next = "TS_PUT"
        with m.State("TS_PUT"):
            m.d.comb += [x.e_waddr.eq(x.ptr >> lg), x.e_wdata.eq(rx_r.data), x.e_we.eq(1),
                         x.e_be.eq(Const(1, wb) << (x.ptr[:lg] if lg else 0))]
            with m.If(x.sc + 1 == x.schunk):
                m.d.sync += [x.sc.eq(0), x.scount.eq(x.scount - 1),
                             x.sbase.eq(x.sbase + x.spitch), x.ptr.eq(x.sbase + x.spitch)]
            with m.Else():
                m.d.sync += [x.sc.eq(x.sc + 1), x.ptr.eq(x.ptr + 1)]
            m.next = "TS_RD"
        # TM_READ's body: a word read per byte
        with m.State("TR_RD"):
            with m.If(x.n == 0):
                m.next = "CRC_HI"
            with m.Else():
                m.d.comb += x.e_raddr.eq(x.ptr >> lg)
                m.next = "TR_PUT"
        with m.State("TR_PUT"):
            put(x.rdata[x.bank].word_select(x.ptr[:lg] if lg else Const(0, 1), 8))
            m.d.sync += [x.ptr.eq(x.ptr + 1), x.n.eq(x.n - 1)]
            m.next = "TR_RD"
        # PROG_WRITE
        with m.State("PW_RD"):
            with m.If(x.ri == x.n):
                ack(Const(0, 16))
            with m.Else():
                m.d.comb += rx_r.addr.eq(H + 4 + x.ri)
                m.d.sync += x.ri.eq(x.ri + 1)
                m.next = "PW_PUT"
        with m.State("PW_PUT"):
            m.d.comb += [x.pm_w.addr.eq(x.ptr), x.pm_w.data.eq(rx_r.data), x.pm_w.en.eq(1)]
            m.d.sync += x.ptr.eq(x.ptr + 1)
            m.next = "PW_RD"

        # -- PROG_RUN: check the whole program, then run its ops ---------------------------
        # program bytes are read into ``pbuf`` from the top (after n bytes, byte 0 of them is
        # at bit 8 * (40 - n)); ``phase`` says which state continues after a read
        pbuf = Signal(8 * 40)
        nread = Signal(6)
        want = Signal(6)
        phase = Signal(3)
        PH_NOPS, PH_CHDR, PH_CDESC, PH_RHDR, PH_RDESC = range(5)
        nops = Signal(16)
        opi = Signal(16)
        pc0 = Signal(33)
        j = Signal(8)
        op_unit = Signal(8)
        ns = Signal(8)
        total = Signal(32)
        op_cyc = Signal(32)
        idle = Signal(range(RUN_WATCHDOG + 1))
        # the descriptor checks' state
        lo = Signal(signed(52))
        hi = Signal(signed(52))
        loop = Signal(3)
        mcand = Signal(33)
        mplier = Signal(16)
        acc = Signal(50)
        neg = Signal()
        dnb = Signal(16)
        tab = Signal(range(max(2, len(x.want_nbytes))))
        run_unit_sel = Signal(8)

        def read(n, ph):
            m.d.sync += [nread.eq(0), want.eq(n), phase.eq(ph)]
            m.next = "PR_RD"

        def bad():
            nak(NakCode.BAD_PROGRAM)

        with m.State("PR_BEGIN"):
            read(2, PH_NOPS)
        with m.State("PR_RD"):
            with m.If(nread == want):
                with m.If(phase == PH_NOPS):
                    m.next = "PR_NOPS"
                with m.Elif(phase == PH_CHDR):
                    m.next = "CK_HDR"
                with m.Elif(phase == PH_CDESC):
                    m.next = "CK_DESC1"
                with m.Elif(phase == PH_RHDR):
                    m.next = "RN_HDR"
                with m.Else():
                    m.next = "RN_DESC1"
            with m.Elif(x.ptr >= x.pbytes):
                bad()  # the program runs past the program memory
            with m.Else():
                m.d.comb += x.pm_r.addr.eq(x.ptr)
                m.next = "PR_GET"
        with m.State("PR_GET"):
            m.d.sync += [pbuf.eq(Cat(pbuf[8:], x.pm_r.data)), nread.eq(nread + 1),
                         x.ptr.eq(x.ptr + 1)]
            m.next = "PR_RD"
        with m.State("PR_NOPS"):
            n = pbuf[-16:]
            with m.If(n > self.MAX_OPS):
                bad()
            with m.Else():
                m.d.sync += [nops.eq(n), opi.eq(0), pc0.eq(x.ptr)]
                m.next = "CK_OP"

        # check pass
        with m.State("CK_OP"):
            with m.If(opi == nops):
                m.d.sync += [x.ptr.eq(pc0), opi.eq(0), total.eq(0)]
                m.next = "RN_OP"
            with m.Else():
                read(16, PH_CHDR)
        hdr = pbuf[-128:]
        kind, unit, mode, nst = hdr[0:8], hdr[8:16], hdr[16:24], hdr[24:32]
        with m.State("CK_HDR"):
            nst_ok = Array([Const(v, 8) for v in x.nstreams])[unit]
            nmodes = Array([Const(v, 9) for v in x.nmodes])[unit]
            with m.If((kind != 1) | (unit >= len(self.units)) | (nst != nst_ok)
                      | (mode >= nmodes)):
                bad()
            with m.Else():
                m.d.sync += [op_unit.eq(unit), ns.eq(nst), j.eq(0)]
                m.next = "CK_DESC"
        with m.State("CK_DESC"):
            with m.If(j == ns):
                m.d.sync += opi.eq(opi + 1)
                m.next = "CK_OP"
            with m.Else():
                read(40, PH_CDESC)
        d = DescFields(pbuf)
        with m.State("CK_DESC1"):
            m.d.sync += tab.eq((op_unit * x.max_streams + j) * 2 + d.kind[0])
            m.next = "CK_DESC2"
        with m.State("CK_DESC2"):
            wantn = Array([Const(v, 16) for v in x.want_nbytes])[tab]
            amask = Array([Const(v - 1, 8) for v in x.align])[tab]
            bad_align = [(d.base & amask) != 0]
            for lv in range(LOOPS):
                bad_align.append((d.count[lv] > 1) & ((d.stride[lv].as_unsigned() & amask) != 0))
            masks = [(v >> LOOPS) != 0 for v in d.first + d.last]
            with m.If((d.bank >= x.banks) | (d.kind > 1) | (wantn == 0) | (d.nbytes != wantn)
                      | Cat(*[c == 0 for c in d.count]).any() | Cat(*bad_align).any()
                      | Cat(*masks).any()):
                bad()
            with m.Else():
                m.d.sync += [lo.eq(d.base), hi.eq(d.base), loop.eq(0), dnb.eq(d.nbytes)]
                m.next = "CK_LOOP"
        # lo/hi = base + sum(min/max(0, stride) * (count - 1)): a shift-add multiply per loop
        stride_l = Array(d.stride)[loop[:2]]
        count_l = Array(d.count)[loop[:2]]
        with m.State("CK_LOOP"):
            with m.If(loop == LOOPS):
                m.next = "CK_RANGE"
            with m.Else():
                m.d.sync += [mcand.eq(Mux(stride_l < 0, -stride_l, stride_l)),
                             neg.eq(stride_l < 0), mplier.eq(count_l - 1), acc.eq(0)]
                m.next = "CK_MUL"
        with m.State("CK_MUL"):
            with m.If(mplier == 0):
                with m.If(neg):
                    m.d.sync += lo.eq(lo - acc)
                with m.Else():
                    m.d.sync += hi.eq(hi + acc)
                m.d.sync += loop.eq(loop + 1)
                m.next = "CK_LOOP"
            with m.Else():
                with m.If(mplier[0]):
                    m.d.sync += acc.eq(acc + mcand)
                m.d.sync += [mcand.eq(mcand << 1), mplier.eq(mplier >> 1)]
        with m.State("CK_RANGE"):
            with m.If((lo < 0) | (hi + dnb > x.bank_bytes)):
                bad()
            with m.Else():
                m.d.sync += j.eq(j + 1)
                m.next = "CK_DESC"

        # run pass
        with m.State("RN_OP"):
            with m.If(opi == nops):
                m.d.sync += [runs.eq(runs + 1), ptr.eq(0), left.eq(nops)]
                ack((4 + 4 * nops)[:16], _le(total, 4), self.BODY_CYC)
            with m.Else():
                read(16, PH_RHDR)
        with m.State("RN_HDR"):
            m.d.sync += [x.run_unit.eq(unit), run_unit_sel.eq(unit), x.mode.eq(mode),
                         ns.eq(nst), j.eq(0)]
            m.next = "RN_DESC"
        with m.State("RN_DESC"):
            with m.If(j == ns):
                for i, r in enumerate(x.unit_rst):
                    with m.If(run_unit_sel == i):
                        m.d.sync += r.eq(1)
                m.next = "RN_RST"
            with m.Else():
                read(40, PH_RDESC)
        with m.State("RN_DESC1"):
            for k in range(x.max_streams):
                with m.If(j == k):
                    m.d.sync += x.slot[k].eq(pbuf)
            m.d.sync += j.eq(j + 1)
            m.next = "RN_DESC"
        with m.State("RN_RST"):  # the unit and its generators are in reset this cycle
            m.d.sync += Cat(*x.unit_rst).eq(0)
            m.next = "RN_LOAD"
        with m.State("RN_LOAD"):
            m.d.comb += x.start.eq(1)
            m.d.sync += [x.running.eq(1), x.prog.eq(1), op_cyc.eq(0), idle.eq(0)]
            m.next = "RN_WAIT"
        with m.State("RN_WAIT"):
            all_done = Array(x.done)[run_unit_sel]
            with m.If(all_done | (idle == RUN_WATCHDOG)):
                m.d.comb += [x.cm_w.addr.eq(opi), x.cm_w.data.eq(op_cyc), x.cm_w.en.eq(1)]
                m.d.sync += [x.running.eq(0), x.prog.eq(0), total.eq(total + op_cyc),
                             opi.eq(opi + 1)]
                m.next = "RN_OP"
            with m.Else():
                m.d.sync += op_cyc.eq(op_cyc + 1)
                with m.If(Cat(*x.moved).any()):
                    m.d.sync += idle.eq(0)
                with m.Else():
                    m.d.sync += idle.eq(idle + 1)

        # PROG_RUN's body: the cycles of each op
        cbyte = Signal(2)
        cword = Signal(32)
        with m.State("CY_RD"):
            with m.If(left == 0):
                m.next = "CRC_HI"
            with m.Else():
                m.d.comb += x.cm_r.addr.eq(ptr)
                m.d.sync += [ptr.eq(ptr + 1), left.eq(left - 1), cbyte.eq(0)]
                m.next = "CY_LATCH"
        with m.State("CY_LATCH"):
            m.d.sync += cword.eq(x.cm_r.data)
            m.next = "CY_PUT"
        with m.State("CY_PUT"):
            put(cword.word_select(cbyte, 8))
            m.d.sync += cbyte.eq(cbyte + 1)
            with m.If(cbyte == 3):
                m.next = "CY_RD"

    def elaborate(self, platform):
        m = Module()
        bufs = self.buffers
        NB = len(bufs)
        max_streams = max(len(s) for _, s, _ in self.units)
        max_outs = max(sum(1 for x in s if x.dir == "out") for _, s, _ in self.units)
        HB = HEADER_BYTES + max(5, 14 + 4 * max_streams)  # header + the longest parameters
        RB = HEADER_BYTES + max(13, 4 + 4 * max_outs, 2)  # header + the longest fixed reply
        max_width = max(b.width for b in bufs)
        max_bb = max(b.beat_bytes for b in bufs)
        info_total = len(self.info)

        # -- memories ----------------------------------------------------------------------
        m.submodules.rxram = rxram = memory.Memory(shape=8, depth=PACKET_MAX, init=[])
        rx_w, rx_r = rxram.write_port(), rxram.read_port(transparent_for=())
        m.submodules.txram = txram = memory.Memory(shape=8, depth=PACKET_MAX, init=[])
        tx_w, tx_r = txram.write_port(), txram.read_port(transparent_for=())
        m.submodules.inforom = rom = memory.Memory(shape=8, depth=info_total,
                                                   init=list(self.info))
        rom_r = rom.read_port(transparent_for=())

        running = Signal()
        # at least one bit: a design of one unit would otherwise make a 0-bit signal, which
        # Amaranth emits as `wire [-1:0]` and Verilator refuses (ASCRANGE)
        run_unit = Signal(range(max(2, len(self.units))))
        e_buf = Signal(range(NB))
        e_raddr = Signal(32)
        e_waddr = Signal(32)
        e_wdata = Signal(max_width)
        e_we = Signal()
        mem_rdata = []
        runners = []
        unit_rst = [Signal(name=f"unit_rst{i}") for i in range(len(self.units))]
        tm = self.cfg.tensor_memory
        proxies = []
        tm_start = Signal()  # a program op's load pulse (_tm_build's ``start``)
        if tm is not None:
            prog = Signal()  # a PROG_RUN streams (else a RUN): who drives the units' ports
        for i, (comp, streams, _) in enumerate(self.units):
            if tm is not None:
                # protocol 2 keeps protocol 1's buffers and RUN: the runner drives stand-in
                # ports, which _tm_build muxes with the generators' onto the unit
                streams = [_Stream(s.name, s.dir, s.width, s.depth, _standin(comp, s), s.buffer)
                           for s in streams]
                proxies.append(streams)
                r = _Runner(comp, streams, own_unit=False)
            else:
                r = _Runner(comp, streams)
            inner = ResetInserter({"sync": unit_rst[i]})(r)
            if self.gate_units:
                # The runner and its unit in a domain of their own, clocked (by the simulation
                # harness) only in the cycles where ``unit_active`` says they can change:
                # the reset cycle before a RUN and the RUN itself. Outside those cycles an
                # ungated runner holds ``go`` low and its state is reset before the next RUN,
                # so the ports behave the same; the simulator skips the idle units' logic.
                inner = DomainRenamer({"sync": f"u{i}"})(inner)
                # (a program op's load pulse too: the unit's address generators share its
                # domain, so an idle unit's generators cost the simulator nothing either)
                m.d.comb += self.unit_active[i].eq((run_unit == i) &
                                                   (running | unit_rst[i] | tm_start))
            m.submodules[f"run_{self.cfg.units[i].name}"] = inner
            m.d.comb += r.go.eq(running & (run_unit == i) if tm is None else
                                running & ~prog & (run_unit == i))
            runners.append(r)
            for s in streams:
                mem = memory.Memory(shape=s.width, depth=s.depth, init=[])
                m.submodules[f"buf{s.buffer}"] = mem
                rp, wp = mem.read_port(transparent_for=()), mem.write_port()
                mine = e_buf == s.buffer
                if s.dir == "in":
                    m.d.comb += [rp.addr.eq(Mux(running, r.raddr[s.name], e_raddr)),
                                 r.rdata[s.name].eq(rp.data),
                                 wp.addr.eq(e_waddr), wp.data.eq(e_wdata),
                                 wp.en.eq(e_we & mine & ~running)]
                else:
                    m.d.comb += [rp.addr.eq(e_raddr),
                                 wp.addr.eq(Mux(running, r.waddr[s.name], e_waddr)),
                                 wp.data.eq(Mux(running, r.wdata[s.name], e_wdata)),
                                 wp.en.eq(Mux(running, r.we[s.name], e_we & mine))]
                mem_rdata.append(rp.data)

        def const_by_buf(values, width=32):
            return Array([Const(v, width) for v in values])[e_buf]

        if tm is not None:
            tmx = self._tm_build(m, unit_rst, running, run_unit, prog, proxies)
            m.d.comb += tm_start.eq(tmx.start)
        buf_bb = const_by_buf([b.beat_bytes for b in bufs], 8)
        buf_depth = const_by_buf([b.depth for b in bufs], 32)
        buf_rdata = Array([Signal(max_width, name=f"rdata{i}") for i in range(NB)])
        for i, d in enumerate(mem_rdata):
            m.d.comb += buf_rdata[i].eq(d)

        # -- counters ----------------------------------------------------------------------
        crc_errors = Signal(16)
        bad_frames = Signal(16)
        overflows = Signal(16)
        naks = Signal(16)
        runs = Signal(32)

        # -- receive state -----------------------------------------------------------------
        hdr = Array([Signal(8, name=f"hdr{i}") for i in range(HB)])
        dlen = Signal(range(PACKET_MAX + 2))
        raw = Signal(range(COBS_MAX + 2))
        code_left = Signal(8)
        zero_pending = Signal()
        rx_bad = Signal()
        rx_crc = Signal(16, init=INIT)

        def u16(i):
            return Cat(hdr[i], hdr[i + 1])

        def u32(i):
            return Cat(hdr[i], hdr[i + 1], hdr[i + 2], hdr[i + 3])

        ver, op, seq, plen = hdr[0], hdr[1], u16(2), u16(4)
        # the duplicate key: (seq, op, crc) of the last request answered (docs/protocol.md)
        pkt_crc = Signal(16)  # the last two bytes of the packet: its CRC
        last_valid = Signal()
        last_seq = Signal(16)
        last_op = Signal(8)
        last_crc = Signal(16)

        # -- reply state -------------------------------------------------------------------
        rep = Array([Signal(8, name=f"rep{i}") for i in range(RB)])
        rep_n = Signal(range(RB + 1))
        body = Signal(2 if tm is None else 3)  # 0 none, 1 INFO bytes, 2 READ beats
        BODY_NONE, BODY_INFO, BODY_READ = 0, 1, 2
        ptr = Signal(32)  # INFO offset / READ beat
        left = Signal(32)  # INFO bytes / READ beats still to copy
        idx = Signal(range(max(RB, max_bb) + 1))
        tptr = Signal(range(PACKET_MAX + 1))
        tcrc = Signal(16, init=INIT)
        tx_len = Signal(range(PACKET_MAX + 1))
        beat_sr = Signal(8 * max_bb)

        def put(byte):
            """Append a reply byte to the reply RAM (and to its CRC)."""
            m.d.comb += [tx_w.addr.eq(tptr), tx_w.data.eq(byte), tx_w.en.eq(1)]
            m.d.sync += [tptr.eq(tptr + 1), tcrc.eq(crc16_update(tcrc, byte))]

        def reply(op_byte, length, small=()):
            """Start a reply: header, then the fixed bytes ``small``; the body follows."""
            head = [Const(VERSION, 8), op_byte, hdr[2], hdr[3], *_le(length, 2)]
            stmts = [rep[i].eq(b) for i, b in enumerate(head + list(small))]
            stmts += [rep_n.eq(len(head) + len(small)), idx.eq(0), tptr.eq(0),
                      tcrc.eq(INIT)]
            return stmts

        def nak(code):
            m.d.sync += reply(Const(NAK_OP, 8), Const(2, 16), [op, Const(code, 8)])
            m.d.sync += [body.eq(BODY_NONE), naks.eq(naks + 1)]
            m.next = "EMIT"

        def ack(length, small=(), kind=BODY_NONE):
            m.d.sync += reply(op | ACK_BIT, length, small)
            m.d.sync += body.eq(kind)
            m.next = "EMIT"

        # -- send (COBS encoder over the reply RAM) state -----------------------------------
        blk = Signal(range(PACKET_MAX + 1))  # block start
        q = Signal(range(PACKET_MAX + 1))
        cnt = Signal(8)
        hit_zero = Signal()
        k = Signal(8)
        out_byte = Signal(8)

        # -- write/run state ---------------------------------------------------------------
        rem = Signal(range(MAX_PAYLOAD + 1))
        nbeats = Signal(range(MAX_PAYLOAD + 1))
        widx = Signal(range(MAX_PAYLOAD + 1))
        boff = Signal(range(max_bb))
        ri = Signal(range(MAX_PAYLOAD + 1))

        with m.If(self.overflow):
            m.d.sync += overflows.eq(overflows + 1)

        with m.FSM(name="engine"):
            with m.State("RECV"):
                m.d.comb += self.rx.ready.eq(1)
                b = self.rx.payload

                def emit(byte):
                    with m.If(dlen < PACKET_MAX):
                        m.d.comb += [rx_w.addr.eq(dlen), rx_w.data.eq(byte), rx_w.en.eq(1)]
                        with m.If(dlen < HB):
                            m.d.sync += hdr[dlen].eq(byte)
                        m.d.sync += [rx_crc.eq(crc16_update(rx_crc, byte)), dlen.eq(dlen + 1),
                                     pkt_crc.eq(Cat(byte, pkt_crc[:8]))]
                    with m.Else():
                        m.d.sync += rx_bad.eq(1)

                with m.If(self.rx.valid):
                    with m.If(b == 0):
                        m.d.sync += [dlen.eq(0), raw.eq(0), code_left.eq(0),
                                     zero_pending.eq(0), rx_bad.eq(0), rx_crc.eq(INIT)]
                        with m.If(raw == 0):
                            pass  # an empty frame: resynchronisation
                        with m.Elif(rx_bad | (code_left != 0) | (dlen < 8)
                                    | (plen > MAX_PAYLOAD) | (dlen != plen + 8)):
                            m.d.sync += bad_frames.eq(bad_frames + 1)
                        with m.Elif(rx_crc != 0):
                            m.d.sync += crc_errors.eq(crc_errors + 1)
                        with m.Else():
                            m.next = "EXEC"
                    with m.Else():
                        with m.If(raw <= COBS_MAX):
                            m.d.sync += raw.eq(raw + 1)
                        with m.If(rx_bad | (raw >= COBS_MAX)):
                            m.d.sync += rx_bad.eq(1)
                        with m.Elif(code_left == 0):
                            with m.If(zero_pending):
                                emit(Const(0, 8))
                            m.d.sync += [code_left.eq(b - 1), zero_pending.eq(b != 0xFF)]
                        with m.Else():
                            emit(b)
                            m.d.sync += code_left.eq(code_left - 1)

            with m.State("EXEC"):
                m.d.sync += [e_buf.eq(hdr[HEADER_BYTES]), ptr.eq(0), left.eq(0)]
                with m.If(ver != VERSION):
                    nak(NakCode.BAD_VERSION)
                with m.Elif(last_valid & (seq == last_seq) & (op == last_op)
                            & (pkt_crc == last_crc)):
                    m.d.sync += blk.eq(0)
                    m.next = "SCAN"  # a retry: the same reply again, not executed again
                with m.Elif(op == Op.INFO.value):
                    off = u16(HEADER_BYTES)
                    with m.If(plen != 2):
                        nak(NakCode.BAD_LENGTH)
                    with m.Elif(off > info_total):
                        nak(NakCode.OUT_OF_RANGE)
                    with m.Else():
                        n = Signal(16)
                        m.d.comb += n.eq(Mux(info_total - off > MAX_PAYLOAD - 2,
                                             MAX_PAYLOAD - 2, info_total - off))
                        m.d.sync += [ptr.eq(off), left.eq(n)]
                        ack((n + 2)[:16], _le(Const(info_total, 16), 2), BODY_INFO)
                with m.Elif(op == Op.WRITE.value):
                    with m.If(plen < 5):
                        nak(NakCode.BAD_LENGTH)
                    with m.Elif(hdr[HEADER_BYTES] >= NB):
                        nak(NakCode.BAD_BUFFER)
                    with m.Else():
                        m.d.sync += [rem.eq(plen - 5), nbeats.eq(0)]
                        m.next = "W_DIV"
                with m.Elif(op == Op.READ.value):
                    count = u16(HEADER_BYTES + 5)
                    first = u32(HEADER_BYTES + 1)
                    with m.If(plen != 7):
                        nak(NakCode.BAD_LENGTH)
                    with m.Elif(hdr[HEADER_BYTES] >= NB):
                        nak(NakCode.BAD_BUFFER)
                    with m.Else():
                        m.next = "R_CHECK"
                        m.d.sync += [ptr.eq(first), left.eq(count)]
                with m.Elif(op == Op.RUN.value):
                    unit = hdr[HEADER_BYTES]
                    mode = hdr[HEADER_BYTES + 1]
                    with m.If(plen < 2):
                        nak(NakCode.BAD_LENGTH)
                    with m.Elif(unit >= len(self.units)):
                        nak(NakCode.BAD_UNIT)
                    for i, (_, streams, nmodes) in enumerate(self.units):
                        with m.Elif((unit == i) & (plen != 14 + 4 * len(streams))):
                            nak(NakCode.BAD_LENGTH)
                        with m.Elif((unit == i) & (mode >= nmodes)):
                            nak(NakCode.BAD_MODE)
                        bad = []
                        for j, s in enumerate(streams):
                            n_s = u32(HEADER_BYTES + 14 + 4 * j)
                            bad.append(n_s > s.depth)
                            if s.dir == "in":
                                bad.append(n_s == 0)
                        with m.Elif((unit == i) & Cat(*bad).any()):
                            nak(NakCode.BAD_RUN)
                        with m.Elif(unit == i):
                            m.d.sync += [run_unit.eq(i), unit_rst[i].eq(1)]
                            for j, s in enumerate(streams):
                                m.d.sync += runners[i].n[s.name].eq(
                                    u32(HEADER_BYTES + 14 + 4 * j))
                            m.next = "RUN_START"
                with m.Elif(op == Op.STATUS.value):
                    with m.If(plen != 0):
                        nak(NakCode.BAD_LENGTH)
                    with m.Else():
                        ack(Const(13, 16), [Const(0, 8), *_le(crc_errors, 2),
                                            *_le(bad_frames, 2), *_le(overflows, 2),
                                            *_le(naks, 2), *_le(runs, 4)])
                with m.Elif(op == Op.CLEAR.value):
                    with m.If(plen != 0):
                        nak(NakCode.BAD_LENGTH)
                    with m.Else():
                        m.d.sync += [crc_errors.eq(0), bad_frames.eq(0), overflows.eq(0),
                                     naks.eq(0), runs.eq(0)]
                        ack(Const(0, 16))
                if tm is not None:
                    self._tm_exec(m, tmx, u32, hdr, plen, nak, ack)
                with m.Else():
                    nak(NakCode.BAD_OP)

            # WRITE: count whole beats in the data (a subtraction loop: no divider)
            with m.State("W_DIV"):
                with m.If(rem >= buf_bb):
                    m.d.sync += [rem.eq(rem - buf_bb), nbeats.eq(nbeats + 1)]
                with m.Elif(rem != 0):
                    nak(NakCode.BAD_BUFFER)
                with m.Elif(u32(HEADER_BYTES + 1) + nbeats > buf_depth):
                    nak(NakCode.OUT_OF_RANGE)
                with m.Else():
                    m.d.sync += [widx.eq(0), boff.eq(0), ri.eq(0)]
                    m.next = "W_RD"
            with m.State("W_RD"):
                with m.If(widx == nbeats):
                    ack(Const(0, 16))
                with m.Else():
                    m.d.comb += rx_r.addr.eq(HEADER_BYTES + 5 + ri)
                    m.d.sync += ri.eq(ri + 1)
                    m.next = "W_GET"
            with m.State("W_GET"):
                m.d.sync += beat_sr.word_select(boff, 8).eq(rx_r.data)
                with m.If(boff == buf_bb - 1):
                    m.d.sync += boff.eq(0)
                    m.next = "W_PUT"
                with m.Else():
                    m.d.sync += boff.eq(boff + 1)
                    m.next = "W_RD"
            with m.State("W_PUT"):
                m.d.comb += [e_waddr.eq(u32(HEADER_BYTES + 1) + widx), e_wdata.eq(beat_sr),
                             e_we.eq(1)]
                m.d.sync += widx.eq(widx + 1)
                m.next = "W_RD"

            with m.State("R_CHECK"):
                with m.If(left * buf_bb > MAX_PAYLOAD):
                    nak(NakCode.OUT_OF_RANGE)
                with m.Elif(ptr + left > buf_depth):
                    nak(NakCode.OUT_OF_RANGE)
                with m.Else():
                    ack((left * buf_bb)[:16], (), BODY_READ)

            with m.State("RUN_START"):
                m.d.sync += [Cat(*unit_rst).eq(0), running.eq(1)]
                m.next = "RUN_WAIT"
            with m.State("RUN_WAIT"):
                for i, (_, streams, _) in enumerate(self.units):
                    r = runners[i]
                    outs = [s for s in streams if s.dir == "out"]
                    with m.If((run_unit == i) & r.done):
                        m.d.sync += [running.eq(0), runs.eq(runs + 1)]
                        small = _le(r.cycles, 4)
                        for s in outs:
                            small += _le(r.stored[s.name], 4)
                        ack(Const(4 + 4 * len(outs), 16), small)

            if tm is not None:
                self._tm_states(m, tmx, nak, ack, put, rx_r, ptr, left, body, runs)

            # -- build the reply in the reply RAM ---------------------------------------------
            with m.State("EMIT"):
                with m.If(idx < rep_n):
                    put(rep[idx])
                    m.d.sync += idx.eq(idx + 1)
                with m.Elif(body == BODY_INFO):
                    m.next = "INFO_RD"
                with m.Elif(body == BODY_READ):
                    m.next = "READ_RD"
                if tm is not None:
                    with m.Elif(body == self.BODY_TM):
                        m.next = "TR_RD"
                    with m.Elif(body == self.BODY_CYC):
                        m.next = "CY_RD"
                with m.Else():
                    m.next = "CRC_HI"
            with m.State("INFO_RD"):
                with m.If(left == 0):
                    m.next = "CRC_HI"
                with m.Else():
                    m.d.comb += rom_r.addr.eq(ptr)
                    m.d.sync += [ptr.eq(ptr + 1), left.eq(left - 1)]
                    m.next = "INFO_PUT"
            with m.State("INFO_PUT"):
                put(rom_r.data)
                m.next = "INFO_RD"
            with m.State("READ_RD"):
                with m.If(left == 0):
                    m.next = "CRC_HI"
                with m.Else():
                    m.d.comb += e_raddr.eq(ptr)
                    m.d.sync += [ptr.eq(ptr + 1), left.eq(left - 1), boff.eq(0)]
                    m.next = "READ_LATCH"
            with m.State("READ_LATCH"):
                m.d.sync += beat_sr.eq(buf_rdata[e_buf])
                m.next = "READ_PUT"
            with m.State("READ_PUT"):
                put(beat_sr.word_select(boff, 8))
                m.d.sync += boff.eq(boff + 1)
                with m.If(boff == buf_bb - 1):
                    m.next = "READ_RD"
            with m.State("CRC_HI"):
                m.d.comb += [tx_w.addr.eq(tptr), tx_w.data.eq(tcrc[8:]), tx_w.en.eq(1)]
                m.d.sync += tptr.eq(tptr + 1)
                m.next = "CRC_LO"
            with m.State("CRC_LO"):
                m.d.comb += [tx_w.addr.eq(tptr), tx_w.data.eq(tcrc[:8]), tx_w.en.eq(1)]
                m.d.sync += [tx_len.eq(tptr + 1), last_valid.eq(1), last_seq.eq(seq),
                             last_op.eq(op), last_crc.eq(pkt_crc), blk.eq(0)]
                m.next = "SCAN"

            # -- send the reply RAM COBS-encoded: find each block's end, send its code, then
            # its bytes (two passes over the RAM; the link is slower than this anyway)
            with m.State("SCAN"):
                m.d.sync += [q.eq(blk), cnt.eq(0), hit_zero.eq(0)]
                m.next = "SCAN_RD"
            with m.State("SCAN_RD"):
                with m.If((q == tx_len) | (cnt == 254)):
                    m.next = "CODE"
                with m.Else():
                    m.d.comb += tx_r.addr.eq(q)
                    m.next = "SCAN_CHK"
            with m.State("SCAN_CHK"):
                with m.If(tx_r.data == 0):
                    m.d.sync += hit_zero.eq(1)
                    m.next = "CODE"
                with m.Else():
                    m.d.sync += [q.eq(q + 1), cnt.eq(cnt + 1)]
                    m.next = "SCAN_RD"
            with m.State("CODE"):
                m.d.comb += [self.tx.valid.eq(1), self.tx.payload.eq(cnt + 1)]
                with m.If(self.tx.ready):
                    m.d.sync += k.eq(0)
                    m.next = "DATA_RD"
            with m.State("DATA_RD"):
                with m.If(k == cnt):
                    with m.If(~hit_zero & (blk + cnt == tx_len)):
                        m.next = "DELIM"
                    with m.Else():
                        m.d.sync += blk.eq(blk + cnt + hit_zero)
                        m.next = "SCAN"
                with m.Else():
                    m.d.comb += tx_r.addr.eq(blk + k)
                    m.next = "DATA_LATCH"
            with m.State("DATA_LATCH"):
                m.d.sync += out_byte.eq(tx_r.data)
                m.next = "DATA_OUT"
            with m.State("DATA_OUT"):
                m.d.comb += [self.tx.valid.eq(1), self.tx.payload.eq(out_byte)]
                with m.If(self.tx.ready):
                    m.d.sync += k.eq(k + 1)
                    m.next = "DATA_RD"
            with m.State("DELIM"):
                m.d.comb += [self.tx.valid.eq(1), self.tx.payload.eq(0)]
                with m.If(self.tx.ready):
                    m.next = "RECV"
        return m


class BoardTop(wiring.Component):
    """A board design's top-level with one of two faces.

    ``face="bytes"``: ports ``rx`` (in) and ``tx`` (out), byte streams into and out of the
    protocol engine through two-byte FIFOs, and ``idle`` (nothing buffered, the engine waiting
    for a request); the Verilator harness serves them over TCP. With ``gate_units`` (the
    simulated board) each unit and its runner get a clock of their own, ``u<i>_clk``, which the
    harness pulses together with ``clk`` only while ``u<i>_active`` is high (a RUN of that unit
    and its reset cycle), so the simulator evaluates only the unit that is running.

    ``face="uart"``: ports ``uart_rx`` (in) and ``uart_tx`` (out), 8N1 at the config's
    ``link.uart`` from the board's clock; received bytes wait in a FIFO, and a byte arriving
    when it is full is lost and counted (STATUS ``overflows``); ``idle`` (out) says the board
    waits for the host (nothing buffered, nothing to send).
    """

    RX_FIFO_DEPTH = 64

    def __init__(self, board_cfg, face: str = "bytes", clk_hz: int | None = None,
                 gate_units: bool = False):
        if face not in ("bytes", "uart"):
            raise ValueError(f"face {face!r} (allowed: bytes, uart)")
        if gate_units and face != "bytes":
            raise ValueError("gate_units is for the simulated byte face only")
        self.cfg, self.face = board_cfg, face
        self.gate_units = gate_units
        self.clk_hz = clk_hz or BOARD_CLOCK_HZ[board_cfg.board]
        if face == "bytes":
            sig = {"rx": In(stream.Signature(8)), "tx": Out(stream.Signature(8)),
                   "idle": Out(1)}
            if gate_units:
                for i in range(len(board_cfg.units)):
                    sig[f"u{i}_clk"] = In(1)
                    sig[f"u{i}_active"] = Out(1)
        else:
            self.period = bit_period(self.clk_hz, board_cfg.link.uart)
            sig = {"uart_rx": In(1, init=1), "uart_tx": Out(1, init=1), "idle": Out(1)}
        super().__init__(sig)

    def ports(self) -> list[dict]:
        """The top's ports as ``verilog.convert`` names them, in the manifest's format
        (:func:`generators.emit.describe_ports`: name, dir, width, role; ``stream`` for a
        stream's ports, ``unit`` for a gated unit's clock and activity), so the simulation
        harness reads its port names and widths from the board's manifest.

        Roles: ``clock``, ``reset``, ``payload``/``valid``/``ready`` (byte face streams),
        ``idle``, ``unit_clock``/``unit_active`` (``gate_units``), ``uart_rx``/``uart_tx``
        (UART face pins)."""
        ports = [{"name": "clk", "dir": "in", "width": 1, "role": "clock"},
                 {"name": "rst", "dir": "in", "width": 1, "role": "reset"}]
        for path, member, _ in self.signature.flatten(self):
            name = "__".join(str(p) for p in path)
            entry = {"name": name, "dir": "in" if member.flow == In else "out",
                     "width": Shape.cast(member.shape).width}
            if len(path) == 2:  # rx/tx stream members
                entry.update(role=path[1], stream=path[0])
            elif gated := re.fullmatch(r"u(\d+)_(clk|active)", name):
                entry.update(role=f"unit_{'clock' if gated[2] == 'clk' else 'active'}",
                             unit=int(gated[1]))
            else:
                entry["role"] = name
            ports.append(entry)
        return ports

    def elaborate(self, platform):
        m = Module()
        core = BoardCore(self.cfg, gate_units=self.gate_units)
        dom = "sync"
        rst = ResetSignal("sync")
        if self.gate_units:
            # The simulated board: the design runs in domain "core" on clk, reset by a register
            # that follows the rst input one cycle later. Every register's next value then
            # depends on registers only, not on a top-level input, so Verilator computes it
            # once per clock edge (its NBA region) instead of on every eval call (its
            # input-combinational region).
            dom = "core"
            rst = Signal(init=1, reset_less=True)
            m.d.sync += rst.eq(ResetSignal("sync"))
            m.domains += ClockDomain("core", local=True)
            m.d.comb += [ClockSignal("core").eq(ClockSignal("sync")),
                         ResetSignal("core").eq(rst)]
        m.submodules.core = DomainRenamer({"sync": dom})(core)
        if self.face == "bytes":
            # Two-byte FIFOs between the ports and the engine: the engine's logic then depends
            # on registers only (the same reasoning), and every output (rx.ready,
            # tx.valid/payload, idle) is a function of registers.
            m.submodules.rx_q = rq = DomainRenamer({"sync": dom})(fifo.SyncFIFO(width=8, depth=2))
            m.submodules.tx_q = tq = DomainRenamer({"sync": dom})(fifo.SyncFIFO(width=8, depth=2))
            m.d.comb += [
                rq.w_en.eq(self.rx.valid), rq.w_data.eq(self.rx.payload),
                # not while the (registered) reset holds: a byte taken then would be lost
                self.rx.ready.eq(rq.w_rdy & ~rst if self.gate_units else rq.w_rdy),
                core.rx.valid.eq(rq.r_rdy), core.rx.payload.eq(rq.r_data),
                rq.r_en.eq(core.rx.ready),
                tq.w_en.eq(core.tx.valid), tq.w_data.eq(core.tx.payload),
                core.tx.ready.eq(tq.w_rdy),
                self.tx.valid.eq(tq.r_rdy), self.tx.payload.eq(tq.r_data),
                tq.r_en.eq(self.tx.ready),
                # waiting for the host: nothing buffered, the engine receiving, nothing to send
                self.idle.eq(~rq.r_rdy & core.rx.ready & ~tq.r_rdy & ~core.tx.valid),
            ]
            for i in range(len(self.cfg.units) if self.gate_units else 0):
                # unit i's clock comes from the harness (which pulses it with ``clk`` while
                # ``u<i>_active``); its reset is the board's
                m.domains += ClockDomain(f"u{i}", local=True)
                m.d.comb += [ClockSignal(f"u{i}").eq(getattr(self, f"u{i}_clk")),
                             ResetSignal(f"u{i}").eq(rst),
                             getattr(self, f"u{i}_active").eq(core.unit_active[i])]
            return m
        m.submodules.uart_rx = urx = UartRx(self.period)
        m.submodules.uart_tx = utx = UartTx(self.period)
        m.submodules.rx_fifo = q = fifo.SyncFIFOBuffered(width=8, depth=self.RX_FIFO_DEPTH)
        m.d.comb += [
            urx.rx.eq(self.uart_rx),
            self.uart_tx.eq(utx.tx),
            q.w_data.eq(urx.data),
            q.w_en.eq(urx.strobe),
            core.overflow.eq(urx.strobe & ~q.w_rdy),
            core.rx.valid.eq(q.r_rdy),
            core.rx.payload.eq(q.r_data),
            q.r_en.eq(core.rx.ready),
        ]
        wiring.connect(m, core.tx, utx.i)
        # waiting for the host: nothing received and unread, the engine receiving, the
        # transmitter idle (a simulation harness stops clocking then; a board leaves it open)
        m.d.comb += self.idle.eq(~q.r_rdy & core.rx.ready & ~core.tx.valid & utx.i.ready)
        return m
