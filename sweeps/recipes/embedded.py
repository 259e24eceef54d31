"""The ``embedded`` preset: Fashion-MNIST at 32x32, a ResNet-6 at a quarter width, two epochs of
batch 128 (SGD + Nesterov, cosine), minutes on a 2-core CPU. Its numbers are a baseline other
runs are compared against byte for byte: change nothing here without rerunning that baseline."""

from __future__ import annotations

from typing import Any

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
