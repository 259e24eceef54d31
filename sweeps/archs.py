"""Architectures: the out-of-the-box models, each trained with its own recipe.

The study's starting point: across standard ImageNet classifiers, better top-1 does not mean a
better Perceptual Score. ``paper`` trains ResNet-18, 34, 50, 101, 152, 200 (SGD recipe), ViT-B/8
and ViT-L/4 (AdamW recipe) and EfficientNet-B0..B5 (RMSProp recipe) on ImageNet 64x64, each with
``sweeps.recipes.recipe``. ``embedded`` trains one small model of each family on Fashion-MNIST: the
embedded ResNet-18, a 4-block ViT-Ti/4 (AdamW) and EfficientNet-B0 at a quarter width.
Trial names: ``resnet-50``, ``vit-B8``, ``efficientnet-b0``.

Arg: ``embedded`` (default) or ``paper``, optionally ``,seeds=N``.
"""

from __future__ import annotations

from sweeps import grid

PAPER_RESNETS = (18, 34, 50, 101, 152, 200)
PAPER_VITS = ("B/8", "L/4")
PAPER_EFFICIENTNETS = tuple(f"b{i}" for i in range(6))

trial_name = grid.namer()
get_config = grid.short_config


def _embedded_models():
    return [
        grid.arch("resnet", "embedded", depth=18),
        {
            **grid.arch("vit", "embedded", variant="Ti/4", depth=4),
            "train.optimizer": "adamw",
            "train.base_lr": 1e-3,
            "train.weight_decay": 0.05,
            "train.weight_decay_mode": "decoupled",
            "train.grad_clip": 1.0,
        },
        grid.arch("efficientnet", "embedded", variant="b0", width=0.25),
    ]


def _paper_models(preset):
    models = [grid.arch("resnet", preset, depth=d) for d in PAPER_RESNETS]
    models += [grid.arch("vit", preset, variant=v) for v in PAPER_VITS]
    models += [grid.arch("efficientnet", preset, variant=v) for v in PAPER_EFFICIENTNETS]
    return models


def get_sweep(arg=None):
    return grid.seeded(arg, _embedded_models(), _paper_models)
