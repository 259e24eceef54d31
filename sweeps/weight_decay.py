"""Weight-decay sweep: a log grid around and far from each recipe's default.

The study finds Perceptual Score is worst near the default weight decay and rises on both sides
(while accuracy peaks there). ``paper``: ResNet-6, ResNet-50, ResNet-200 (default 1e-4, L2) from
1e-6 to 1e-2 and ViT-B/8 (default 0.3, decoupled AdamW) from 1e-3 to 3, on ImageNet 64x64;
ViT-L/4 is left out, as in the study. ``embedded``: the embedded ResNet-6 (default 5e-4) from
5e-6 to 5e-2 on Fashion-MNIST. Trial names: ``resnet-50_wd-3e-05``, ``vit-B8_wd-0.3`` (paper),
``wd-5e-05_seed-1`` (embedded).

Arg: ``embedded`` (default) or ``paper``, optionally ``,seeds=N``.
"""

from __future__ import annotations

from sweeps import grid

PAPER_RESNET_WD = (1e-6, 1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 1e-2)
PAPER_VIT_WD = (1e-3, 1e-2, 0.03, 0.1, 0.3, 1.0, 3.0)
EMBEDDED_WD = (5e-6, 5e-5, 5e-4, 5e-3, 5e-2)
WD = "train.weight_decay"

trial_name = grid.namer(WD)
get_config = grid.short_config


def _paper(preset):
    grids = []
    for model in grid.study_models(preset, vits=("B/8",)):
        values = PAPER_VIT_WD if model["model.name"] == "vit" else PAPER_RESNET_WD
        grids.append(grid.product([model], grid.axis(WD, values)))
    return grid.chain(*grids)


def get_sweep(arg=None):
    return grid.seeded(arg, grid.axis(WD, EMBEDDED_WD), _paper)
