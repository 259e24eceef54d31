"""A synthetic sweep shaped like the study (Kumar et al., TMLR 2022): its axes (width, depth,
weight decay, epochs, label smoothing, dropout, central crop, classes, skip connections, the
out-of-the-box architectures) over its five architectures (ResNet-6, -50, -200, ViT-B/8,
ViT-L/4), seeds, and 112 scored checkpoints per trial, with ``sweep.json``'s ``axes`` as the
``study`` sweep writes it. For previewing and timing the report at the study's scale:

    python -m evaluator.report.synth --study runs/demo-study && python -m evaluator.report runs/demo-study

The numbers are made up: a PS that peaks early in training and at small widths and depths, with
the paper's Table 1 gains as the size of each axis's effect (so the synthetic Table 1 lands near
the paper's), labelled as BAPPS scores so the report takes its BAPPS path. They say nothing about
any model. Trials are written with ``synth.write_trial``; probes on each trial's final checkpoint
(``probes="all"`` on every one, as the evaluator does by default: about 16 kB per record).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from evaluator.report.synth import write_trial
from sweeps import grid
from sweeps.base import config_from, flatten
from sweeps.recipes import recipe
from trainer.files import atomic_write_json

STEPS_PER_EPOCH = 1251  # ImageNet's 1.28M images at batch 1024
CHECKPOINTS = 112  # the study's 90-epoch run keeps one checkpoint every 1,000 steps
# name -> (overrides, PS at the default recipe, top-1 (%) at the default recipe), then the
# paper's Table 1 gains (width, depth, weight decay, central crop, train steps) as effect sizes.
FIVE = {
    "resnet-6": ({"model.depth": 6}, 69.1, 49.0, (0.4, 0.0, 0.3, 0.0, 0.5)),
    "resnet-50": ({"model.depth": 50}, 68.2, 64.0, (0.4, 0.0, 0.7, 0.7, 1.5)),
    "resnet-200": ({"model.depth": 200}, 67.6, 68.0, (0.2, 0.0, 1.3, 1.2, 1.9)),
    "vit-B/8": ({"model.variant": "B/8"}, 67.6, 66.0, (1.1, 1.0, 1.3, 0.9, 1.1)),
    "vit-L/4": ({"model.variant": "L/4"}, 67.9, 70.0, (0.4, 0.4, -0.1, -1.1, 0.5)),
}
WIDTH_OPT = {"resnet": 0.25, "vit-B/8": 0.0625, "vit-L/4": 0.125}
WIDTHS = (0.0625, 0.125, 0.25, 0.5, 1.0, 2.0, 4.0)
RESNET_DEPTHS = (2, 3, 4, 5, 6, 10, 14, 18, 26, 34, 50, 101, 152, 200)
VIT_DEPTHS = {"vit-B/8": (1, 2, 3, 4, 6, 8, 10, 12), "vit-L/4": (1, 2, 3, 4, 6, 8, 12, 16, 20, 24)}
RESNET_WDS = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2)
VIT_WDS = (1e-3, 0.01, 0.1, 0.3, 1.0, 3.0)
EPOCHS = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 60.0, 90.0)
VIT_EPOCHS = (*EPOCHS, 150.0, 300.0)
SMOOTHING = (0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5)
DROPOUT = (0.0, 0.1, 0.2, 0.4, 0.6, 0.8)
CLASSES = (50, 100, 200, 300, 500, 700, 900)
SKIP_DEPTHS = (6, 10, 14, 18, 26, 34, 50)
ARCHS = [("resnet", {"model.depth": d}) for d in (18, 34, 50, 101, 152, 200)] + [
    ("efficientnet", {"model.variant": f"b{i}"}) for i in range(6)
]


def _resnet_base(depth: int) -> tuple[float, float]:
    """(PS, top-1) of a default ResNet of ``depth``: through the study's three, log-linear."""
    u = math.log(depth)
    ps = float(np.interp(u, np.log([2, 6, 50, 200]), [67.5, 69.1, 68.2, 67.6]))
    top1 = float(np.interp(u, np.log([2, 6, 50, 200]), [30.0, 49.0, 64.0, 68.0]))
    return ps, top1


def _bump(u: float, opt: float, zero: float) -> float:
    """1 at ``opt``, 0 at ``zero`` (both in log units), a parabola in between and beyond."""
    return 1.0 - ((u - opt) / (zero - opt)) ** 2 if zero != opt else 0.0


