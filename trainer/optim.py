"""Optimiser, learning-rate schedule and loss for the trainer, built from ``config.train``.

* LR: ``base_lr * batch_size / 256``, linear warmup from 0 over ``warmup_epochs``, then cosine
  to 0, step decay (``step_factor`` at ``step_boundaries`` fractions of training), exponential
  (``exp_decay_factor ** floor(step / (exp_decay_epochs epochs))``, staircase, the step counted
  from 0 as tensorflow/tpu's EfficientNet does, so warm-up ends on an already decayed value) or
  constant. Step and exponential decay count steps from the start of training, not of decay.
* Optimisers (optax): SGD with (Nesterov) momentum (TF1 ``MomentumOptimizer``: the LR outside the
  momentum), AdamW, and TF-style RMSProp (TF1 ``RMSPropOptimizer``, used by the EfficientNet
  reference trainer: the mean square starts at 1, epsilon sits inside the square root and the LR
  is applied inside the momentum, ``mom = m * mom + lr * g / sqrt(ms + eps)``).
* Weight decay on ``train.weight_decay_on``: ``kernels`` (parameters with ``ndim > 1``) or
  ``non_norm`` (every parameter but the scale and bias of normalisation layers: tensorflow/tpu's
  "name lacks batch_normalization" rule, so dense and conv biases too). ``l2`` adds
  ``weight_decay / 2 * sum(w**2)`` to the loss (TF's ``weight_decay * tf.nn.l2_loss``, so it flows
  through momentum / Adam like the gradient), ``decoupled`` applies ``lr * weight_decay * w``
  after the optimiser's own scaling (AdamW style; for SGD/RMSProp the same decoupled rule).
* Loss: softmax cross-entropy on ``optax.smooth_labels`` targets.
* Optional global-norm gradient clipping before everything else.
* Parameter EMA: ``decay``, or with ``train.ema_warmup`` tf.train.ExponentialMovingAverage's
  ``num_updates`` rule ``min(decay, (1 + n) / (10 + n))`` after n steps.

Traced hyperparameters (``hyperparams``): the peak learning rate, the momentum and the weight
decay reach the train step as float32 inputs rather than constants, so the trials of a sweep over
them compile to one program and share it through the persistent compilation cache
(trainer/compile_cache.py). Which parts exist (momentum, decoupled decay, the L2 term) still
follows the config's values, so the optimiser state has the same structure as before; each value
is computed on the host exactly as the constant was (float64, then rounded to float32), so a run
gives the same bits either way. Label smoothing stays a constant: traced, it gave the same
values only up to float rounding (XLA simplifies the loss with constant targets differently;
docs/performance.md), and results must not change with this.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

HPARAMS = ("peak_lr", "momentum", "weight_decay")


def peak_lr(train_cfg: Any) -> float:
    """The learning rate after warmup: ``base_lr * batch_size / 256``."""
    return float(train_cfg.base_lr) * int(train_cfg.batch_size) / 256.0


def hyperparams(train_cfg: Any) -> dict[str, np.float32]:
    """The train step's traced inputs (``HPARAMS``), each the float32 the constant it replaces
    rounded to: the peak LR, the momentum, the weight decay."""
    return {
        "peak_lr": np.float32(peak_lr(train_cfg)),
        "momentum": np.float32(train_cfg.momentum),
        "weight_decay": np.float32(train_cfg.weight_decay),
    }


def make_schedule(
    train_cfg: Any, steps_per_epoch: int, total_steps: int, peak: Any = None
) -> optax.Schedule:
    """Warmup then cosine / step / constant, as a function of the optimiser step (0-based);
    ``peak`` (e.g. a traced ``hyperparams`` value) replaces ``peak_lr(train_cfg)``."""
    peak = peak_lr(train_cfg) if peak is None else peak
    total_steps = max(int(total_steps), 1)
    warmup = min(int(round(float(train_cfg.warmup_epochs) * steps_per_epoch)), total_steps)
    rest = max(total_steps - warmup, 1)
    kind = train_cfg.schedule
    if kind == "cosine":
        after = optax.cosine_decay_schedule(peak, decay_steps=rest, alpha=0.0)
    elif kind == "step":
        # Boundaries are fractions of all training; the joined schedule counts from warmup's end.
        bounds = {}
        for frac in train_cfg.step_boundaries:
            b = int(round(float(frac) * total_steps)) - warmup
            if b > 0:
                bounds[b] = bounds.get(b, 1.0) * float(train_cfg.step_factor)
        after = optax.piecewise_constant_schedule(peak, bounds)
    elif kind == "exponential":
        every = float(train_cfg.exp_decay_epochs) * steps_per_epoch
        factor = float(train_cfg.exp_decay_factor)
        after = lambda s: peak * factor ** jnp.floor((s + warmup) / every)  # noqa: E731
    elif kind == "constant":
        after = optax.constant_schedule(peak)
    else:
        raise ValueError(
            f"train.schedule={kind!r} is unknown; allowed: cosine, step, exponential, constant"
        )
    if warmup == 0:
        return after
    ramp = optax.linear_schedule(0.0, peak, transition_steps=warmup)
    return optax.join_schedules([ramp, after], boundaries=[warmup])


def kernel_mask(params: Any) -> Any:
    """True for kernels (``ndim > 1``), False for biases and norm scales."""
    return jax.tree.map(lambda p: p.ndim > 1, params)


def _norm_modules(tree: Any, path: tuple = ()) -> set[tuple]:
    """Paths of the normalisation layers (BatchNorm, LayerNorm) in a Flax parameter tree: the
    modules whose parameters are a ``scale`` (and ``bias``) and no ``kernel``."""
    if not isinstance(tree, Mapping):
        return set()
    leaves = {k for k, v in tree.items() if not isinstance(v, Mapping)}
    out = {path} if "scale" in leaves and "kernel" not in leaves else set()
    for k, v in tree.items():
        out |= _norm_modules(v, (*path, k))
    return out


def decay_mask(params: Any, on: str = "kernels") -> Any:
    """True where weight decay applies: ``kernels`` (``ndim > 1``) or ``non_norm`` (all but the
    scale and bias of normalisation layers)."""
    if on == "kernels":
        return kernel_mask(params)
    if on != "non_norm":
        raise ValueError(f"train.weight_decay_on={on!r} is unknown; allowed: kernels, non_norm")
    norms = _norm_modules(params)
    keys = lambda path: tuple(getattr(k, "key", k) for k in path)  # noqa: E731
    return jax.tree_util.tree_map_with_path(lambda p, _: keys(p)[:-1] not in norms, params)


def l2_penalty(params: Any, weight_decay: float, on: str = "kernels") -> jax.Array:
    """``weight_decay / 2 * sum of squares`` of the parameters ``decay_mask(params, on)`` picks."""
    mask = jax.tree.leaves(decay_mask(params, on))
    chosen = [p for p, m in zip(jax.tree.leaves(params), mask, strict=True) if m]
    if not chosen or (isinstance(weight_decay, float) and weight_decay == 0.0):
        return jnp.zeros((), jnp.float32)
    return 0.5 * weight_decay * sum(jnp.sum(jnp.square(p.astype(jnp.float32))) for p in chosen)


def make_optimizer(
    train_cfg: Any, schedule: optax.Schedule, hp: Mapping[str, Any] | None = None
) -> optax.GradientTransformation:
    """The optax chain for ``config.train`` (clip -> optimiser -> decoupled decay -> -lr); with
    ``hp`` (``hyperparams``, traced) the momentum and weight decay are its values."""
    momentum = float(train_cfg.momentum) if hp is None else hp["momentum"]
    decay = float(train_cfg.weight_decay) if hp is None else hp["weight_decay"]
    parts: list[optax.GradientTransformation] = []
    if float(train_cfg.grad_clip) > 0:
        parts.append(optax.clip_by_global_norm(float(train_cfg.grad_clip)))
    name = train_cfg.optimizer
    if name == "sgd":
        if float(train_cfg.momentum) > 0:
            parts.append(optax.trace(decay=momentum, nesterov=bool(train_cfg.nesterov)))
    elif name == "adamw":
        parts.append(optax.scale_by_adam(b1=float(train_cfg.adam_b1), b2=float(train_cfg.adam_b2)))
    elif name == "rmsprop":
        # TF1 RMSProp: ms starts at 1, eps inside the sqrt; the momentum comes after the LR.
        parts.append(
            optax.scale_by_rms(
                decay=float(train_cfg.rmsprop_decay),
                eps=float(train_cfg.rmsprop_eps),
                initial_scale=1.0,
                eps_in_sqrt=True,
            )
        )
    else:
        raise ValueError(f"train.optimizer={name!r} is unknown; allowed: sgd, adamw, rmsprop")
    if train_cfg.weight_decay_mode == "decoupled" and float(train_cfg.weight_decay) > 0:
        on = str(train_cfg.weight_decay_on)
        mask = lambda params: decay_mask(params, on)  # noqa: E731
        parts.append(optax.add_decayed_weights(decay, mask=mask))
    parts.append(optax.scale_by_learning_rate(schedule))
    if name == "rmsprop" and float(train_cfg.momentum) > 0:
        parts.append(optax.trace(decay=momentum, nesterov=False))
    return optax.chain(*parts)


def cross_entropy(logits: jax.Array, labels: jax.Array, label_smoothing: float) -> jax.Array:
    """Per-example softmax cross-entropy against (smoothed) one-hot targets, in float32."""
    targets = jax.nn.one_hot(labels, logits.shape[-1], dtype=jnp.float32)
    if label_smoothing > 0:
        targets = optax.smooth_labels(targets, label_smoothing)
    return optax.softmax_cross_entropy(logits.astype(jnp.float32), targets)


def make_loss_fn(
    train_cfg: Any, hp: Mapping[str, Any] | None = None
) -> Callable[[Any, jax.Array, jax.Array], tuple[jax.Array, jax.Array]]:
    """``loss(params, logits, labels) -> (total loss, mean data loss)`` for ``config.train``;
    with ``hp`` (``hyperparams``, traced) the L2 weight is its value."""
    smoothing = float(train_cfg.label_smoothing)
    l2 = float(train_cfg.weight_decay) if train_cfg.weight_decay_mode == "l2" else 0.0
    on = str(train_cfg.weight_decay_on)
    if hp is not None and l2 > 0:
        l2 = hp["weight_decay"]

    def loss(params: Any, logits: jax.Array, labels: jax.Array):
        data = jnp.mean(cross_entropy(logits, labels, smoothing))
        return data + l2_penalty(params, l2, on), data

    return loss


def ema_update(ema: Mapping, params: Mapping, decay: Any) -> Any:
    """``decay * ema + (1 - decay) * params``, leaf by leaf."""
    return jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, ema, params)


def ema_decay_at(train_cfg: Any, steps_done: Any) -> Any:
    """The EMA decay for the update after ``steps_done`` optimiser steps: ``ema_decay``, or with
    ``ema_warmup`` ``min(ema_decay, (1 + n) / (10 + n))`` (TF's ``num_updates=global_step``, read
    after the step's own increment)."""
    decay = float(train_cfg.ema_decay)
    if not train_cfg.ema_warmup:
        return decay
    n = jnp.asarray(steps_done, jnp.float32)
    return jnp.minimum(decay, (1.0 + n) / (10.0 + n))
