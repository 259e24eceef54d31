"""Epochs sweep: the same models trained for schedules from under one epoch to the full one.

Accuracy rises with training time; the study finds Perceptual Score peaks early (a few epochs)
and then declines, so under-trained networks can be better perceptual metrics. Each trial is a
whole run with its own cosine schedule (warmup scaled with the schedule's length), not a cut of
the longest run. ``paper``: ResNet-6, ResNet-50 (ResNet recipe) and ViT-B/8 (ViT recipe) on
ImageNet 64x64 for 0.5 .. 90 epochs; ``embedded``: the embedded ResNet-6 for 0.25 .. 2 epochs.
Trial names: ``resnet-50_epochs-0.5`` (paper), ``epochs-2`` (embedded).

Arg: ``embedded`` (default) or ``paper``, optionally ``,seeds=N``.
"""

from __future__ import annotations

from sweeps import grid

PAPER_EPOCHS = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 60.0, 90.0)
PAPER_RESNETS = (6, 50)
EMBEDDED_EPOCHS = (0.25, 0.5, 1.0, 2.0)

trial_name = grid.namer("train.epochs")
get_config = grid.short_config


def _epochs(config, values):
    return [
        {"train.epochs": e, "train.warmup_epochs": grid.scaled_warmup(config, e)} for e in values
    ]


def _paper(preset):
    resnets = [grid.arch("resnet", preset, depth=d) for d in PAPER_RESNETS]
    vit = grid.arch("vit", preset, variant="B/8")
    vit_config = grid.base.config_from(preset, vit)
    return grid.chain(
        grid.product(resnets, _epochs(get_config(preset), PAPER_EPOCHS)),
        grid.product([vit], _epochs(vit_config, PAPER_EPOCHS)),
    )


def get_sweep(arg=None):
    return grid.seeded(arg, _epochs(get_config(arg), EMBEDDED_EPOCHS), _paper)