def _curve(e: float, full: float, peak: float, ps_def: float, gain: float) -> float:
    """PS after ``e`` epochs: 62 at the start, ``ps_def + gain`` at ``peak``, ``ps_def`` at
    ``full`` (the recipe's schedule)."""
    u, up, u0 = math.log(e), math.log(peak), math.log(full)
    if u >= up:
        return ps_def + gain * _bump(u, up, u0)
    top = ps_def + gain
    return top - (top - 62.0) * min(1.0, ((up - u) / (up - math.log(0.02))) ** 2)


class _Trial:
    """One synthetic trial: its overrides and the made-up effects of its axis value."""

    def __init__(self, arch: str, family: str, model: dict, defaults: dict) -> None:
        self.arch, self.family, self.model, self.d = arch, family, model, defaults
        self.ps_def, self.top1_def, self.gains = 0.0, 0.0, (0.0,) * 5
        if arch in FIVE:
            _, self.ps_def, self.top1_def, self.gains = FIVE[arch]
        elif family == "resnet":
            self.ps_def, self.top1_def = _resnet_base(model["model.depth"])
        else:  # EfficientNet b0..b5: more accurate, less perceptual as they grow
            b = int(model["model.variant"][1:])
            self.ps_def, self.top1_def = 68.2 - 0.2 * b, 55.0 + 2.2 * b

    def effect(self, key: str | None, v: Any) -> tuple[float, float]:
        """(PS, top-1) shift of the final checkpoint for ``key = v``."""
        g, d = self.gains, self.d.get(key)
        if key == "model.width":
            opt = WIDTH_OPT.get(self.arch, WIDTH_OPT["resnet"])
            ps = g[0] * _bump(math.log(v), math.log(opt), 0.0) if v <= 1 else -0.3 * math.log2(v)
            return ps, 4.0 * math.log2(v) if v < 1 else 1.0 * math.log2(v)
        if key == "model.depth" and self.family == "vit":
            full = VIT_DEPTHS[self.arch][-1]
            return g[1] * _bump(math.log(v), math.log(2), math.log(full)), -25.0 * (
                1 - v / full
            ) ** 2
        if key == "train.weight_decay":
            x = abs(math.log10(v / d))
            return g[2] * min(1.0, x / 2.0), -3.0 * x
        if key == "data.crop":
            return (g[3], -2.0) if v == "center" else (0.0, 0.0)
        if key == "train.label_smoothing":
            return -1.5 * v, 1.0 * v
        if key in ("model.dropout", "model.encoder_dropout"):
            return -1.2 * abs(v - d), -3.0 * abs(v - d)
        if key == "data.classes":
            return 0.6 * (1 - math.log(v) / math.log(1000)), 25.0 * (
                1 - math.log(v) / math.log(1000)
            )
        if key == "model.skip":
            return (0.0, 0.0) if v else (-0.3, -4.0)
        return 0.0, 0.0

    def points(self, key: str | None, v: Any, seed: int, n: int) -> list[tuple]:
        """``n`` checkpoints of this trial: (step, epoch, top-1 fraction, PS)."""
        full = self.d["train.epochs"]
        epochs = v if key == "train.epochs" else full
        peak = 5.0 if self.family == "resnet" else 60.0
        dps, dtop1 = self.effect(key, v) if key != "train.epochs" else (0.0, 0.0)
        top = min(95.0, self.top1_def + dtop1 + 0.2 * (seed - 1))
        out = []
        for i in range(n):
            e = epochs * (i + 1) / n
            ps = _curve(e, full, peak, self.ps_def, self.gains[4]) + dps + 0.05 * (seed - 1)
            top1 = top * (1.0 - math.exp(-3.0 * e / full)) ** 0.5 / (1 - math.exp(-3.0)) ** 0.5
            step = max(i + 1, round(e * STEPS_PER_EPOCH))
            out.append((step, round(e, 4), round(max(0.1, top1) / 100.0, 5), round(ps, 3)))
        return out


