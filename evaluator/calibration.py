"""The learned linear calibration ``lin``: LPIPS's recipe (Zhang et al. 2018) on a frozen
checkpoint, fitted on a benchmark's train split and scored on its val split as a fourth
distance.

What LPIPS does (richzhang/PerceptualSimilarity: ``lpips/lpips.py`` ``LPIPS.forward``,
``NetLinLayer``, ``Dist2LogitLayer``, ``BCERankingLoss``; ``lpips/trainer.py``
``Trainer.initialize`` / ``optimize_parameters`` / ``clamp_weights`` /
``update_learning_rate``; ``train.py``), and how it is done here:

* Distance: per tap, a 1x1 convolution without bias (``NetLinLayer``, one weight per channel)
  on the squared difference of the channel-normalised features, averaged over space, summed
  over taps (``evaluator.distances.lin_tap``). The weights start as PyTorch's default
  ``Conv2d`` initialisation, uniform in +-1/sqrt(C), and are clamped to >= 0 after every step
  (``clamp_weights``), so the fitted ones are non-negative.
* Dropout (p = 0.5, ``nn.Dropout`` before the 1x1 weights, training only): LPIPS drops single
  positions of the (C, H, W) difference; here the mean over space is taken first (only C
  numbers per tap and pair leave the device), so whole channels' means are dropped: the same
  expectation, a noisier estimate.
* Ranking loss (``BCERankingLoss``): a small network on the two distances, ``Dist2LogitLayer``:
  (d0, d1, d0 - d1, d0 / (d1 + 0.1), d1 / (d0 + 0.1)) -> 32 -> LeakyReLU(0.2) -> 32 ->
  LeakyReLU(0.2) -> 1 -> sigmoid, binary cross-entropy against p (the fraction choosing p1);
  trained jointly with the weights, PyTorch's default initialisation, dropped afterwards.
* Optimiser: Adam, lr 1e-4, betas (0.5, 0.999), batch 50, shuffled passes over the data.
  LPIPS runs 5 epochs at the base rate and 5 more with the rate lowered by a fifth after each
  (``train.py``: ``--nepoch 5 --nepoch_decay 5``; 10 x ~3,030 steps on BAPPS train). Here the
  number of steps is ``perceptual.calibrate_steps`` (default 30,000: LPIPS's count on BAPPS) on
  any train split, with the same shape: the rate is constant for 6/10 of the steps, then 0.8,
  0.6, 0.4, 0.2 of it for a tenth each. On BAPPS that is LPIPS's schedule; the embedded
  proxy's train split (500 triplets) is passed over ~3,000 times instead of 10, since 100
  steps would leave the random initial weights nearly as they were.
* Data: LPIPS's ``train.py`` trains on BAPPS 2AFC train traditional, cnn and mix (its
  ``--datasets`` default), which ``evaluator.bapps.load_bapps(root, split="train")`` reads; the
  proxy uses its own train split (other photos than val). The backbone stays frozen: its
  features are computed once per checkpoint (``lin_features``) and the fit runs on them.

The fit is deterministic for a checkpoint (seed 0). Its weights are saved beside the scores,
``perceptual/<step>.lin-<benchmark>.npz`` (``w:<tap>`` per-channel weights, ``rank:<name>``
the ranking network, ``meta`` a JSON string), atomically; a step scored again reuses them
unless the benchmark's version, the taps or the recipe changed.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from evaluator import scoring

RECIPE = {
    "version": 1,
    "lr": 1e-4,
    "b1": 0.5,
    "b2": 0.999,
    "batch": 50,
    "dropout": 0.5,
    "hidden": 32,
    "eps": 0.1,
    "epochs": 5,
    "decay_epochs": 5,
    "seed": 0,
}

_COMPILED: dict[Any, Any] = {}


# ----------------------------------------------------------------------------- features


def compiled_lin_features(model: Any, tap_names: tuple[str, ...]):
    """Jitted ``f(variables, ref, p0, p1) -> (2 * sum C, batch)``: per tap and channel, the mean
    over space of the squared unit-feature difference (``channel_sq_diff``) of (ref, p0), then
    of (ref, p1), taps in order: what the ``lin`` weights multiply."""
    key = ("features", repr(model), tap_names)
    if key not in _COMPILED:
        import jax
        import jax.numpy as jnp

        from evaluator.distances import channel_sq_diff
        from evaluator.features import taps_fn

        taps_of = taps_fn(model, tap_names)

        def features(variables, ref, p0, p1):
            b = ref.shape[0]
            taps = taps_of(variables, jnp.concatenate([ref, p0, p1], axis=0))
            parts = [
                channel_sq_diff(taps[t][:b], taps[t][lo : lo + b]).T
                for lo in (b, 2 * b)
                for t in tap_names
            ]
            return jnp.concatenate(parts, axis=0)

        _COMPILED[key] = jax.jit(features)
    return _COMPILED[key]


def tap_channels(sm: Any) -> dict[str, int]:
    """``{tap: channels}`` of a ``ScoringModel`` at the scored resolution (``jax.eval_shape``)."""
    import jax
    import jax.numpy as jnp

    from evaluator.features import SCORED_SIZE, taps_fn

    x = jax.ShapeDtypeStruct((1, SCORED_SIZE, SCORED_SIZE, 3), jnp.uint8)
    shapes = jax.eval_shape(taps_fn(sm.model, tuple(sm.tap_names)), sm.variables, x)
    return {t: int(shapes[t].shape[-1]) for t in sm.tap_names}


def lin_features(sm: Any, ref, p0, p1) -> tuple[np.ndarray, np.ndarray]:
    """(x0, x1), each (N, sum C) float32: the features of (ref, p0) and of (ref, p1). The train
    images are sent to the device for each checkpoint, not kept there (BAPPS train is 5.4 GB,
    read once per checkpoint; val stays resident for the scoring passes). Host memory:
    N x 2 x sum C x 4 bytes (BAPPS train x ResNet-50's 3,840 channels: 4.6 GB)."""
    total = sum(tap_channels(sm).values())
    fn = compiled_lin_features(sm.model, tuple(sm.tap_names))
    rows = sm.run_packed(fn, [ref, p0, p1], 2 * total, resident=False)
    return np.ascontiguousarray(rows[:total].T), np.ascontiguousarray(rows[total:].T)


# ----------------------------------------------------------------------------- the fit


def init_params(key: Any, total: int, sizes: list[int]) -> dict[str, Any]:
    """PyTorch's default Conv2d initialisation (uniform in +-1/sqrt(fan_in), biases too) of the
    per-tap weights (fan_in = the tap's channels) and of the ranking network."""
    import jax
    import jax.numpy as jnp

    h = RECIPE["hidden"]
    keys = jax.random.split(key, 7)
    bound = np.concatenate([np.full(c, 1.0 / np.sqrt(c), np.float32) for c in sizes])
    u = lambda k, shape, fan: jax.random.uniform(k, shape, jnp.float32, -1.0, 1.0) / np.sqrt(fan)
    return {
        "lin": jax.random.uniform(keys[0], (total,), jnp.float32, -1.0, 1.0) * bound,
        "rank": {
            "w1": u(keys[1], (5, h), 5),
            "b1": u(keys[2], (h,), 5),
            "w2": u(keys[3], (h, h), h),
            "b2": u(keys[4], (h,), h),
            "w3": u(keys[5], (h, 1), h),
            "b3": u(keys[6], (1,), h),
        },
    }


def rank_logit(rank: Mapping[str, Any], d0, d1):
    """LPIPS's ``Dist2LogitLayer`` before its sigmoid: the logit that p1 is the closer one."""
    import jax
    import jax.numpy as jnp

    eps = RECIPE["eps"]
    x = jnp.stack([d0, d1, d0 - d1, d0 / (d1 + eps), d1 / (d0 + eps)], axis=-1)
    x = jax.nn.leaky_relu(x @ rank["w1"] + rank["b1"], 0.2)
    x = jax.nn.leaky_relu(x @ rank["w2"] + rank["b2"], 0.2)
    return (x @ rank["w3"] + rank["b3"])[..., 0]


def lr_scale(step, steps: int):
    """LPIPS's schedule on ``steps`` steps: 1 for epochs 1-6 of 10, then 0.8, 0.6, 0.4, 0.2."""
    import jax.numpy as jnp

    e, d = RECIPE["epochs"], RECIPE["decay_epochs"]
    epoch = jnp.floor(step * (e + d) / steps)
    return jnp.minimum(1.0, (e + d - epoch) / d)


def batch_indices(n: int, steps: int, batch: int, seed: int) -> np.ndarray:
    """(steps, batch) row indices: shuffled passes over ``n`` rows, one after another."""
    rng = np.random.default_rng(seed)
    need = steps * batch
    passes = [rng.permutation(n) for _ in range(-(-need // n))]
    return np.concatenate(passes)[:need].reshape(steps, batch).astype(np.int32)


def _train_fn(steps: int):
    """Jitted ``fit(params, x0, x1, p, idx, key) -> (params, losses)``: ``steps`` Adam steps
    in one ``lax.scan``, non-negative weights after each."""
    key = ("train", steps)
    if key not in _COMPILED:
        import jax
        import jax.numpy as jnp
        import optax

        tx = optax.adam(lambda s: RECIPE["lr"] * lr_scale(s, steps), RECIPE["b1"], RECIPE["b2"])
        keep = 1.0 - RECIPE["dropout"]

        def loss_fn(params, a0, a1, p, k):
            k0, k1 = jax.random.split(k)
            m0 = jax.random.bernoulli(k0, keep, a0.shape) / keep
            m1 = jax.random.bernoulli(k1, keep, a1.shape) / keep
            d0, d1 = (a0 * m0) @ params["lin"], (a1 * m1) @ params["lin"]
            logit = rank_logit(params["rank"], d0, d1)
            return jnp.mean(optax.sigmoid_binary_cross_entropy(logit, p))

        def fit(params, x0, x1, p, idx, key):
            def step(carry, inp):
                params, opt = carry
                i, k = inp
                loss, g = jax.value_and_grad(loss_fn)(params, x0[i], x1[i], p[i], k)
                updates, opt = tx.update(g, opt, params)
                params = optax.apply_updates(params, updates)
                params = {**params, "lin": jnp.maximum(params["lin"], 0.0)}  # clamp_weights
                return (params, opt), loss

            keys = jax.random.split(key, idx.shape[0])
            (params, _), losses = jax.lax.scan(step, (params, tx.init(params)), (idx, keys))
            return params, losses

        _COMPILED[key] = jax.jit(fit)
    return _COMPILED[key]


def fit(
    x0: np.ndarray, x1: np.ndarray, judge: np.ndarray, sizes: list[int], steps: int
) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, Any]]:
    """Fit ``lin`` on features (N, sum C) and labels (N,): ``(weights (sum C,), ranking
    network, info)``; weights >= 0."""
    import jax

    n = len(judge)
    if n == 0:
        raise ValueError("the calibration needs at least one train triplet")
    seed = RECIPE["seed"]
    params = init_params(jax.random.key(seed), sum(sizes), sizes)
    idx = batch_indices(n, steps, min(RECIPE["batch"], n), seed)
    args = (np.asarray(x0, np.float32), np.asarray(x1, np.float32), np.asarray(judge, np.float32))
    params, losses = _train_fn(steps)(params, *args, idx, jax.random.key(seed + 1))
    w = np.asarray(params["lin"], np.float32)
    losses = np.asarray(losses)
    info = {
        "steps": steps,
        "passes": round(steps * idx.shape[1] / n, 2),
        "final_loss": round(float(np.mean(losses[-max(1, steps // 100) :])), 6),
        "train_2afc": round(scoring.score_2afc(args[0] @ w, args[1] @ w, args[2]), 4),
        "nonzero_weights": round(float(np.mean(w > 0)), 4),
    }
    return w, jax.tree.map(np.asarray, params["rank"]), info


# ----------------------------------------------------------------------------- files


def weights_path(result_dir: Path, step: int, bench: str) -> Path:
    from trainer.files import path

    return path(result_dir) / f"{step}.lin-{bench}.npz"


def save(path: Path, weights: Mapping[str, np.ndarray], rank: Mapping[str, Any], meta: dict):
    from trainer.files import atomic_write

    arrays = {f"w:{t}": np.asarray(w, np.float32) for t, w in weights.items()}
    arrays.update({f"rank:{k}": np.asarray(v, np.float32) for k, v in rank.items()})
    buf = io.BytesIO()
    np.savez(buf, meta=np.array(json.dumps(meta)), **arrays)
    atomic_write(path, lambda f: f.write(buf.getvalue()))


def load(path: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]] | None:
    """``({tap: weights}, meta)`` of a saved fit, or None when missing or unreadable."""
    try:
        with path.open("rb") as f, np.load(f, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            weights = {k[2:]: np.asarray(z[k]) for k in z.files if k.startswith("w:")}
    except (OSError, ValueError, KeyError, json.JSONDecodeError):
        return None
    return weights, meta


def _identity(bench: Any, sizes: Mapping[str, int], steps: int) -> dict[str, Any]:
    """What a saved fit must match to be reused."""
    return {
        "benchmark": bench.name,
        "version": bench.version,
        "taps": dict(sizes),
        "steps": steps,
        "recipe": RECIPE,
    }


def calibrate(sm: Any, train: Any, path: Path, steps: int) -> tuple[dict[str, np.ndarray], dict]:
    """``({tap: weights}, info)`` for ``sm`` on the train benchmark ``train``: the saved fit at
    ``path`` when it matches, else a new fit, saved there. ``info`` goes into the ``lin`` score
    block (``calibration``)."""
    sizes = tap_channels(sm)
    ident = _identity(train, sizes, steps)
    saved = load(path) if path.exists() else None
    if saved is not None and all(saved[1].get(k) == v for k, v in ident.items()):
        weights, meta = saved
        return weights, {**meta.get("info", {}), "file": path.name, "reused": True}
    t0 = time.time()
    cats = list(train.twoafc)
    feats = [lin_features(sm, t.ref, t.p0, t.p1) for t in train.twoafc.values()]
    x0 = np.concatenate([f[0] for f in feats])
    x1 = np.concatenate([f[1] for f in feats])
    judge = np.concatenate([train.twoafc[c].judge for c in cats])
    t1 = time.time()
    w, rank, fit_info = fit(x0, x1, judge, list(sizes.values()), steps)
    bounds = np.cumsum([0, *sizes.values()])
    weights = {t: w[bounds[i] : bounds[i + 1]] for i, t in enumerate(sizes)}
    info = {
        "split": train.split,
        "categories": cats,
        "triplets": int(len(judge)),
        **fit_info,
        "features_s": round(t1 - t0, 2),
        "fit_s": round(time.time() - t1, 2),
    }
    save(path, weights, rank, {**ident, "info": info})
    return weights, {**info, "file": path.name, "reused": False}
