"""The unit families, by the config's ``unit`` key: the one list everything else derives from.

Adding a family is one package (see :mod:`generators.family`) and one line in
:data:`BUILTIN`; a plug-in (or a test) calls :func:`register` instead.
"""

from __future__ import annotations

import importlib

from .errors import UserError
from .family import UnitFamily

__all__ = ["BUILTIN", "register", "unregister", "family", "names", "families"]

#: The families shipped with tensorfab: ``unit`` name -> the module whose ``family`` it is.
BUILTIN = {
    "mac_array": "generators.mac_array",
    "sparse_chain": "generators.sparse_chain",
    "softmax": "generators.softmax",
    "gelu": "generators.gelu",
    "requant": "generators.requant",
    "network": "generators.network",
    "copy": "generators.copy",
}

_FAMILIES: dict[str, UnitFamily] = {}
_loaded = False


def _load() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        for module in BUILTIN.values():
            register(importlib.import_module(module).family)


def register(fam: UnitFamily) -> UnitFamily:
    """Add a family (its ``name`` must be new); returns it. Checks the protocol: a subclass of
    :class:`UnitFamily` with every abstract method implemented and a config model whose
    ``unit`` field is the family's name."""
    _load()
    if not isinstance(fam, UnitFamily):
        raise TypeError(f"{fam!r} is not a UnitFamily")
    missing = getattr(type(fam), "__abstractmethods__", ())
    if missing:
        raise TypeError(f"family {fam.name}: not implemented: {', '.join(sorted(missing))}")
    unit = fam.config.model_fields.get("unit")
    if unit is None or unit.default != fam.name:
        raise TypeError(f"family {fam.name}: its config needs unit: Literal[{fam.name!r}] "
                        f"= {fam.name!r}")
    if fam.name in _FAMILIES and _FAMILIES[fam.name] is not fam:
        raise ValueError(f"a family named {fam.name!r} is already registered")
    _FAMILIES[fam.name] = fam
    return fam


def unregister(name: str) -> None:
    """Remove a family added with :func:`register` (tests use it to clean up)."""
    _load()
    if name in BUILTIN:
        raise ValueError(f"{name} is a built-in family")
    _FAMILIES.pop(name, None)


def names() -> tuple[str, ...]:
    """Every registered ``unit`` name, built-in ones first in :data:`BUILTIN` order."""
    _load()
    return tuple(_FAMILIES)


def families() -> tuple[UnitFamily, ...]:
    _load()
    return tuple(_FAMILIES.values())


def family(unit: str) -> UnitFamily:
    """The family of a config's ``unit``; :class:`UserError` naming the allowed ones."""
    _load()
    try:
        return _FAMILIES[unit]
    except (KeyError, TypeError):
        raise UserError(f"unit {unit!r} has no generator in this version "
                        f"(allowed: {', '.join(_FAMILIES)})") from None
