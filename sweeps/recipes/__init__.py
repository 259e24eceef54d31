"""The presets: each a set of overrides of the schema in ``sweeps/base.py``.

* ``embedded`` (default, ``embedded.py``): Fashion-MNIST at 32x32, small ResNets, minutes on a
  2-core CPU.
* ``paper`` (``resnet.py``): the study's ResNet recipe on ImageNet 64x64, as in tensorflow/tpu's
  ``models/official/resnet`` (SGD + Nesterov 0.9, LR 0.1 x B/256, 5-epoch warm-up, x0.1 at epochs
  30/60/80 of 90, L2 1e-4 on all but BatchNorm, batch 1024, Inception-style random crop + flip,
  centre-crop eval).
* ``paper_vit`` (``vit.py``): the ViT paper's ImageNet-from-scratch recipe (Adam, LR 3e-3 at batch
  4096 scaled to ours, 10k warm-up steps, cosine, weight decay 0.3, dropout 0.1, 300 epochs).
* ``paper_efficientnet`` (``efficientnet.py``): tensorflow/tpu's ``models/official/efficientnet``
  (RMSProp, LR 0.016 x B/256, exponential decay 0.97 every 2.4 epochs, 350 epochs, L2 1e-5,
  label smoothing 0.1, EMA 0.9999, per-variant dropout, drop-connect 0.2).

Each family's module cites the file and line of every value (tensorflow/tpu at commit 0325bff,
"Cloud TPU Changes for Perceptual Similarity", the study's pull request 991) and says where the
study's value is not public and what was chosen. Presets are override dicts, so a preset is read
the same way as a trial. ``recipe(model, preset, variant)`` is the recipe of one model family,
for sweeps that mix families.
"""

from __future__ import annotations

from typing import Any

from sweeps.recipes import efficientnet, resnet, vit
from sweeps.recipes.embedded import EMBEDDED

PRESETS = ("embedded", "paper", "paper_vit", "paper_efficientnet")

PAPER = {**resnet.PAPER_DATA, **resnet.RECIPE}

PRESET_OVERRIDES: dict[str, dict[str, Any]] = {
    "embedded": EMBEDDED,
    "paper": PAPER,
    "paper_vit": {**PAPER, **vit.RECIPE},
    "paper_efficientnet": {**PAPER, **efficientnet.RECIPE},  # B0
}


def recipe(model_name: str, preset: str, variant: str = "") -> dict[str, Any]:
    """The study's recipe for ``model_name`` (and its ``variant``, which sets EfficientNet's
    dropout) under ``preset`` as overrides of model.* and train.* keys (``embedded``, or a model
    without a recipe: the model name alone, which the schema's check then judges)."""
    if not preset.startswith("paper"):
        return {"model.name": model_name}
    if model_name == "resnet":
        return dict(resnet.RECIPE)
    if model_name == "vit":
        return {**vit.RECIPE, **({"model.variant": variant} if variant else {})}
    if model_name == "efficientnet":
        return efficientnet.recipe(variant or "b0")
    return {"model.name": model_name}
