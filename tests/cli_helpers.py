"""Commands for tests, run in this process: ``tf(*args)`` is ``tensorfab ARGS...`` through
``tensorfab.cli.main`` and ``run_main(main, *args)`` any other ``main(argv) -> int`` (such as
``bench.demo.main``). Each answers like ``subprocess.run(..., capture_output=True, text=True)``
(``returncode``, ``stdout``, ``stderr``), without the ~1 s start-up of a fresh interpreter per
call.

What a command changes in the process is undone after it: the working folder, the environment,
the warning filters and ``sys.argv`` are restored. The simulator tool set-up that
``sim.toolenv.ensure`` makes once per process is made before the snapshot, so it stays as every
later in-process build needs it. argparse's ``SystemExit`` (usage errors, ``--version``,
``--help``) becomes the exit status the console script would return. Any other exception
propagates, so a crash fails the test with its traceback rather than as exit status 1. Output
of the simulator processes a run starts goes to the file descriptors (pytest's capture), not
into ``stdout``/``stderr`` here: the one-line error checks are all on paths that start none.

``real_tf(*args)`` is the real ``python -m tensorfab`` (or the installed console script) in a
subprocess, for the few tests that prove the entry points themselves."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Result:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str


def _exit_status(err: SystemExit, stderr: io.StringIO) -> int:
    # what the interpreter makes of sys.exit(code) at the top level
    if err.code is None:
        return 0
    if isinstance(err.code, int):
        return err.code
    print(err.code, file=stderr)
    return 1


def run_main(main: Callable[[list[str]], int], *args, cwd: str | Path | None = None,
             prog: str = "tensorfab") -> Result:
    """``main([str(a) for a in args])`` in this process (see the module docstring)."""
    from sim import toolenv

    toolenv.ensure()
    argv = [str(a) for a in args]
    out, err = io.StringIO(), io.StringIO()
    saved_env, saved_cwd, saved_argv = dict(os.environ), os.getcwd(), sys.argv
    try:
        if cwd is not None:
            os.chdir(cwd)
        sys.argv = [prog, *argv]
        with warnings.catch_warnings(), contextlib.redirect_stdout(out), \
                contextlib.redirect_stderr(err):
            try:
                code = main(argv)
            except SystemExit as e:
                code = _exit_status(e, err)
    finally:
        sys.argv = saved_argv
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
    return Result(argv, code, out.getvalue(), err.getvalue())


def tf(*args, cwd: str | Path | None = None) -> Result:
    """``tensorfab ARGS...`` in this process."""
    from tensorfab.cli import main

    return run_main(main, *args, cwd=cwd)


def real_tf(*args, cwd: str | Path | None = None, timeout: float = 600,
            console_script: bool = False) -> subprocess.CompletedProcess:
    """``python -m tensorfab ARGS...`` (with ``console_script``, the ``tensorfab`` script
    installed next to this interpreter) as a real process."""
    if console_script:
        cmd = [str(Path(sys.executable).with_name("tensorfab"))]
    else:
        cmd = [sys.executable, "-m", "tensorfab"]
    return subprocess.run([*cmd, *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          env=dict(os.environ), timeout=timeout)
