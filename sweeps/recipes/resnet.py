"""The study's ResNet recipe (preset ``paper``), from tensorflow/tpu's models/official/resnet.

The study trained its ResNets with the public tensorflow/tpu code plus pull request 991 (commit
0325bff, "Cloud TPU Changes for Perceptual Similarity", which only adds ResNet-6 and the
``reduction_1..4`` endpoints). Every value below comes from that commit; file and line:

| key | value | tensorflow/tpu source |
| --- | --- | --- |
| model.depth | 50 | resnet/configs/resnet_config.py:19 ``resnet_depth`` |
| model.dtype | bfloat16 | resnet_config.py:31 ``precision`` |
| model.dropout | 0 | resnet_config.py:56 ``dropout_rate: None`` |
| model.bn_momentum | 0.9 (epsilon 1e-5 in the model) | resnet_config.py:58; resnet_model.py:37-38 |
| train.batch_size | 1024 | resnet_config.py:20 ``train_batch_size`` |
| train.epochs | 90 | resnet_config.py:24 ``train_steps: 112590`` = 90 x 1251 steps |
| train.base_lr | 0.1 per 256 images | resnet_config.py:25; resnet_main.py:268-269 (x batch/256) |
| train.momentum, nesterov | 0.9, Nesterov | resnet_config.py:36; resnet_main.py:500-503 |
| train.schedule | linear warm-up over 5 epochs, then x0.1 at epochs 30, 60, 80 | resnet_main.py:239-248 (``get_lr_schedule``), 275-279 |
| train.weight_decay | 1e-4, L2 in the loss | resnet_config.py:37; resnet_main.py:474-478 |
| train.weight_decay_on | every trainable variable whose name lacks ``batch_normalization``: conv and dense kernels and the dense bias | resnet_main.py:474-478 |
| train.label_smoothing | 0 | resnet_config.py:38 |
| train.ema_decay | 0 (no EMA) | resnet_config.py:57 ``moving_average_decay: 0`` |
| data.crop | ``distorted_bbox``: area 0.08-1, aspect 3/4-4/3, 10 tries, else the centre crop; bicubic resize; then flip | resnet_preprocessing.py:86-106, 132-135, 160-161 |
| data.eval_crop | ``center``: crop fraction 0.875 (56 of 64 pixels), bicubic resize back | resnet_preprocessing.py:24, 109-129, 203 |
| normalisation | 0-255 pixels minus ImageNet mean x 255, over std x 255 | resnet_main.py:235-236, 371-373 (``trainer.data.normalize`` computes the same) |
| data.num_classes | 1000 | resnet_config.py:32 |

Not in the public code, chosen here: ImageNet 64x64 instead of 224 (the study's data); checkpoint
every 1000 steps (the study's released checkpoints); the step boundaries as fractions 30/90,
60/90, 80/90 of the run (the code's ``np.floor(30 / 90 * train_epochs)``), so a shorter run keeps
the shape. At 90 epochs of 1251 steps they fall on steps 37530, 75060 and 100080; the code's
unfloored epoch counter (1281167 / 1024 = 1251.1 steps an epoch) puts them 4 to 9 steps later.
"""

from __future__ import annotations

from typing import Any

# What every ``paper*`` preset shares: the data, its preprocessing and the run's bookkeeping.
PAPER_DATA: dict[str, Any] = {
    "model.dtype": "bfloat16",
    "data.name": "imagenet64",
    "data.image_size": 64,
    "data.num_classes": 1000,
    "data.crop": "distorted_bbox",
    "data.flip": True,
    "data.eval_crop": "center",
    "train.log_every_steps": 100,
    "train.eval_every_steps": 0,
    "eval.batch_size": 1000,
    "checkpoint.every_steps": 1000,
    "checkpoint.keep_every_steps": 1000,
    "perceptual.benchmarks": "bapps",
}

RECIPE: dict[str, Any] = {
    "model.name": "resnet",
    "model.depth": 50,
    "model.variant": "",
    "model.dropout": 0.0,
    "model.bn_momentum": 0.9,
    "train.batch_size": 1024,
    "train.epochs": 90.0,
    "train.optimizer": "sgd",
    "train.base_lr": 0.1,
    "train.momentum": 0.9,
    "train.nesterov": True,
    "train.schedule": "step",
    "train.warmup_epochs": 5.0,
    "train.step_boundaries": (30 / 90, 60 / 90, 80 / 90),
    "train.step_factor": 0.1,
    "train.weight_decay": 1e-4,
    "train.weight_decay_mode": "l2",
    "train.weight_decay_on": "non_norm",
    "train.label_smoothing": 0.0,
    "train.grad_clip": 0.0,
    "train.ema_decay": 0.0,
    "train.ema_warmup": False,
}
