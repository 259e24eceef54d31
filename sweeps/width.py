"""Width sweep: every layer's channels (ViT: hidden and MLP size) from 1/16 to 4x the default.

The study finds that wider networks, like deeper ones, gain ImageNet accuracy without gaining
Perceptual Score, and that narrow networks can score as well or better (optimum: ResNets at 25%
of the default width, ViT-B/8 at 6%, ViT-L/4 at 12%). ``paper`` widens the study's five
architectures (ResNet-6, ResNet-50, ResNet-200 with the ResNet recipe; ViT-B/8, ViT-L/4 with the
ViT recipe) on ImageNet 64x64 by 1/16, 1/8, 1/4, 1/2, 1, 2 and 4 (the study's exact grid is not
public; this one spans its optima); ``embedded`` widens the embedded ResNet-6 on Fashion-MNIST
by 1/16 to 1/2. Trial names: ``resnet-50_width-0.25``, ``vit-L4_width-4`` (paper),
``width-0.25`` (embedded).

Arg: ``embedded`` (default) or ``paper``, optionally ``,seeds=N``.
"""

from __future__ import annotations

from sweeps import grid

PAPER_WIDTHS = (0.0625, 0.125, 0.25, 0.5, 1.0, 2.0, 4.0)
EMBEDDED_WIDTHS = (0.0625, 0.125, 0.25, 0.5)

trial_name = grid.namer("model.width")
get_config = grid.short_config


def _paper(preset):
    return grid.product(grid.study_models(preset), grid.axis("model.width", PAPER_WIDTHS))


def get_sweep(arg=None):
    return grid.seeded(arg, grid.axis("model.width", EMBEDDED_WIDTHS), _paper)
