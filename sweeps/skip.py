"""Skip sweep: ResNets with and without their skip connections (the study's Fig. 16).

Without skip connections the study's ResNets train up to ResNet-50; their activation entropy
rises, but the pattern of Perceptual Score over depth stays. ``model.skip=false`` removes every
shortcut, the projection shortcuts (1x1 conv + BN) of each stage's first block included, so no
block adds anything to its input (inferred: the study says all skips were removed); the last BN
of each block then starts at scale 1 instead of 0 (trainer/models/resnet.py says why).

* ``paper``: every ResNet depth from 6 to 50 (6, 10, 14, 18, 26, 34, 50; ResNet recipe) on
  ImageNet 64x64, with and without skips. Trials ``depth-50_skip-false``.
* ``embedded``: ResNet-6, 10 and 18 on Fashion-MNIST, with and without skips.

Arg: ``embedded`` (default) or ``paper``, optionally ``,seeds=N``.
"""

from __future__ import annotations

from sweeps import grid
from trainer.models.resnet import DEPTHS

PAPER_DEPTHS = tuple(d for d in DEPTHS if 6 <= d <= 50)
EMBEDDED_DEPTHS = (6, 10, 18)
SKIP = (True, False)

get_config = grid.short_config


def trial_name(overrides):
    return grid.trial_name(overrides, ["model.depth", "model.skip", "seed"])


def _grid(depths):
    return grid.product(grid.axis("model.depth", depths), grid.axis("model.skip", SKIP))


def get_sweep(arg=None):
    return grid.seeded(arg, _grid(EMBEDDED_DEPTHS), lambda preset: _grid(PAPER_DEPTHS))
