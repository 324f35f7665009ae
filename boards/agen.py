"""Address generators of a protocol-2 board (docs/programs.md, "Streams played from the tensor
memory"): :class:`Player` turns a stream descriptor into a unit input stream's beats read from
the tensor memory, :class:`Storer` writes a unit output stream's beats into it.

Both know no family: the stream's payload layout (the unit component's stream signature, as
the board core reads it for its buffers) says where the ``data`` field's lanes, the one-bit flag
fields and a ``mode`` field are. ``host.program.play`` / ``store`` are the bit-exact reference.

A descriptor arrives as its 40 packed bytes (``host.program.Descriptor.pack``, little-endian,
one 320-bit value); the board has checked it (``host.program.check_descriptor``) before a
generator sees it, so the generators trust it: the address of every beat lies in the bank,
``nbytes`` is the stream's for its kind and the alignment rule holds.

Memory interface (one bank's port, through the core's arbiter): ``req``/``addr`` ask for a
word, ``grant`` says the port takes the request this cycle; a read's word is on ``rdata`` the
cycle after its grant (a synchronous read port).
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, Shape, Signal, Value
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from host.program import DATA, LOOPS, RAW, alignment, storage_bits

__all__ = ["Player", "Storer", "StreamLayout", "DescFields", "DESC_BITS", "arbitrate"]

DESC_BITS = 320


class StreamLayout:
    """What a generator needs of a unit stream's payload layout (a ``data.StructLayout`` or a
    plain shape, as the unit component declares it)."""

    def __init__(self, layout):
        self.layout = layout
        self.width = Shape.cast(layout).width
        self.raw_nbytes = (self.width + 7) // 8
        self.fields = []  # (name, offset, width)
        self.data = None  # (offset, lanes, lane_width)
        if isinstance(layout, data.StructLayout):
            for name, f in layout:
                shape = f.shape
                if name == "data":
                    if isinstance(shape, data.ArrayLayout):
                        self.data = (f.offset, shape.length, Shape.cast(shape.elem_shape).width)
                    else:
                        self.data = (f.offset, 1, Shape.cast(shape).width)
                self.fields.append((name, f.offset, f.width))
        else:
            self.data = (0, 1, self.width)
            self.fields.append(("data", 0, self.width))
        self.flags = [(n, o) for n, o, w in self.fields if n not in ("data", "mode") and w == 1]
        self.mode = next(((o, w) for n, o, w in self.fields if n == "mode"), None)
        others = [n for n, _, w in self.fields if n not in ("data", "mode") and w != 1]
        #: a ``data`` descriptor is allowed (else the stream is raw-only)
        self.data_ok = self.data is not None and not others and len(self.flags) <= LOOPS
        if self.data is not None:
            _, lanes, lw = self.data
            self.sw = storage_bits(lw)
            self.data_nbytes = (lanes * self.sw + 7) // 8
        else:
            self.sw, self.data_nbytes = 8, 0

    def nbytes(self, kind: int) -> int:
        """The descriptor ``nbytes`` the board accepts for ``kind`` (0: not allowed)."""
        if kind == RAW:
            return self.raw_nbytes
        return self.data_nbytes if self.data_ok else 0

    def offset_sizes(self, word_bytes: int) -> list[int]:
        """The beat sizes of this stream that can start inside a word (their alignment is
        below ``word_bytes``); every other beat starts on a word boundary."""
        sizes = {self.nbytes(RAW), self.nbytes(DATA)} - {0}
        return sorted(n for n in sizes if alignment(n, word_bytes) < word_bytes)

    @property
    def max_nbytes(self) -> int:
        return max(self.raw_nbytes, self.data_nbytes if self.data_ok else 0)


class DescFields:
    """The fields of a packed descriptor value."""

    def __init__(self, v):
        self.bank = v[0:8]
        self.kind = v[8:16]
        self.nbytes = v[16:32]
        self.base = v[32:64]
        self.count = [v[64 + 16 * i:80 + 16 * i] for i in range(LOOPS)]
        self.stride = [v[128 + 32 * i:160 + 32 * i].as_signed() for i in range(LOOPS)]
        self.first = [v[256 + 8 * i:264 + 8 * i] for i in range(LOOPS)]
        self.last = [v[288 + 8 * i:296 + 8 * i] for i in range(LOOPS)]


class _LoopNest:
    """Loop indices and the beat address of a descriptor's loop nest: ``start`` loads beat 0,
    ``step`` moves to the next beat (``done`` after the last). No multiplier: ``p[l]`` is the
    address with the loops inside ``l`` at 0, updated by adding strides."""

    def __init__(self, m, d: DescFields, start, step, prefix):
        self.idx = [Signal(16, name=f"{prefix}_i{i}") for i in range(LOOPS)]
        self.p = [Signal(32, name=f"{prefix}_p{i}") for i in range(LOOPS)]
        self.done = Signal(name=f"{prefix}_done")
        self.at_last = [self.idx[i] == d.count[i] - 1 for i in range(LOOPS)]
        self.final = Cat(*self.at_last).all()
        self.addr = self.p[LOOPS - 1]
        with m.If(start):
            m.d.sync += [self.done.eq(0)] + [i.eq(0) for i in self.idx] + \
                [p.eq(d.base) for p in self.p]
        with m.Elif(step):
            # the innermost loop not at its end advances; the loops inside it restart
            nxts = []
            for lv in range(LOOPS):
                nxt = Signal(32, name=f"{prefix}_n{lv}")
                m.d.comb += nxt.eq(self.p[lv] + d.stride[lv])
                nxts.append(nxt)
            for lv in reversed(range(LOOPS)):
                nxt = nxts[lv]
                ctx = m.If if lv == LOOPS - 1 else m.Elif
                with ctx(~self.at_last[lv]):
                    m.d.sync += [self.idx[lv].eq(self.idx[lv] + 1)]
                    m.d.sync += [self.p[k].eq(nxt) for k in range(lv, LOOPS)]
                    m.d.sync += [self.idx[k].eq(0) for k in range(lv + 1, LOOPS)]
            with m.Else():
                m.d.sync += self.done.eq(1)

    def flag(self, d: DescFields, j: int):
        """Flag ``j`` of the current beat (docs/programs.md)."""
        terms = []
        for lv in range(LOOPS):
            terms.append(~d.first[j][lv] | (self.idx[lv] == 0))
            terms.append(~d.last[j][lv] | self.at_last[lv])
        return Cat(*terms).all()


class Player(wiring.Component):
    """Plays one descriptor into a unit input stream.

    Ports: ``desc`` (the packed descriptor), ``mode`` (the op's mode), ``start`` (a pulse:
    load the descriptor, beat 0), ``run`` (stream while high), ``req``/``addr``/``grant``/
    ``rdata`` (the memory), ``port`` (the stream to the unit), ``done`` (every beat sent),
    ``moved`` (a beat went to the unit this cycle).
    """

    FIFO_DEPTH = 4

    def __init__(self, layout, word_bytes: int, addr_bits: int):
        self.sl = StreamLayout(layout)
        self.word_bytes = word_bytes
        self.max_words = -(-self.sl.max_nbytes // word_bytes)
        super().__init__({
            "desc": In(DESC_BITS), "mode": In(8), "start": In(1), "run": In(1),
            "req": Out(1), "addr": Out(addr_bits), "grant": In(1), "rdata": In(8 * word_bytes),
            "port": Out(stream.Signature(layout)), "done": Out(1), "moved": Out(1)})

    def elaborate(self, platform):
        m = Module()
        sl, wb = self.sl, self.word_bytes
        lg = wb.bit_length() - 1
        d = DescFields(self.desc)
        q = fifo.SyncFIFO(width=sl.width, depth=self.FIFO_DEPTH)
        m.submodules.fifo = q

        w = Signal(range(max(2, self.max_words)))
        nwords = Signal(range(self.max_words + 2))
        m.d.comb += nwords.eq((d.nbytes + wb - 1) >> lg)
        wlast = w == nwords - 1
        inflight = Signal()
        inf_last = Signal()
        inf_w = Signal.like(w)
        inf_off = Signal(range(wb))
        inf_flags = Signal(max(1, len(sl.flags)))
        fire = Signal()
        nest = _LoopNest(m, d, self.start, fire & wlast, "pl")

        m.d.comb += [
            fire.eq(self.run & ~nest.done & (q.level + (inflight & inf_last) < self.FIFO_DEPTH)
                    & self.grant),
            self.req.eq(self.run & ~nest.done
                        & (q.level + (inflight & inf_last) < self.FIFO_DEPTH)),
            self.addr.eq((nest.addr >> lg) + w),
        ]
        with m.If(self.start):
            m.d.sync += w.eq(0)
        with m.Elif(fire):
            m.d.sync += w.eq(Mux(wlast, 0, w + 1))
        m.d.sync += [inflight.eq(fire), inf_last.eq(wlast), inf_w.eq(w),
                     inf_off.eq(nest.addr[:lg] if lg else 0)]
        if sl.flags:
            m.d.sync += inf_flags.eq(Cat(*[nest.flag(d, j) for j in range(len(sl.flags))]))

        # the beat's bytes: earlier words of a multi-word beat wait in ``asm``
        wbits = 8 * wb
        asm = Signal(max(1, self.max_words - 1) * wbits)
        if self.max_words > 1:
            with m.If(inflight & ~inf_last):
                for k in range(self.max_words - 1):
                    with m.If(inf_w == k):
                        m.d.sync += asm.word_select(k, wbits).eq(self.rdata)
        words = []
        for k in range(self.max_words):
            if k < self.max_words - 1:
                words.append(Mux(inf_w == k, self.rdata, asm.word_select(k, wbits)))
            else:
                words.append(self.rdata)
        # A beat that can start inside a word is at most half a word and its offset a
        # multiple of its alignment: pick it from the word by a mux over those positions,
        # not by a barrel shift of the whole (multi-word) beat.
        beat = Signal(self.max_words * wbits)
        m.d.comb += beat.eq(Cat(*words))
        for n in sl.offset_sizes(wb):
            a = alignment(n, wb)
            pos = [self.rdata[8 * a * k:8 * (a * k + n)] for k in range(wb // a)]
            with m.If(d.nbytes == n):
                m.d.comb += beat.eq(Array(pos)[inf_off >> (a.bit_length() - 1)])

        payload = Signal(sl.width)
        raw_val = beat[:sl.width] if len(beat) >= sl.width else beat
        if sl.data_ok:
            doff, lanes, lw = sl.data
            pieces = {doff: Cat(*[beat[k * sl.sw:k * sl.sw + lw] for k in range(lanes)])}
            for j, (_, off) in enumerate(sl.flags):
                pieces[off] = inf_flags[j]
            if sl.mode is not None:
                pieces[sl.mode[0]] = self.mode[:sl.mode[1]]
            data_val = Signal(sl.width)
            for off, v in pieces.items():
                m.d.comb += data_val[off:off + len(v)].eq(v)
            m.d.comb += payload.eq(Mux(d.kind == DATA, data_val, raw_val))
        else:
            m.d.comb += payload.eq(raw_val)

        m.d.comb += [
            q.w_en.eq(inflight & inf_last),
            q.w_data.eq(payload),
            self.port.valid.eq(q.r_rdy & self.run),
            self.port.payload.eq(q.r_data),
            q.r_en.eq(self.port.ready & self.run),
            self.moved.eq(self.port.valid & self.port.ready),
            self.done.eq(nest.done & ~inflight & (q.level == 0)),
        ]
        return m


class Storer(wiring.Component):
    """Stores a unit output stream's beats at one descriptor's addresses.

    Ports: ``desc``, ``start``, ``run`` as :class:`Player`; ``req``/``addr``/``wdata``/``be``/
    ``grant`` (a word write with byte enables, taken when granted); ``port`` (the stream from
    the unit); ``done`` (every beat stored); ``moved`` (a word written this cycle).
    Beats beyond the descriptor's are not taken (the unit's stream stalls).
    """

    def __init__(self, layout, word_bytes: int, addr_bits: int):
        self.sl = StreamLayout(layout)
        self.word_bytes = word_bytes
        self.max_words = -(-self.sl.max_nbytes // word_bytes)
        super().__init__({
            "desc": In(DESC_BITS), "start": In(1), "run": In(1),
            "req": Out(1), "addr": Out(addr_bits), "wdata": Out(8 * word_bytes),
            "be": Out(word_bytes), "grant": In(1),
            "port": In(stream.Signature(layout)), "done": Out(1), "moved": Out(1)})

    def elaborate(self, platform):
        m = Module()
        sl, wb = self.sl, self.word_bytes
        lg = wb.bit_length() - 1
        wbits = 8 * wb
        d = DescFields(self.desc)
        nbits = self.max_words * wbits

        w = Signal(range(max(2, self.max_words)))
        nwords = Signal(range(self.max_words + 2))
        m.d.comb += nwords.eq((d.nbytes + wb - 1) >> lg)
        wlast = w == nwords - 1
        full = Signal()
        beat = Signal(nbits)  # the held beat's bytes
        write = Signal()
        nest = _LoopNest(m, d, self.start, write & wlast, "st")

        # the incoming payload as bytes
        pv = Value.cast(self.port.payload)
        as_bytes = Signal(nbits)
        if sl.data_ok:
            doff, lanes, lw = sl.data
            lanes_v = Cat(*[Cat(pv[doff + k * lw:doff + (k + 1) * lw], Const(0, sl.sw - lw))
                            for k in range(lanes)])
            m.d.comb += as_bytes.eq(Mux(d.kind == DATA, lanes_v, pv))
        else:
            m.d.comb += as_bytes.eq(pv)
        # raw beats and data beats are whole bytes: zero the bits past nbytes
        keep = Cat(*[Mux(d.nbytes > k, Const(0xFF, 8), Const(0, 8))
                     for k in range(nbits // 8)])
        accept = Signal()
        m.d.comb += [
            write.eq(self.run & full & self.grant),
            accept.eq(self.run & ~nest.done & self.port.valid
                      & (~full | (write & wlast & ~nest.final))),
            self.port.ready.eq(self.run & ~nest.done & (~full | (write & wlast & ~nest.final))),
            self.req.eq(self.run & full),
            self.addr.eq((nest.addr >> lg) + w),
            self.moved.eq(write),
            self.done.eq(nest.done),
        ]
        # a beat that starts on a word boundary is written word by word; one that can start
        # inside a word (at most half a word, at a multiple of its alignment) is copied to
        # every position of the word and the byte enables pick its place
        off = nest.addr[:lg] if lg else Const(0, 1)
        mask = Cat(*[d.nbytes > k for k in range(nbits // 8)])
        m.d.comb += [self.wdata.eq(beat.word_select(w, wbits)),
                     self.be.eq(mask.word_select(w, wb))]
        for n in sl.offset_sizes(wb):
            a = alignment(n, wb)
            piece = Cat(beat[:8 * n], Const(0, 8 * (a - n)))
            sel = off >> (a.bit_length() - 1)
            with m.If(d.nbytes == n):
                m.d.comb += [
                    self.wdata.eq(Cat(*[piece] * (wb // a))),
                    self.be.eq(Cat(*[Mux(sel == k, Const((1 << n) - 1, a), 0)
                                     for k in range(wb // a)])),
                ]
        with m.If(self.start):
            m.d.sync += [w.eq(0), full.eq(0)]
        with m.Else():
            with m.If(write):
                m.d.sync += w.eq(Mux(wlast, 0, w + 1))
                with m.If(wlast):
                    m.d.sync += full.eq(accept)
            with m.Elif(accept):
                m.d.sync += full.eq(1)
            with m.If(accept):
                m.d.sync += beat.eq(as_bytes & keep)
        return m


def arbitrate(m, requests, banks: list):
    """Fixed-priority grants: ``requests[i]`` wants bank ``banks[i]``; the lowest ``i`` asking
    for a bank gets it. Returns the grant signals."""
    grants = []
    for i, (r, b) in enumerate(zip(requests, banks, strict=True)):
        g = Signal(name=f"grant{i}")
        blocked = [requests[k] & (banks[k] == b) for k in range(i)]
        m.d.comb += g.eq(r & ~Cat(*blocked).any() if blocked else r)
        grants.append(g)
    return grants

