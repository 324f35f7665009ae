"""The `network` unit in Amaranth: one stage per Dense layer, elementwise layers fused after it.

A Dense stage holds one row: it takes ``x`` [n_in] when idle, then multiplies ``P`` inputs by
their ``n_out`` weights per cycle (``P = ceil(n_in / reuse_factor)``, so each multiplier is used
``C = ceil(n_in / P)`` times per row — hls4ml's reuse factor), the products registered (a DSP's
pipeline register), each converted to the accumulator type and summed into ``n_out``
accumulators that start at the converted bias. After the last chunk the row's result, converted
to the result type and through the elementwise layers that follow (ReLU, BatchNorm), is offered
downstream; a new row is taken in the same cycle the result is handed on.

Stage timing (see :meth:`generators.network.params.NetworkParams.expected_cycles`): accepted
at cycle ``A``, the result is offered from ``A + C + 2``. A requant layer (real scales: the
QONNX front end) right after a Dense layer is one ``RequantLane`` per output on the held
accumulators, and the result is offered its ``L`` stages later (``A + C + L + 2``).

Softmax and GELU layers are stages of their own: the softmax and gelu units' components
(:class:`generators.softmax.rtl.Softmax`, :class:`generators.gelu.rtl.Gelu`) with one lane per
element of the row, so a row is one beat (``last`` set, every ``keep`` bit set); ReLU and
BatchNorm layers after a GELU are fused after it like after a Dense stage.
"""

from __future__ import annotations

from amaranth.hdl import Array, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..gelu.rtl import Gelu
from ..hwnum import convert
from ..numerics import requantize
from ..requant.rtl import RequantLane
from ..softmax.rtl import Softmax
from .layers import BatchNormLayer, DenseLayer, ReluLayer, RequantLayer
from .params import NetworkParams, Stage

__all__ = ["Network"]


class Network(wiring.Component):
    """``y = layers(x)`` row by row: ``x_stream`` rows in, ``y_stream`` rows out."""

    def __init__(self, params: NetworkParams):
        self.p = params
        super().__init__({
            "x_stream": In(stream.Signature(data.StructLayout(
                {"data": data.ArrayLayout(params.input.format.shape(), params.n_in)}))),
            "y_stream": Out(stream.Signature(data.StructLayout(
                {"data": data.ArrayLayout(params.out.format.shape(), params.n_out)}))),
        })

    def elaborate(self, platform):
        m = Module()
        valid, payload, ready = self.x_stream.valid, self.x_stream.payload.data, \
            self.x_stream.ready
        for i, stage in enumerate(self.p.stages):
            last = i == len(self.p.stages) - 1
            out_ready = self.y_stream.ready if last else Signal(name=f"s{i}_out_ready")
            build = _dense_stage if stage.kind == "dense" else _unit_stage
            vals, out_valid = build(m, f"s{i}", stage, valid, payload, ready, out_ready)
            if last:
                m.d.comb += self.y_stream.valid.eq(out_valid)
                for j, v in enumerate(vals):
                    m.d.comb += self.y_stream.payload.data[j].eq(v)
            else:
                nxt = self.p.stages[i + 1]
                row = Signal(data.ArrayLayout(nxt.inp.format.shape(), nxt.n_in),
                             name=f"s{i}_y")
                for j, v in enumerate(vals):
                    m.d.comb += row[j].eq(v)
                valid, payload, ready = out_valid, row, out_ready
        return m


