"""The training loop: ``train_and_evaluate(config, workdir)``.

One jitted train step over a 1-D data-parallel mesh ("data") of every device of every process:
the batch is sharded over "data", everything else (params, batch_stats, optimiser state, EMA,
rng) is replicated, so XLA inserts the gradient all-reduce and BatchNorm sees the global batch.
Multi-host runs call ``jax.distributed.initialize()`` first (trainer/distributed.py) and each
process feeds its own slice of the batch (the input pipeline).

The step count ``s`` is the number of finished optimiser steps; the batch, the augmentation and
the dropout of step ``s`` are functions of (seed, s), so a run restored from checkpoint ``s``
continues exactly as the uninterrupted run would (bitwise on CPU).

``train_loss`` in the records is the mean (label-smoothed) cross-entropy of the training
batches since the last log line, without the L2 term; ``train_accuracy`` is their top-1.

Host syncs: the loop dispatches steps asynchronously and reads values back only every
``train.log_every_steps`` steps, before a checkpoint is saved, and at evaluations. Train
metrics (loss sum, correct count, non-finite count) accumulate on the device in between. A
NaN/Inf loss (or state) is therefore caught within ``log_every_steps`` steps, and always before the next
save, so no checkpoint ever holds a diverged state; the run then ends as ``diverged``.

Preemption: SIGTERM makes the loop save the current step and end as ``preempted``. Under
``jax.distributed`` JAX's preemption notifier catches SIGTERM and every process agrees on the
step through ``CheckpointManager.reached_preemption``; otherwise a SIGTERM handler sets a flag
checked after every step.
"""

from __future__ import annotations

import functools
import math
import os
import signal
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from sweeps import base
from trainer import checkpoint, distributed, optim, status

DATA_AXIS = "data"


class Diverged(RuntimeError):
    """A non-finite training loss."""


def exit_code(state: str) -> int:
    return {"done": 0, "preempted": 0, "diverged": 3}.get(state, 1)


# ----------------------------------------------------------------------------- set-up


def make_mesh() -> Mesh:
    return Mesh(np.array(jax.devices()), (DATA_AXIS,))


def check_batch(config: ml_collections.ConfigDict, num_devices: int) -> None:
    """One-line ``ConfigError`` when the training batch cannot be split over the devices (the
    evaluation batch is rounded up to a multiple of them by the pipeline)."""
    value = int(config.train.batch_size)
    if value % num_devices:
        raise base.ConfigError(
            f"train.batch_size={value} does not split over {num_devices} devices; "
            f"allowed: a multiple of {num_devices}"
        )


def _top_k_correct(logits: jax.Array, labels: jax.Array, k: int) -> jax.Array:
    k = min(k, logits.shape[-1])
    _, top = jax.lax.top_k(logits, k)
    return jnp.any(top == labels[:, None], axis=-1)


def init_state(model, config, image_shape, tx, rng) -> dict[str, Any]:
    """The initial train state (a dict of arrays; the checkpoint item)."""
    init_rng, run_rng = jax.random.split(rng)
    # Parameter initialisers draw through XLA's RngBitGenerator ("rbg" keys): the same values
    # on every device and run of one platform, and about 3x faster to compile on CPU than
    # threefry for a ResNet. The run's own stream (augmentation, dropout) stays threefry.
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


def _zero_metrics() -> dict[str, jax.Array]:
    return {
        "loss_sum": jnp.zeros((), jnp.float32),
        "correct": jnp.zeros((), jnp.float32),
        "count": jnp.zeros((), jnp.float32),
        "nonfinite": jnp.zeros((), jnp.int32),
    }


def make_train_step(model, config, tx, augment):
    """``step(state, metrics, images_uint8, labels) -> (state, metrics)`` (to be jitted)."""
    loss_fn = optim.make_loss_fn(config.train)
    ema = float(config.train.ema_decay)
    data_cfg = config.data

    def step(state, metrics, images, labels):
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
        upd, opt_state = tx.update(grads, state["opt_state"], state["params"])
        params = jax.tree.map(lambda p, u: p + u, state["params"], upd)
        new = dict(
            state,
            step=state["step"] + 1,
            params=params,
            batch_stats=updates.get("batch_stats", state["batch_stats"]),
            opt_state=opt_state,
        )
        if ema > 0:
            new["ema_params"] = optim.ema_update(state["ema_params"], params, ema)
        # The loss and every float in the new state (params, BN statistics, optimiser moments,
        # EMA) must be finite: a state that overflowed is never saved.
        floats = [x for x in jax.tree.leaves(new) if jnp.issubdtype(x.dtype, jnp.floating)]
        finite = functools.reduce(
            jnp.logical_and, [jnp.all(jnp.isfinite(x)) for x in floats], jnp.isfinite(total)
        )
        correct = jnp.sum(jnp.argmax(logits, -1) == labels)
        n = labels.shape[0]
        metrics = {
            "loss_sum": metrics["loss_sum"] + data_loss * n,
            "correct": metrics["correct"] + correct,
            "count": metrics["count"] + n,
            "nonfinite": metrics["nonfinite"] + (~finite).astype(jnp.int32),
        }
        return new, metrics

    return step


