"""Estimated hours of a trial on one H200, from the per-model throughput table (``ROWS``).

One row per model of the ``paper`` sweeps at 64x64 (``model_key``: ``resnet-50``, ``resnet-50
w0.25``, ``resnet-18 noskip``, ``vit-B/8 d2``, ``efficientnet-b3``): its forward GFLOPs per image
and its training rate in images/s on one H200 (bfloat16, 64x64), with where the rate comes from:

* ``measured``: the end-to-end trainer row of the H200 bench (docs/performance.md, 2026-11-26
  second run, batch 1024): ResNet-50 59,332 images/s, ResNet-6 239,066 images/s.
* ``scaled by FLOPs from <measured model>``: that model's rate x its GFLOPs / this model's, from
  the measured model nearest in FLOPs (log scale), and never above the fastest measured rate
  (ResNet-6 runs 4x ResNet-50's rate with 9x fewer FLOPs: small models are bound by the step's
  overhead, not by FLOPs). An estimate: ViTs' large matmuls likely run nearer the chip's peak than
  ResNet-50's convolutions, so their hours are likely too high.

``GFLOPS`` holds numbers computed once on the CPU with jax's cost analysis of ``model.apply``
(eval mode, one 64x64 image, 1000 classes, the trial's dtype): ``python -m launch.cost --flops``
recomputes them (minutes) for every model of ``python -m launch study --preset paper``.
docs/performance.md ("Throughput table") holds the same table, printed by ``python -m launch.cost
--markdown`` (tests/test_cost.py checks that they agree).

Hours = epochs x training images / rate / 3600: the end-to-end rate counts training images over
the wall time with the per-epoch eval inside it (ImageNet's val/train ratio), so the eval is
included pro rata; the evaluator's scoring is not. ``data.classes = k`` trains on k/1000 of the
images. A trial whose model has no row (another resolution, the embedded preset) has no estimate.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

SIZE = 64  # the table's resolution
# model -> (images/s, the bench JSON it comes from: its end_to_end.images_per_sec, rounded).
MEASURED: dict[str, tuple[float, str]] = {
    "resnet-6": (239066.0, "docs/bench/2026-11-26-h200-resnet6.json"),
    "resnet-50": (59332.0, "docs/bench/2026-11-26-h200-resnet50.json"),
}
# model -> forward GFLOPs per 64x64 image (jax cost analysis on the CPU; python -m launch.cost --flops)
GFLOPS: dict[str, float] = {
    "resnet-2": 0.01902,
    "resnet-3": 0.03869,
    "resnet-4": 0.04876,
    "resnet-5": 0.0585,
    "resnet-6": 0.0682,
    "resnet-10": 0.1262,
    "resnet-14": 0.2434,
    "resnet-18": 0.2423,
    "resnet-26": 0.3724,
    "resnet-34": 0.4728,
    "resnet-50": 0.6281,
    "resnet-101": 1.158,
    "resnet-152": 1.696,
    "resnet-200": 2.228,
    "vit-B/8 d1": 0.9656,
    "vit-B/8 d2": 1.909,
    "vit-B/8 d3": 2.853,
    "vit-B/8 d4": 3.797,
    "vit-B/8 d6": 5.684,
    "vit-B/8 d8": 7.571,
    "vit-B/8 d10": 9.458,
    "vit-B/8": 11.35,
    "vit-L/4 d1": 6.805,
    "vit-L/4 d2": 13.58,
    "vit-L/4 d3": 20.35,
    "vit-L/4 d4": 27.12,
    "vit-L/4 d6": 40.67,
    "vit-L/4 d8": 54.21,
    "vit-L/4 d12": 81.31,
    "vit-L/4 d16": 108.4,
    "vit-L/4 d20": 135.5,
    "vit-L/4": 162.6,
    "resnet-6 w0.0625": 0.001494,
    "resnet-6 w0.125": 0.003344,
    "resnet-6 w0.25": 0.008157,
    "resnet-6 w0.5": 0.02224,
    "resnet-6 w2": 0.2314,
    "resnet-6 w4": 0.8426,
    "resnet-50 w0.0625": 0.004248,
    "resnet-50 w0.125": 0.01315,
    "resnet-50 w0.25": 0.04496,
    "resnet-50 w0.5": 0.1646,
    "resnet-50 w2": 2.451,
    "resnet-50 w4": 9.684,
    "resnet-200 w0.0625": 0.01118,
    "resnet-200 w0.125": 0.03942,
    "resnet-200 w0.25": 0.1471,
    "resnet-200 w0.5": 0.5675,
    "resnet-200 w2": 8.828,
    "resnet-200 w4": 35.14,
    "vit-B/8 w0.0625": 0.06004,
    "vit-B/8 w0.125": 0.2039,
    "vit-B/8 w0.25": 0.7525,
    "vit-B/8 w0.5": 2.893,
    "vit-B/8 w2": 44.94,
    "vit-B/8 w4": 178.9,
    "vit-L/4 w0.0625": 1.167,
    "vit-L/4 w0.125": 3.423,
    "vit-L/4 w0.25": 11.58,
    "vit-L/4 w0.5": 42.47,
    "vit-L/4 w2": 636.1,
    "vit-L/4 w4": 2516,
    "resnet-6 noskip": 0.0626,
    "resnet-10 noskip": 0.1206,
    "resnet-14 noskip": 0.1812,
    "resnet-18 noskip": 0.2366,
    "resnet-26 noskip": 0.31,
    "resnet-34 noskip": 0.4671,
    "resnet-50 noskip": 0.5655,
    "efficientnet-b0": 0.07525,
    "efficientnet-b1": 0.1099,
    "efficientnet-b2": 0.1266,
    "efficientnet-b3": 0.1821,
    "efficientnet-b4": 0.2817,
    "efficientnet-b5": 0.4393,
}


@dataclass(frozen=True)
class Row:
    model: str
    gflops: float
    images_per_s: float
    source: str


def _rows() -> dict[str, Row]:
    fastest = max(rate for rate, _ in MEASURED.values())
    out = {}
    for model, gflops in GFLOPS.items():
        if model in MEASURED:
            rate, bench = MEASURED[model]
            source = f"measured (end-to-end trainer, {bench})"
        else:
            ref = min(MEASURED, key=lambda m: abs(math.log(GFLOPS[m] / gflops)))
            rate = min(fastest, MEASURED[ref][0] * GFLOPS[ref] / gflops)
            capped = ", capped at the fastest measured" if rate == fastest else ""
            source = f"scaled by FLOPs from {ref}{capped}"
        out[model] = Row(model, gflops, float(round(rate)), source)
    return out


ROWS: dict[str, Row] = _rows()


def model_key(config: Any) -> str | None:
    """The table's name for the config's model at 64x64, or None for another resolution or a
    model the sweeps' grids do not set (explicit ViT sizes)."""
    m, size = config["model"], int(config["data"]["image_size"])
    if size != SIZE:
        return None
    width = "" if float(m["width"]) == 1.0 else f" w{float(m['width']):g}"
    if m["name"] == "resnet":
        return f"resnet-{m['depth']}{width}{'' if m['skip'] else ' noskip'}"
    if m["name"] == "efficientnet":
        return f"efficientnet-{m['variant']}{width}"
    if m["name"] == "vit":
        from trainer.models.vit import VARIANTS

        if any(m[k] for k in ("patch_size", "hidden_size", "mlp_dim", "num_heads")):
            return None
        full = VARIANTS[str(m["variant"]).partition("/")[0]][1]
        depth = int(m["depth"]) or full
        return f"vit-{m['variant']}{'' if depth == full else f' d{depth}'}{width}"
    return None


