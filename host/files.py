"""The files a user hands the command lines: input arrays (``.npz``) and output paths.

Here rather than in :mod:`generators` because reading a user's arrays and checking where
results go is no part of emitting hardware, and here rather than in :mod:`tensorfab` because
code that runs arrays (the host driver, the benches) wants the same checks and messages
without importing a command line. Nothing here imports Amaranth.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from generators.errors import UserError


def load_inputs(path: str) -> dict:
    """The arrays of the ``.npz`` file at ``path``, or a :class:`UserError` naming what the
    file is instead (missing, a single ``.npy``, not an archive, object arrays)."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{path}: no such file (allowed: an .npz file from numpy.savez)")
    with open(p, "rb") as fh:
        magic = fh.read(6)
    if magic == b"\x93NUMPY":
        raise UserError(f"{path}: is a single .npy array, not an .npz archive "
                        "(allowed: numpy.savez(path, a=..., b=...))")
    if not magic.startswith(b"PK"):
        raise UserError(f"{path}: not a readable .npz archive (allowed: an .npz file from "
                        "numpy.savez)")
    try:
        with np.load(p, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except ValueError as err:
        if "pickle" in str(err).lower():
            raise UserError(f"{path}: holds object arrays (allowed: integer code arrays)") \
                from None
        raise UserError(f"{path}: not a readable .npz archive ({err})") from None
    except Exception as err:  # zipfile/OSError: a garbled archive
        raise UserError(f"{path}: not a readable .npz archive ({type(err).__name__}: {err})") \
            from None


def check_out_path(path: str, *protect: str) -> Path:
    """``path`` as an output file: not one of the ``protect`` inputs, not a folder, and in a
    folder that exists or can be made and can be written. Checked before any work, so that a
    long simulation is not lost to a typo in ``--out``."""
    out = Path(path)
    for other in protect:
        if other and out.resolve() == Path(other).resolve():
            raise UserError(f"{path}: output would overwrite the input file {other} "
                            "(allowed: a different path)")
    if out.exists() and out.is_dir():
        raise UserError(f"{path}: is a folder (allowed: a file path for the output)")
    _check_folder(out.parent, path)
    return out


def check_out_dir(path: str) -> Path:
    """``path`` as an output folder: not an existing file, and one that exists or can be made
    and can be written (checked before any work, as :func:`check_out_path`)."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise UserError(f"{path}: exists and is not a folder (allowed: a folder path)")
    _check_folder(out, path)
    return out


def _check_folder(folder: Path, path: str) -> None:
    """The nearest existing folder of ``folder`` (itself or an ancestor, where the missing
    rest would be made later) is a folder that takes a new file. Tried with a real file, not
    :func:`os.access`: as root, access() says yes to /proc, and a read-only mount or a full
    quota says no only when a file is made."""
    probe = folder.absolute()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise UserError(f"{path}: {probe} is a file, not a folder (allowed: a path in a "
                        "writable folder)")
    try:
        fd, name = tempfile.mkstemp(dir=probe, prefix=".tensorfab-probe-")
    except OSError as err:
        raise UserError(f"{path}: cannot write in {probe} ({err.strerror or err}) (allowed: a "
                        "path in a writable folder)") from None
    os.close(fd)
    os.unlink(name)
