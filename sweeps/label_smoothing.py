"""Label-smoothing sweep: the smoothing of the cross-entropy targets from 0 to 0.5.

Label smoothing raises ImageNet accuracy but, as the study shows, makes the penultimate features
worse perceptual metrics: it pushes classes into tight clusters and discards within-class detail.
``paper``: the five architectures (ResNet-6, -50, -200 with the ResNet recipe; ViT-B/8, ViT-L/4
with the ViT recipe) on ImageNet 64x64 with smoothing 0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5;
``embedded``: the embedded ResNet-6 with 0, 0.1, 0.3, 0.5. Trial names: ``resnet-50_ls-0.1``
(paper), ``ls-0.1`` (embedded).

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
    return grid.product(grid.study_models(preset), grid.axis(LS, PAPER_LS))


def get_sweep(arg=None):
    return grid.seeded(arg, grid.axis(LS, EMBEDDED_LS), _paper)