def train_images(config: Any) -> int | None:
    """Training images per epoch (ImageNet 64x64 only), after ``data.classes`` and
    ``data.train_examples``."""
    from trainer.data import imagenet64

    d = config["data"]
    if d["name"] != "imagenet64":
        return None
    n = imagenet64.TRAIN_EXAMPLES
    if d["classes"]:
        n = round(n * int(d["classes"]) / imagenet64.NUM_CLASSES)
    return min(n, int(d["train_examples"])) if d["train_examples"] else n


def trial_hours(config: Any) -> float | None:
    """Estimated hours of one trial on one H200; None when the table has no row for it."""
    row = ROWS.get(model_key(config) or "")
    images = train_images(config)
    if row is None or images is None:
        return None
    return float(config["train"]["epochs"]) * images / row.images_per_s / 3600.0


def summary_notes(unpriced: Iterable[Any]) -> list[str]:
    """The dry run's lines under its table: how hours are counted, and what has no estimate."""
    lines = [
        "H200-h: estimated hours on one H200 (launch/cost.py; docs/performance.md, 'Throughput "
        "table'): epochs x training images / images per second, eval pro rata, scoring not "
        "included; 'H200-h' is every trial of the axis, 'new h' those first trained by it."
    ]
    missing = sorted(
        {model_key(c) or f"{c['model']['name']} at {c['data']['image_size']}px" for c in unpriced}
    )
    if missing:
        lines.append(
            f"n/a: no row in the throughput table (the paper models at {SIZE}x{SIZE}) for "
            f"{', '.join(missing[:6])}{' ...' if len(missing) > 6 else ''}"
        )
    return lines


def markdown() -> str:
    """``ROWS`` as the table in docs/performance.md."""
    lines = ["| model | GFLOPs / image | images/s | source |", "| --- | --- | --- | --- |"]
    for r in ROWS.values():
        lines.append(f"| {r.model} | {r.gflops:.4g} | {r.images_per_s:,.0f} | {r.source} |")
    return "\n".join(lines)


def flops(model: Mapping[str, Any], size: int = SIZE) -> float:
    """Forward GFLOPs of one image through ``model`` (a ``config.model`` dict), from jax's cost
    analysis of the lowered ``model.apply`` (nothing runs; shapes only)."""
    import jax
    import jax.numpy as jnp

    from trainer.data import imagenet64
    from trainer.models import build_model

    net = build_model(model, imagenet64.NUM_CLASSES)
    x = jax.ShapeDtypeStruct((1, size, size, 3), jnp.float32)
    variables = jax.eval_shape(lambda i: net.init({"params": jax.random.key(0)}, i, train=False), x)
    lowered = jax.jit(lambda v, i: net.apply(v, i, train=False)).lower(variables, x)
    analysis = lowered.cost_analysis()
    if isinstance(analysis, (list, tuple)):
        analysis = analysis[0]
    return float(analysis["flops"]) / 1e9


def study_models() -> dict[str, dict[str, Any]]:
    """Every model of the paper study (model key -> its ``config.model``)."""
    from launch.trials import load_trials

    out = {}
    for t in load_trials("study", "paper"):
        key = model_key(t.config)
        if key is not None and key not in out:
            out[key] = t.config.model.to_dict()
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m launch.cost", description=__doc__.split("\n")[0])
    p.add_argument("--markdown", action="store_true", help="print the table for the docs")
    p.add_argument("--flops", action="store_true", help="recompute GFLOPS (minutes on a CPU)")
    args = p.parse_args(argv)
    if args.flops:
        for key, model in study_models().items():
            print(f'    "{key}": {flops(model):.4g},', flush=True)
    if args.markdown or not args.flops:
        print(markdown())
    return 0


if __name__ == "__main__":
    sys.exit(main())
