"""Label-smoothing sweep: the smoothing of the cross-entropy targets from 0 to 0.5.

Label smoothing raises ImageNet accuracy but, as the study shows, makes the penultimate features
worse perceptual metrics: it pushes classes into tight clusters and discards within-class detail.
``paper``: ResNet-50 (ResNet recipe) and ViT-B/8 (ViT recipe) on ImageNet 64x64 with smoothing
0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5; ``embedded``: the embedded ResNet-6 with 0, 0.1, 0.3, 0.5.
Trial names: ``resnet-50_ls-0.1`` (paper), ``ls-0.1`` (embedded).

Arg: ``embedded`` (default) or ``paper``, optionally ``,seeds=N``.
"""

from __future__ import annotations

from sweeps import grid

PAPER_LS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5)
EMBEDDED_LS = (0.0, 0.1, 0.3, 0.5)
LS = "train.label_smoothing"

trial_name = grid.namer(LS)
get_config = grid.short_config


def _paper(preset):
    models = [grid.arch("resnet", preset, depth=50), grid.arch("vit", preset, variant="B/8")]
    return grid.product(models, grid.axis(LS, PAPER_LS))


def get_sweep(arg=None):
    return grid.seeded(arg, grid.axis(LS, EMBEDDED_LS), _paper)
