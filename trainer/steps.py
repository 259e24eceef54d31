"""What a training run needs, built once from its config: ``build_run(config, mesh, ...) -> Run``.

The train loop (trainer/train.py) and the speed benchmarks (bench/) both start from ``Run``: the
model, the learning-rate schedule and optimiser, the initial state, and the jitted train and
eval steps, placed on a 1-D data-parallel mesh ("data"): the batch is sharded over it,
everything else (params, batch_stats, optimiser state, EMA, rng) is replicated, so XLA inserts
the gradient all-reduce and BatchNorm sees the global batch.

The train step's randomness (augmentation, dropout) is ``fold_in(state["rng"], state["step"])``,
so the step of a restored state continues exactly as the uninterrupted run would.

The peak learning rate, momentum and weight decay are inputs of the jitted step
(``optim.hyperparams``), not constants in it: trials that differ only in them run one compiled
program, which the persistent compilation cache hands from trial to trial.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import optax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from trainer import optim
from trainer.augment import augment, eval_preprocess
from trainer.models import build_model


def init_state(model, config, image_shape, tx, rng) -> dict[str, Any]:
    """The initial train state (a dict of arrays; the checkpoint item)."""
    init_rng, run_rng = jax.random.split(rng)
    # Parameter initialisers draw through XLA's RngBitGenerator ("rbg" keys): the same values
    # on every device and run of one platform, and much cheaper to compile on CPU than threefry
    # for a ResNet. The run's own stream (augmentation, dropout) stays threefry.
    init_key = jax.random.wrap_key_data(jax.random.bits(init_rng, (4,), jnp.uint32), impl="rbg")
    dummy = jnp.zeros((1, *image_shape), jnp.float32)
    variables = model.init({"params": init_key, "dropout": init_key}, dummy, train=False)
    params = variables["params"]
    state = {
        "step": jnp.zeros((), jnp.int32),
        "params": params,
        "batch_stats": variables.get("batch_stats", {}),
        "opt_state": tx.init(params),
        "rng": run_rng,
    }
    if config.train.ema_decay > 0:
        state["ema_params"] = jax.tree.map(jnp.copy, params)
    return state


def zero_metrics() -> dict[str, jax.Array]:
    """The train metrics accumulated on the device between log lines."""
    return {
        "loss_sum": jnp.zeros((), jnp.float32),
        "correct": jnp.zeros((), jnp.float32),
        "count": jnp.zeros((), jnp.float32),
        "nonfinite": jnp.zeros((), jnp.int32),
    }


def _all_finite(total: jax.Array, state: Any) -> jax.Array:
    """The loss and every float in the state (params, BN statistics, optimiser moments, EMA)
    are finite: a state that overflowed is never saved."""
    floats = [x for x in jax.tree.leaves(state) if jnp.issubdtype(x.dtype, jnp.floating)]
    return functools.reduce(
        jnp.logical_and, [jnp.all(jnp.isfinite(x)) for x in floats], jnp.isfinite(total)
    )


def make_train_step(model, config, tx, augment, steps_per_epoch=None, total_steps=None):
    """``step(state, metrics, images_uint8, labels, hp=None) -> (state, metrics)`` (to be
    jitted). With ``hp`` (``optim.hyperparams``, as arrays) the schedule, optimiser and loss are
    rebuilt on its traced values (``steps_per_epoch`` and ``total_steps`` shape the schedule);
    without it ``tx`` and the config's constants are used."""
    ema = float(config.train.ema_decay)
    data_cfg = config.data

    def step(state, metrics, images, labels, hp=None):
        if hp is None:
            step_tx, loss_fn = tx, optim.make_loss_fn(config.train)
        else:
            sched = optim.make_schedule(config.train, steps_per_epoch, total_steps, hp["peak_lr"])
            step_tx = optim.make_optimizer(config.train, sched, hp)
            loss_fn = optim.make_loss_fn(config.train, hp)
        rng = jax.random.fold_in(state["rng"], state["step"])
        aug_rng, drop_rng = jax.random.split(rng)
        x = augment(aug_rng, images, data_cfg)

        def objective(params):
            logits, updates = model.apply(
                {"params": params, "batch_stats": state["batch_stats"]},
                x,
                train=True,
                mutable=["batch_stats"],
                rngs={"dropout": drop_rng},
            )
            total, data = loss_fn(params, logits, labels)
            return total, (total, data, logits, updates)

        grads, (total, data_loss, logits, updates) = jax.grad(objective, has_aux=True)(
            state["params"]
        )
        upd, opt_state = step_tx.update(grads, state["opt_state"], state["params"])
        params = jax.tree.map(lambda p, u: p + u, state["params"], upd)
        new = dict(
            state,
            step=state["step"] + 1,
            params=params,
            batch_stats=updates.get("batch_stats", state["batch_stats"]),
            opt_state=opt_state,
        )
        if ema > 0:
            decay = optim.ema_decay_at(config.train, new["step"])
            new["ema_params"] = optim.ema_update(state["ema_params"], params, decay)
        n = labels.shape[0]
        metrics = {
            "loss_sum": metrics["loss_sum"] + data_loss * n,
            "correct": metrics["correct"] + jnp.sum(jnp.argmax(logits, -1) == labels),
            "count": metrics["count"] + n,
            "nonfinite": metrics["nonfinite"] + (~_all_finite(total, new)).astype(jnp.int32),
        }
        return new, metrics

    return step


