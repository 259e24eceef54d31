"""``python -m bench``: see ``bench`` and ``bench.cli``."""

import sys

from bench.cli import main

sys.exit(main())
