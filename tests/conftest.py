import json
import os
import shutil
import sys
import tempfile
import zlib
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def rng(request):
    seed = zlib.crc32(request.node.nodeid.encode())
    return np.random.default_rng(seed)


def pytest_configure(config):
    # Tests share one design/build cache (keyed by design hash) across runs and workers.
    os.environ.setdefault("TENSORFAB_CACHE",
                          str(Path(__file__).resolve().parent.parent / "build" / "cache"))
    if config.getoption("dist", None) == "loadgroup" and not hasattr(config, "workerinput"):
        # the controller: the workers inherit the folder through the environment
        config._xdist_groups = tempfile.mkdtemp(prefix="tensorfab-xdist-groups-")
        os.environ[_GROUPS_ENV] = config._xdist_groups


def pytest_unconfigure(config):
    folder = getattr(config, "_xdist_groups", None)
    if folder:
        shutil.rmtree(folder, ignore_errors=True)


# -- xdist groups ------------------------------------------------------------------------------
# `make test` runs `-n 2 --dist loadgroup`, so that the tests of one xdist_group (the demo board
# and its long Verilator build) run on one worker while the other worker runs the rest.
# pytest-xdist 3.8 tells its scheduler a test's group by appending "@group" to the node id in
# the worker, which pytest 9.2 no longer lets a plugin change (pytest-xdist issue 1386): every
# grouped test became a unit of its own, and the demo board tests on one worker waited on the
# other worker's build lock. So the workers write each grouped test's group into a file, and
# the scheduler reads it there (and still honours an "@group" suffix where xdist manages one).

_GROUPS_ENV = "TENSORFAB_XDIST_GROUPS"


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    folder = os.environ.get(_GROUPS_ENV)
    if not folder or not hasattr(config, "workerinput"):
        return
    groups = {}
    for item in items:
        names = {str(m.args[0] if m.args else m.kwargs.get("name", "default"))
                 for m in item.iter_markers("xdist_group")}
        if names:
            groups[item.nodeid] = "_".join(sorted(names))
    out = Path(folder) / f"{config.workerinput['workerid']}.json"
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(groups))
    tmp.replace(out)  # whole or absent: the controller reads it after collection finishes


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist: no error where it is absent
def pytest_xdist_make_scheduler(config, log):
    folder = getattr(config, "_xdist_groups", None)
    if folder is None:
        return None
    from xdist.scheduler import LoadGroupScheduling

    class FileGroupScheduling(LoadGroupScheduling):
        """LoadGroupScheduling with the groups the workers wrote (read once every worker
        has finished collecting, which is before the first test is scheduled)."""

        groups: dict | None = None

        def _split_scope(self, nodeid):
            if self.groups is None:
                self.groups = {}
                for f in sorted(Path(folder).glob("*.json")):
                    self.groups.update(json.loads(f.read_text()))
            return self.groups.get(nodeid) or super()._split_scope(nodeid)

    return FileGroupScheduling(config, log)
