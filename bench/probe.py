"""Where the evaluator's time goes beyond a bare forward pass, and how accurate its style
distance is on this backend. A diagnostic for `bench/gpu_check.sh`, not part of `make bench`.

    python -m bench.probe [--model resnet50] [--triplets 256] [--steps 20] [--out probe.json]

Times (median of 3 rounds of --steps calls, inputs already on the device unless said):
  forward        jitted model.apply(train=False), logits (the bench's row 3a)
  forward+taps   the same with taps=True (every tap kept live)
  distances      the evaluator's packed jitted triplet function (forward + 3 distances x taps)
  old-style      the same with the style distance as two float32 Gram matrices at HIGHEST
                 precision, subtracted (the form used before the difference identity)
  scorer         ScoringModel.triplet_distances, images kept on the device after the first
                 call (the evaluator job's path and the bench's row 3b)
  scorer, host   the same sending the host uint8 images to the device on every call
Accuracy: relative error of the style distance per tap against float64 numpy on the same taps,
for triplets whose p0/p1 differ from ref by a little uint8 noise (similar images: the hard case).
Breakdown: each distance on each tap alone (both pairs of a triplet), on taps already computed,
and all of them in one jitted function: ms per batch.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from bench.cli import SpeedBenchError, model_overrides
from bench.data import synthetic_images
from bench.scoring import initial_variables
from evaluator import distances as D
from evaluator.features import SCORED_SIZE, ScoringModel, compiled_distances, packed_rows
from sweeps.base import config_from
from trainer.data import normalize
from trainer.models import tap_names


def _spatial(f):
    """(N, C) -> (N, 1, 1, C); (N, H, W, C) unchanged (a tap as the distances see it)."""
    return f[:, None, None, :] if f.ndim == 2 else f


def old_style(f0, f1):
    """The style distance as it was: two float32 Grams at HIGHEST precision, subtracted."""
    a = D.unit_normalize(_spatial(f0).astype(jnp.float32))
    b = D.unit_normalize(_spatial(f1).astype(jnp.float32))
    n, h, w, c = a.shape
    p = h * w
    a, b = a.reshape(n, p, c), b.reshape(n, p, c)
    hi = jax.lax.Precision.HIGHEST
    if c <= p:
        g0 = jnp.einsum("npc,npd->ncd", a, a, precision=hi) / p
        g1 = jnp.einsum("npc,npd->ncd", b, b, precision=hi) / p
        sq = jnp.sum((g0 - g1) ** 2, axis=(1, 2))
    else:
        kaa = jnp.einsum("npc,nqc->npq", a, a, precision=hi)
        kbb = jnp.einsum("npc,nqc->npq", b, b, precision=hi)
        kab = jnp.einsum("npc,nqc->npq", a, b, precision=hi)
        sq = jnp.maximum(jnp.sum(kaa**2 + kbb**2 - 2.0 * kab**2, axis=(1, 2)) / (p * p), 0.0)
    return sq / (c * c)


def np_style(f0, f1):
    """The style distance in float64 numpy: the reference for both forms."""

    def unit(f):
        return f / (np.sqrt(np.sum(f * f, axis=-1, keepdims=True)) + D.EPS)

    f0, f1 = _spatial(f0), _spatial(f1)
    n, h, w, c = f0.shape
    a, b = unit(f0).reshape(n, h * w, c), unit(f1).reshape(n, h * w, c)
    g0 = np.einsum("npc,npd->ncd", a, a) / (h * w)
    g1 = np.einsum("npc,npd->ncd", b, b) / (h * w)
    return ((g0 - g1) ** 2).sum(axis=(1, 2)) / c**2


def timed(fn, steps: int, rounds: int = 3) -> float:
    # Not bench.measure.time_rounds: it rounds seconds to 0.1 ms, too coarse for the
    # breakdown's sub-millisecond rows.
    jax.block_until_ready(fn())  # compile
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        out = None
        for _ in range(steps):
            out = fn()
        jax.block_until_ready(out)
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def time_rows(cfg, model, variables, images, steps: int) -> tuple[dict[str, float], dict]:
    """Seconds of ``steps`` calls of each row (see the module docstring), and the scored taps
    of the triplets (ref, p0, p1 concatenated) on the device."""
    ref, p0, p1 = images
    b = len(ref)
    names = tuple(tap_names(cfg.model.to_dict(), SCORED_SIZE))
    dev = [jax.device_put(x) for x in images]
    x3 = jax.device_put(normalize(np.concatenate(images)))
    fwd = jax.jit(lambda v, x: model.apply(v, x, train=False))
    fwd_taps = jax.jit(lambda v, x: model.apply(v, x, train=False, taps=True))
    triplet, _ = compiled_distances(model, names)

    def old_triplet(v, r, a, c):
        _, taps = model.apply(v, normalize(jnp.concatenate([r, a, c])), train=False, taps=True)
        fns = {**D.TAP_FUNCTIONS, "style": old_style}
        rows = packed_rows(names, (b, 2 * b))
        return jnp.stack([fns[k](taps[t][:b], taps[t][lo : lo + b]) for k, t, lo in rows])

    old_jit = jax.jit(old_triplet)
    scorers = {
        resident: ScoringModel.from_variables(
            {"model": cfg.model.to_dict(), "data": cfg.data.to_dict()},
            jax.tree.map(np.asarray, variables),
            batch_size=b,
            resident=resident,
        )
        for resident in (True, False)
    }
    big = [np.concatenate([x] * steps) for x in images]
    rows = {
        "forward": timed(lambda: fwd(variables, x3), steps),
        "forward+taps": timed(lambda: fwd_taps(variables, x3), steps),
        "distances": timed(lambda: triplet(variables, *dev), steps),
        "old-style": timed(lambda: old_jit(variables, *dev), steps),
        "scorer": timed(lambda: scorers[True].triplet_distances(*big)["local"], 1),
        "scorer, host": timed(lambda: scorers[False].triplet_distances(*big)["local"], 1),
    }
    _, taps = fwd_taps(variables, x3)
    return rows, {t: taps[t] for t in names}


def style_accuracy(taps: dict[str, Any], b: int) -> dict[str, dict[str, float]]:
    """Per tap: the style distance's largest relative error, new and old form, against
    float64 numpy (ref against p0)."""
    acc = {}
    for t, tap in taps.items():
        f = np.asarray(tap.astype(jnp.float32), dtype=np.float64)
        want = np_style(f[:b], f[b : 2 * b])
        new = np.asarray(jax.jit(D.style_tap)(tap[:b], tap[b : 2 * b]))
        old = np.asarray(jax.jit(old_style)(tap[:b], tap[b : 2 * b]))
        acc[t] = {
            "median_d": float(np.median(want)),
            "new_max_rel": float(np.max(np.abs(new / want - 1))),
            "old_max_rel": float(np.max(np.abs(old / want - 1))),
        }
    return acc


def breakdown_ms(taps: dict[str, Any], b: int, steps: int) -> dict[str, float]:
    """Distances alone on the taps already on the device: ms per batch for each distance on
    each tap (both pairs of a triplet), and all of them in one jitted function."""
    out: dict[str, float] = {}

    def pairs(fn, v):
        return fn(v[:b], v[b : 2 * b]), fn(v[:b], v[2 * b :])

    for kind, fn in D.TAP_FUNCTIONS.items():
        for t, tap in taps.items():
            one = jax.jit(lambda v, fn=fn: pairs(fn, v))
            out[f"{kind} {t}"] = timed(lambda one=one, tap=tap: one(tap), steps)
    every = jax.jit(
        lambda tp: [pairs(fn, v) for fn in D.TAP_FUNCTIONS.values() for v in tp.values()]
    )
    out["all, one function"] = timed(lambda: every(taps), steps)
    return {k: round(1e3 * v / steps, 4) for k, v in out.items()}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.probe", description=__doc__.split("\n")[0])
    p.add_argument("--model", default="resnet50")
    p.add_argument("--triplets", type=int, default=256)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--out", default="")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        overrides = model_overrides(args.model)
    except SpeedBenchError as e:
        print(f"probe: {e}", file=sys.stderr)
        return 2
    cfg = config_from(
        "paper", {**overrides, "model.dtype": "bfloat16", "data.image_size": SCORED_SIZE}
    )
    model, variables = initial_variables(cfg)
    size, b = SCORED_SIZE, args.triplets
    rng = np.random.default_rng(0)
    ref = synthetic_images(rng, rng.integers(0, 1000, b), size)
    noise = rng.integers(-3, 4, (2, *ref.shape))
    p0, p1 = (np.clip(ref.astype(int) + n, 0, 255).astype(np.uint8) for n in noise)
    rows, taps = time_rows(cfg, model, variables, (ref, p0, p1), args.steps)
    images = 3 * b * args.steps
    print(f"eval probe {args.model} {b} triplets x {args.steps} steps on {jax.devices()[0]}")
    for name, sec in rows.items():
        print(
            f"  {name:13s} {images / sec:>10,.0f} img/s  {1e3 * sec / args.steps:6.2f} ms/step"
            f"  {rows['forward'] / sec:5.2f}x forward"
        )
    acc = style_accuracy(taps, b)
    for t, a in acc.items():
        print(
            f"  style {t}: max rel error new {a['new_max_rel']:.2e}, "
            f"old {a['old_max_rel']:.2e} (median d {a['median_d']:.3e})"
        )
    breakdown = breakdown_ms(taps, b, args.steps)
    shapes = {t: list(v.shape[1:]) for t, v in taps.items()}
    print("  distances alone on device taps (ms per batch); tap shapes " + str(shapes))
    for k, ms in breakdown.items():
        print(f"    {k:20s} {ms:7.3f}")
    if args.out:
        doc = {"seconds": rows, "images": images, "style": acc, "breakdown_ms": breakdown}
        Path(args.out).write_text(json.dumps({**doc, "tap_shapes": shapes}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