def _top_k_correct(logits: jax.Array, labels: jax.Array, k: int) -> jax.Array:
    k = min(k, logits.shape[-1])
    _, top = jax.lax.top_k(logits, k)
    return jnp.any(top == labels[:, None], axis=-1)


def make_eval_step(model, preprocess):
    """``eval(params, batch_stats, images_uint8, labels, mask) -> sums`` (to be jitted);
    ``preprocess(images_uint8) -> float32`` is the run's eval preprocessing."""

    def step(params, batch_stats, images, labels, mask):
        x = preprocess(images)
        variables = {"params": params}
        if batch_stats:
            variables["batch_stats"] = batch_stats
        logits = model.apply(variables, x, train=False)
        m = mask.astype(jnp.float32)
        loss = optim.cross_entropy(logits, labels, 0.0)
        return {
            "loss": jnp.sum(loss * m),
            "top1": jnp.sum(_top_k_correct(logits, labels, 1) * m),
            "top5": jnp.sum(_top_k_correct(logits, labels, 5) * m),
            "count": jnp.sum(m),
        }

    return step


@dataclass(frozen=True)
class Run:
    """A run's model, schedule, optimiser and jitted functions on ``mesh``.

    ``init(key)`` -> initial state; ``train_step(state, metrics, images, labels)`` -> (state,
    metrics) (state and metrics donated off the CPU): ``jitted_step`` with ``hparams`` (the
    traced hyperparameters) as its last input; ``eval_step(params, batch_stats, images,
    labels, mask)`` -> sums. States and metrics are replicated (``replicated``).
    """

    config: ml_collections.ConfigDict
    mesh: Mesh
    model: Any
    schedule: optax.Schedule
    tx: optax.GradientTransformation
    steps_per_epoch: int
    total_steps: int
    init: Callable[[jax.Array], dict[str, Any]]
    train_step: Callable[..., tuple[dict[str, Any], dict[str, jax.Array]]]
    eval_step: Callable[..., dict[str, jax.Array]]
    jitted_step: Any = None
    hparams: Any = None

    @property
    def replicated(self) -> NamedSharding:
        return NamedSharding(self.mesh, P())

    def abstract_state(self, key: jax.Array) -> Any:
        """The state's shapes, dtypes and shardings (for a restore), without compiling ``init``."""
        shapes = jax.eval_shape(self.init, key)
        return jax.tree.map(
            lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=self.replicated), shapes
        )

    def zero_metrics(self) -> dict[str, jax.Array]:
        return jax.device_put(zero_metrics(), self.replicated)


def build_run(
    config: ml_collections.ConfigDict, mesh: Mesh, steps_per_epoch: int, total_steps: int
) -> Run:
    """Everything a run of ``config`` needs for ``total_steps`` steps of ``steps_per_epoch``."""
    replicated = NamedSharding(mesh, P())
    model = build_model(config.model, config.data.num_classes)
    schedule = optim.make_schedule(config.train, steps_per_epoch, total_steps)
    tx = optim.make_optimizer(config.train, schedule)
    size = int(config.data.image_size)
    init = jax.jit(
        functools.partial(init_state, model, config, (size, size, 3), tx),
        out_shardings=replicated,
    )
    donate = (0, 1) if jax.default_backend() != "cpu" else ()
    jitted_step = jax.jit(
        make_train_step(model, config, tx, augment, steps_per_epoch, total_steps),
        out_shardings=(replicated, replicated),
        donate_argnums=donate,
    )
    hp = jax.device_put(optim.hyperparams(config.train), replicated)

    def train_step(state, metrics, images, labels):
        return jitted_step(state, metrics, images, labels, hp)

    preprocess = functools.partial(eval_preprocess, data_cfg=config.data)
    eval_step = jax.jit(make_eval_step(model, preprocess), out_shardings=replicated)
    return Run(
        config=config,
        mesh=mesh,
        model=model,
        schedule=schedule,
        tx=tx,
        steps_per_epoch=int(steps_per_epoch),
        total_steps=int(total_steps),
        init=init,
        train_step=train_step,
        eval_step=eval_step,
        jitted_step=jitted_step,
        hparams=hp,
    )
