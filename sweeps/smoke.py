"""A tiny sweep for tests: the embedded preset shrunk to seconds on a 2-core CPU.

Fashion-MNIST subset (2000 train / 500 eval) at 16x16 without augmentation, ResNet-6 at width
0.25, two epochs of batch 50 (80 steps, about 70% top-1); ``get_sweep`` gives two trials
(depths 2 and 6).
"""

from __future__ import annotations

from sweeps import base

SMOKE = {
    "data.image_size": 16,
    "data.train_examples": 2000,
    "data.eval_examples": 500,
    "data.crop": "none",
    "data.flip": False,
    "model.depth": 6,
    "model.width": 0.25,
    "train.batch_size": 50,
    "train.epochs": 2.0,
    "train.base_lr": 0.4,
    "train.warmup_epochs": 0.1,
    "train.log_every_steps": 10,
    "eval.batch_size": 250,
    "checkpoint.every_steps": 20,
    "checkpoint.keep_every_steps": 40,
}


def get_config(arg: str | None = None):
    return base.config_from(arg or "embedded", SMOKE)


def get_sweep(arg: str | None = None):
    return [{"model.depth": 2}, {"model.depth": 6}]
