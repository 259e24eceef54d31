"""Classes sweep: training on random subsets of the classes (the study's Fig. 14).

With fewer classes the gap in Perceptual Score between ResNet-6 and ResNet-200 shrinks, and
ResNet-6 stays ahead. Each trial trains and evaluates on ``data.classes`` = k classes drawn at
random (``trainer.data.class_subset``: the first k of a permutation seeded by
``data.class_seed``, which follows the trial's seed, so a seed's smaller subsets lie inside its
larger ones); labels become 0..k-1 and the classifier has k outputs (``data.num_classes`` = k).
``config.json`` holds k and the class seed, which fix the subset; the trainer's split metadata
lists the original class ids. Each trial keeps its recipe's epochs, so fewer classes means
fewer steps (whether the study rescaled the steps is not public).

* ``paper``: ResNet-6 and ResNet-200 (ResNet recipe) on ImageNet 64x64 with k = 50, 100, 200,
  300, 500, 700, 900 of the 1000 classes (the study's range; its exact grid is not public).
  Trials ``resnet-200_classes-50``.
* ``embedded``: ResNet-6 and ResNet-18 on Fashion-MNIST with k = 2, 5, 10 of its 10 classes.

Arg: ``embedded`` (default) or ``paper``, optionally ``,seeds=N``.
"""

from __future__ import annotations

from sweeps import grid

PAPER_RESNETS = (6, 200)
PAPER_CLASSES = (50, 100, 200, 300, 500, 700, 900)
EMBEDDED_RESNETS = (6, 18)
EMBEDDED_CLASSES = (2, 5, 10)

trial_name = grid.namer("data.classes")
get_config = grid.short_config


def _classes(values):
    return [{"data.classes": k, "data.num_classes": k} for k in values]


def _with_class_seed(trials):
    """Each trial's class subset drawn from its own seed."""
    return [{**t, "data.class_seed": t.get("seed", 0)} for t in trials]


def get_sweep(arg=None):
    preset, _ = grid.parse_arg(arg)
    embedded = grid.product(
        [grid.arch("resnet", "embedded", depth=d) for d in EMBEDDED_RESNETS],
        _classes(EMBEDDED_CLASSES),
    )
    paper = lambda p: grid.product(  # noqa: E731
        [grid.arch("resnet", p, depth=d) for d in PAPER_RESNETS], _classes(PAPER_CLASSES)
    )
    return _with_class_seed(grid.seeded(arg, embedded, paper))
