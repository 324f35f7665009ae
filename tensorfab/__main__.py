"""``python -m tensorfab``: the ``tensorfab`` command without its console script."""

import sys

from .cli import main

sys.exit(main())
