"""Config files: YAML -> typed, frozen, validated unit configs and board designs.

A config file holds one YAML document, a mapping of config keys. It is read with PyYAML's safe
loader (a key given twice is an error) and validated by the pydantic model of its family: the
``unit`` key picks the family from :mod:`generators.registry`, and that family's model (in
``generators/<family>/``, a :class:`~generators.schema.UnitBase`) is the unit's parameters
object too. A mapping with a ``board`` key and no ``unit`` key is a :class:`BoardConfig`.

This module holds what every family shares: the loading and the board designs; the wording of
errors is :mod:`generators.config_errors`. Every problem with a file is raised as
:class:`~generators.errors.ConfigError` whose message is one line,
``FILE: field.path: problem (allowed: ...)``, built from the first validation error.

Example
-------
>>> cfg = load_config("configs/mac8x8.yaml")          # doctest: +SKIP
>>> cfg.rows, str(cfg.acc), cfg.internal_width          # doctest: +SKIP
(8, 'int32', 32)
"""

from __future__ import annotations

import os
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SerializeAsAny,
    ValidationError,
)
from pydantic_core import PydanticCustomError

from . import registry
from .config_errors import dotted, first_error, kind_of, non_string_key
from .errors import ConfigError
from .schema import Identifier, UnitBase, problem, show

__all__ = ["UnitBase", "BoardConfig", "LinkConfig", "TensorMemoryConfig", "BOARDS",
           "TENSOR_MEMORY_BYTES", "load_config", "parse_config",
           "config_to_dict", "replace_config"]

class _Invalid(Exception):
    """A unit config that does not validate; ``message`` is the one line without the source."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def _parse_unit(data: dict) -> UnitBase:
    """Validate one unit config mapping by its ``unit`` key's family (raises :class:`_Invalid`)."""
    allowed = ", ".join(registry.names())
    if "unit" not in data:
        raise _Invalid(f"unit: missing required key (allowed: {allowed})")
    unit = data["unit"]
    if not isinstance(unit, str) or unit not in registry.names():
        raise _Invalid(f"unit: {show(unit)} is not a unit (allowed: {allowed})")
    model = registry.family(unit).config
    try:
        return model.model_validate(data, by_alias=True, by_name=False)
    except ValidationError as err:
        raise _Invalid(first_error(err, model)) from None


# -- board designs ---------------------------------------------------------------------------

#: Boards a design can name (see boards/): the open-flow ones build bitstreams here, the
#: vendor-flow ones get RTL and constraints only.
BOARDS = ("ulx3s", "icebreaker", "pynq_z2", "alveo_u280")
#: Default tensor-memory size per board (all banks together): what the board's block RAM holds
#: beside the units' stream buffers and the link's packet memories.
TENSOR_MEMORY_BYTES = {"ulx3s": 1 << 18, "icebreaker": 1 << 14, "pynq_z2": 1 << 18,
                       "alveo_u280": 1 << 22}


class LinkConfig(BaseModel):
    """The host link of a board design."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    uart: int = Field(
        3_000_000, ge=9600, le=12_000_000,
        description="UART line rate in baud (8N1).",
    )


def _units(value: Any) -> Any:
    """Each entry of ``units`` validated by its own family (a path-carrying error on the first
    that does not validate)."""
    if isinstance(value, list):
        value = tuple(value)
    if not isinstance(value, tuple):
        raise problem(f"expected a list of unit configs, got {show(value)}")
    out = []
    for i, item in enumerate(value):
        if isinstance(item, UnitBase):
            out.append(item)
            continue
        if not isinstance(item, dict):
            raise PydanticCustomError("tensorfab_at", "{message}", {"message": (
                f"units[{i}]: expected a mapping of unit config keys, got {show(item)}")})
        try:
            out.append(_parse_unit(item))
        except _Invalid as err:
            raise PydanticCustomError("tensorfab_at", "{message}",
                                      {"message": f"units[{i}].{err.message}"}) from None
    return tuple(out)


def _unique_unit_names(units: tuple) -> tuple:
    seen = set()
    for u in units:
        if u.name in seen:
            raise problem(f"unit name {u.name!r} is used twice (allowed: distinct names)")
        seen.add(u.name)
    return units


def _power_of_two(name: str, v: int) -> int:
    if v & (v - 1):
        raise problem(f"{name} {v} is not a power of two (allowed: 1, 2, 4, 8, ...)")
    return v


class TensorMemoryConfig(BaseModel):
    """The on-chip tensor memory of a protocol-2 design (docs/programs.md)."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    banks: int = Field(4, ge=1, le=16, description="Independent banks (one read and one "
                       "write port each).")
    bytes: int | None = Field(None, ge=1024, le=1 << 26, description="Bytes of all banks "
                              "together (default: the board's, see docs/programs.md).")
    word_bytes: Annotated[int, AfterValidator(lambda v: _power_of_two("word_bytes", v))] = \
        Field(32, ge=1, le=128, description="Bytes of one memory word (a power of two).")
    program_bytes: int = Field(4096, ge=256, le=1 << 16, description="Bytes of the program "
                               "memory.")

    def bank_bytes(self, board: str) -> int:
        """Bytes of one bank: ``bytes // banks``, rounded down to whole words."""
        total = self.bytes if self.bytes is not None else TENSOR_MEMORY_BYTES[board]
        return total // self.banks // self.word_bytes * self.word_bytes