def _dense_stage(m: Module, name: str, stage: Stage, in_valid, in_data, in_ready, out_ready):
    """Build one Dense stage (and its elementwise tail); return the output values and valid."""
    dense: DenseLayer = stage.head
    n_in, n_out = dense.n_in, dense.n_out
    P, C = stage.chunking
    acc_fmt = dense.accum.format
    in_fmt = stage.inp.format
    w_fmt = dense.weight.format
    prod_frac = in_fmt.frac_bits + w_fmt.frac_bits

    xbuf = [Signal(in_fmt.shape(), name=f"{name}_x{i}") for i in range(n_in)]
    acc = [Signal(acc_fmt.shape(), name=f"{name}_acc{j}", reset_less=True)
           for j in range(n_out)]
    prod_shape = (in_fmt.shape(), w_fmt.shape())
    preg = [[Signal.like(Const(0, prod_shape[0]) * Const(0, prod_shape[1]),
                         name=f"{name}_p{p}_{j}", reset_less=True) for j in range(n_out)]
            for p in range(P)]
    L = stage.requant_stages       # a fused requant layer's pipeline: the result L later
    run = Signal(name=f"{name}_run")
    done = Signal(name=f"{name}_done")
    pv = Signal(name=f"{name}_pv")
    cnt = Signal(range(C + L + 1), name=f"{name}_cnt")

    bias = requantize(dense.b_codes, dense.bias.format, acc_fmt, dense.accum.rounding, "wrap")
    take = Signal(name=f"{name}_take")
    give = Signal(name=f"{name}_give")
    m.d.comb += [
        in_ready.eq(~run & (~done | out_ready)),
        take.eq(in_valid & in_ready),
        give.eq(done & out_ready),
    ]
    with m.If(take):
        m.d.sync += [run.eq(1), done.eq(0), pv.eq(0), cnt.eq(0)]
        m.d.sync += [xbuf[i].eq(in_data[i]) for i in range(n_in)]
        m.d.sync += [acc[j].eq(int(bias[j])) for j in range(n_out)]
    with m.Elif(give):
        m.d.sync += done.eq(0)

    # chunk select: an index whose every value names an entry (Verilator wants full cases)
    bits = max(1, (C - 1).bit_length())
    sel = cnt[:bits]

    def pick(values: list):
        return values[0] if C == 1 else Array(values + [values[-1]] * (2**bits - C))[sel]

    with m.If(run):
        with m.If(cnt < C):
            m.d.sync += [pv.eq(1), cnt.eq(cnt + 1)]
            for p in range(P):
                idx = [c * P + p for c in range(C)]
                xs = [xbuf[i] if i < n_in else Const(0, in_fmt.shape()) for i in idx]
                x = pick(xs)
                for j in range(n_out):
                    ws = [Const(dense.w[i][j] if i < n_in else 0, w_fmt.shape())
                          for i in idx]
                    w = pick(ws)
                    m.d.sync += preg[p][j].eq(x * w)
        if L:
            with m.Elif(cnt < C + L):     # the last sums, then the requant lanes' stages
                m.d.sync += [pv.eq(0), cnt.eq(cnt + 1)]
        with m.Else():
            m.d.sync += [pv.eq(0), run.eq(0), done.eq(1)]
        with m.If(pv):
            for j in range(n_out):
                total = acc[j]
                for p in range(P):
                    total = total + convert(preg[p][j], prod_frac, acc_fmt,
                                            dense.accum.rounding, "wrap")
                m.d.sync += acc[j].eq(total[:acc_fmt.width])

    vals = [convert(a, acc_fmt.frac_bits, dense.result.format, dense.result.rounding,
                    dense.result.overflow) for a in acc]
    if L:
        rq: RequantLayer = stage.tail[0]
        vals = _requant_lanes(m, name, rq, dense.result.format, vals)
        return _tail(m, name, vals, rq.result, stage.tail[1:]), done
    return _tail(m, name, vals, dense.result, stage.tail), done


def _requant_lanes(m: Module, name: str, rq: RequantLayer, inp, vals: list) -> list:
    """One ``RequantLane`` per output on the (held) accumulators, always enabled: its output
    is the requantized code ``L`` cycles after the last sum, and stays while they hold."""
    out = []
    for j, v in enumerate(vals):
        lane = RequantLane(inp, rq.result.format, rq.rounding)
        m.submodules[f"{name}_rq{j}"] = lane
        m.d.comb += [lane.en.eq(1), lane.acc.eq(v), lane.bias.eq(rq.b[j]),
                     lane.multiplier.eq(rq.multiplier[j]), lane.shift.eq(rq.shift[j]),
                     lane.zero_point.eq(rq.zero_point), lane.act_min.eq(rq.lo),
                     lane.act_max.eq(rq.hi)]
        out.append(lane.y)
    return out


def _unit_stage(m: Module, name: str, stage: Stage, in_valid, in_data, in_ready, out_ready):
    """A softmax or gelu unit taking a whole row per beat (and its element-wise tail)."""
    head = stage.head
    p = stage.unit
    if stage.kind == "softmax":
        unit = Softmax(p)
    else:
        unit = Gelu(p)
    m.submodules[f"{name}_{head.name.lower()}"] = unit
    i, o = unit.i_stream, unit.o_stream
    m.d.comb += [i.valid.eq(in_valid), i.payload.last.eq(1), in_ready.eq(i.ready),
                 o.ready.eq(out_ready)]
    if stage.kind == "softmax" and p.lanes > 1:
        m.d.comb += i.payload.keep.eq((1 << p.lanes) - 1)
    for j in range(stage.n_in):
        m.d.comb += i.payload.data[j].eq(in_data[j])
    vals = [o.payload.data[j] for j in range(stage.n_in)]
    return _tail(m, name, vals, head.result, stage.tail), o.valid


def _tail(m: Module, name: str, vals: list, src, post: tuple) -> list:
    """The element-wise layers ``post`` (ReLU, BatchNorm) on ``vals`` (in ``src``), as
    combinational logic; returns one named signal per output."""
    for layer in post:
        if isinstance(layer, ReluLayer):
            vals = [convert(Mux(v > 0, v, 0), src.format.frac_bits, layer.result.format,
                            layer.result.rounding, layer.result.overflow) for v in vals]
        elif isinstance(layer, BatchNormLayer):
            s_fmt, b_fmt = layer.scale_type.format, layer.bias.format
            fx, fs, fb = src.format.frac_bits, s_fmt.frac_bits, b_fmt.frac_bits
            frac = max(fx + fs, fb)
            new = []
            for j, v in enumerate(vals):
                s = Const(layer.scale[j], s_fmt.shape())
                b = Const(layer.b[j], b_fmt.shape())
                total = ((v * s) << (frac - fx - fs)) + (b << (frac - fb))
                new.append(convert(total, frac, layer.result.format, layer.result.rounding,
                                   layer.result.overflow))
            vals = new
        src = layer.result
    outs = []
    for j, v in enumerate(vals):
        sig = Signal(src.format.shape(), name=f"{name}_y{j}")
        m.d.comb += sig.eq(v)
        outs.append(sig)
    return outs
