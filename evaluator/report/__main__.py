"""``python -m evaluator.report runs/<sweep>`` (or ``runs --all``): see the package docstring."""

import sys

from evaluator.report import main

sys.exit(main())
