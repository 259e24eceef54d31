"""Optimiser, learning-rate schedule and loss for the trainer, built from ``config.train``.

* LR: ``base_lr * batch_size / 256``, linear warmup from 0 over ``warmup_epochs``, then cosine
  to 0, step decay (``step_factor`` at ``step_boundaries`` fractions of training) or constant.
* Optimisers (optax): SGD with (Nesterov) momentum, AdamW, and TF-style RMSProp (the mean
  square starts at 1 and epsilon sits inside the square root, as ``tf.compat.v1.train.
  RMSPropOptimizer`` used by the EfficientNet reference trainer).
* Weight decay on kernels only (parameters with ``ndim > 1``): ``l2`` adds
  ``weight_decay / 2 * sum(w**2)`` to the loss (so it flows through momentum / Adam like the
  gradient), ``decoupled`` applies ``lr * weight_decay * w`` after the optimiser's own scaling
  (AdamW style; for SGD/RMSProp the same decoupled rule).
* Loss: softmax cross-entropy on ``optax.smooth_labels`` targets.
* Optional global-norm gradient clipping before everything else.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import optax


def peak_lr(train_cfg: Any) -> float:
    """The learning rate after warmup: ``base_lr * batch_size / 256``."""
    return float(train_cfg.base_lr) * int(train_cfg.batch_size) / 256.0


def make_schedule(train_cfg: Any, steps_per_epoch: int, total_steps: int) -> optax.Schedule:
    """Warmup then cosine / step / constant, as a function of the optimiser step (0-based)."""
    peak = peak_lr(train_cfg)
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
    elif kind == "constant":
        after = optax.constant_schedule(peak)
    else:
        raise ValueError(f"train.schedule={kind!r} is unknown; allowed: cosine, step, constant")
    if warmup == 0:
        return after
    ramp = optax.linear_schedule(0.0, peak, transition_steps=warmup)
    return optax.join_schedules([ramp, after], boundaries=[warmup])


def kernel_mask(params: Any) -> Any:
    """True for kernels (``ndim > 1``), False for biases and norm scales."""
    return jax.tree.map(lambda p: p.ndim > 1, params)


def l2_penalty(params: Any, weight_decay: float) -> jax.Array:
    """``weight_decay / 2 * sum of squared kernel entries`` (biases and scales excluded)."""
    kernels = [p for p in jax.tree.leaves(params) if p.ndim > 1]
    if not kernels or weight_decay == 0.0:
        return jnp.zeros((), jnp.float32)
    return 0.5 * weight_decay * sum(jnp.sum(jnp.square(p.astype(jnp.float32))) for p in kernels)


def make_optimizer(train_cfg: Any, schedule: optax.Schedule) -> optax.GradientTransformation:
    """The optax chain for ``config.train`` (clip -> optimiser -> decoupled decay -> -lr)."""
    parts: list[optax.GradientTransformation] = []
    if float(train_cfg.grad_clip) > 0:
        parts.append(optax.clip_by_global_norm(float(train_cfg.grad_clip)))
    name = train_cfg.optimizer
    if name == "sgd":
        if float(train_cfg.momentum) > 0:
            parts.append(
                optax.trace(decay=float(train_cfg.momentum), nesterov=bool(train_cfg.nesterov))
            )
    elif name == "adamw":
        parts.append(optax.scale_by_adam(b1=float(train_cfg.adam_b1), b2=float(train_cfg.adam_b2)))
    elif name == "rmsprop":
        # TF1 RMSProp: ms starts at 1, eps inside the sqrt, then heavy-ball momentum.
        parts.append(
            optax.scale_by_rms(
                decay=float(train_cfg.rmsprop_decay),
                eps=float(train_cfg.rmsprop_eps),
                initial_scale=1.0,
                eps_in_sqrt=True,
            )
        )
        if float(train_cfg.momentum) > 0:
            parts.append(optax.trace(decay=float(train_cfg.momentum), nesterov=False))
    else:
        raise ValueError(f"train.optimizer={name!r} is unknown; allowed: sgd, adamw, rmsprop")
    if train_cfg.weight_decay_mode == "decoupled" and float(train_cfg.weight_decay) > 0:
        parts.append(optax.add_decayed_weights(float(train_cfg.weight_decay), mask=kernel_mask))
    parts.append(optax.scale_by_learning_rate(schedule))
    return optax.chain(*parts)


def cross_entropy(logits: jax.Array, labels: jax.Array, label_smoothing: float) -> jax.Array:
    """Per-example softmax cross-entropy against (smoothed) one-hot targets, in float32."""
    targets = jax.nn.one_hot(labels, logits.shape[-1], dtype=jnp.float32)
    if label_smoothing > 0:
        targets = optax.smooth_labels(targets, label_smoothing)
    return optax.softmax_cross_entropy(logits.astype(jnp.float32), targets)


def make_loss_fn(
    train_cfg: Any,
) -> Callable[[Any, jax.Array, jax.Array], tuple[jax.Array, jax.Array]]:
    """``loss(params, logits, labels) -> (total loss, mean data loss)`` for ``config.train``."""
    smoothing = float(train_cfg.label_smoothing)
    l2 = float(train_cfg.weight_decay) if train_cfg.weight_decay_mode == "l2" else 0.0

    def loss(params: Any, logits: jax.Array, labels: jax.Array):
        data = jnp.mean(cross_entropy(logits, labels, smoothing))
        return data + l2_penalty(params, l2), data

    return loss


def ema_update(ema: Mapping, params: Mapping, decay: float) -> Any:
    """``decay * ema + (1 - decay) * params``, leaf by leaf."""
    return jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, ema, params)
