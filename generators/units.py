"""The unit families tensorfab can generate, by the config's ``unit`` key."""

from __future__ import annotations

from .errors import UserError


def family(unit: str):
    """The family object for a config's ``unit`` (see :class:`generators.mac_array._Family`)."""
    if unit == "mac_array":
        from .mac_array import family as fam

        return fam
    if unit == "sparse_chain":
        from .sparse_chain import family as fam

        return fam
    if unit == "softmax":
        from .softmax import family as fam

        return fam
    if unit == "gelu":
        from .gelu import family as fam

        return fam
    if unit == "network":
        from .network import family as fam

        return fam
    raise UserError(f"unit {unit!r} has no generator in this version "
                    "(allowed: mac_array, sparse_chain, softmax, gelu, network)")
