"""Small helpers of the train loop: its log lines and ETA, and preemption.

``Progress`` writes a train record every ``train.log_every_steps`` (metrics.jsonl, status.json,
one line on stdout with the rate and the ETA). The loop dispatches steps asynchronously and only
reads values back here, at evaluations and before saves, so train metrics (loss sum, correct
count, non-finite count) accumulate on the device in between; a non-finite loss or state is
therefore caught within ``log_every_steps`` steps and always before the next save.

``Preemption`` says when to save and stop: under ``jax.distributed`` JAX's preemption notifier
catches SIGTERM and every process agrees on the step (``CheckpointManager.reached_preemption``);
otherwise a SIGTERM or SIGINT (Ctrl-C) handler sets a flag checked after every step, so Ctrl-C
on a hand-run trainer saves and ends ``preempted`` like SIGTERM; a second Ctrl-C stops at once
(KeyboardInterrupt, the run is marked failed and resumes from its last checkpoint).
"""

from __future__ import annotations

import signal
import time
from typing import Any

import jax

from trainer import distributed
from trainer.procs import process_age


class Diverged(RuntimeError):
    """A non-finite training loss or state."""


def read_metrics(metrics: Any, step: int) -> dict[str, float]:
    """The accumulated train metrics on the host; ``Diverged`` if any step was not finite."""
    m = jax.tree.map(float, jax.device_get(metrics))
    if m["nonfinite"] > 0:
        raise Diverged(f"non-finite loss or state before step {step}")
    return m


def format_eta(seconds: float) -> str:
    seconds = max(int(seconds), 0)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class Progress:
    """The train log of one run from ``step`` on: records, rate and ETA (the ETA leaves out the
    first interval, which includes compiling)."""

    def __init__(self, records: Any, run: Any, step: int):
        self.records, self.run = records, run
        self.batch = int(run.config.train.batch_size)
        self.block = distributed.block_every_step()
        self.t_log, self.step_log = time.time(), step
        self.t_start, self.step_start = self.t_log, step
        self.first_step = step + 1

    def stepped(self, step: int, metrics: Any) -> None:
        """After every step: block where the platform needs it, and time the first one."""
        if self.block or step == self.first_step:
            jax.block_until_ready(metrics)
        if step == self.first_step:
            took, age, cpu = time.time() - self.t_log, process_age(), time.process_time()
            since = "" if age is None else f", {age:.1f} s after the trainer started"
            self.records.progress(
                f"first step (compiling included) {took:.1f} s{since} ({cpu:.1f} CPU s)"
            )
            if age is not None:  # the launcher prints it: compile once, not once per trial
                self.records.update(first_step_s=round(age, 2), first_step_cpu_s=round(cpu, 2))

    def log(self, step: int, metrics: Any) -> None:
        """Write the train record of the steps since the last one (``Diverged`` if any was not
        finite)."""
        m = read_metrics(metrics, step)
        now = time.time()
        rate = (step - self.step_log) * self.batch / max(now - self.t_log, 1e-9)
        since = self.step_start if self.step_log > self.step_start else self.step_log
        t_since = self.t_start if self.step_log > self.step_start else self.t_log
        overall = (step - since) / max(now - t_since, 1e-9)
        spe, total = self.run.steps_per_epoch, self.run.total_steps
        rec = {
            "step": step,
            "epoch": round(step / spe, 4),
            "lr": float(self.run.schedule(step - 1)),
            "train_loss": m["loss_sum"] / max(m["count"], 1.0),
            "train_accuracy": m["correct"] / max(m["count"], 1.0),
            "images_per_sec": round(rate, 1),
        }
        self.records.train(rec)
        self.records.update(step=step, epoch=rec["epoch"])
        self.records.progress(
            f"step {step}/{total} ep {rec['epoch']:.2f} loss {rec['train_loss']:.4f} "
            f"acc {rec['train_accuracy']:.4f} {rate:.0f} img/s "
            f"eta {format_eta((total - step) / max(overall, 1e-9))}"
        )
        if self.step_log == self.step_start:
            self.t_start, self.step_start = now, step
        self.t_log, self.step_log = now, step


class Preemption:
    """``reached(step, checkpointer)``: whether to save ``step`` and stop (see the module doc).
    Entered before any work, so a SIGTERM during set-up still ends in a clean save."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self.use_jax = distributed.is_initialized()
        self.flag = False
        self._old: dict[int, Any] = {}

    def __enter__(self) -> Preemption:
        # Under jax.distributed, JAX owns SIGTERM; Ctrl-C keeps its default there (the other
        # processes could not agree on a step).
        for sig in () if self.use_jax else self.SIGNALS:
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: no handler, no graceful preemption
                pass
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.flag and signum == signal.SIGINT:
            raise KeyboardInterrupt  # the second Ctrl-C
        if not self.flag:
            name = signal.Signals(signum).name
            print(f"{name} received: saving at the end of this step", flush=True)
        self.flag = True

    def __exit__(self, *exc: Any) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old = {}

    def reached(self, step: int, checkpointer: Any) -> bool:
        if self.use_jax:
            return checkpointer.reached_preemption(step)
        return self.flag
