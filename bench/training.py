"""The training parts of the bench: ``bare`` (the trainer's jitted train step on a batch already
on the device), ``e2e`` (the trainer's real loop, ``train_and_evaluate``, in steady state, then
the bare step again beside it, in rounds alternating with the plain Flax loop of
bench/plain.py) and ``memory`` (the real loop on a split N and 2N images large,
each in its own process, and ``memory_one``, one of them). The step, the model and the state come
from ``trainer.steps.build_run``, as in the train loop.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ml_collections

from bench.cli import spec_config
from bench.measure import LogCpuClock, process_peaks, time_interleaved, time_rounds

MEMORY_FLAT_LIMIT = 1.15  # peak RSS with a 2x split may grow by at most this factor
MEMORY_LOG_EVERY, MEMORY_LOG_INTERVALS = 10, 4  # the memory runs: 40 steps, logged every 10


def bare_runner(config) -> tuple[Callable[[int], None], int]:
    """``(run(n), batch)``: ``run(n)`` does n steps of the trainer's jitted train step on one
    batch already on the device, then blocks.

    The step is ``trainer.steps.build_run``'s, the one ``train_and_evaluate`` runs (replicated
    state, batch sharded over the data axis, the same donation), fed the uint8 images of the
    real split, so augmentation, the loss, the optimiser and the metrics are all in it; only
    the input pipeline and the loop around the step are left out.
    """
    import jax
    import numpy as np
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    from trainer import pipeline, steps, train
    from trainer.data import load_split

    mesh = pipeline.make_mesh()
    train.check_batch(config, mesh.size)
    batch = int(config.train.batch_size)
    split = load_split(config.data, "train")
    rows = np.arange(batch) % split.num_examples
    data_sharding = NamedSharding(mesh, P(pipeline.DATA_AXIS))
    images = jax.device_put(np.asarray(split.images[rows]), data_sharding)
    labels = jax.device_put(np.asarray(split.labels[rows]), data_sharding)

    steps_per_epoch = max(split.num_examples // batch, 1)
    run = steps.build_run(config, mesh, steps_per_epoch, 10 * steps_per_epoch)
    carry = {"state": run.init(jax.random.PRNGKey(config.seed)), "metrics": run.zero_metrics()}

    def run_steps(n: int) -> None:
        s, m = carry["state"], carry["metrics"]
        for _ in range(n):
            s, m = run.train_step(s, m, images, labels)
        jax.block_until_ready((s, m))
        carry["state"], carry["metrics"] = s, m

    return run_steps, batch


BARE_WHAT = "trainer.steps.build_run's train step, as train_and_evaluate runs it, batch on device"


def bare_step(spec: dict[str, Any]) -> dict[str, Any]:
    """images/s of the trainer's jitted train step on one batch already on the device."""
    args = spec["args"]
    run_steps, batch = bare_runner(spec_config(spec))
    t = time_rounds(run_steps, int(args["steps"]), int(args["rounds"]))
    return {
        "images_per_sec": round(batch * t["steps"] / t["seconds"], 1),
        **t,
        "batch": batch,
        "what": BARE_WHAT,
    }


def steady_rate(records: list[dict], batch: int, skip: int = 1) -> dict[str, Any]:
    """images/s from the end of the first ``skip`` log intervals (compile, warm-up) to the last
    train log line (wall_time is taken after a host sync, so each interval holds exactly the
    steps it names).

    The first mid-run eval compiles the eval step, a once-per-run cost like the train step's
    compile: the window then starts at the first train line after it.
    """
    lines = sorted(
        (r for r in records if r.get("kind") == "train"), key=lambda r: (r["step"], r["wall_time"])
    )
    last_by_step = {r["step"]: r for r in lines}
    lines = [last_by_step[s] for s in sorted(last_by_step)]
    if len(lines) < skip + 2:
        raise RuntimeError(
            f"the trainer logged {len(lines)} train lines; need {skip + 2} for a steady-state "
            "window (raise --e2e-windows or lower train.log_every_steps)"
        )
    start = skip - 1
    evals = [int(r["step"]) for r in records if r.get("kind") == "eval"]
    mid = [s for s in evals if s < int(lines[-1]["step"])]
    if mid:  # the eval at step s runs after that step's train line
        after = [i for i, r in enumerate(lines) if int(r["step"]) > min(mid)]
        start = max(start, after[0] if after else len(lines))
    if start >= len(lines) - 1:
        raise RuntimeError(
            f"no steady-state window: the first eval (step {min(mid)}) leaves fewer than two "
            "train lines after it (raise --e2e-windows)"
        )
    a, b = lines[start], lines[-1]
    seconds = float(b["wall_time"]) - float(a["wall_time"])
    steps = int(b["step"]) - int(a["step"])
    return {
        "images_per_sec": round(steps * batch / max(seconds, 1e-9), 1),
        "seconds": round(seconds, 3),
        "window": [int(a["step"]), int(b["step"])],
        "window_steps": steps,
        "interval_images_per_sec": [r.get("images_per_sec") for r in lines],
    }


