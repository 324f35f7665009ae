"""tensorfab's command line: ``tensorfab`` and ``python -m tensorfab`` (:mod:`tensorfab.cli`).

A thin layer over the packages below it (generators -> host -> sim, boards -> tensorfab); it
parses arguments, checks paths, prints, and maps errors to exit statuses, and nothing below
imports it.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("tensorfab")
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "unknown"
