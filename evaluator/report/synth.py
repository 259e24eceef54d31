"""Synthetic sweep directories in the formats of docs/file-contracts.md, for the report's tests
and for previewing a report without training anything:

    python -m evaluator.report.synth runs/demo && python -m evaluator.report runs/demo

The numbers are made up (a PS that rises with top-1 and falls past a peak); they say nothing
about any model.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from evaluator.bapps import BAPPS_2AFC_VAL
from evaluator.distances import FEATURE_DISTANCES
from evaluator.report.collect import MODEL_KEYS
from sweeps.base import config_from
from trainer.files import atomic_write_json

PROXY_CATEGORIES = ("blur", "noise", "jpeg", "color")  # four of the proxy's, enough for tests
TAPS = ("stage1", "stage2", "stage3", "stage4")
OFFSETS = (-1.5, 0.5, 1.5, -0.5, 1.0, -1.0)  # per category; sums to 0 over 4 and over 6


def _distance_scores(ps: float, categories: tuple[str, ...], taps: bool, jnd: float | None):
    offs = OFFSETS[: len(categories)]
    shift = sum(offs) / len(offs)
    out: dict[str, Any] = {
        "2afc": {c: ps + o - shift for c, o in zip(categories, offs, strict=True)},
        "ps": ps,
        "jnd": jnd,
    }
    if jnd is not None:
        out["jnd_categories"] = {"traditional": jnd - 1.0, "cnn": jnd + 1.0}
    if taps:
        out["taps"] = {t: ps - 0.8 * abs(i - 2) - 0.3 for i, t in enumerate(TAPS)}
    return out


def _margin(ps: float, scale: float) -> dict[str, Any]:
    far, near = scale * (1.0 + (ps - 50.0) / 50.0), scale
    return {"n": 40, "far": far, "near": near, "margin": far - near,
            "relative": (far - near) / ((far + near) / 2), "agree": ps + 10.0}  # fmt: skip


def _probes(dists: dict[str, Any], cats: tuple[str, ...], ps: float) -> dict[str, Any]:
    """Probe blocks (evaluator.probes) whose values follow ``ps``: made up, like the scores."""

    def scope(v: float) -> dict[str, Any]:
        return {
            "all": _margin(v, 0.4),
            "taps": {t: _margin(v - i, 0.1) for i, t in enumerate(TAPS)},
        }

    margin = {
        "n": {"pooled": 40 * len(cats), "categories": {c: 40 for c in cats}},
        "distances": {
            d: {"pooled": scope(b["ps"]), "categories": {c: scope(v) for c, v in b["2afc"].items()}}
            for d, b in dists.items()
        },
    }
    ent = {t: round(0.9 - 0.05 * i - (ps - 60.0) / 100.0, 4) for i, t in enumerate(TAPS)}
    best = {d: max(b["taps"].items(), key=lambda kv: kv[1]) for d, b in dists.items()}
    return {
        "margin": margin,
        "entropy": {"mean": sum(ent.values()) / len(ent), "taps": ent},
        "best_tap": {d: {"tap": t, "ps": v} for d, (t, v) in best.items()},
    }


DYNAMIC = {
    "ceiling": 80.0,
    "sigmas": [0.0, 0.25, 0.5, 1.0, 2.0],
    "ps": [80.0, 74.0, 66.0, 57.0, 52.0],
}


def _frequency(ps: float, size: int = 32) -> dict[str, Any]:
    rs = [2, 4, 8, 12, 16, 20, 24, 28, 32]
    low = [min(1.0, 0.2 + 0.8 * (r / size) ** (0.5 + (ps - 60.0) / 20.0)) for r in rs]
    return {"split": "eval", "examples": 256, "image_size": size, "clean_top1": 80.0, "r": rs,
            "lowpass": low, "highpass": [1.05 - v for v in low],
            "low_slope": (low[7] - low[5]) / 0.25, "slope_range": [0.625, 0.875]}  # fmt: skip


def perceptual_record(
    step: int,
    epoch: float,
    trial: str,
    ps: float,
    bench: str = "proxy",
    model: dict | None = None,
    l2: float = 58.0,
    ssim: float = 59.0,
    probes: bool = True,
    lin: float | None = None,
) -> dict[str, Any]:
    """A ``perceptual/<step>.json`` whose first distance's (``local``) PS is ``ps``, each further
    distance's 2 points lower; with ``probes`` the probe blocks and the frequency curves, with
    ``lin`` a calibrated distance of that PS."""
    cats = BAPPS_2AFC_VAL if bench == "bapps" else PROXY_CATEGORIES
    jnd = (lambda v: v - 10.0) if bench == "bapps" else (lambda v: None)
    b = {
        "kind": bench,
        "distances": {
            d: _distance_scores(ps - 2.0 * i, cats, True, jnd(ps - 2.0 * i))
            for i, d in enumerate(FEATURE_DISTANCES)
        },
        "reference": {
            "l2": _distance_scores(l2, cats, False, jnd(l2)),
            "ssim": _distance_scores(ssim, cats, False, jnd(ssim)),
        },
    }
    if lin is not None:
        b["distances"]["lin"] = _distance_scores(lin, cats, True, jnd(lin))
    if probes:
        b["probes"] = _probes(b["distances"], cats, ps)
        b["dynamic_range"] = DYNAMIC
    if bench == "proxy":
        b["note"] = "embedded proxy built from scikit-image photos, not BAPPS"
    extra = {"frequency": _frequency(ps)} if probes else {}
    return {
        "step": step,
        "epoch": epoch,
        "trial": trial,
        "model": model or {"name": "resnet", "depth": 6, "width": 0.25},
        "resolution": {"trained": 32, "scored": 64, "how": "fully convolutional, applied as is"},
        "benchmarks": {bench: b},
        **extra,
        "error": None,
    }


def write_trial(
    sweep_dir: Path,
    name: str,
    overrides: dict[str, Any],
    points: list[tuple[int, float, float, float | None]],
    state: str = "done",
    bench: str = "proxy",
    checkpoints: list[int] | None = None,
    errors: dict[int, str] | None = None,
    preset: str = "embedded",
    status_error: str | None = None,
    probes: bool = True,
    lin_gain: float | None = None,
    probe_steps: set[int] | None = None,
) -> Path:
    """One trial directory. ``points``: ``(step, epoch, top1 fraction, ps or None)``; each
    gets an eval line, and a perceptual file when ps is not None (with probe blocks unless
    ``probes`` is false, or only at ``probe_steps`` when given, and a ``lin`` distance of PS
    ps + ``lin_gain`` when given)."""
    d = Path(sweep_dir) / name
    d.mkdir(parents=True, exist_ok=True)
    cfg = config_from(preset, overrides).to_dict()
    atomic_write_json(d / "config.json", cfg)
    atomic_write_json(d / "overrides.json", overrides)
    last = points[-1] if points else (0, 0.0, None, None)
    atomic_write_json(
        d / "status.json",
        {
            "state": state,
            "step": last[0],
            "total_steps": points[-1][0] if points and state == "done" else 1000,
            "epoch": last[1],
            "last_eval": {"step": last[0], "epoch": last[1], "top1": last[2]} if points else None,
            "error": status_error,
        },
    )
    model = {k: cfg["model"][k] for k in MODEL_KEYS}
    lines = []
    (d / "perceptual").mkdir(exist_ok=True)
    for step, epoch, top1, ps in points:
        lines.append({"kind": "train", "step": step, "epoch": epoch, "train_loss": 1.0})
        lines.append({"kind": "eval", "step": step, "epoch": epoch, "eval_top1": top1,
                      "eval_top5": min(1.0, top1 + 0.1), "eval_loss": 1.0 - top1})  # fmt: skip
        if ps is not None:
            rec = perceptual_record(
                step, epoch, name, ps, bench, model,
                probes=probes and (probe_steps is None or step in probe_steps),
                lin=None if lin_gain is None else ps + lin_gain,
            )  # fmt: skip
            # made-up data, thousands of files: a plain write (no fsync) keeps --study fast
            (d / "perceptual" / f"{step}.json").write_text(json.dumps(rec))
    with open(d / "metrics.jsonl", "a") as f:  # appended, as the trainer does
        f.writelines(json.dumps(x) + "\n" for x in lines)
    for step, msg in (errors or {}).items():
        atomic_write_json(
            d / "perceptual" / f"{step}.json",
            {"step": step, "epoch": None, "trial": name, "error": msg},
        )
    for step in checkpoints or []:
        (d / "checkpoints" / str(step)).mkdir(parents=True, exist_ok=True)
    return d


def demo_sweep(sweep_dir: Path, bench: str = "proxy") -> Path:
    """A weight-decay sweep (6 values x 2 seeds) with PS peaking at middling accuracy, plus a
    failed, a running and a pending trial and a scoring error."""
    sweep_dir = Path(sweep_dir)
    wds = [1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3]
    trials = []
    for i, wd in enumerate(wds):
        for seed in (0, 1):
            name = f"wd-{wd:g}_seed-{seed}"
            ov = {"train.weight_decay": wd, "seed": seed}
            trials.append({"name": name, "overrides": ov})
            if wd == 3e-3 and seed == 1:
                write_trial(
                    sweep_dir,
                    name,
                    ov,
                    [(100, 0.5, 0.4, 60.0)],
                    state="failed",
                    status_error="FloatingPointError: NaN loss at step 180",
                )
                continue
            final = 0.70 + 0.04 * i - (0.10 if i == 5 else 0.0) + 0.01 * seed
            pts = []
            for k, step in enumerate((100, 200, 300, 400)):
                frac = (k + 1) / 4
                top1 = final * (0.6 + 0.4 * frac)
                ps = 64.0 + 8.0 * frac * (1.0 - 2.2 * (top1 - 0.78) ** 2 / 0.01) * 0.5
                pts.append((step, 0.5 * (k + 1), top1, round(ps, 2)))
            errs = {}
            if wd == 1e-5 and seed == 1:
                pts[1] = (*pts[1][:3], None)
                errs = {200: "checkpoint 200 could not be restored: missing params"}
            write_trial(sweep_dir, name, ov, pts, bench=bench, checkpoints=[300, 400], errors=errs)
    running = {"train.weight_decay": 1e-2, "seed": 0}
    write_trial(
        sweep_dir,
        "wd-0.01_seed-0",
        running,
        [(100, 0.5, 0.5, 65.0)],
        state="running",
        checkpoints=[100, 200],
    )
    trials.append({"name": "wd-0.01_seed-0", "overrides": running})
    trials.append({"name": "wd-0.01_seed-1", "overrides": {"train.weight_decay": 1e-2, "seed": 1}})
    atomic_write_json(
        sweep_dir / "sweep.json",
        {
            "sweep": sweep_dir.name,
            "preset": "embedded",
            "axis": ["train.weight_decay", "seed"],
            "trials": trials,
        },
    )
    return sweep_dir


def main(argv: list[str] | None = None) -> int:
    """``python -m evaluator.report.synth DIR`` (the demo weight-decay sweep) or ``--study DIR``
    (evaluator.report.synth_study); 2 on bad arguments."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m evaluator.report.synth")
    p.add_argument("path", type=Path, help="a new sweep directory, e.g. runs/demo")
    p.add_argument("--study", action="store_true", help="a study-shaped sweep (722 trials)")
    p.add_argument("--seeds", type=int, default=3, help="--study: seeds per grid point")
    p.add_argument("--checkpoints", type=int, default=112, help="--study: per trial")
    p.add_argument("--probes", choices=("final", "all", "none"), default="final",
                   help="--study: which checkpoints carry probe blocks")  # fmt: skip
    args = p.parse_args(argv)
    if args.seeds < 1 or args.checkpoints < 1:
        print("error: --seeds and --checkpoints must be >= 1", file=sys.stderr)
        return 2
    if args.path.exists() and any(args.path.iterdir()):
        print(f"error: {args.path} is not empty; give a new directory", file=sys.stderr)
        return 2
    if args.study:
        from evaluator.report.synth_study import study_sweep

        print(study_sweep(args.path, args.seeds, args.checkpoints, args.probes))
    else:
        print(demo_sweep(args.path))
    return 0


if __name__ == "__main__":
    sys.exit(main())