def make_eval_step(model, normalize):
    """``eval(params, batch_stats, images_uint8, labels, mask) -> sums`` (to be jitted)."""

    def step(params, batch_stats, images, labels, mask):
        x = normalize(images)
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


# ----------------------------------------------------------------------------- preemption


class _SigtermFlag:
    """Sets ``self.set`` on SIGTERM (single-process runs; restores the old handler on exit)."""

    def __init__(self, install: bool = True):
        self.set = False
        self.install = install
        self._old = None

    def __enter__(self):
        if not self.install:
            return self
        try:
            self._old = signal.signal(signal.SIGTERM, self._handle)
        except ValueError:  # not the main thread: no handler, no graceful preemption
            self._old = None
        return self

    def _handle(self, signum, frame):
        self.set = True

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGTERM, self._old)
        return False


# ----------------------------------------------------------------------------- the loop


def train_and_evaluate(
    config: ml_collections.ConfigDict, workdir: str | os.PathLike, *, command: str | None = None
) -> str:
    """Train ``config`` in ``workdir`` (resuming from its latest checkpoint) and return the final
    state: ``done``, ``preempted`` or ``diverged``. Raises ``ConfigError`` (one line, before any
    work) for a bad config or a workdir holding another config; other errors mark the run
    ``failed`` in status.json and propagate."""
    base.validate(config)
    workdir = Path(workdir).absolute()
    status.check_config(workdir, config)
    distributed.initialize(config.distributed)
    # Without jax.distributed a SIGTERM handler asks the loop to save and stop; under it, JAX's
    # preemption notifier already catches SIGTERM (CheckpointManager.reached_preemption).
    with _SigtermFlag(install=not distributed.is_initialized()) as sigterm:
        return _setup_and_run(config, workdir, command, sigterm)


def _setup_and_run(config, workdir, command, sigterm) -> str:
    # Imported here: the data stack loads only when training.
    from trainer import pipeline
    from trainer.data import load_split

    records = status.Records(
        workdir,
        primary=jax.process_index() == 0,
        command=command or status.command_from_config(config, workdir),
        total_steps=0,
    )
    train_input = None
    try:
        records.write_config(config)
        records.update(state="running")
        mesh = make_mesh()
        check_batch(config, mesh.size)
        train_split = load_split(config.data, "train")
        eval_split = load_split(config.data, "eval")
        train_input = pipeline.TrainInput(
            train_split, config.data, config.train.batch_size, config.seed, mesh
        )
        steps_per_epoch = int(train_input.steps_per_epoch)
        total_steps = max(int(math.ceil(config.train.epochs * steps_per_epoch)), 1)
        records.update(total_steps=total_steps)
        return _run(
            config,
            workdir,
            mesh,
            train_input,
            eval_split,
            steps_per_epoch,
            total_steps,
            records,
            sigterm,
        )
    except BaseException as e:
        lines = f"{type(e).__name__}: {e}".strip().splitlines()
        records.update(state="failed", error=(lines[0] if lines else type(e).__name__)[:2000])
        raise
    finally:
        if train_input is not None:
            train_input.close()
        records.close()


