"""Where the evaluator's time goes beyond a bare forward pass, and how accurate its style
distance is on this backend. A diagnostic for `bench/gpu_check.sh`, not part of `make bench`.

    python3 bench/eval_probe.py [--model resnet50] [--triplets 256] [--steps 20]

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

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evaluator import distances as D  # noqa: E402
from evaluator.features import SCORED_SIZE, ScoringModel, _compiled, _rows  # noqa: E402
from sweeps.base import config_from  # noqa: E402
from trainer.bench import model_overrides  # noqa: E402
from trainer.bench_data import synthetic_images  # noqa: E402
from trainer.data import normalize  # noqa: E402
from trainer.models import build_model, tap_names  # noqa: E402


def old_style(f0, f1):
    a = D.unit_normalize(D._spatial(f0).astype(jnp.float32))
    b = D.unit_normalize(D._spatial(f1).astype(jnp.float32))
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
    def unit(f):
        return f / (np.sqrt(np.sum(f * f, axis=-1, keepdims=True)) + D.EPS)

    f0, f1 = (f[:, None, None, :] if f.ndim == 2 else f for f in (f0, f1))
    n, h, w, c = f0.shape
    a, b = unit(f0).reshape(n, h * w, c), unit(f1).reshape(n, h * w, c)
    g0 = np.einsum("npc,npd->ncd", a, a) / (h * w)
    g1 = np.einsum("npc,npd->ncd", b, b) / (h * w)
    return ((g0 - g1) ** 2).sum(axis=(1, 2)) / c**2


def timed(fn, steps: int, rounds: int = 3) -> float:
    # Not trainer.bench_parts.time_rounds: it reports seconds rounded to 0.1 ms, too coarse for
    # the breakdown's rows (20 calls of ~0.04 ms each).
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


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="resnet50")
    p.add_argument("--triplets", type=int, default=256)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--out", default="")
    args = p.parse_args()
    cfg = config_from(
        "paper", {**model_overrides(args.model), "model.dtype": "bfloat16", "data.image_size": 64}
    )
    model = build_model(cfg.model, cfg.data.num_classes)
    size, b = SCORED_SIZE, args.triplets
    variables = jax.jit(
        lambda k: model.init({"params": k}, jnp.zeros((1, size, size, 3)), train=False)
    )(jax.random.PRNGKey(0))
    names = tuple(tap_names(cfg.model.to_dict(), size))
    rng = np.random.default_rng(0)
    ref = synthetic_images(rng, rng.integers(0, 1000, b), size)
    noise = rng.integers(-3, 4, (2, *ref.shape))
    p0, p1 = (np.clip(ref.astype(int) + n, 0, 255).astype(np.uint8) for n in noise)
    dev = [jax.device_put(x) for x in (ref, p0, p1)]
    x3 = jax.device_put(normalize(np.concatenate([ref, p0, p1])))

    fwd = jax.jit(lambda v, x: model.apply(v, x, train=False))
    fwd_taps = jax.jit(lambda v, x: model.apply(v, x, train=False, taps=True))
    triplet, _ = _compiled(model, names)

    def old_triplet(v, r, a, c):
        _, taps = model.apply(v, normalize(jnp.concatenate([r, a, c])), train=False, taps=True)
        fns = {**D.TAP_FUNCTIONS, "style": old_style}
        return jnp.stack(
            [fns[k](taps[t][:b], taps[t][lo : lo + b]) for k, t, lo in _rows(names, (b, 2 * b))]
        )

    old_jit = jax.jit(old_triplet)
    scorers = {
        resident: ScoringModel.from_variables(
            {"model": cfg.model.to_dict(), "data": cfg.data.to_dict()},
            jax.tree.map(np.asarray, dict(variables)),
            batch_size=b,
            resident=resident,
        )
        for resident in (True, False)
    }
    n = b * args.steps
    big = [np.concatenate([x] * args.steps) for x in (ref, p0, p1)]
    rows = {
        "forward": timed(lambda: fwd(variables, x3), args.steps),
        "forward+taps": timed(lambda: fwd_taps(variables, x3), args.steps),
        "distances": timed(lambda: triplet(variables, *dev), args.steps),
        "old-style": timed(lambda: old_jit(variables, *dev), args.steps),
        "scorer": timed(lambda: scorers[True].triplet_distances(*big)["local"], 1),
        "scorer, host": timed(lambda: scorers[False].triplet_distances(*big)["local"], 1),
    }
    images = 3 * n
    print(f"eval probe {args.model} {b} triplets x {args.steps} steps on {jax.devices()[0]}")
    base = rows["forward"]
    for name, sec in rows.items():
        print(
            f"  {name:13s} {images / sec:>10,.0f} img/s  {1e3 * sec / args.steps:6.2f} ms/step"
            f"  {base / sec:5.2f}x forward"
        )
    _, taps = fwd_taps(variables, x3)
    acc = {}
    for t in names:
        f = np.asarray(taps[t].astype(jnp.float32), dtype=np.float64)
        want = np_style(f[:b], f[b : 2 * b])
        new = np.asarray(jax.jit(D.style_tap)(taps[t][:b], taps[t][b : 2 * b]))
        old = np.asarray(jax.jit(old_style)(taps[t][:b], taps[t][b : 2 * b]))
        acc[t] = {
            "median_d": float(np.median(want)),
            "new_max_rel": float(np.max(np.abs(new / want - 1))),
            "old_max_rel": float(np.max(np.abs(old / want - 1))),
        }
        print(
            f"  style {t}: max rel error new {acc[t]['new_max_rel']:.2e}, "
            f"old {acc[t]['old_max_rel']:.2e} (median d {acc[t]['median_d']:.3e})"
        )
    # Distances alone on the taps already on the device: ms per batch for each distance on each
    # tap (both pairs of a triplet), and all of them in one jitted function.
    breakdown: dict[str, float] = {}

    def pairs(fn, v):
        return fn(v[:b], v[b : 2 * b]), fn(v[:b], v[2 * b :])

    for kind, fn in D.TAP_FUNCTIONS.items():
        for t in names:
            one = jax.jit(lambda v, fn=fn: pairs(fn, v))
            breakdown[f"{kind} {t}"] = timed(lambda one=one, t=t: one(taps[t]), args.steps)
    every = jax.jit(lambda tp: [pairs(fn, tp[t]) for fn in D.TAP_FUNCTIONS.values() for t in names])
    breakdown["all, one function"] = timed(lambda: every(taps), args.steps)
    breakdown = {k: round(1e3 * v / args.steps, 4) for k, v in breakdown.items()}
    shapes = {t: list(taps[t].shape[1:]) for t in names}
    print("  distances alone on device taps (ms per batch); tap shapes " + str(shapes))
    for k, ms in breakdown.items():
        print(f"    {k:20s} {ms:7.3f}")
    if args.out:
        doc = {"seconds": rows, "images": images, "style": acc, "breakdown_ms": breakdown}
        Path(args.out).write_text(json.dumps({**doc, "tap_shapes": shapes}))


if __name__ == "__main__":
    main()
