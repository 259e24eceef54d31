"""The training loop: ``train_and_evaluate(config, workdir)``.

One function in four marked sections: set-up (config, data, then the workdir claimed and the
records, the run from ``trainer.steps.build_run``), restore (the newest checkpoint that passes its
integrity check, or a fresh state), the loop (steps, log lines, evaluations, saves, preemption)
and finish. Everything that can refuse a run (the config, the data splits, the batch against the
devices and the examples) is checked before the workdir is claimed, so nothing is written then. Multi-host runs call
``jax.distributed.initialize()`` first (trainer/distributed.py) and each process feeds its own
slice of the batch (the input pipeline).

The step count ``s`` is the number of finished optimiser steps; the batch, the augmentation and
the dropout of step ``s`` are functions of (seed, s), so a run restored from checkpoint ``s``
continues exactly as the uninterrupted run would (bitwise on CPU).

``train_loss`` in the records is the mean (label-smoothed) cross-entropy of the training
batches since the last log line, without the L2 term; ``train_accuracy`` is their top-1.
Host syncs, divergence and preemption: trainer/progress.py.
"""

from __future__ import annotations

import contextlib
import math
import os
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections

from sweeps import base
from sweeps.command import command_from_config
from trainer import (
    checkpoint,
    compile_cache,
    distributed,
    pipeline,
    provenance,
    status,
    steps,
)
from trainer.data import load_split
from trainer.progress import Diverged, Preemption, Progress, read_metrics

STATE_EXIT_CODES = {"done": 0, "preempted": 0, "diverged": 3}  # anything else: 1


def exit_code(state: str) -> int:
    return STATE_EXIT_CODES.get(state, 1)


def check_batch(config: ml_collections.ConfigDict, num_devices: int) -> None:
    """One-line ``ConfigError`` when the training batch cannot be split over the devices (the
    evaluation batch is rounded up to a multiple of them by the pipeline)."""
    value = int(config.train.batch_size)
    if value % num_devices:
        raise base.ConfigError(
            f"train.batch_size={value} does not split over {num_devices} devices; "
            f"allowed: a multiple of {num_devices}"
        )


@dataclass
class Data:
    train: Any
    eval: Any
    examples: dict[str, dict[str, int]]  # status.json's "examples": asked, used, split size
    notes: list[str]  # one line per clamped count


def open_data(config: ml_collections.ConfigDict, num_devices: int) -> Data:
    """The train and eval splits, and every check that needs them, before the workdir is
    claimed: the batch against the devices and the training examples. ``data.*_examples``
    larger than a split is not refused (the embedded sweeps ask for 20,000 and the shipped
    Fashion-MNIST subset has 12,000): the whole split is used and that is said in train.log,
    status.json (``examples``) and the report."""
    check_batch(config, num_devices)
    splits = {which: load_split(config.data, which) for which in ("train", "eval")}
    examples, notes = {}, []
    for which, split in splits.items():
        asked = int(config.data[f"{which}_examples"])
        size = int(split.meta.get("subset", {}).get("of", split.num_examples))
        examples[which] = {"asked": asked, "used": split.num_examples, "split": size}
        if asked > size:
            notes.append(
                f"data.{which}_examples={asked} but the {which} split has {size} images: "
                f"using all {size}"
            )
    batch, n = int(config.train.batch_size), splits["train"].num_examples
    if batch > n:
        raise base.ConfigError(
            f"train.batch_size={batch} is larger than the {n} training examples; "
            f"allowed: at most {n}"
        )
    return Data(splits["train"], splits["eval"], examples, notes)


def total_steps(config: ml_collections.ConfigDict, steps_per_epoch: int) -> int:
    return max(int(math.ceil(config.train.epochs * steps_per_epoch)), 1)


def evaluate(run: steps.Run, state: Any, split: Any, step: int, records: Any) -> dict[str, Any]:
    """Top-1/top-5/loss of ``state`` (its EMA parameters when kept) on the eval split, recorded."""
    params = state.get("ema_params", state["params"])
    sums = None
    for images, labels, mask in pipeline.eval_batches(
        split, int(run.config.eval.batch_size), run.mesh
    ):
        out = run.eval_step(params, state["batch_stats"], images, labels, mask)
        sums = out if sums is None else jax.tree.map(jnp.add, sums, out)
    sums = jax.tree.map(float, jax.device_get(sums))
    n = max(sums["count"], 1.0)
    rec = {
        "step": step,
        "epoch": round(step / run.steps_per_epoch, 4),
        "eval_top1": sums["top1"] / n,
        "eval_top5": sums["top5"] / n,
        "eval_loss": sums["loss"] / n,
    }
    records.eval(rec)
    last = {"step": step, "epoch": rec["epoch"], "top1": rec["eval_top1"]}
    last |= {"top5": rec["eval_top5"], "loss": rec["eval_loss"]}
    records.update(step=step, epoch=rec["epoch"], last_eval=last)
    records.progress(
        f"eval step {step} top1 {rec['eval_top1']:.4f} top5 {rec['eval_top5']:.4f} "
        f"loss {rec['eval_loss']:.4f}"
    )
    return rec


