"""Depth sweep: ResNets from 2 to 200 layers at the default width.

The study's first finding: ImageNet accuracy keeps rising with depth, while the Perceptual Score
of the features peaks at shallow ResNets and then falls. ``paper`` trains every ResNet depth of
the study (2..200) with the ResNet recipe on ImageNet 64x64; ``embedded`` trains a few shallow
and deep ResNets on Fashion-MNIST in minutes on a CPU, enough to see the trend in the report.

Arg: ``embedded`` (default) or ``paper``, optionally ``,seeds=N``.
"""

from __future__ import annotations

from sweeps import grid
from trainer.models.resnet import DEPTHS

PAPER_DEPTHS = DEPTHS  # every depth the ResNet module builds: 2, 3, ..., 152, 200
EMBEDDED_DEPTHS = (2, 6, 10, 18)

# The embedded preset with grid.EMBEDDED_SHORT: 4 short trials; on 2 cores the whole sweep
# (train, score, report) takes minutes.
EMBEDDED = {**grid.EMBEDDED_SHORT, "train.epochs": 2.0}


def get_config(arg=None):
    return grid.config(arg, embedded=EMBEDDED)


def get_sweep(arg=None):
    preset, opts = grid.parse_arg(arg)
    depths = PAPER_DEPTHS if preset == "paper" else EMBEDDED_DEPTHS
    return grid.product(grid.axis("model.depth", depths), grid.seeds(opts["seeds"]))
