"""The study's EfficientNet recipe (preset ``paper_efficientnet``), from tensorflow/tpu's
models/official/efficientnet at commit 0325bff (the study's pull request 991).

| key | value | tensorflow/tpu source (models/official/efficientnet/) |
| --- | --- | --- |
| train.batch_size | 2048 | main.py:127-128 ``train_batch_size`` |
| train.epochs | 350 | main.py:117-121 ``train_steps: 218949``, "approximately 350 epochs at batch size 2048" |
| train.optimizer | RMSProp, decay 0.9, epsilon 1e-3, momentum 0.9 (TF1: mean square starts at 1, epsilon inside the root, LR inside the momentum) | main.py:283-286; utils.py:83-101 |
| train.base_lr | 0.016 per 256 images | main.py:234-237, 437 |
| train.schedule | linear warm-up over 5 epochs, then 0.97 ** floor(step / 2.4 epochs) counted from step 0 | main.py:239, 288-295; utils.py:45-49, 72-78 |
| train.weight_decay | 1e-5, L2 in the loss, every variable but ``batch_normalization`` ones | main.py:245-247, 419-422 |
| train.label_smoothing | 0.1 | main.py:249-251, 414-417 |
| train.ema_decay | 0.9999 with ``num_updates=global_step`` (decay min(0.9999, (1+n)/(10+n))) | main.py:241-243, 425-427 |
| model.dropout | per variant: b0 0.2, b1 0.2, b2 0.3, b3 0.3, b4 0.4, b5 0.4, b6 0.5, b7 0.5 | efficientnet_builder.py:37-48 |
| model.stochastic_depth | 0.2 (``survival_prob=0.8``), block i of N at 0.2 i / N | efficientnet_builder.py:183; efficientnet_model.py:657-660 |
| model.bn_momentum | 0.99 (epsilon 1e-3 in the model) | efficientnet_builder.py:187-188 |
| model.dtype | bfloat16 | main.py:220-223 ``use_bfloat16`` |
| augmentation | none beyond the random crop and flip (``augment_name=None``; the study disables AutoAugment / RandAugment) | main.py:97-103 |
| data.crop, eval_crop | as the ResNet's (preprocessing.py is resnet_preprocessing.py's twin) | preprocessing.py:96-137 |

Not closed: tensorflow/tpu also averages the BatchNorm moving mean and variance with the EMA
(utils.py:339-346 ``get_ema_vars``) and evaluates with those; here the EMA holds the parameters
only and evaluation uses the running BatchNorm statistics. B4/B5 were stopped early by the study
(before their accuracy fell); that is a choice of checkpoint, not of recipe.
"""

from __future__ import annotations

from typing import Any

RECIPE: dict[str, Any] = {
    "model.name": "efficientnet",
    "model.variant": "b0",
    "model.dropout": 0.2,
    "model.encoder_dropout": 0.0,
    "model.stochastic_depth": 0.2,
    "model.bn_momentum": 0.99,
    "train.batch_size": 2048,
    "train.epochs": 350.0,
    "train.optimizer": "rmsprop",
    "train.base_lr": 0.016,
    "train.momentum": 0.9,
    "train.nesterov": False,
    "train.rmsprop_decay": 0.9,
    "train.rmsprop_eps": 1e-3,
    "train.schedule": "exponential",
    "train.warmup_epochs": 5.0,
    "train.exp_decay_epochs": 2.4,
    "train.exp_decay_factor": 0.97,
    "train.weight_decay": 1e-5,
    "train.weight_decay_mode": "l2",
    "train.weight_decay_on": "non_norm",
    "train.label_smoothing": 0.1,
    "train.grad_clip": 0.0,
    "train.ema_decay": 0.9999,
    "train.ema_warmup": True,
}


def recipe(variant: str) -> dict[str, Any]:
    """The recipe for EfficientNet-``variant`` (``b0``..``b7``): its own dropout rate, which the
    model module owns (imported here, not above: the model zoo imports the schema, which
    imports the presets)."""
    from trainer.models.efficientnet import efficientnet_defaults

    dropout = efficientnet_defaults(variant)["dropout"]
    return {**RECIPE, "model.variant": variant, "model.dropout": dropout}
