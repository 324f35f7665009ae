"""The files a user hands the command lines: input arrays (``.npz``) and output paths.

Here rather than in :mod:`generators` because reading a user's arrays and checking where
results go is no part of emitting hardware, and here rather than in :mod:`tensorfab` because
code that runs arrays (the host driver, the benches) wants the same checks and messages
without importing a command line. Nothing here imports Amaranth.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np
from numpy.lib import format as npy_format

from generators.errors import UserError

#: Default of ``--max-bytes``: the most memory the input arrays may take as the int64 codes
#: the models compute on (a small deflated .npz can hold a huge array).
DEFAULT_MAX_BYTES = 1 << 30
#: The models work on int64 codes: an array's working size is its elements times this.
CODE_BYTES = 8


def _human(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)  # pragma: no cover


def array_headers(path: str) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """``{name: (shape, dtype)}`` of the members of the ``.npz`` at ``path``, read from their
    ``.npy`` headers alone (nothing is decompressed beyond them). Raises :class:`UserError`
    for a member that is not an ``.npy`` array or whose header cannot be read."""
    out = {}
    with zipfile.ZipFile(path) as z:
        for info in z.infolist():
            if info.is_dir():
                continue
            if not info.filename.endswith(".npy"):
                raise UserError(f"{path}: member {info.filename!r:.60} is not an .npy array "
                                "(allowed: an .npz file from numpy.savez)")
            with z.open(info) as fh:
                try:
                    version = npy_format.read_magic(fh)
                    if version == (1, 0):
                        shape, _, dtype = npy_format.read_array_header_1_0(fh)
                    else:
                        shape, _, dtype = npy_format.read_array_header_2_0(fh)
                except ValueError as err:
                    raise UserError(f"{path}: member {info.filename!r:.60} has no readable "
                                    f".npy header ({' '.join(str(err).split())[:120]})") \
                        from None
            out[info.filename[:-4]] = (tuple(shape), dtype)
    return out


def load_inputs(path: str, max_bytes: int = DEFAULT_MAX_BYTES) -> dict:
    """The arrays of the ``.npz`` file at ``path``, or a :class:`UserError` naming what the
    file is instead (missing, a single ``.npy``, not an archive, object arrays, members that
    are not arrays), or arrays that would take more than ``max_bytes`` as int64 codes: their
    headers are checked before any array is read, so a small archive of a huge array is
    refused at once."""
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
        headers = array_headers(p)
    except UserError:
        raise
    except Exception as err:  # zipfile/OSError: a garbled archive
        raise UserError(f"{path}: not a readable .npz archive ({type(err).__name__}: {err})") \
            from None
    total = 0
    for name, (shape, dtype) in headers.items():
        if dtype.hasobject:
            raise UserError(f"{path}: holds object arrays (allowed: integer code arrays)")
        n = int(np.prod(shape, dtype=object))
        total += n * max(CODE_BYTES, dtype.itemsize)
        if total > max_bytes:
            raise UserError(f"{path}: array {name!r:.40} of shape {list(shape)} ({dtype}) takes "
                            f"{_human(n * max(CODE_BYTES, dtype.itemsize))} as int64 codes; the "
                            f"arrays together exceed --max-bytes {max_bytes} ({_human(max_bytes)})"
                            " (allowed: smaller arrays, or a larger --max-bytes)")
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


def npz_path(path: str) -> Path:
    """The file ``numpy.savez(path, ...)`` writes: ``path`` with ``.npz`` added unless it has
    that suffix already."""
    out = Path(path)
    return out if out.suffix == ".npz" else out.with_name(out.name + ".npz")


def check_out_path(path: str, *protect: str, suffix: str | None = None) -> Path:
    """``path`` as an output file: not one of the ``protect`` inputs, not a folder, and in a
    folder that exists or can be made and can be written. Checked before any work, so that a
    long simulation is not lost to a typo in ``--out``. ``suffix=".npz"``: the path is first
    made what ``numpy.savez`` writes (``OUT`` becomes ``OUT.npz``), and that is the path
    checked and returned, so an ``--out`` without the suffix cannot overwrite an input."""
    out = npz_path(path) if suffix == ".npz" else Path(path)
    for other in protect:
        if other and out.resolve() == Path(other).resolve():
            raise UserError(f"{path}: output {out} would overwrite the input file {other} "
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
