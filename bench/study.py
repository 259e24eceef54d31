"""``python -m bench.study``: images/s of every study model at 64x64 (goal 4 of issue 19), measured
where measured and scaled by FLOPs otherwise.

For each model of ``--models`` (default ``STUDY_MODELS``: ResNet-2..200, ViT-B/8, ViT-L/4,
EfficientNet-B0..B5, at width 1) it counts the parameters and the forward FLOPs per image (XLA's
cost analysis of the lowered ``model.apply``, not compiled; a train step is about 3x that). The
images/s of a model comes from ``--rate MODEL=IMAGES_PER_SEC`` (e.g. the bare rows of
``python -m bench`` or bench.packing's K=1) or from timing the trainer's bare train step here
(``--measure``, each model in its own process, as ``python -m bench --parts bare``); every other
model is scaled from the measured model of its family nearest in FLOPs (``rate x flops_ref /
flops``), and the table says which. Writes JSON (``--out``) and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from bench import cli
from trainer.files import atomic_write_json

RESNET_DEPTHS = (2, 3, 4, 5, 6, 10, 14, 18, 26, 34, 50, 101, 152, 200)
STUDY_MODELS = (
    *(f"resnet{d}" for d in RESNET_DEPTHS),
    "vit-B/8",
    "vit-L/4",
    *(f"efficientnet-b{i}" for i in range(6)),
)


def model_cost(name: str, size: int, width: float = 1.0) -> dict[str, Any]:
    """Parameters and forward FLOPs per image of ``name`` at ``size`` and ``width`` (nothing
    compiled)."""
    import math

    import jax
    import jax.numpy as jnp

    from sweeps.base import config_from
    from trainer.models import build_model

    overrides = {**cli.model_overrides(name), "data.image_size": size, "data.num_classes": 1000}
    overrides["model.width"] = width
    config = config_from("paper", overrides)
    model = build_model(config.model, 1000)
    x = jax.ShapeDtypeStruct((1, size, size, 3), jnp.float32)
    variables = jax.eval_shape(lambda x: model.init(jax.random.PRNGKey(0), x, train=False), x)
    params = sum(math.prod(a.shape) for a in jax.tree.leaves(variables.get("params", {})))
    lowered = jax.jit(lambda v, x: model.apply(v, x, train=False)).lower(variables, x)
    cost = lowered.cost_analysis() or {}
    if isinstance(cost, list):  # older jax: one dict per computation
        cost = cost[0] if cost else {}
    return {"params": int(params), "forward_flops": float(cost.get("flops", 0.0))}


def family(name: str) -> str:
    return name.split("-")[0].rstrip("0123456789")


def scaled_table(
    costs: dict[str, dict], rates: dict[str, float], models: list[str]
) -> list[dict[str, Any]]:
    """One row per model: measured rate, or scaled from its family's nearest measured model
    (``costs`` holds every model named, the measured ones too)."""
    rows = []
    for name in models:
        c = costs[name]
        row = {"model": name, **c, "train_gflops_per_image": round(3 * c["forward_flops"] / 1e9, 3)}
        if name in rates:
            row |= {"images_per_sec": rates[name], "source": "measured"}
        else:
            same = [m for m in rates if family(m) == family(name)] or list(rates)
            if same and c["forward_flops"]:
                ref = min(same, key=lambda m: abs(costs[m]["forward_flops"] - c["forward_flops"]))
                rate = rates[ref] * costs[ref]["forward_flops"] / c["forward_flops"]
                row |= {"images_per_sec": round(rate, 1), "source": f"scaled by FLOPs from {ref}"}
            else:
                row |= {"images_per_sec": None, "source": "no measured model"}
        rows.append(row)
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    out = ["| model | params (M) | train GFLOPs / image | images/s | source |"]
    out.append("| --- | --- | --- | --- | --- |")
    for r in rows:
        rate = "-" if r["images_per_sec"] is None else f"{r['images_per_sec']:,.0f}"
        out.append(
            f"| {r['model']} | {r['params'] / 1e6:.2f} | {r['train_gflops_per_image']:.3f} | "
            f"{rate} | {r['source']} |"
        )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.study", add_help=False)
    p.add_argument("--models", default=",".join(STUDY_MODELS))
    p.add_argument("--rate", action="append", default=[], metavar="MODEL=IMAGES_PER_SEC")
    p.add_argument("--measure", default="", help="comma list of models to time here")
    own, rest = p.parse_known_args(argv)
    args = cli.parse_args([*rest, "--parts=bare"])
    try:
        cli.check_args(args)
        models = [m.strip() for m in own.models.split(",") if m.strip()]
        measure = [m.strip() for m in own.measure.split(",") if m.strip()]
        for m in models + measure:
            cli.model_overrides(m)
        rates = {k.strip(): float(v) for k, _, v in (r.partition("=") for r in own.rate)}
    except ValueError as e:
        print(f"bench.study: {e}", file=sys.stderr)
        return 2
    named = dict.fromkeys(models + measure + list(rates))
    costs = {m: model_cost(m, args.size, args.width) for m in named}
    bench_dir = Path(args.bench_dir).resolve()
    base = {"args": vars(args), "bench_dir": str(bench_dir)}
    if measure:
        prep = cli.run_part("prepare", base, in_process=False, timeout=args.timeout)
    for m in measure:
        args.model = m
        spec = {**base, "config": cli.build_config(args, prep["data"]).to_dict()}
        spec["args"] = vars(args)
        rates[m] = cli.run_part("bare", spec, in_process=False, timeout=args.timeout)[
            "images_per_sec"
        ]
    rows = scaled_table(costs, rates, models)
    doc = {"size": args.size, "width": args.width, "batch": args.batch, "dtype": args.dtype}
    doc["rows"] = rows
    out = Path(args.out) if args.out else cli.default_out().with_suffix(".study.json")
    atomic_write_json(out, doc)
    print(markdown(rows))
    print(f"bench.study: wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