def restore_or_init(run: steps.Run, ckpt: checkpoint.Checkpointer, seed: int, records: Any):
    """The newest checkpoint that passes its integrity check (damaged ones are moved aside and
    listed in status.json's ``damaged_checkpoints``), or a fresh state from ``seed``."""
    key = jax.random.PRNGKey(seed)
    # The state's shapes only when there is something to restore (it traces the model once).
    like = run.abstract_state(key) if ckpt.manager.all_steps() else None
    latest, state, moved = ckpt.restore_latest_good(like, records.progress)
    if moved:
        when = status.now_iso()
        earlier = list(records.status.get("damaged_checkpoints") or [])
        records.update(damaged_checkpoints=earlier + [{**m, "when": when} for m in moved])
    if latest is None:
        if moved:
            records.progress("no intact checkpoint left: starting from scratch")
        return run.init(key)
    records.progress(f"resumed from checkpoint {latest}")
    return state


def train_and_evaluate(
    config: ml_collections.ConfigDict, workdir: str | os.PathLike, *, command: str | None = None
) -> str:
    """Train ``config`` in ``workdir`` (resuming from its newest intact checkpoint) and return
    the final state: ``done``, ``preempted`` or ``diverged``. Raises ``ConfigError`` /
    ``DataError`` / ``status.WorkdirError`` (one line, before anything is written) for a bad
    config or data, a workdir holding another config, held by another trainer or not writable;
    other errors mark the run ``failed`` in status.json and propagate."""
    # ------------------------------------------------------------------ set-up
    base.validate(config)
    workdir = status.resolve_workdir(workdir)  # a bad gs:// workdir: one line, before any work
    status.check_config(workdir, config)
    cache = compile_cache.enable(workdir)  # before anything compiles; shared by the sweep
    distributed.initialize(config.distributed)
    mesh = pipeline.make_mesh()
    trace = provenance.run_trace(config)  # train.log's first lines, then status.json's fields
    data = open_data(config, mesh.size)  # every data-dependent check, before the claim below
    command = command or command_from_config(config, workdir)
    # Claims the workdir (its lock); refused while another trainer holds it.
    records = status.Records(workdir, primary=jax.process_index() == 0, command=command)
    outcome, error = "done", None
    try:
        with Preemption() as preemption, contextlib.ExitStack() as stack:
            records.write_config(config)
            records.update(state="running", examples=data.examples, **trace)
            for note in (*data.notes, f"compilation cache: {cache or 'off'}"):
                records.progress(note)
            batch = config.train.batch_size
            train_input = pipeline.TrainInput(data.train, config.data, batch, config.seed, mesh)
            stack.enter_context(train_input)
            spe = train_input.steps_per_epoch
            run = steps.build_run(config, mesh, spe, total_steps(config, spe))
            records.update(total_steps=run.total_steps)
            ckpt = checkpoint.Checkpointer(workdir, config.checkpoint, run.total_steps, spe)
            stack.enter_context(ckpt)
            # -------------------------------------------------------------- restore
            state = restore_or_init(run, ckpt, config.seed, records)
            step = int(jax.device_get(state["step"]))
            # -------------------------------------------------------------- loop
            log_every = int(config.train.log_every_steps)
            eval_every = int(config.train.eval_every_steps) or spe
            metrics = run.zero_metrics()
            records.update(step=step, epoch=round(step / spe, 4))
            progress = Progress(records, run, step)
            batches = train_input.iterate(step)
            while step < run.total_steps:
                _, images, labels = next(batches)
                state, metrics = run.train_step(state, metrics, images, labels)
                step += 1
                progress.stepped(step, metrics)
                preempted = preemption.reached(step, ckpt)
                last = step == run.total_steps
                if step % log_every == 0 or last or preempted:
                    progress.log(step, metrics)
                    metrics = run.zero_metrics()
                if preempted:
                    outcome = "preempted"
                    break
                if step % eval_every == 0 and not last:
                    evaluate(run, state, data.eval, step, records)
                if ckpt.should_save(step) and not last:
                    read_metrics(metrics, step)
                    ckpt.save(step, state)
            # -------------------------------------------------------------- finish
            read_metrics(metrics, step)
            if outcome == "done":
                evaluate(run, state, data.eval, step, records)
            ckpt.save(step, state)
            ckpt.wait()
            if outcome == "preempted":
                records.progress(f"preempted: saved step {step}")
    except Diverged as e:  # the pending saves (of finite states) finished as the stack closed
        outcome, error = "diverged", str(e)
        records.progress(f"diverged: {e}")
    except BaseException as e:
        with contextlib.suppress(OSError):  # a full disk may refuse this too; e says why
            records.close(state="failed", error=status.error_line(e))
        raise
    records.close(state=outcome, step=step, epoch=round(step / spe, 4), error=error)
    return outcome
