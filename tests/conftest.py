import os
import sys
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
