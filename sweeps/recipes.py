"""The presets: each a set of overrides of the schema in ``sweeps/base.py``.

* ``embedded`` (default): Fashion-MNIST at 32x32, small ResNets, minutes on a 2-core CPU.
* ``paper``: the study's ResNet recipe on ImageNet 64x64 (SGD 0.9, LR 0.1 x B/256, wd 1e-4,
  batch 1024, 90 epochs).
* ``paper_vit`` / ``paper_efficientnet``: the study's ViT (AdamW, wd 0.3, warmup, dropout 0.1)
  and EfficientNet (RMSProp, LR 0.016 x B/256, wd 1e-5, label smoothing 0.1) recipes.

Presets are override dicts, so a preset is read the same way as a trial. ``recipe(model,
preset)`` is the optimiser recipe of one model family, for sweeps that mix families.
"""

from __future__ import annotations

from typing import Any

PRESETS = ("embedded", "paper", "paper_vit", "paper_efficientnet")

EMBEDDED: dict[str, Any] = {
    "model.name": "resnet",
    "model.depth": 6,
    "model.width": 0.25,
    "data.name": "fashion_mnist",
    "data.image_size": 32,
    "data.num_classes": 10,
    "train.batch_size": 128,
    "train.epochs": 2.0,
    "train.base_lr": 0.2,
    "train.warmup_epochs": 0.2,
    "train.weight_decay": 5e-4,
    "checkpoint.every_steps": 100,
    "checkpoint.keep_every_steps": 100,
}

PAPER: dict[str, Any] = {
    "model.name": "resnet",
    "model.depth": 50,
    "model.width": 1.0,
    "model.dtype": "bfloat16",
    "data.name": "imagenet64",
    "data.image_size": 64,
    "data.num_classes": 1000,
    "data.crop": "pad_crop",
    "train.batch_size": 1024,
    "train.epochs": 90.0,
    "train.optimizer": "sgd",
    "train.base_lr": 0.1,
    "train.momentum": 0.9,
    "train.nesterov": False,
    "train.schedule": "cosine",
    "train.warmup_epochs": 5.0,
    "train.weight_decay": 1e-4,
    "train.weight_decay_mode": "l2",
    "train.log_every_steps": 100,
    "train.eval_every_steps": 0,
    "eval.batch_size": 1000,
    "checkpoint.every_steps": 1000,
    "checkpoint.keep_every_steps": 1000,
    "perceptual.benchmarks": "bapps",
}

VIT: dict[str, Any] = {
    "model.name": "vit",
    "model.variant": "B/8",
    "model.depth": 0,
    "model.dropout": 0.1,
    "model.encoder_dropout": 0.1,
    "train.optimizer": "adamw",
    "train.base_lr": 3e-3 * 256 / 4096,  # 3e-3 at batch 4096, the ViT paper's AdamW LR
    "train.adam_b1": 0.9,
    "train.adam_b2": 0.999,
    "train.weight_decay": 0.3,
    "train.weight_decay_mode": "decoupled",
    "train.warmup_epochs": 10.0,
    "train.grad_clip": 1.0,
    "train.schedule": "cosine",
}

EFFICIENTNET: dict[str, Any] = {
    "model.name": "efficientnet",
    "model.variant": "b0",
    "model.dropout": 0.2,
    "model.stochastic_depth": 0.2,
    "train.optimizer": "rmsprop",
    "train.base_lr": 0.016,
    "train.momentum": 0.9,
    "train.rmsprop_decay": 0.9,
    "train.rmsprop_eps": 1e-3,
    "train.weight_decay": 1e-5,
    "train.weight_decay_mode": "l2",
    "train.label_smoothing": 0.1,
    "train.warmup_epochs": 5.0,
    "train.schedule": "cosine",
    "train.ema_decay": 0.9999,
}

RESNET = {k: v for k, v in PAPER.items() if k.startswith(("model.", "train."))}
_RECIPES = {"resnet": RESNET, "vit": VIT, "efficientnet": EFFICIENTNET}

PRESET_OVERRIDES: dict[str, dict[str, Any]] = {
    "embedded": EMBEDDED,
    "paper": PAPER,
    "paper_vit": {**PAPER, **VIT},
    "paper_efficientnet": {**PAPER, **EFFICIENTNET},
}


def recipe(model_name: str, preset: str) -> dict[str, Any]:
    """The study's recipe for ``model_name`` under ``preset`` as overrides (``embedded``, or a
    model without a recipe: the model name alone, which the schema's check then judges)."""
    if not preset.startswith("paper") or model_name not in _RECIPES:
        return {"model.name": model_name}
    return dict(_RECIPES[model_name])
