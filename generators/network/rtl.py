"""The `network` unit in Amaranth: one stage per Dense layer, elementwise layers fused after it.

A Dense stage holds one row: it takes ``x`` [n_in] when idle, then multiplies ``P`` inputs by
their ``n_out`` weights per cycle (``P = ceil(n_in / reuse_factor)``, so each multiplier is used
``C = ceil(n_in / P)`` times per row — hls4ml's reuse factor), the products registered (a DSP's
pipeline register), each converted to the accumulator type and summed into ``n_out``
accumulators that start at the converted bias. After the last chunk the row's result, converted
to the result type and through the elementwise layers that follow (ReLU, BatchNorm), is offered
downstream; a new row is taken in the same cycle the result is handed on.

Stage timing (see :func:`generators.network.params.expected_cycles`): accepted at cycle ``A``,
the result is offered from ``A + C + 2``.

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
from ..hls.lower import BatchNormLayer, DenseLayer, ReluLayer, SoftmaxLayer
from ..hwnum import convert
from ..numerics import requantize
from ..softmax.rtl import Softmax
from .params import NetworkParams

__all__ = ["Network"]


class Network(wiring.Component):
    """``y = layers(x)`` row by row: ``x_stream`` rows in, ``y_stream`` rows out."""

    def __init__(self, params: NetworkParams):
        self.p = params
        m = params.model
        super().__init__({
            "x_stream": In(stream.Signature(data.StructLayout(
                {"data": data.ArrayLayout(m.inp.fmt.shape(), params.n_in)}))),
            "y_stream": Out(stream.Signature(data.StructLayout(
                {"data": data.ArrayLayout(m.out.fmt.shape(), params.n_out)}))),
        })

    def elaborate(self, platform):
        m = Module()
        valid, payload, ready = self.x_stream.valid, self.x_stream.payload.data, \
            self.x_stream.ready
        for i, stage in enumerate(self.p.stages):
            last = i == len(self.p.stages) - 1
            out_ready = self.y_stream.ready if last else Signal(name=f"s{i}_out_ready")
            build = _dense_stage if isinstance(stage[0], DenseLayer) else _unit_stage
            vals, out_valid = build(m, f"s{i}", stage, valid, payload, ready, out_ready)
            if last:
                m.d.comb += self.y_stream.valid.eq(out_valid)
                for j, v in enumerate(vals):
                    m.d.comb += self.y_stream.payload.data[j].eq(v)
            else:
                nxt = self.p.stages[i + 1][0]
                row = Signal(data.ArrayLayout(nxt.inp.fmt.shape(), nxt.n_in), name=f"s{i}_y")
                for j, v in enumerate(vals):
                    m.d.comb += row[j].eq(v)
                valid, payload, ready = out_valid, row, out_ready
        return m


def _dense_stage(m: Module, name: str, stage: tuple, in_valid, in_data, in_ready, out_ready):
    """Build one Dense stage (and its elementwise tail); return the output values and valid."""
    dense: DenseLayer = stage[0]
    post = stage[1:]
    n_in, n_out = dense.n_in, dense.n_out
    P, C = NetworkParams.chunking(dense)
    acc_fmt = dense.accum.fmt
    in_fmt = dense.inp.fmt
    prod_frac = in_fmt.frac_bits + dense.weight.fmt.frac_bits

    xbuf = [Signal(in_fmt.shape(), name=f"{name}_x{i}") for i in range(n_in)]
    acc = [Signal(acc_fmt.shape(), name=f"{name}_acc{j}", reset_less=True)
           for j in range(n_out)]
    prod_shape = (in_fmt.shape(), dense.weight.fmt.shape())
    preg = [[Signal.like(Const(0, prod_shape[0]) * Const(0, prod_shape[1]),
                         name=f"{name}_p{p}_{j}", reset_less=True) for j in range(n_out)]
            for p in range(P)]
    run = Signal(name=f"{name}_run")
    done = Signal(name=f"{name}_done")
    pv = Signal(name=f"{name}_pv")
    cnt = Signal(range(C + 1), name=f"{name}_cnt")

    bias = requantize(dense.b, dense.bias.fmt, acc_fmt, dense.accum.rounding, "wrap")
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
                    ws = [Const(int(dense.w[i, j]) if i < n_in else 0, dense.weight.fmt.shape())
                          for i in idx]
                    w = pick(ws)
                    m.d.sync += preg[p][j].eq(x * w)
        with m.Else():
            m.d.sync += [pv.eq(0), run.eq(0), done.eq(1)]
        with m.If(pv):
            for j in range(n_out):
                total = acc[j]
                for p in range(P):
                    total = total + convert(preg[p][j], prod_frac, acc_fmt,
                                            dense.accum.rounding, "wrap")
                m.d.sync += acc[j].eq(total[:acc_fmt.width])

    vals = [convert(a, acc_fmt.frac_bits, dense.result.fmt, dense.result.rounding,
                    dense.result.overflow) for a in acc]
    return _tail(m, name, vals, dense.result, post), done


def _unit_stage(m: Module, name: str, stage: tuple, in_valid, in_data, in_ready, out_ready):
    """A softmax or gelu unit taking a whole row per beat (and its element-wise tail)."""
    head = stage[0]
    p = NetworkParams.unit_params(head)
    if isinstance(head, SoftmaxLayer):
        unit = Softmax(p)
    else:
        unit = Gelu(p)
    m.submodules[f"{name}_{head.name.lower()}"] = unit
    i, o = unit.i_stream, unit.o_stream
    m.d.comb += [i.valid.eq(in_valid), i.payload.last.eq(1), in_ready.eq(i.ready),
                 o.ready.eq(out_ready)]
    if isinstance(head, SoftmaxLayer) and p.lanes > 1:
        m.d.comb += i.payload.keep.eq((1 << p.lanes) - 1)
    for j in range(head.n):
        m.d.comb += i.payload.data[j].eq(in_data[j])
    vals = [o.payload.data[j] for j in range(head.n)]
    return _tail(m, name, vals, head.result, stage[1:]), o.valid


def _tail(m: Module, name: str, vals: list, src, post: tuple) -> list:
    """The element-wise layers ``post`` (ReLU, BatchNorm) on ``vals`` (in ``src``), as
    combinational logic; returns one named signal per output."""
    for layer in post:
        if isinstance(layer, ReluLayer):
            vals = [convert(Mux(v > 0, v, 0), src.fmt.frac_bits, layer.result.fmt,
                            layer.result.rounding, layer.result.overflow) for v in vals]
        elif isinstance(layer, BatchNormLayer):
            fx, fs, fb = src.fmt.frac_bits, layer.scale_q.fmt.frac_bits, layer.bias.fmt.frac_bits
            frac = max(fx + fs, fb)
            new = []
            for j, v in enumerate(vals):
                s = Const(int(layer.scale[j]), layer.scale_q.fmt.shape())
                b = Const(int(layer.b[j]), layer.bias.fmt.shape())
                total = ((v * s) << (frac - fx - fs)) + (b << (frac - fb))
                new.append(convert(total, frac, layer.result.fmt, layer.result.rounding,
                                   layer.result.overflow))
            vals = new
        src = layer.result
    outs = []
    for j, v in enumerate(vals):
        sig = Signal(src.fmt.shape(), name=f"{name}_y{j}")
        m.d.comb += sig.eq(v)
        outs.append(sig)
    return outs
