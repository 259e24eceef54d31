"""Helpers for the trainer tests that run ``python -m trainer`` in subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent

# 1 epoch of 2000 examples at batch 50 = 40 steps, a checkpoint every 5 steps; random crops,
# flips and dropout, so an exact resume must also restore every random stream.
SHORT = [
    "--config.train.epochs=1",
    "--config.data.crop=pad_crop",
    "--config.data.crop_padding=2",
    "--config.data.flip=True",
    "--config.model.dropout=0.2",
    "--config.train.log_every_steps=5",
    "--config.checkpoint.every_steps=5",
    "--config.checkpoint.keep_every_steps=0",
]


def trainer_env(cache_dir: Path | None = None, devices: int = 1, **extra: str) -> dict[str, str]:
    """The environment of a test trainer: CPU with ``devices`` devices, no TensorBoard, and the
    persistent compilation cache in ``cache_dir`` if given."""
    env = dict(os.environ)
    env["PSWEEPS_TENSORBOARD"] = "0"
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    env["JAX_PLATFORMS"] = "cpu"
    if cache_dir is not None:  # restarts reuse compiled steps
        env["JAX_COMPILATION_CACHE_DIR"] = str(cache_dir)
        env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    env.update(extra)
    return env


def trainer_argv(workdir: Path, *overrides: str, config: str = "sweeps/smoke.py") -> list[str]:
    return [
        sys.executable,
        "-m",
        "trainer",
        f"--config={config}",
        *overrides,
        f"--workdir={workdir}",
    ]


def run_trainer(workdir: Path, *overrides: str, env=None, timeout: float = 300, **kw):
    return subprocess.run(
        trainer_argv(workdir, *overrides, **kw),
        cwd=REPO,
        env=env or trainer_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_trainer(workdir: Path, *overrides: str, env=None, **kw) -> subprocess.Popen:
    return subprocess.Popen(
        trainer_argv(workdir, *overrides, **kw),
        cwd=REPO,
        env=env or trainer_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_for(predicate, proc: subprocess.Popen, timeout: float = 240, poll: float = 0.002):
    """Poll ``predicate()`` until it returns something truthy (returned) or ``proc`` exits."""
    end = time.time() + timeout
    while time.time() < end:
        got = predicate()
        if got:
            return got
        if proc.poll() is not None:
            return None
        time.sleep(poll)
    return None


def train_steps_logged(workdir: Path, skip: int = 0) -> int:
    """The largest train step in metrics.jsonl after its first ``skip`` records (0 when none)."""
    from trainer.files import read_jsonl

    records = read_jsonl(workdir / "metrics.jsonl")[skip:]
    return max((r["step"] for r in records if r.get("kind") == "train"), default=0)


def metrics_count(workdir: Path) -> int:
    from trainer.files import read_jsonl

    return len(read_jsonl(workdir / "metrics.jsonl"))


def final_variables(workdir: Path) -> dict:
    from trainer import checkpoint

    ckpt = workdir / "checkpoints"
    steps = checkpoint.list_steps(ckpt)
    assert steps, f"no checkpoint in {ckpt}"
    return checkpoint.restore_variables(ckpt, steps[-1])


def assert_trees_equal(a, b, rtol: float = 0.0, atol: float = 0.0) -> None:
    import jax

    la, ta = jax.tree_util.tree_flatten_with_path(a)
    lb, tb = jax.tree_util.tree_flatten_with_path(b)
    assert ta == tb
    for (path, x), (_, y) in zip(la, lb, strict=True):
        if rtol == 0.0 and atol == 0.0:
            assert np.array_equal(np.asarray(x), np.asarray(y)), f"{path} differs"
        else:
            np.testing.assert_allclose(
                np.asarray(x), np.asarray(y), rtol=rtol, atol=atol, err_msg=str(path)
            )