def _run(
    config, workdir, mesh, train_input, eval_split, steps_per_epoch, total_steps, records, sigterm
):
    from trainer import pipeline
    from trainer.models import build_model

    replicated = NamedSharding(mesh, P())
    model = build_model(config.model, config.data.num_classes)
    schedule = optim.make_schedule(config.train, steps_per_epoch, total_steps)
    tx = optim.make_optimizer(config.train, schedule)
    size = int(config.data.image_size)

    init = jax.jit(
        functools.partial(init_state, model, config, (size, size, 3), tx),
        out_shardings=replicated,
    )
    key = jax.random.PRNGKey(config.seed)
    ckpt = checkpoint.Checkpointer(workdir, config.checkpoint, total_steps)
    latest = ckpt.latest_step()
    if latest is not None:
        # Restoring needs only the shapes and shardings: skip compiling the initialiser.
        shapes = jax.eval_shape(init, key)
        like = jax.tree.map(
            lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=replicated), shapes
        )
        state = ckpt.restore(latest, like)
        records.progress(f"resumed from checkpoint {latest}")
    else:
        state = init(key)
    step = int(jax.device_get(state["step"]))
    last_saved = latest

    donate = (0, 1) if jax.default_backend() != "cpu" else ()
    train_step = jax.jit(
        make_train_step(model, config, tx, pipeline.augment),
        out_shardings=(replicated, replicated),
        donate_argnums=donate,
    )
    eval_step = jax.jit(make_eval_step(model, pipeline.normalize), out_shardings=replicated)
    block = distributed.block_every_step()
    use_jax_preemption = distributed.is_initialized()
    eval_every = int(config.train.eval_every_steps) or steps_per_epoch
    log_every = int(config.train.log_every_steps)
    batch = int(config.train.batch_size)

    def evaluate(at_step: int) -> dict[str, Any]:
        params = state.get("ema_params", state["params"])
        sums = None
        for images, labels, mask in pipeline.eval_batches(
            eval_split, int(config.eval.batch_size), mesh
        ):
            out = eval_step(params, state["batch_stats"], images, labels, mask)
            sums = out if sums is None else jax.tree.map(jnp.add, sums, out)
        sums = jax.tree.map(float, jax.device_get(sums))
        n = max(sums["count"], 1.0)
        rec = {
            "step": at_step,
            "epoch": round(at_step / steps_per_epoch, 4),
            "eval_top1": sums["top1"] / n,
            "eval_top5": sums["top5"] / n,
            "eval_loss": sums["loss"] / n,
        }
        records.eval(rec)
        last = {"step": at_step, "epoch": rec["epoch"], "top1": rec["eval_top1"]}
        last |= {"top5": rec["eval_top5"], "loss": rec["eval_loss"]}
        records.update(step=at_step, epoch=rec["epoch"], last_eval=last)
        records.progress(
            f"eval step {at_step} top1 {rec['eval_top1']:.4f} top5 {rec['eval_top5']:.4f} "
            f"loss {rec['eval_loss']:.4f}"
        )
        return rec

    def save(at_step: int) -> None:
        nonlocal last_saved
        if last_saved == at_step:
            return
        ckpt.save(at_step, state)
        last_saved = at_step

    metrics = jax.device_put(_zero_metrics(), replicated)
    records.update(step=step, epoch=round(step / steps_per_epoch, 4))
    t_log, step_log = time.time(), step
    t_start, step_start = t_log, step
    outcome = "done"

    def read_metrics(at_step: int) -> dict[str, float]:
        m = jax.tree.map(float, jax.device_get(metrics))
        if m["nonfinite"] > 0:
            raise Diverged(f"non-finite loss or state before step {at_step}")
        return m

    first_step, t_first = step + 1, time.time()
    try:
        batches = train_input.iterate(step)
        while step < total_steps:
            _, images, labels = next(batches)
            state, metrics = train_step(state, metrics, images, labels)
            step += 1
            if block or step == first_step:
                jax.block_until_ready(metrics)
            if step == first_step:
                records.progress(f"first step (compiling included) {time.time() - t_first:.1f} s")
            preempted = ckpt.reached_preemption(step) if use_jax_preemption else sigterm.set
            last = step == total_steps
            if step % log_every == 0 or last or preempted:
                m = read_metrics(step)
                now = time.time()
                rate = (step - step_log) * batch / max(now - t_log, 1e-9)
                since = (step_start, t_start) if step_log > step_start else (step_log, t_log)
                overall = (step - since[0]) / max(now - since[1], 1e-9)
                lr = float(schedule(step - 1))
                rec = {
                    "step": step,
                    "epoch": round(step / steps_per_epoch, 4),
                    "lr": lr,
                    "train_loss": m["loss_sum"] / max(m["count"], 1.0),
                    "train_accuracy": m["correct"] / max(m["count"], 1.0),
                    "images_per_sec": round(rate, 1),
                }
                records.train(rec)
                records.update(step=step, epoch=rec["epoch"])
                records.progress(
                    f"step {step}/{total_steps} ep {rec['epoch']:.2f} "
                    f"loss {rec['train_loss']:.4f} acc {rec['train_accuracy']:.4f} "
                    f"{rate:.0f} img/s eta "
                    f"{status.format_eta((total_steps - step) / max(overall, 1e-9))}"
                )
                metrics = jax.device_put(_zero_metrics(), replicated)
                if step_log == step_start:  # the ETA leaves out the first interval (compiling)
                    t_start, step_start = now, step
                t_log, step_log = now, step
            if preempted:
                read_metrics(step)
                save(step)
                ckpt.wait()
                records.update(step=step, epoch=round(step / steps_per_epoch, 4))
                records.progress(f"preempted: saved step {step}")
                outcome = "preempted"
                break
            if step % eval_every == 0 and not last:
                evaluate(step)
            if checkpoint.save_steps(step, config.checkpoint, total_steps) and not last:
                read_metrics(step)
                save(step)
        if outcome == "done":
            read_metrics(step)
            evaluate(step)
            save(step)
        ckpt.wait()
    except Diverged as e:
        ckpt.wait()
        records.update(state="diverged", step=step, error=str(e))
        records.progress(f"diverged: {e}")
        return "diverged"
    finally:
        ckpt.close()
    records.update(state=outcome, step=step, epoch=round(step / steps_per_epoch, 4), error=None)
    return outcome
