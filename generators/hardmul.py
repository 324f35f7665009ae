"""The registered multiplier every MAC unit uses, as a Verilog module of its own.

A processing element multiplies two operands that were just registered and registers the
product: the A/B, M/P register layout of a pipelined hard multiplier. In the emitted Verilog
that multiplier is one module per operand-format pair, ``tf_mulreg_<a>x<b>`` (e.g.
``tf_mulreg_s8xs8``)::

    on en:  a_q <= a;  b_q <= b;  p <= a_q * b_q      (p is the product format, 2 cycles)

Keeping it a module of its own, with its registers inside, lets a synthesis flow swap in the
vendor cell with those registers enabled — e.g. an ECP5 ``MULT18X18D`` with its input and output
registers (:func:`generators.synth.ecp5_mulreg`) — where Yosys itself does not absorb them
(``synth_ecp5`` maps ``$mul`` to a purely combinational ``MULT18X18D``). Xilinx and iCE40 flows
absorb the same registers into DSP48E1 (AREG/BREG/MREG or PREG) and SB_MAC16 themselves.

The behaviour is the same with or without the module: Amaranth's simulator (no Verilog)
elaborates the registers inline; :func:`modules_rtlil` gives the modules that
:func:`generators.emit.render` writes into the Verilog the simulators run.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.back import rtlil
from amaranth.hdl import ClockSignal, Instance, Module, ResetSignal, Shape, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out


@dataclass(frozen=True)
class MulSpec:
    """Operand and product shapes of one multiplier module."""

    a_width: int
    a_signed: bool
    b_width: int
    b_signed: bool
    p_width: int

    @property
    def p_signed(self) -> bool:
        return self.a_signed or self.b_signed

    @property
    def module(self) -> str:
        def tag(w, s):
            return f"{'s' if s else 'u'}{w}"

        return (f"tf_mulreg_{tag(self.a_width, self.a_signed)}x"
                f"{tag(self.b_width, self.b_signed)}")

    def as_dict(self) -> dict:
        return {"module": self.module, "a_width": self.a_width, "a_signed": self.a_signed,
                "b_width": self.b_width, "b_signed": self.b_signed, "p_width": self.p_width,
                "p_signed": self.p_signed, "latency": 2}


class VerilogTarget:
    """The ``platform`` handed to ``elaborate`` when emitting Verilog: multipliers become
    instances of :class:`MulReg` modules, collected in ``mul_specs``; repeated leaf cells
    (e.g. a processing element) become instances of one module each, collected in
    ``modules`` (see :func:`leaf`)."""

    def __init__(self):
        self.mul_specs: dict[str, MulSpec] = {}
        self.modules: dict[str, wiring.Component] = {}


class MulReg(wiring.Component):
    """``a``/``b`` input registers and the product register, all advancing on ``en``."""

    def __init__(self, spec: MulSpec):
        self.spec = s = spec
        super().__init__({
            "en": In(1),
            "a": In(Shape(s.a_width, s.a_signed)),
            "b": In(Shape(s.b_width, s.b_signed)),
            "p": Out(Shape(s.p_width, s.p_signed)),
        })

    def elaborate(self, platform):
        m = Module()
        a_q = Signal.like(self.a, name="a_q", reset_less=True)
        b_q = Signal.like(self.b, name="b_q", reset_less=True)
        p_q = Signal.like(self.p, name="p_q", reset_less=True)
        with m.If(self.en):
            m.d.sync += [a_q.eq(self.a), b_q.eq(self.b), p_q.eq(a_q * b_q)]
        m.d.comb += self.p.eq(p_q)
        return m


def mul_reg(m: Module, platform, a, b, en, prod: Signal, name: str) -> None:
    """``prod`` becomes ``a * b`` two enabled cycles after ``a`` and ``b`` (operand registers,
    then the product register): an instance of the multiplier module when emitting Verilog,
    the same registers inline otherwise."""
    sa, sb = a.shape(), b.shape()
    spec = MulSpec(sa.width, sa.signed, sb.width, sb.signed, len(prod))
    if isinstance(platform, VerilogTarget):
        platform.mul_specs.setdefault(spec.module, spec)
        m.submodules[name] = Instance(spec.module, i_clk=ClockSignal(), i_rst=ResetSignal(),
                                      i_en=en, i_a=a, i_b=b, o_p=prod)
        return
    a_q = Signal(sa, name=f"{name}_a_q", reset_less=True)
    b_q = Signal(sb, name=f"{name}_b_q", reset_less=True)
    with m.If(en):
        m.d.sync += [a_q.eq(a), b_q.eq(b), prod.eq(a_q * b_q)]


def leaf(m: Module, platform, module: str, make, name: str, **ports) -> None:
    """One instance of a repeated leaf cell, ``make()`` (a :class:`wiring.Component` whose
    ports are plain values), connected to ``ports`` (signature member -> value).

    When emitting Verilog the cell is converted once, as module ``module`` (a name that must
    encode every parameter of ``make``), and every use is an instance of it: an array of
    identical processing elements is then one small module and ``rows x cols`` instances
    rather than ``rows x cols`` copies of its logic in the netlist, which keeps emission of
    large arrays fast. Otherwise (Amaranth's simulator) the cell is an ordinary submodule.
    Cells share the parent's ``sync`` domain (``clk``/``rst``).
    """
    if isinstance(platform, VerilogTarget):
        comp = platform.modules.get(module)
        if comp is None:
            comp = platform.modules[module] = make()
        kw = {"i_clk": ClockSignal(), "i_rst": ResetSignal()}
        for pname, value in ports.items():
            flow = comp.signature.members[pname].flow
            kw[("i_" if flow == In else "o_") + pname] = value
        m.submodules[name] = Instance(module, **kw)
        return
    comp = make()
    m.submodules[name] = comp
    for pname, value in ports.items():
        if comp.signature.members[pname].flow == In:
            m.d.comb += getattr(comp, pname).eq(value)
        else:
            m.d.comb += value.eq(getattr(comp, pname))


def modules_rtlil(target: VerilogTarget) -> str:
    """RTLIL of the leaf modules and multiplier modules a design instantiates (behavioural,
    any tool), none of them marked as the design's top. Leaf modules go first: converting
    them registers their multipliers."""
    out = []
    for name, comp in sorted(target.modules.items()):
        out.append(rtlil.convert(comp, name=name, platform=target, emit_src=False))
    for name, spec in sorted(target.mul_specs.items()):
        out.append(rtlil.convert(MulReg(spec), name=name, emit_src=False))
    # only the unit is the design's top
    return "".join(text.replace("attribute \\top 1\n", "") for text in out)
