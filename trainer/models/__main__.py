"""Inspect a model without building it: parameter count and tap shapes, as one JSON object.

    python -m trainer.models --config=sweeps/base.py --config.model.name=resnet \\
        --config.model.depth=50 --config.data.image_size=224 --config.data.num_classes=1000
    {"params": 25557032, "taps": {"stage1": [56, 56, 256], ...}}

Shapes come from ``jax.eval_shape``, so no parameter is allocated. A config that
``sweeps.base.validate`` (or the model zoo) rejects prints one line and exits with status 2.
"""

from __future__ import annotations

import json
import sys

from absl import app
from ml_collections import config_flags

from sweeps.base import ConfigError, validate
from trainer.models import describe

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Config file (sweeps/<axis>.py[:preset])."
)


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        print(f"error: unexpected arguments {' '.join(argv[1:])}", file=sys.stderr)
        sys.exit(2)
    config = _CONFIG.value
    if config is None:
        print("error: --config is required, e.g. --config=sweeps/base.py", file=sys.stderr)
        sys.exit(2)
    try:
        validate(config)
        info = describe(config.model, config.data.image_size, config.data.num_classes)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    print(json.dumps(info))


if __name__ == "__main__":
    app.run(main)
