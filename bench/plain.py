"""The ``plain`` reference of the bench: a minimal Flax training loop, the yardstick the trainer
is measured against (issue 19: "faster than a plain Flax loop").

What a researcher would write in an afternoon and nothing else: the whole train split resident
on the device, one jitted step that gathers its batch by index from a per-epoch permutation
(also on the device), pads by ``PAD`` pixels and crops at random, flips at random, normalises
(ImageNet mean/std), runs the same Flax model (``trainer.models.build_model``, the config's
dtype, BatchNorm statistics updated) and takes an SGD step with Nesterov momentum and an L2 term
on the kernels at the config's peak learning rate. No metrics, no finiteness checks, no EMA, no
schedule, no checkpoints, no evals, no host syncs but the one at the end of ``run(n)``.

The end-to-end part (``bench.training.end_to_end``) times it right after the trainer's loop, in
alternating rounds with the trainer's bare step, so the table gives trainer/plain and bare/plain
from one process.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax

from trainer.data.normalize import IMAGENET_MEAN, IMAGENET_STD

PAD = 4  # pixels of the random crop's padding (zeros)
WHAT = (
    "minimal Flax loop: split on the device, jitted gather + pad-crop/flip/normalise + "
    "SGD-Nesterov step, nothing else"
)


def _augment(key: jax.Array, x: jax.Array) -> jax.Array:
    """Pad-and-crop and flip each uint8 image at random, then normalise to float32."""
    b, h, w, _ = x.shape
    k_off, k_flip = jax.random.split(key)
    padded = jnp.pad(x, ((0, 0), (PAD, PAD), (PAD, PAD), (0, 0)))
    off = jax.random.randint(k_off, (b, 2), 0, 2 * PAD + 1)
    crop = lambda img, o: jax.lax.dynamic_slice(img, (o[0], o[1], 0), (h, w, 3))  # noqa: E731
    x = jax.vmap(crop)(padded, off)
    flip = jax.random.bernoulli(k_flip, 0.5, (b, 1, 1, 1))
    x = jnp.where(flip, x[:, :, ::-1], x).astype(jnp.float32) / 255.0
    return (x - IMAGENET_MEAN) / IMAGENET_STD


def _make_step(model, tx, batch: int, weight_decay: float):
    def step(state, images, labels, perm, i, key):
        params, stats, opt = state
        rows = jax.lax.dynamic_slice(perm, (i * batch,), (batch,))
        x = _augment(jax.random.fold_in(key, i), images[rows])
        y = labels[rows]

        def loss_fn(p):
            logits, upd = model.apply(
                {"params": p, "batch_stats": stats},
                x,
                train=True,
                mutable=["batch_stats"],
                rngs={"dropout": key},
            )
            ce = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), y)
            l2 = sum(jnp.sum(jnp.square(k)) for k in jax.tree.leaves(p) if k.ndim > 1)
            return jnp.mean(ce) + 0.5 * weight_decay * l2, upd

        grads, upd = jax.grad(loss_fn, has_aux=True)(params)
        updates, opt = tx.update(grads, opt, params)
        return optax.apply_updates(params, updates), upd.get("batch_stats", stats), opt

    return step


def plain_runner(config) -> tuple[Callable[[int], None], int]:
    """``(run(n), batch)``: ``run(n)`` does the next n steps of the plain loop, then blocks."""
    from trainer.data import load_split
    from trainer.models import build_model
    from trainer.optim import peak_lr

    batch = int(config.train.batch_size)
    size = int(config.data.image_size)
    split = load_split(config.data, "train")
    n = int(split.num_examples)
    images = jax.device_put(np.asarray(split.images))
    labels = jax.device_put(np.asarray(split.labels, np.int32))
    del split
    per_epoch = max(n // batch, 1)
    model = build_model(config.model, config.data.num_classes)
    key = jax.random.PRNGKey(int(config.seed))
    variables = jax.jit(partial(model.init, train=False))(
        {"params": key, "dropout": key}, jnp.zeros((1, size, size, 3), jnp.float32)
    )
    tx = optax.sgd(peak_lr(config.train), momentum=float(config.train.momentum), nesterov=True)
    params = variables["params"]
    state = (params, variables.get("batch_stats", {}), tx.init(params))
    donate = (0,) if jax.default_backend() != "cpu" else ()
    step = jax.jit(
        _make_step(model, tx, batch, float(config.train.weight_decay)), donate_argnums=donate
    )
    rng = np.random.default_rng(int(config.seed))
    carry = {"state": state, "i": 0, "perm": None}

    def run(steps: int) -> None:
        s = carry["state"]
        for _ in range(steps):
            i = carry["i"] % per_epoch
            if i == 0:  # a new epoch: a new permutation, on the device
                carry["perm"] = jax.device_put(rng.permutation(n).astype(np.int32))
            s = step(s, images, labels, carry["perm"], jnp.int32(i), key)
            carry["i"] += 1
        jax.block_until_ready(s)
        carry["state"] = s

    return run, batch
