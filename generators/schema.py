"""Field types and error helpers shared by every family's config schema.

A unit family's config is a pydantic v2 model in its own package (``generators/<family>/``),
derived from :class:`UnitBase`: frozen (a config is a value: hash it, compare it, never mutate
it), unknown keys forbidden, strict types. That model *is* the unit's parameters object: the
RTL, the golden model, the schedule and the host read its fields and derived properties, so
every default and every check is written once, here or in the family's model.

Validators raise the two error kinds below; :mod:`generators.config` turns the first error of
a file into the one-line message the user sees, passing these through in their own wording.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

from .numerics import Format, NumberFormat

__all__ = ["UnitBase", "FormatField", "AnyFormatField", "OperandFormat", "AccFormat",
           "Identifier", "FIXED_ALLOWED",
           "VERILOG_KEYWORDS", "problem", "field_problem", "show", "fmt_str", "tuple_of"]

OPERAND_WIDTHS = (2, 16)
MAX_ACC_WIDTH = 64
MAX_NAME_LENGTH = 64


def problem(text: str) -> PydanticCustomError:
    """An error about the value at the error's own location, in its final wording."""
    return PydanticCustomError("tensorfab", "{problem}", {"problem": text})


def field_problem(field: str, text: str) -> PydanticCustomError:
    """An error from a cross-field check (raised on the model), naming the field it is about."""
    return PydanticCustomError(
        "tensorfab_field", "{field}: {problem}", {"field": field, "problem": text}
    )