class BoardConfig(BaseModel):
    """A design for a board: a host link plus the units it serves.

    Each unit is a full unit config (the same keys as a unit file); its streams get on-chip
    buffers of ``buffer_bytes`` bytes each.
    """

    model_config = ConfigDict(
        frozen=True, extra="forbid", strict=True, arbitrary_types_allowed=True
    )

    name: Identifier = Field(description="Names the board top module and its files.")
    board: Literal[BOARDS] = Field(description="The target board.")  # type: ignore[valid-type]
    link: LinkConfig = Field(default_factory=LinkConfig, description="The host link.")
    buffer_bytes: int = Field(
        16384, ge=256, le=1 << 20,
        description="Bytes of on-chip buffer per unit stream (block RAM).",
    )
    tensor_memory: TensorMemoryConfig | None = Field(
        None, description="On-chip tensor memory and program memory (protocol 2, "
        "docs/programs.md); absent: a protocol-1 design with stream buffers only.")
    units: Annotated[
        tuple[SerializeAsAny[UnitBase], ...], BeforeValidator(_units),
        AfterValidator(_unique_unit_names),
    ] = Field(min_length=1, description="The units of the design, each a unit config.")


# -- public API ------------------------------------------------------------------------------


def parse_config(data: object, source: str) -> UnitBase | BoardConfig:
    """Validate ``data`` (as returned by ``yaml.safe_load``) into a unit config, or into a
    :class:`BoardConfig` when it has a ``board`` key and no ``unit`` key.

    Parameters
    ----------
    data:
        The loaded YAML document: a mapping with string keys.
    source:
        What to call the data in messages, usually the file name.

    Raises
    ------
    ConfigError
        ``"{source}: field.path: problem (allowed: ...)"`` for the first problem found.
    """
    if not isinstance(data, dict):
        raise ConfigError(
            f"{source}: the top level is {kind_of(data)} "
            "(allowed: a mapping of config keys such as name, unit, rows)"
        )
    bad_key = non_string_key(data, ())
    if bad_key is not None:
        path, key = bad_key
        where = f"{dotted(path)}: " if path else ""
        raise ConfigError(
            f"{source}: {where}key {show(key)} is not a string "
            "(allowed: config key names such as rows)"
        )
    try:
        if "board" in data and "unit" not in data:
            try:
                return BoardConfig.model_validate(data)
            except ValidationError as err:
                raise _Invalid(first_error(err, BoardConfig)) from None
        return _parse_unit(data)
    except _Invalid as err:
        raise ConfigError(f"{source}: {err.message}") from None


def read_yaml_documents(path: str | os.PathLike, what: str) -> list:
    """The non-empty YAML documents of the file at ``path`` (safe loader: no tags, no
    duplicate keys). Raises :class:`ConfigError`, one line naming the file, when it is missing,
    a folder, not UTF-8, unreadable or not valid YAML (``what``: the kind of file allowed,
    e.g. ``config``)."""
    source = os.fspath(path)
    allowed = f"(allowed: a YAML {what} file)"
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise ConfigError(f"{source}: no such file {allowed}") from None
    except IsADirectoryError:
        raise ConfigError(f"{source}: is a folder {allowed}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{source}: is not UTF-8 text {allowed}") from None
    except OSError as err:
        raise ConfigError(f"{source}: cannot be read ({err.strerror or err})") from None
    try:
        return [d for d in yaml.load_all(text, Loader=_Loader) if d is not None]
    except yaml.MarkedYAMLError as err:
        raise ConfigError(f"{source}: {_yaml_error(err)}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{source}: YAML error: {_one_line(str(err))}") from None


def load_config(path: str | os.PathLike) -> UnitBase | BoardConfig:
    """Read and validate one config file.

    Raises
    ------
    ConfigError
        The file is missing or unreadable, empty, not valid YAML, holds more than one YAML
        document, or does not validate (see :func:`parse_config`).
    """
    source = os.fspath(path)
    docs = read_yaml_documents(path, "config")
    if not docs:
        raise ConfigError(f"{source}: empty file (allowed: one YAML mapping of config keys)")
    if len(docs) > 1:
        raise ConfigError(
            f"{source}: {len(docs)} YAML documents in one file (allowed: one config per file)"
        )
    return parse_config(docs[0], source)


def config_to_dict(cfg: BaseModel) -> dict:
    """A plain, YAML-able dict of every key (formats as strings), in field order.

    ``parse_config(config_to_dict(cfg), ...) == cfg``.
    """
    return cfg.model_dump(mode="json")


def replace_config(cfg: BaseModel, **changes: Any) -> UnitBase:
    """A copy of ``cfg`` with some keys changed, validated like a file (a preset with changes).

    Raises
    ------
    ConfigError
        If the changed config is not valid; the source is ``<name with changes>``.
    """
    return parse_config({**config_to_dict(cfg), **changes}, f"<{cfg.name} with changes>")


# -- YAML ------------------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, but a key given twice in one mapping is an error, not a silent
    overwrite."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: set = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=deep)
                try:
                    dup = key in seen
                    seen.add(key)
                except TypeError:  # unhashable: the base class reports it
                    continue
                if dup:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {show(key)}", key_node.start_mark
                    )
        return super().construct_mapping(node, deep=deep)


def _yaml_error(err: yaml.MarkedYAMLError) -> str:
    mark = err.problem_mark or err.context_mark
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    problem = _one_line(err.problem or err.context or "not valid YAML")
    if problem.startswith("duplicate key"):
        return f"{problem}{where} (allowed: each key once per mapping)"
    return f"YAML syntax error{where}: {problem}"


def _one_line(text: str) -> str:
    return " ".join(text.split())
