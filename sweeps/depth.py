"""Depth sweep: ResNets from 2 to 200 layers at the default width.

The study's first finding: ImageNet accuracy keeps rising with depth, while the Perceptual Score
of the features peaks at shallow ResNets and then falls. ``paper`` trains every ResNet depth of
the study (2..200) with the ResNet recipe on ImageNet 64x64; ``embedded`` trains a few shallow
and deep ResNets on Fashion-MNIST in minutes on a CPU, enough to see the trend in the report.

Arg: ``embedded`` (default) or ``paper``, optionally ``,seeds=N``.
"""

from __future__ import annotations

from sweeps import base, grid

PAPER_DEPTHS = base.RESNET_DEPTHS  # 2, 3, 4, 5, 6, 10, 14, 18, 26, 34, 50, 101, 152, 200
EMBEDDED_DEPTHS = (2, 6, 10, 18)

# The embedded preset, tuned so the whole sweep trains, scores and reports in minutes on 2 cores.
EMBEDDED = {
    "data.train_examples": 20000,
    "train.epochs": 2.0,
}


def get_config(arg=None):
    return grid.config(arg, embedded=EMBEDDED)


def get_sweep(arg=None):
    preset, opts = grid.parse_arg(arg)
    depths = PAPER_DEPTHS if preset == "paper" else EMBEDDED_DEPTHS
    return grid.product(grid.axis("model.depth", depths), grid.seeds(opts["seeds"]))