def show(value: Any) -> str:
    """A value as the user wrote it in YAML, short and on one line."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, str) and len(value) > 36:
        return repr(value[:36] + "...")
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def fmt_str(width: int, int_bits: int, signed: bool) -> str:
    """Canonical text of a format, for suggestions in messages."""
    try:
        return str(Format(width=width, int_bits=int_bits, signed=signed))
    except (TypeError, ValueError):
        return f"{'' if signed else 'u'}fixed<{width},{int_bits}>"


def tuple_of(what: str):
    """A before-validator that accepts a YAML list as a tuple (strict mode wants tuples) and
    refuses anything else with ``expected a list of <what>``."""

    def convert(value: Any) -> Any:
        if isinstance(value, list):
            return tuple(value)
        if not isinstance(value, tuple):
            raise problem(f"expected a list of {what}, got {show(value)}")
        return value

    return BeforeValidator(convert)


# -- field types -----------------------------------------------------------------------------


#: The fixed-point spellings, for messages of fields that take nothing else.
FIXED_ALLOWED = "intN, uintN, fixed<W,I>, ufixed<W,I>"


def _to_any_format(value: Any) -> NumberFormat:
    if isinstance(value, NumberFormat):
        return value
    if not isinstance(value, str):
        raise problem(f"expected a format string such as int8 or fixed<8,3>, got {show(value)}")
    try:
        return Format.parse(value)
    except ValueError as err:
        raise problem(str(err).splitlines()[0] if str(err) else f"bad format {value!r}") from None


def _to_format(value: Any) -> Format:
    fmt = _to_any_format(value)
    if fmt.kind != "fixed":
        raise problem(f"{fmt} is not allowed here (allowed: {FIXED_ALLOWED}; floating-point "
                      "and MX formats only where a unit says so)")
    return fmt


#: A fixed-point number format, written as its canonical string (``int8``, ``fixed<8,3>``) in
#: YAML. Float and MX format strings parse but are refused here with a one-line message.
FormatField = Annotated[
    Format,
    BeforeValidator(_to_format),
    PlainSerializer(str, return_type=str),
    WithJsonSchema({"type": "string", "examples": ["int8", "uint4", "fixed<8,3>"]}),
]
#: Any number format: fixed point, an element float (``fp8_e4m3`` ...) or MX (``mxfp4`` ...);
#: the unit's own validators say which are allowed.
AnyFormatField = Annotated[
    NumberFormat,
    BeforeValidator(_to_any_format),
    PlainSerializer(str, return_type=str),
    WithJsonSchema({"type": "string", "examples": ["int8", "fixed<8,3>", "fp8_e4m3", "mxfp4"]}),
]


def _operand_width(fmt: Format) -> Format:
    lo, hi = OPERAND_WIDTHS
    if fmt.width > hi:
        raise problem(f"{fmt} is too wide for an operand (allowed: {lo}..{hi} bits)")
    if fmt.width < lo:
        raise problem(f"{fmt} is too narrow for an operand (allowed: {lo}..{hi} bits)")
    return fmt


def _acc_width(fmt: Format) -> Format:
    if fmt.width > MAX_ACC_WIDTH:
        raise problem(f"{fmt} is too wide for an accumulator (allowed: up to {MAX_ACC_WIDTH} "
                      "bits)")
    return fmt


OperandFormat = Annotated[FormatField, AfterValidator(_operand_width)]
AccFormat = Annotated[FormatField, AfterValidator(_acc_width)]


#: Verilog-2005 and SystemVerilog (IEEE 1800-2017) keywords: tools escape them as ``\\name``
#: or refuse them, so a unit may not be named after one.
VERILOG_KEYWORDS = frozenset("""
always and assign automatic begin buf bufif0 bufif1 case casex casez cell cmos config deassign
default defparam design disable edge else end endcase endconfig endfunction endgenerate
endmodule endprimitive endspecify endtable endtask event for force forever fork function
generate genvar highz0 highz1 if ifnone incdir include initial inout input instance integer
join large liblist library localparam macromodule medium module nand negedge nmos nor
noshowcancelled not notif0 notif1 or output parameter pmos posedge primitive pull0 pull1
pulldown pullup pulsestyle_ondetect pulsestyle_onevent rcmos real realtime reg release repeat
rnmos rpmos rtran rtranif0 rtranif1 scalared showcancelled signed small specify specparam
strong0 strong1 supply0 supply1 table task time tran tranif0 tranif1 tri tri0 tri1 triand
trior trireg unsigned use uwire vectored wait wand weak0 weak1 while wire wor xnor xor
accept_on alias always_comb always_ff always_latch assert assume before bind bins binsof bit
break byte chandle checker class clocking const constraint context continue cover covergroup
coverpoint cross dist do endchecker endclass endclocking endgroup endinterface endpackage
endprogram endproperty endsequence enum eventually expect export extends extern final
first_match foreach forkjoin global iff ignore_bins illegal_bins implements implies import
inside int interconnect interface intersect join_any join_none let local logic longint matches
modport nettype new nexttime null package packed priority program property protected pure
rand randc randcase randsequence ref reject_on restrict return s_always s_eventually
s_nexttime s_until s_until_with sequence shortint shortreal soft solve static string strong
struct super sync_accept_on sync_reject_on tagged this throughout timeprecision timeunit type
typedef union unique unique0 until until_with untyped var virtual void wait_order weak
wildcard with within
""".split())


def _identifier(name: str) -> str:
    ok = (
        name[:1].isascii()
        and (name[:1].isalpha() or name[:1] == "_")
        and all(c.isascii() and (c.isalnum() or c == "_") for c in name)
    )
    if not ok:
        raise problem(f"{show(name)} is not a Verilog identifier (allowed: letters, digits "
                      "and _, not starting with a digit)")
    if name in VERILOG_KEYWORDS:
        raise problem(f"{show(name)} is a Verilog keyword (allowed: another name, e.g. "
                      f"{name}_0)")
    if len(name) > MAX_NAME_LENGTH:
        raise problem(f"{show(name)} is {len(name)} characters long (allowed: at most "
                      f"{MAX_NAME_LENGTH})")
    return name


Identifier = Annotated[
    str,
    AfterValidator(_identifier),
    WithJsonSchema(
        {"type": "string", "pattern": r"^[A-Za-z_][A-Za-z0-9_]*$", "maxLength": MAX_NAME_LENGTH}
    ),
]


class UnitBase(BaseModel):
    """Keys every unit config has. Subclasses add ``unit: Literal["<family>"]`` and their own
    keys; derived values are properties (``functools.cached_property`` where costly)."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", strict=True, arbitrary_types_allowed=True
    )

    name: Identifier = Field(
        description="Names the emitted top module and its files (`<name>.v`, `<name>.json`): "
        "a Verilog identifier of at most 64 characters."
    )
