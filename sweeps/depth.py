"""Depth sweep: ResNets from 2 to 200 layers, and ViTs from 1 encoder block to their full depth.

The study's first finding: ImageNet accuracy keeps rising with depth, while the Perceptual Score
of the features peaks at shallow networks and then falls (ResNets) or at 2 blocks (ViTs).

* ``paper``: every ResNet depth of the study (2, 3, 4, 5, 6, 10, 14, 18, 26, 34, 50, 101, 152,
  200; ResNet recipe, trials ``depth-50``) and the ViTs with fewer encoder blocks (ViT recipe):
  ViT-B/8 with 1, 2, 3, 4, 6, 8, 10, 12 blocks (of 12) and ViT-L/4 with 1, 2, 3, 4, 6, 8, 12, 16,
  20, 24 (of 24), trials ``vit-B8_depth-2``. The study's ViT depth grid is not public (its
  Table 1 has the best at 2 blocks): this one is dense where PS peaks and sparse above.
* ``embedded``: ResNet-2, 6, 10, 18 on Fashion-MNIST in minutes on a CPU, enough to see the
  trend in the report (trials ``depth-6``).

Arg: ``embedded`` (default) or ``paper``, optionally ``,seeds=N``.
"""

from __future__ import annotations

from sweeps import grid
from trainer.models.resnet import DEPTHS

PAPER_DEPTHS = DEPTHS  # every depth the ResNet module builds: 2, 3, ..., 152, 200
PAPER_VIT_DEPTHS = {"B/8": (1, 2, 3, 4, 6, 8, 10, 12), "L/4": (1, 2, 3, 4, 6, 8, 12, 16, 20, 24)}
EMBEDDED_DEPTHS = (2, 6, 10, 18)

# The embedded preset with grid.EMBEDDED_SHORT: 4 short trials; on 2 cores the whole sweep
# (train, score, report) takes minutes.
EMBEDDED = {**grid.EMBEDDED_SHORT, "train.epochs": 2.0}


def trial_name(overrides):
    """``depth-50`` (ResNets: the preset's model), ``vit-B8_depth-2`` (a ViT with its recipe)."""
    if "model.name" in overrides:
        return grid.namer("model.depth")(overrides)
    return grid.trial_name(overrides, ["model.depth", "seed"])


def get_config(arg=None):
    return grid.config(arg, embedded=EMBEDDED)


def _paper(preset):
    vits = [
        grid.product([grid.arch("vit", preset, variant=v)], grid.axis("model.depth", depths))
        for v, depths in PAPER_VIT_DEPTHS.items()
    ]
    return grid.chain(grid.axis("model.depth", PAPER_DEPTHS), *vits)


def get_sweep(arg=None):
    return grid.seeded(arg, grid.axis("model.depth", EMBEDDED_DEPTHS), _paper)
