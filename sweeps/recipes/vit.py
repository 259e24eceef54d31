"""The study's ViT recipe (preset ``paper_vit``): the ViT paper's ImageNet-from-scratch setting.

The study's ViT training code is not public; it confirms only the weight decay of 0.3. The rest
is the ViT paper's (Dosovitskiy et al. 2021, arXiv 2010.11929) recipe for ImageNet-1k from
scratch, section 4.1 ("Training & Fine-tuning") and Appendix B.1, Table 3 (row "ViT-* ImageNet"):

| key | value | source |
| --- | --- | --- |
| train.optimizer | Adam, b1 0.9, b2 0.999 | section 4.1 |
| train.base_lr | 3e-3 at batch 4096 -> 3e-3 x 256 / 4096 = 1.875e-4 per 256 images | Table 3 |
| train.warmup_epochs | 10k steps at batch 4096 = 10000 x 4096 / 1281167 = 31.97 epochs | Table 3 caption |
| train.schedule | cosine decay (to 0) | Table 3 |
| train.epochs | 300 | Table 3 |
| train.weight_decay | 0.3 (confirmed by the study) | Table 3 |
| train.grad_clip | global norm 1 ("for ImageNet") | Table 3 caption |
| model.encoder_dropout | 0.1: after the position embeddings, attention and MLP layers; none before the head | Table 3; google-research/vision_transformer vit_jax/models_vit.py (``Encoder``, ``Encoder1DBlock``, ``MlpBlock``: ``dropout_rate``; the head has no dropout) |
| model.variant | B/8 (the study's ViT-B/8; ViT-L/4 by ``recipe``) | the study |

Scaled to the batch used: batch 1024 (the study's ResNet batch, one accelerator) instead of
4096, with the LR scaled linearly (``base_lr`` is per 256 images, so 7.5e-4 at 1024) and the
warm-up kept in images (31.97 epochs = 40k steps at 1024). Weight decay is decoupled and
multiplied by the LR (``lr x wd x w``, as flax.optim.Adam's ``weight_decay``, which the ViT
code of the time used) and applied to kernels (``ndim > 1``: also the position embedding and
the CLS token), not to biases or LayerNorm: which parameters the paper decayed is not public.
"""

from __future__ import annotations

from typing import Any

IMAGENET_TRAIN = 1281167
PAPER_BATCH = 4096

RECIPE: dict[str, Any] = {
    "model.name": "vit",
    "model.depth": 0,
    "model.variant": "B/8",
    "model.dropout": 0.0,
    "model.encoder_dropout": 0.1,
    "model.stochastic_depth": 0.0,
    "model.bn_momentum": 0.0,
    "train.batch_size": 1024,
    "train.epochs": 300.0,
    "train.optimizer": "adamw",
    "train.base_lr": 3e-3 * 256 / PAPER_BATCH,
    "train.adam_b1": 0.9,
    "train.adam_b2": 0.999,
    "train.schedule": "cosine",
    "train.warmup_epochs": 10000 * PAPER_BATCH / IMAGENET_TRAIN,
    "train.weight_decay": 0.3,
    "train.weight_decay_mode": "decoupled",
    "train.weight_decay_on": "kernels",
    "train.label_smoothing": 0.0,
    "train.grad_clip": 1.0,
    "train.ema_decay": 0.0,
    "train.ema_warmup": False,
}