def _loop_config(config: ml_collections.ConfigDict, steps: int, examples: int, batch: int):
    """``config`` with ``train.epochs`` set so the loop runs ``steps`` steps (the final eval
    and save come after the last train line, so outside the window)."""
    cfg = ml_collections.ConfigDict(config.to_dict())
    steps_per_epoch = max(examples // batch, 1)
    # total_steps = ceil(epochs * steps_per_epoch); half a step below keeps float error out.
    cfg.train.epochs = (steps - 0.5) / steps_per_epoch
    return cfg


def run_loop(config, workdir: Path, steps: int) -> tuple[dict[str, Any], float]:
    """Run ``train_and_evaluate`` for ``steps`` steps in a fresh workdir; returns the steady
    rate and the loop's wall seconds."""
    from trainer import train
    from trainer.data import load_split
    from trainer.files import read_jsonl

    if workdir.exists():
        shutil.rmtree(workdir)
    batch = int(config.train.batch_size)
    split = load_split(config.data, "train")
    cfg = _loop_config(config, steps, split.num_examples, batch)
    del split
    t0 = time.perf_counter()
    with LogCpuClock(workdir / "metrics.jsonl") as clock:
        outcome = train.train_and_evaluate(cfg, workdir)
    wall = time.perf_counter() - t0
    if outcome != "done":
        raise RuntimeError(f"the trainer ended {outcome!r}, not 'done'")
    rate = steady_rate(read_jsonl(workdir / "metrics.jsonl"), batch)
    a, b = (clock.cpu_at_step.get(s) for s in rate["window"])
    rate["cpu_seconds"] = None if a is None or b is None else round(b - a, 4)
    return rate, wall


def _input_mode(config, examples: int) -> str:
    """'device-resident' or 'host (memory-mapped)': the choice ``pipeline.TrainInput`` makes for
    this config (by the same ``pipeline.auto_resident`` rule; it is decided inside the loop)."""
    from trainer import pipeline

    mode = str(config.data.device_resident)
    if mode == "auto":
        size = int(config.data.image_size)
        mode = "yes" if pipeline.auto_resident(examples * (size * size * 3 + 4)) else "no"
    return "device-resident" if mode == "yes" else "host (memory-mapped)"


def e2e_steps(
    log_every: int, checkpoint_every: int, windows: int, first_eval: int | None = None
) -> int:
    """Steps of the timed loop: one log interval of warm-up (compile) - or, when a mid-run eval
    (at step ``first_eval``) comes early, up to the first log line after it (its compile) -
    then ``windows`` log intervals or more, until a periodic checkpoint falls strictly inside
    the window (its save runs after the line of its step, so not at the window's end)."""
    start = log_every
    window = windows * log_every
    if first_eval is not None and first_eval < start + window:
        start = (first_eval // log_every + 1) * log_every
    first_save = (start // checkpoint_every + 1) * checkpoint_every
    need = -(-(first_save - start + 1) // log_every) * log_every
    return start + max(window, need)


def end_to_end(spec: dict[str, Any]) -> dict[str, Any]:
    """images/s of the trainer's own loop, steady state, from its metrics.jsonl."""
    config = spec_config(spec)
    args = spec["args"]
    log_every = int(config.train.log_every_steps)
    batch = int(config.train.batch_size)
    # When the trainer's first eval comes (per epoch unless train.eval_every_steps is set).
    first_eval = int(config.train.eval_every_steps) or max(spec["data"]["examples"] // batch, 1)
    steps = e2e_steps(
        log_every, int(config.checkpoint.every_steps), int(args["e2e_windows"]), first_eval
    )
    workdir = Path(spec["bench_dir"]) / "runs" / "e2e"
    rate, wall = run_loop(config, workdir, steps)
    # The loop's own peaks, before anything else runs in this process.
    peaks = process_peaks()
    # Then the bare step and the plain loop, here and now, in alternating rounds: the ratios
    # compare all three under the same conditions (on a shared machine the load drifts
    # between processes minutes apart).
    from bench.plain import WHAT as PLAIN_WHAT
    from bench.plain import plain_runner

    run_bare, batch = bare_runner(config)
    run_plain, _ = plain_runner(config)
    timed = time_interleaved(
        {"bare": run_bare, "plain": run_plain}, int(args["steps"]), int(args["rounds"])
    )
    same = {}
    for name, t in timed.items():
        same[f"{name}_same_process_images_per_sec"] = round(batch * t["steps"] / t["seconds"], 1)
        same[f"{name}_same_process_cpu_seconds"] = t["cpu_seconds"]
        same[f"{name}_same_process_steps"] = t["steps"]
        same[f"{name}_same_process_round_seconds"] = t["round_seconds"]
    return {
        **rate,
        **peaks,
        **same,
        "plain_what": PLAIN_WHAT,
        "steps": steps,
        "loop_wall_seconds": round(wall, 2),
        "log_every_steps": log_every,
        "checkpoint_every_steps": int(config.checkpoint.every_steps),
        "input_mode": _input_mode(config, spec["data"]["examples"]),
        "what": "trainer.train.train_and_evaluate; window from the 1st log line to the last",
    }


def memory(spec: dict[str, Any]) -> dict[str, Any]:
    """The real loop on a split N and on one 2N images large, each in its own process."""
    out = []
    for item in spec["data"]["memory_splits"]:
        sub = {**spec, "memory_split": item}
        with tempfile.TemporaryDirectory(prefix="bench-memory-") as name:
            tmp = Path(name)
            spec_file, result_file = tmp / "spec.json", tmp / "result.json"
            spec_file.write_text(json.dumps(sub))
            cmd = [sys.executable, "-m", "bench.parts", "memory_one", str(spec_file)]
            # Allocate device memory on demand: a parent running --in-process holds its own.
            # No TensorBoard thread: it imports TensorFlow at a moment that varies from run to
            # run, which would swamp the difference being measured (docs/performance.md).
            env = {
                **os.environ,
                "XLA_PYTHON_CLIENT_PREALLOCATE": "false",
                "PSWEEPS_TENSORBOARD": "0",
            }
            subprocess.run([*cmd, str(result_file)], check=True, env=env)
            out.append(json.loads(result_file.read_text()))
    growth = round(out[-1]["peak_rss_mb"] / out[0]["peak_rss_mb"], 3)
    anon = [o.get("peak_anon_mb") for o in out]
    anon_growth = round(anon[-1] / anon[0], 3) if all(anon) else None
    dev = [o.get("device_peak_mb") for o in out]
    device_growth = round(dev[-1] / dev[0], 3) if all(dev) else None
    # Flat means: the memory the process holds (anonymous) and the device's peak do not grow
    # with the split. Total RSS also counts the page cache of the memory-mapped split that the
    # kernel maps in around every page read (fault-around), which grows with the file although
    # nothing is allocated for it and the kernel can drop it at any time; it is reported too.
    held = [g for g in (anon_growth, device_growth) if g is not None] or [growth]
    return {
        "splits": out,
        "growth": growth,
        "anon_growth": anon_growth,
        "device_growth": device_growth,
        "flat_limit": MEMORY_FLAT_LIMIT,
        "flat": max(held) <= MEMORY_FLAT_LIMIT,
        "rss_flat": growth <= MEMORY_FLAT_LIMIT,
    }


def memory_one(spec: dict[str, Any]) -> dict[str, Any]:
    config = spec_config(spec)
    item = spec["memory_split"]
    config.data.prepared_dir = item["prepared_dir"]
    if spec["args"].get("memory_input", "host") == "host":
        config.data.device_resident = "no"  # the memory-mapped path (a resident split grows)
    # Memory, not speed: a short run with frequent logs (a steady window still needs 3 lines).
    log_every = min(int(config.train.log_every_steps), MEMORY_LOG_EVERY)
    config.train.log_every_steps = log_every
    steps = MEMORY_LOG_INTERVALS * log_every
    # Eval only at the end: a per-epoch eval inside so short a run (a small split at a large
    # batch has few steps an epoch) would leave no steady window after its compile.
    config.train.eval_every_steps = steps
    workdir = Path(spec["bench_dir"]) / "runs" / f"memory-{item['examples']}"
    rate, _ = run_loop(config, workdir, steps)
    return {
        "examples": item["examples"],
        "steps": steps,
        "images_per_sec": rate["images_per_sec"],
        "input_mode": _input_mode(config, item["examples"]),
    }
