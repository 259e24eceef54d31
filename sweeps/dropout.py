"""Dropout sweep: dropout from 0 to 0.8.

Another regulariser that helps accuracy and, per the study, lowers Perceptual Score.
``paper``: the five architectures on ImageNet 64x64 at 0, 0.1, 0.2, 0.4, 0.6, 0.8: ResNet-6,
-50, -200 (ResNet recipe) with dropout before the classifier, ViT-B/8 and ViT-L/4 (ViT recipe)
with the ViT's own dropout inside the encoder (after the position embeddings, attention and MLP;
the recipe's 0.1 is the default); ``embedded``: the embedded ResNet-6 before its classifier.
Trial names: ``resnet-50_dropout-0.2``, ``vit-B8_encdrop-0.2`` (paper), ``dropout-0.2``.

Arg: ``embedded`` (default) or ``paper``, optionally ``,seeds=N``.
"""

from __future__ import annotations

from sweeps import grid

PAPER_RATES = (0.0, 0.1, 0.2, 0.4, 0.6, 0.8)
EMBEDDED_RATES = (0.0, 0.2, 0.4, 0.8)
get_config = grid.short_config


def _key(overrides):
    """The rate a trial sweeps: the ViT's encoder dropout, else the dropout before the head."""
    return "model.encoder_dropout" if overrides.get("model.name") == "vit" else "model.dropout"


def trial_name(overrides):
    """``resnet-50_dropout-0.2``, ``vit-B8_encdrop-0.2``, ``dropout-0.2`` (the swept rate only)."""
    return grid.namer(_key(overrides))(overrides)


def _paper(preset):
    models = grid.study_models(preset)
    return grid.chain(*(grid.product([m], grid.axis(_key(m), PAPER_RATES)) for m in models))


def get_sweep(arg=None):
    return grid.seeded(arg, grid.axis("model.dropout", EMBEDDED_RATES), _paper)
