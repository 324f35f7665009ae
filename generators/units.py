"""The unit families tensorfab can generate, by the config's ``unit`` key (see
:mod:`generators.registry`, the one list of families)."""

from __future__ import annotations

from .registry import family

__all__ = ["family"]
