"""Dropout sweep: dropout from 0 to 0.8.

Another regulariser that helps accuracy and, per the study, hurts Perceptual Score at the rates
that help most. ``paper``: ResNet-50 (ResNet recipe) with dropout before the classifier, and
ViT-B/8 (ViT recipe) with dropout inside the encoder (after attention and MLP), on ImageNet
64x64 at 0, 0.1, 0.2, 0.4, 0.6, 0.8; ``embedded``: the embedded ResNet-6 before its classifier.
Trial names: ``resnet-50_dropout-0.2``, ``vit-B8_encdrop-0.2`` (paper), ``dropout-0.2``.

Arg: ``embedded`` (default) or ``paper``, optionally ``,seeds=N``.
"""

from __future__ import annotations

from sweeps import grid

PAPER_RATES = (0.0, 0.1, 0.2, 0.4, 0.6, 0.8)
EMBEDDED_RATES = (0.0, 0.2, 0.4, 0.8)
get_config = grid.short_config


def trial_name(overrides):
    """``resnet-50_dropout-0.2``, ``vit-B8_encdrop-0.2``, ``dropout-0.2`` (the swept rate only)."""
    swept = "model.encoder_dropout" if "model.encoder_dropout" in overrides else "model.dropout"
    return grid.namer(swept)(overrides)


def _paper(preset):
    resnet = grid.arch("resnet", preset, depth=50)
    vit = {**grid.arch("vit", preset, variant="B/8"), "model.dropout": 0.0}
    return grid.chain(
        grid.product([resnet], grid.axis("model.dropout", PAPER_RATES)),
        grid.product([vit], grid.axis("model.encoder_dropout", PAPER_RATES)),
    )


def get_sweep(arg=None):
    return grid.seeded(arg, grid.axis("model.dropout", EMBEDDED_RATES), _paper)