def _models() -> dict[str, tuple[str, dict]]:
    """Every architecture: the five, the out-of-the-box ones and the depth sweep's ResNets."""
    out = {}
    for d in RESNET_DEPTHS:
        out[f"resnet-{d}"] = ("resnet", {**recipe("resnet", "paper"), "model.depth": d})
    for name, (model, *_) in FIVE.items():
        if name.startswith("vit"):
            out[name] = ("vit", {**recipe("vit", "paper", model["model.variant"]), **model})
    for fam, model in ARCHS:
        if fam == "efficientnet":
            v = model["model.variant"]
            out[f"efficientnet-{v}"] = (fam, {**recipe(fam, "paper", v), **model})
    return out


def _grid() -> dict[str, tuple[str | None, list[tuple[str, str | None, Any]]]]:
    """axis -> (its key, [(architecture, key or None for the default, value)])."""
    five = list(FIVE)
    return {
        "width": ("model.width", [(a, "model.width", w) for a in five for w in WIDTHS]),
        "weight_decay": ("train.weight_decay", [
            (a, "train.weight_decay", w)
            for a in five[:4] for w in (RESNET_WDS if a.startswith("resnet") else VIT_WDS)
        ]),
        "epochs": ("train.epochs", [
            (a, "train.epochs", e)
            for a in five for e in (EPOCHS if a.startswith("resnet") else VIT_EPOCHS)
        ]),
        "label_smoothing": ("train.label_smoothing", [
            (a, "train.label_smoothing", s) for a in five for s in SMOOTHING
        ]),
        "dropout": ("model.dropout", [
            (a, "model.dropout" if a.startswith("resnet") else "model.encoder_dropout", r)
            for a in five for r in DROPOUT
        ]),
        "crop": ("data.crop", [(a, "data.crop", c) for a in five
                               for c in ("distorted_bbox", "center")]),
        "depth": ("model.depth", [(f"resnet-{d}", None, None) for d in RESNET_DEPTHS] + [
            (a, "model.depth", d) for a in ("vit-B/8", "vit-L/4") for d in VIT_DEPTHS[a]
        ]),
        "classes": ("data.classes", [
            (a, "data.classes", k) for a in ("resnet-6", "resnet-200") for k in CLASSES
        ]),
        "skip": ("model.skip", [(f"resnet-{d}", "model.skip", s)
                                for d in SKIP_DEPTHS for s in (True, False)]),
        "archs": (None, [(f"{f}-{m.get('model.variant') or m['model.depth']}", None, None)
                         for f, m in ARCHS] + [(a, None, None) for a in five[3:]]),
    }  # fmt: skip


def study_sweep(sweep_dir: Path, seeds: int = 3, checkpoints: int = CHECKPOINTS,
                probes: str = "final", axes: list[str] | None = None) -> Path:  # fmt: skip
    """Write the study-shaped sweep into ``sweep_dir``; ``axes`` picks some (tests)."""
    sweep_dir = Path(sweep_dir)
    models = _models()
    defaults = {a: flatten(config_from("paper", m).to_dict()) for a, (_, m) in models.items()}
    made: dict[str, dict] = {}
    listing: dict[str, dict] = {}
    for axis, (axis_key, cells) in _grid().items():
        if axes is not None and axis not in axes:
            continue
        names: list[str] = []
        n_seeds = 5 if axis == "archs" else seeds
        for arch, key, v in cells:
            family, model = models[arch]
            default = key is None or defaults[arch].get(key) == v
            extra = {} if default else {key: v}
            if key == "data.classes":
                extra["data.num_classes"] = v
            for seed in range(n_seeds):
                ov = {**model, **extra, "seed": seed}
                name = grid.namer(*([] if default else [key]))(ov)
                names.append(name)
                if name in made:
                    continue
                t = _Trial(arch, family, model, defaults[arch])
                pts = t.points(None if default else key, v, seed, checkpoints)
                made[name] = ov
                write_trial(sweep_dir, name, ov, pts, bench="bapps", preset="paper",
                            probes=probes != "none", probe_steps=None if probes == "all"
                            else {pts[-1][0]})  # fmt: skip
        listing[axis] = {"key": axis_key, "trials": names}
    atomic_write_json(
        sweep_dir / "sweep.json",
        {
            "sweep": sweep_dir.name,
            "preset": "synthetic (made-up numbers, study-shaped)",
            "axes": listing,
            "trials": [{"name": n, "overrides": ov} for n, ov in made.items()],
        },
    )
    return sweep_dir
