"""The study: every axis sweep of sweeps/ in one sweep, each distinct trial trained once.

``make sweep SWEEP=study PRESET=paper`` runs the ten axes below with the arg given (``paper`` or
``embedded``, optionally ``,seeds=N``; each axis then builds its own grid from it, ``archs``
with its 5 seeds under ``paper``):

| axis | key | models (paper) | paper grid | embedded | source |
| --- | --- | --- | --- | --- | --- |
| depth | model.depth | ResNet; ViT-B/8, L/4 | ResNet 2 .. 200 (14); B/8 1 .. 12, L/4 1 .. 24 blocks | ResNet 2, 6, 10, 18 | the study; ViT blocks ours |
| width | model.width | the five | x 1/16 .. 4 (7) | ResNet-6 x 1/16 .. 1/2 | ours, spanning the study's optima |
| epochs | train.epochs | the five | 0.5 .. 90 (9); ViTs also 150, 300 | ResNet-6 0.25 .. 2 | ours |
| weight_decay | train.weight_decay | the five but L/4 | ResNets 1e-6 .. 1e-2, B/8 1e-3 .. 3 (7) | ResNet-6 5e-6 .. 5e-2 | ours |
| label_smoothing | train.label_smoothing | the five | 0 .. 0.5 (7) | ResNet-6 0 .. 0.5 | ours |
| dropout | model.dropout (ViT: encoder_dropout) | the five | 0 .. 0.8 (6) | ResNet-6 0 .. 0.8 | ours |
| crop | data.crop | the five | distorted_bbox, center | ResNet-6, 10 | the study's Table 1 |
| classes | data.classes | ResNet-6, 200 | 50 .. 900 classes (7) | ResNet-6, 18 on 2, 5, 10 | the study's Fig. 14 |
| skip | model.skip | ResNet 6 .. 50 | with, without skips | ResNet 6, 10, 18 | the study's Fig. 16 |
| archs | (the model) | ResNet-18 .. 200, ViT-B/8, L/4, EfficientNet-B0 .. B5 | 5 seeds each | one small model per family | the study |

The five: ResNet-6, ResNet-50, ResNet-200 (ResNet recipe), ViT-B/8 and ViT-L/4 (ViT recipe).
Each axis's file says what it sweeps, why, and its ``embedded`` grid; README has the table.

Every axis trial keeps the config its own sweep gives it (its ``get_config`` plus its overrides;
here as overrides of this file's ``get_config``, the short embedded preset or ``paper``). Trials
whose whole resolved config is equal are one trial (``launch.axes``): ResNet-50 at width 1 is
also ResNet-50 at weight decay 1e-4, label smoothing 0, dropout 0, 90 epochs and the random crop.
It is named by the first axis, in the order above, that has it: ``<axis>_<the axis's own trial
name>`` (ResNet-50 with its recipe is ``depth_depth-50``, ResNet-6 at width 1/4
``width_resnet-6_width-0.25``). ``runs/study/sweep.json``'s
``axes`` lists every axis's trials, shared ones under each axis they belong to, and the report
writes one report per axis from it. ``--dry-run`` prints per axis and in total the trials, the
distinct trials and their estimated hours on one H200 (``launch.cost``).

The study reports 722 networks; under ``paper`` this sweep trains fewer (``--dry-run`` prints the
count and ``NOTE`` says why).
"""

from __future__ import annotations

import importlib
from typing import Any

from sweeps import base, grid

# axis -> its primary key (the x-axis of its report; None: archs, one point per model).
AXES: dict[str, str | None] = {
    "depth": "model.depth",
    "width": "model.width",
    "epochs": "train.epochs",
    "weight_decay": "train.weight_decay",
    "label_smoothing": "train.label_smoothing",
    "dropout": "model.dropout",
    "crop": "data.crop",
    "classes": "data.classes",
    "skip": "model.skip",
    "archs": None,
}

STUDY_NETWORKS = 722  # the study's own count (arXiv 2203.04946, Sec. 3)
NOTE = (
    f"paper: the study reports {STUDY_NETWORKS} networks; its exact grids and seeds (its Appendix "
    "M) are not public. Here the grids are ours where the study's is unknown, each axis point "
    "trains one seed (archs: 5) and a network shared by several axes trains once; ',seeds=N' "
    "trains N seeds of every point, archs included (README, 'The study sweep')."
)

get_config = grid.short_config


def _shift(config: Any, reference: dict[str, Any]) -> dict[str, Any]:
    """The keys where an axis's ``get_config`` differs from this file's, with its values."""
    flat = base.flatten(config)
    norm = base.normalised(config)
    return {k: flat[k] for k, v in norm.items() if v != reference.get(k)}


def get_axes(arg: str | None = None) -> dict[str, tuple[str | None, list[tuple[str, dict]]]]:
    """``{axis: (key, [(trial name, overrides), ...])}`` for every axis, in ``AXES`` order; the
    overrides are relative to ``get_config(arg)`` and rebuild the axis's own config exactly."""
    grid.parse_arg(arg)  # a bad arg: one line, before any axis runs
    reference = base.normalised(get_config(arg))
    out = {}
    for axis, key in AXES.items():
        module = importlib.import_module(f"sweeps.{axis}")
        shift = _shift(module.get_config(arg), reference)
        namer = getattr(module, "trial_name", None) or grid.trial_name
        trials = []
        for o in module.get_sweep(arg):
            overrides = {**o, **{k: v for k, v in shift.items() if k not in o}}
            trials.append((f"{axis}_{namer(o)}", overrides))
        out[axis] = (key, trials)
    return out
