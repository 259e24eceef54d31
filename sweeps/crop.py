"""Crop sweep: training with a fixed centre crop instead of the random crop.

The study's Table 1 "central crop" column: training on the centre crop (no random crop) raises
the Perceptual Score of ResNet-50, ResNet-200 and ViT-B/8, leaves ResNet-6 unchanged and lowers
ViT-L/4's. Which centre crop is not stated; here it is the tensorflow/tpu eval crop (crop
fraction 0.875: the central 56x56 pixels of a 64x64 image, resized back with TF1 bicubic,
``data.crop=center``) against the recipes' random crop (``distorted_bbox``,
resnet_preprocessing.py's ``_decode_and_random_crop``); the horizontal flip and the centre-crop
evaluation stay as in the recipes.

* ``paper``: the five architectures (ResNet-6, -50, -200 with the ResNet recipe; ViT-B/8, ViT-L/4
  with the ViT recipe) on ImageNet 64x64 with each crop. Trials ``resnet-50_crop-center``,
  ``vit-B8_crop-distortedbbox``.
* ``embedded``: ResNet-6 and ResNet-10 on Fashion-MNIST (the short embedded preset, flip off,
  centre-crop evaluation as in the recipes) with each crop: minutes on a CPU. Trials
  ``resnet-6_crop-center``.

Arg: ``embedded`` (default) or ``paper``, optionally ``,seeds=N``.
"""

from __future__ import annotations

from sweeps import grid

CROPS = ("distorted_bbox", "center")
EMBEDDED_RESNETS = (6, 10)
EMBEDDED = {**grid.EMBEDDED_SHORT, "data.eval_crop": "center"}

trial_name = grid.namer("data.crop")


def get_config(arg=None):
    return grid.config(arg, embedded=EMBEDDED)


def _paper(preset):
    return grid.product(grid.study_models(preset), grid.axis("data.crop", CROPS))


def _embedded():
    models = [grid.arch("resnet", "embedded", depth=d) for d in EMBEDDED_RESNETS]
    return grid.product(models, grid.axis("data.crop", CROPS))


def get_sweep(arg=None):
    return grid.seeded(arg, _embedded(), _paper)
