"""The measurements of ``python -m trainer.bench``, one per part, each meant to run in its own
process: ``python -m trainer.bench_parts <part> <spec.json> <result.json>``.

Parts: ``prepare`` (device, versions, data), ``bare`` (the trainer's jitted train step on a
device-resident batch), ``e2e`` (the trainer's real loop, ``train_and_evaluate``), ``forward``
(a bare jitted forward pass), ``evaluator`` (tap extraction + distances), ``memory`` (the real
loop on a split N and 2N images large). Every result carries the process's peak host memory
(``ru_maxrss``) and, where the backend reports it, the device's peak bytes in use.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self

import ml_collections

from trainer import status
from trainer.bench_data import IMAGENET_TRAIN, IMAGENET_VAL

SYNTHETIC_EXAMPLES = 131072  # about a tenth of ImageNet-64 train: 1.6 GB at 64x64
MEMORY_FLAT_LIMIT = 1.15  # peak RSS with a 2x split may grow by at most this factor
MEMORY_LOG_EVERY, MEMORY_LOG_INTERVALS = 10, 4  # the memory runs: 40 steps, logged every 10
VERSION_PACKAGES = ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "numpy", "ml-collections")


# ----------------------------------------------------------------------------- measurement


def peak_rss_mb() -> float:
    """This process's peak resident set size so far: ``VmHWM`` of /proc/self/status, else
    ``ru_maxrss`` (which Linux carries over fork and exec, so a child started by a large
    process would report its parent's peak)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024.0, 1)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)


class _Sampler:
    """Calls ``sample()`` every ``interval`` seconds from a daemon thread while its ``with``
    block runs."""

    def __init__(self, interval: float, name: str):
        import threading

        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def sample(self) -> None:
        raise NotImplementedError

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


class AnonPeak(_Sampler):
    """Samples this process's anonymous resident memory (``RssAnon`` in /proc/self/status)
    every ``interval`` seconds in a daemon thread and keeps the peak.

    ``ru_maxrss`` also counts the file-backed pages of a memory-mapped split that were touched
    (page cache, which the kernel can drop at any time), so a loop that reads a whole split
    shows a peak that grows with the split although it allocates nothing for it; the
    anonymous peak is the memory the process itself holds. (Linux has no peak counter for it,
    hence the sampling; a spike shorter than ``interval`` can be missed.)
    """

    def __init__(self, interval: float = 0.02):
        super().__init__(interval, "bench-anon-peak")
        self.peak_kb = 0

    @staticmethod
    def read_kb() -> int:
        try:
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("RssAnon:"):
                    return int(line.split()[1])
        except OSError:
            pass
        return 0

    def sample(self) -> None:
        self.peak_kb = max(self.peak_kb, self.read_kb())

    def __exit__(self, *exc) -> None:
        super().__exit__(*exc)
        self.sample()

    @property
    def peak_mb(self) -> float | None:
        return round(self.peak_kb / 1024.0, 1) if self.peak_kb else None


ANON: AnonPeak | None = None  # the sampler of the part running in this process


def device_peak_mb() -> float | None:
    """Peak bytes in use on the first local device, where the backend reports it (GPU/TPU)."""
    import jax

    try:
        stats = jax.local_devices()[0].memory_stats() or {}
    except Exception:  # CPU backends raise or return None: no device memory to report
        return None
    peak = stats.get("peak_bytes_in_use")
    return None if peak is None else round(peak / 2**20, 1)


def device_info() -> dict[str, Any]:
    import jax

    devices = jax.devices()
    return {
        "platform": jax.default_backend(),
        "kind": devices[0].device_kind,
        "count": len(devices),
        "processes": jax.process_count(),
        "host_cpus": os.cpu_count(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "host": platform.node(),
    }


def time_interleaved(
    runners: dict[str, Callable[[int], None]], steps: int, rounds: int, warmup: int = 2
) -> dict[str, dict[str, Any]]:
    """For each runner, the median seconds of ``rounds`` calls of ``run(steps)`` (each must
    block at its end), after ``warmup`` steps that include compilation (timed separately).

    With several runners the rounds alternate (A B A B ...), so a slow drift in what else the
    machine is doing hits all of them alike and their ratio stays fair.
    """
    first: dict[str, float] = {}
    for name, run_steps in runners.items():
        t0 = time.perf_counter()
        run_steps(warmup)
        first[name] = time.perf_counter() - t0
    times: dict[str, list[float]] = {name: [] for name in runners}
    cpu: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(rounds):
        for name, run_steps in runners.items():
            t0, c0 = time.perf_counter(), time.process_time()
            run_steps(steps)
            times[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
    return {
        name: {
            "seconds": round(statistics.median(times[name]), 4),
            "cpu_seconds": round(statistics.median(cpu[name]), 4),
            "round_seconds": [round(t, 4) for t in times[name]],
            "warmup_seconds": round(first[name], 3),
            "steps": steps,
            "rounds": rounds,
        }
        for name in runners
    }


def time_rounds(
    run_steps: Callable[[int], None], steps: int, rounds: int, warmup: int = 2
) -> dict[str, Any]:
    """``time_interleaved`` of one runner."""
    return time_interleaved({"one": run_steps}, steps, rounds, warmup)["one"]


# ----------------------------------------------------------------------------- data


def _data_cfg(preset: str, overrides: dict[str, Any]) -> ml_collections.ConfigDict:
    from sweeps.base import config_from

    return config_from(preset, overrides).data


def prepare(spec: dict[str, Any]) -> dict[str, Any]:
    """Device, versions, and the bench's data prepared (once) on disk."""
    import jax

    from trainer.bench_data import write_synthetic_split
    from trainer.data import load_split

    args = spec["args"]
    bench_dir = Path(spec["bench_dir"])
    backend = jax.default_backend()
    kind = args["data"]
    if kind == "auto":
        kind = "fashion_mnist" if backend == "cpu" else "synthetic"
    dtype = args["dtype"] or ("float32" if backend == "cpu" else "bfloat16")
    size = int(args["size"])
    if kind == "fashion_mnist":
        preset, dataset, num_classes = "embedded", "fashion_mnist", 10
        prepared_dir = args["data_dir"]
        cfg = _data_cfg(preset, {"data.image_size": size, "data.prepared_dir": prepared_dir})
        train = load_split(cfg, "train")
        load_split(cfg, "eval")
        examples, source = train.num_examples, train.meta.get("source", "?")
    else:
        preset, dataset, num_classes = "paper", "imagenet64", 1000
        prepared_dir = args["data_dir"] or str(bench_dir / "synthetic")
        examples = int(args["examples"]) or SYNTHETIC_EXAMPLES
        eval_count = max(1000, round(examples * IMAGENET_VAL / IMAGENET_TRAIN))
        for split, count in (("train", examples), ("eval", eval_count)):
            write_synthetic_split(
                prepared_dir,
                dataset=dataset,
                split=split,
                count=count,
                size=size,
                num_classes=num_classes,
            )
        source = "synthetic-bench"
    data = {
        "kind": kind,
        "preset": preset,
        "dataset": dataset,
        "num_classes": num_classes,
        "prepared_dir": str(prepared_dir),
        "examples": int(examples),
        "source": source,
        "dtype": dtype,
    }
    parts = [p.strip() for p in args["parts"].split(",")]
    if "memory" in parts:
        data["memory_splits"] = []
        base = int(args.get("memory_examples") or 0) or examples
        for n in (base, 2 * base):
            if kind == "synthetic" and n == examples:  # the bench's own split is N
                data["memory_splits"].append({"examples": n, "prepared_dir": str(prepared_dir)})
                continue
            root = bench_dir / f"memory-{dataset}-{size}-{n}"
            for split, count in (("train", n), ("eval", 1000)):
                write_synthetic_split(
                    root,
                    dataset=dataset,
                    split=split,
                    count=count,
                    size=size,
                    num_classes=num_classes,
                )
            data["memory_splits"].append({"examples": n, "prepared_dir": str(root)})
    return {
        "device": device_info(),
        "versions": status.versions(VERSION_PACKAGES, absent="absent"),
        "data": data,
    }


# ----------------------------------------------------------------------------- train step


def _config(spec: dict[str, Any]) -> ml_collections.ConfigDict:
    from sweeps.base import validate

    cfg = ml_collections.ConfigDict(spec["config"])
    validate(cfg)
    return cfg


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
    run_steps, batch = bare_runner(_config(spec))
    t = time_rounds(run_steps, int(args["steps"]), int(args["rounds"]))
    return {
        "images_per_sec": round(batch * t["steps"] / t["seconds"], 1),
        **t,
        "batch": batch,
        "what": BARE_WHAT,
    }


# ----------------------------------------------------------------------------- the real loop


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


class LogCpuClock(_Sampler):
    """Notes this process's CPU seconds (all threads) when each train line of the trainer's
    metrics.jsonl appears (polled every ``interval`` s from a daemon thread), so the steady
    window's CPU time can be set beside its wall time: on a shared machine other processes'
    load stretches wall time but hardly this process's CPU time."""

    def __init__(self, path: Path, interval: float = 0.005):
        super().__init__(interval, "bench-log-cpu")
        self.path = path
        self.cpu_at_step: dict[int, float] = {}
        self._offset = 0
        self._buf = b""

    def sample(self) -> None:
        try:
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                chunk = f.read()
        except OSError:
            return
        cpu = time.process_time()
        self._offset += len(chunk)
        self._buf += chunk
        *lines, self._buf = self._buf.split(b"\n")
        for line in lines:
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if rec.get("kind") == "train":
                self.cpu_at_step[int(rec["step"])] = cpu


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
    config = _config(spec)
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
    peaks = {"peak_rss_mb": peak_rss_mb(), "peak_anon_mb": ANON.peak_mb if ANON else None}
    # Then the bare step again, here and now: the ratio compares the two under the same
    # conditions (on a shared machine the load drifts between processes minutes apart).
    run_steps, batch = bare_runner(config)
    t = time_rounds(run_steps, int(args["steps"]), int(args["rounds"]))
    return {
        **rate,
        **peaks,
        "bare_same_process_images_per_sec": round(batch * t["steps"] / t["seconds"], 1),
        "bare_same_process_cpu_seconds": t["cpu_seconds"],
        "bare_same_process_steps": t["steps"],
        "bare_same_process_round_seconds": t["round_seconds"],
        "steps": steps,
        "loop_wall_seconds": round(wall, 2),
        "log_every_steps": log_every,
        "checkpoint_every_steps": int(config.checkpoint.every_steps),
        "input_mode": _input_mode(config, spec["data"]["examples"]),
        "what": "trainer.train.train_and_evaluate; window from the 1st log line to the last",
    }


def memory(spec: dict[str, Any]) -> dict[str, Any]:
    """The real loop on a split N and on one 2N images large, each in its own process."""
    import subprocess

    out = []
    for item in spec["data"]["memory_splits"]:
        sub = {**spec, "memory_split": item}
        with _tempdir() as tmp:
            spec_file, result_file = tmp / "spec.json", tmp / "result.json"
            spec_file.write_text(json.dumps(sub))
            cmd = [sys.executable, "-m", "trainer.bench_parts", "memory_one", str(spec_file)]
            # Allocate device memory on demand: a parent running --in-process holds its own.
            # No TensorBoard thread: it imports TensorFlow (hundreds of MB) at a moment that
            # varies from run to run, which would swamp the difference being measured.
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


def _tempdir():
    import tempfile

    class _Dir:
        def __enter__(self):
            self._t = tempfile.TemporaryDirectory(prefix="bench-memory-")
            return Path(self._t.name)

        def __exit__(self, *exc):
            self._t.cleanup()
            return False

    return _Dir()


def memory_one(spec: dict[str, Any]) -> dict[str, Any]:
    config = _config(spec)
    item = spec["memory_split"]
    config.data.prepared_dir = item["prepared_dir"]
    if spec["args"].get("memory_input", "host") == "host":
        config.data.device_resident = "no"  # the memory-mapped path (a resident split grows)
    # Memory, not speed: a short run with frequent logs (a steady window still needs 3 lines).
    log_every = min(int(config.train.log_every_steps), MEMORY_LOG_EVERY)
    config.train.log_every_steps = log_every
    steps = MEMORY_LOG_INTERVALS * log_every
    # Eval only at the end: a per-epoch eval inside so short a run (a small split at a large
    # batch: 32 steps an epoch) would leave no steady window after its compile.
    config.train.eval_every_steps = steps
    workdir = Path(spec["bench_dir"]) / "runs" / f"memory-{item['examples']}"
    rate, _ = run_loop(config, workdir, steps)
    return {
        "examples": item["examples"],
        "steps": steps,
        "images_per_sec": rate["images_per_sec"],
        "input_mode": _input_mode(config, item["examples"]),
    }


# ----------------------------------------------------------------------------- evaluation


def _eval_shape(config) -> tuple[int, int]:
    """(images per forward batch, image side) of the evaluator: triplets of ``perceptual.
    batch_size`` (ref, p0, p1 in one forward pass) at the scored resolution."""
    from evaluator.features import SCORED_SIZE

    return 3 * int(config.perceptual.batch_size), SCORED_SIZE


def _init_variables(config, size: int):
    import jax
    import jax.numpy as jnp

    from trainer.models import build_model

    model = build_model(config.model, config.data.num_classes)
    init = jax.jit(lambda k: model.init({"params": k}, jnp.zeros((1, size, size, 3)), train=False))
    return model, init(jax.random.PRNGKey(config.seed))


def _forward_runner(config, model, variables, batch: int, size: int) -> Callable[[int], None]:
    """``run(n)``: n jitted ``model.apply(train=False)`` calls on one normalised device batch."""
    import jax
    import numpy as np

    from trainer.bench_data import synthetic_images
    from trainer.data import normalize

    rng = np.random.default_rng(1)
    labels = rng.integers(0, config.data.num_classes, batch)
    x = jax.device_put(normalize(synthetic_images(rng, labels, size)))
    apply = jax.jit(lambda v, x: model.apply(v, x, train=False))

    def run_steps(n: int) -> None:
        out = None
        for _ in range(n):
            out = apply(variables, x)
        jax.block_until_ready(out)

    return run_steps


def forward(spec: dict[str, Any]) -> dict[str, Any]:
    """images/s of a bare jitted forward pass (``model.apply(..., train=False)``) on a batch of
    normalised images already on the device, at the evaluator's batch and resolution: the
    ceiling for the evaluator (in a process of its own, for its own peak memory)."""
    config = _config(spec)
    args = spec["args"]
    batch, size = _eval_shape(config)
    model, variables = _init_variables(config, size)
    run_steps = _forward_runner(config, model, variables, batch, size)
    t = time_rounds(run_steps, int(args["steps"]), int(args["rounds"]))
    return {
        "images_per_sec": round(batch * t["steps"] / t["seconds"], 1),
        **t,
        "batch": batch,
        "size": size,
        "what": "jitted model.apply(train=False) on a normalised batch already on the device",
    }


def evaluator(spec: dict[str, Any]) -> dict[str, Any]:
    """images/s of the evaluator's ``ScoringModel.triplet_distances`` (uint8 images to the
    device, kept there on an accelerator as in the evaluator job; normalise, taps, every
    distance on every tap, distances back to the host): the path every benchmark triplet
    takes. Weights are freshly initialised (speed does not depend on them); images are
    synthetic uint8 at the scored resolution."""
    import jax
    import numpy as np

    from evaluator.features import ScoringModel
    from trainer.bench_data import synthetic_images

    config = _config(spec)
    args = spec["args"]
    batch, size = _eval_shape(config)
    per_call = batch // 3
    model, variables = _init_variables(config, size)
    restored = jax.tree.map(np.asarray, dict(variables))
    cfg = {"model": config.model.to_dict(), "data": config.data.to_dict()}
    scorer = ScoringModel.from_variables(cfg, restored, batch_size=per_call)
    n = per_call * int(args["steps"])
    rng = np.random.default_rng(0)
    labels = rng.integers(0, config.data.num_classes, n)
    ref = synthetic_images(rng, labels, size)
    p0 = synthetic_images(rng, labels, size)
    p1 = synthetic_images(rng, labels, size)

    # The same array objects on every call, as the evaluator job passes a benchmark's arrays
    # for every checkpoint: on an accelerator they go to the device on first use and stay
    # (ScoringModel.resident), so the warm-up below uploads them and the timed rounds do not.
    views: dict[int, tuple[Any, ...]] = {}

    def run_steps(k: int) -> None:
        m = min(n, k * per_call)
        if m not in views:
            views[m] = (ref[:m], p0[:m], p1[:m])
        out = scorer.triplet_distances(*views[m])
        jax.block_until_ready(out)

    # The bare forward pass runs here too, its rounds alternating with the evaluator's, so the
    # ratio is taken under the same conditions (a shared CPU's load drifts between processes).
    fwd = _forward_runner(config, model, variables, batch, size)
    steps, rounds = int(args["steps"]), int(args["rounds"])
    t0 = time.perf_counter()
    run_steps(steps)  # compile, and the upload when resident
    upload_s = time.perf_counter() - t0
    both = time_interleaved({"evaluator": run_steps, "forward": fwd}, steps, rounds, warmup=1)
    t, f = both["evaluator"], both["forward"]
    return {
        "images_per_sec": round(3 * n / t["seconds"], 1),
        "forward_images_per_sec": round(batch * steps / f["seconds"], 1),
        "forward_cpu_seconds": f["cpu_seconds"],
        "round_images": 3 * n,
        "forward_round_images": batch * steps,
        "forward_round_seconds": f["round_seconds"],
        **t,
        "batch": batch,
        "size": size,
        "taps": list(scorer.tap_names),
        "resident": bool(scorer.resident),
        "first_call_seconds": round(upload_s, 3),
        "note": f"{len(scorer.tap_names)} taps x 3 distances, {size}x{size}"
        + (", images resident on the device" if scorer.resident else ", host images"),
        "what": "evaluator.features.ScoringModel.triplet_distances on uint8 triplets (kept on "
        "the device after the first call on an accelerator, as in the evaluator job)",
    }


# ----------------------------------------------------------------------------- entry


def _finish(result: dict[str, Any]) -> dict[str, Any]:
    result.setdefault("peak_rss_mb", peak_rss_mb())
    result["load_avg_1m"] = round(os.getloadavg()[0], 2)  # others' work skews CPU timings
    if "device_peak_mb" not in result:
        result["device_peak_mb"] = device_peak_mb()
    return result


RUNNERS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "prepare": prepare,
    "bare": bare_step,
    "e2e": end_to_end,
    "forward": forward,
    "evaluator": evaluator,
    "memory": memory,
    "memory_one": memory_one,
}


def run(part: str, spec: dict[str, Any]) -> dict[str, Any]:
    if part not in RUNNERS:
        raise ValueError(f"bench part {part!r} is unknown; allowed: {', '.join(RUNNERS)}")
    global ANON
    if part in ("prepare", "memory"):
        return RUNNERS[part](spec)
    with AnonPeak() as anon:
        ANON = anon
        try:
            result = RUNNERS[part](spec)
        finally:
            ANON = None
    result.setdefault("peak_anon_mb", anon.peak_mb)
    return _finish(result)


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: python -m trainer.bench_parts <part> <spec.json> <result.json>")
        return 2
    part, spec_file, result_file = argv
    spec = json.loads(Path(spec_file).read_text())
    result = run(part, spec)
    from trainer.files import atomic_write_json

    atomic_write_json(result_file, result)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
