"""Epochs sweep: the same models trained for schedules from under one epoch to the full one.

Accuracy rises with training time; the study finds Perceptual Score peaks early (ResNets within
about 5 epochs, ViTs around epoch 60) and then declines, so under-trained networks can be better
perceptual metrics. Each trial is a whole run with its own schedule (warm-up scaled with the
schedule's length; the ResNet's step boundaries are fractions of the run), not a cut of the
longest run. ``paper``: the five architectures on ImageNet 64x64 with their recipes: ResNet-6,
-50, -200 for 0.5 .. 90 epochs (their full schedule), ViT-B/8 and ViT-L/4 for 0.5 .. 90, 150 and
300 epochs (the ViT recipe's full schedule; the study's grid is not public); ``embedded``: the
embedded ResNet-6 for 0.25 .. 2 epochs. Trial names: ``resnet-50_epochs-0.5`` (paper),
``epochs-2`` (embedded).

Arg: ``embedded`` (default) or ``paper``, optionally ``,seeds=N``.
"""

from __future__ import annotations

from sweeps import grid

PAPER_EPOCHS = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 60.0, 90.0)
PAPER_VIT_EPOCHS = (*PAPER_EPOCHS, 150.0, 300.0)
EMBEDDED_EPOCHS = (0.25, 0.5, 1.0, 2.0)

trial_name = grid.namer("train.epochs")
get_config = grid.short_config


def _epochs(config, values):
    return [
        {"train.epochs": e, "train.warmup_epochs": grid.scaled_warmup(config, e)} for e in values
    ]


def _paper(preset):
    grids = []
    for model in grid.study_models(preset):
        values = PAPER_VIT_EPOCHS if model["model.name"] == "vit" else PAPER_EPOCHS
        config = grid.base.config_from(preset, model)
        grids.append(grid.product([model], _epochs(config, values)))
    return grid.chain(*grids)


def get_sweep(arg=None):
    return grid.seeded(arg, _epochs(get_config(arg), EMBEDDED_EPOCHS), _paper)
