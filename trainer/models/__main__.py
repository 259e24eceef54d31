"""Inspect a model without building it: the model it built, parameter count and tap shapes, as
one JSON object.

    python -m trainer.models --config=sweeps/base.py:paper --config.model.depth=50
    {"model": {"name": "resnet", "depth": 50, "width": 1.0, "image_size": 64, "num_classes":
     1000}, "params": 25557032, "taps": {"stage1": [16, 16, 256], ...}}
    python -m trainer.models --config=sweeps/base.py:paper_vit --config.model.variant=B/8

The preset's model keys apply as in training: ``sweeps/base.py`` alone is the ``embedded``
preset (a ResNet at width 0.25; a ViT there keeps its 6 blocks of 192), which a line on stderr
says, naming the keys; ``:paper`` / ``:paper_vit`` give the full-size models.

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
    note = size_note(config)
    if note:
        print(f"note: {note}", file=sys.stderr)
    print(json.dumps({"model": applied(config), **info}))


SIZE_KEYS = (
    "name",
    "variant",
    "depth",
    "width",
    "hidden_size",
    "mlp_dim",
    "num_heads",
    "patch_size",
)


def applied(config) -> dict:
    """The model keys that set its size (zero and empty ones left out: the variant's own)."""
    model = {k: config.model[k] for k in SIZE_KEYS if config.model[k] not in (0, "")}
    return {**model, "image_size": config.data.image_size, "num_classes": config.data.num_classes}


def size_note(config) -> str | None:
    """One line when the model is smaller than its full size because of the preset's keys."""
    m = config.model
    keys = [f"model.width={m.width}"] if m.width != 1.0 else []
    if m.name == "vit":
        keys += [f"model.{k}={m[k]}" for k in ("depth", "hidden_size", "mlp_dim") if m[k]]
    if not keys:
        return None
    full = "sweeps/base.py:paper_vit" if m.name == "vit" else "sweeps/base.py:paper"
    return f"{', '.join(keys)} applied (not the full-size model; {full} gives it)"


if __name__ == "__main__":
    app.run(main)
