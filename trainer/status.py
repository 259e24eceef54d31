"""The run's records in its workdir: ``config.json``, ``status.json``, ``metrics.jsonl``, optional
TensorBoard events, and the progress line on stdout (formats in docs/file-contracts.md).

Only process 0 writes; other processes get a ``Records`` that does nothing. TensorBoard events
are written by clu's ``metric_writers`` in a background thread, and only when TensorFlow is
importable (``PSWEEPS_TENSORBOARD=0`` turns them off): importing TensorFlow takes seconds, and
training must never depend on it.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import importlib.util
import json
import os
import platform
import queue
import shlex
import socket
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sweeps import base
from trainer.files import append_jsonl, atomic_write_json, read_json

STATES = ("pending", "running", "done", "failed", "diverged", "preempted")
_VERSIONED = ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "ml-collections", "numpy")


def now_iso() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def versions(packages: Sequence[str] = _VERSIONED, absent: str | None = None) -> dict[str, str]:
    """Python's and each installed package's version; a missing package is left out, or given
    as ``absent`` where that is set."""
    out = {"python": platform.python_version()}
    for name in packages:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            if absent is not None:
                out[name] = absent
    return out


# ----------------------------------------------------------------------------- config.json


def _normalised(config: Mapping[str, Any]) -> dict[str, Any]:
    """Flattened config with JSON types (tuples -> lists), so a file and a live config compare."""
    return json.loads(json.dumps(base.flatten(config), default=list))


# Where a trial runs, not what it trains: each process of one run has its own process_id.
_PLACEMENT = ("distributed.",)


def config_drift(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """``key: old -> new`` for every flattened key whose value differs (or exists on one side),
    ignoring the ``distributed.*`` placement keys."""
    a, b = _normalised(old), _normalised(new)
    missing = object()
    out = []
    for key in sorted(set(a) | set(b)):
        if key.startswith(_PLACEMENT):
            continue
        va, vb = a.get(key, missing), b.get(key, missing)
        if va != vb:
            show = lambda v: "<absent>" if v is missing else json.dumps(v)
            out.append(f"{key}: {show(va)} -> {show(vb)}")
    return out


def check_config(workdir: str | os.PathLike, config: Any) -> bool:
    """Refuse (``ConfigError``, one line) a workdir whose config.json holds a different config.
    Returns whether config.json already exists."""
    path = Path(workdir) / "config.json"
    if not path.exists():
        return False
    try:
        old = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise base.ConfigError(
            f"{path} is unreadable ({e}); remove it or use another workdir"
        ) from None
    diff = config_drift(old, config.to_dict() if hasattr(config, "to_dict") else config)
    if diff:
        raise base.ConfigError(
            f"{path} holds a different config ({'; '.join(diff)}); use another workdir"
        )
    return True


# ----------------------------------------------------------------------------- command line


def command_from_argv(argv: Sequence[str]) -> str:
    """The command that reruns this trainer invocation (``python -m trainer`` + its flags)."""
    return shlex.join(["python", "-m", "trainer", *argv[1:]])


def _flag_value(v: Any) -> str:
    if isinstance(v, (tuple, list)):
        return "(" + ",".join(repr(x) for x in v) + ("," if len(v) == 1 else "") + ")"
    return str(v)


def command_from_config(config: Any, workdir: str | os.PathLike) -> str:
    """A command line that rebuilds ``config`` from ``sweeps/base.py``: the closest preset plus
    ``--config.key=value`` for every key that differs from it."""
    flat = _normalised(config.to_dict())
    best: tuple[int, str, list[str]] | None = None
    for preset in base.PRESETS:
        ref = _normalised(base.get_config(preset).to_dict())
        diff = [k for k in flat if flat[k] != ref.get(k)]
        if best is None or len(diff) < best[0]:
            best = (len(diff), preset, diff)
    assert best is not None
    _, preset, diff = best
    args = ["python", "-m", "trainer", f"--config=sweeps/base.py:{preset}"]
    args += [f"--config.{k}={_flag_value(flat[k])}" for k in diff]
    args.append(f"--workdir={workdir}")
    return shlex.join(args)


def format_eta(seconds: float) -> str:
    seconds = max(int(seconds), 0)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


# ----------------------------------------------------------------------------- TensorBoard


def tensorboard_available() -> bool:
    if os.environ.get("PSWEEPS_TENSORBOARD", "1") == "0":
        return False
    return all(importlib.util.find_spec(m) is not None for m in ("tensorflow", "tensorboard"))


class _TensorBoard:
    """clu ``SummaryWriter`` fed from a queue by a daemon thread (TensorFlow loads there)."""

    def __init__(self, logdir: Path):
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, args=(logdir,), daemon=True)
        self._thread.start()

    def _run(self, logdir: Path) -> None:
        try:
            import tensorflow as tf
            from clu import metric_writers

            tf.config.set_visible_devices([], "GPU")  # TF must not take the accelerator
            writer = metric_writers.SummaryWriter(str(logdir))
        except Exception as e:  # TensorBoard is optional: report once, keep training
            print(f"tensorboard events off: {type(e).__name__}: {e}", file=sys.stderr)
            writer = None
        while True:
            item = self._queue.get()
            if item is None:
                break
            if writer is not None:
                step, scalars = item
                writer.write_scalars(step, scalars)
        if writer is not None:
            writer.flush()
            writer.close()

    def write(self, step: int, scalars: Mapping[str, float]) -> None:
        self._queue.put((int(step), dict(scalars)))

    def close(self, timeout: float = 30.0) -> None:
        self._queue.put(None)
        self._thread.join(timeout)


# ----------------------------------------------------------------------------- records


class Records:
    """status.json / metrics.jsonl / TensorBoard / stdout of one run (no-op unless ``primary``)."""

    def __init__(
        self,
        workdir: str | os.PathLike,
        *,
        primary: bool,
        command: str,
        total_steps: int,
        tensorboard: bool | None = None,
    ):
        self.workdir = Path(workdir)
        self.primary = primary
        self.start_time = time.time()
        self.status: dict[str, Any] = {
            "state": "running",
            "step": 0,
            "total_steps": int(total_steps),
            "epoch": 0.0,
            "last_eval": None,
            "error": None,
            "command": command,
            "cwd": os.getcwd(),
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started": now_iso(),
            "updated": now_iso(),
            "finished": None,
            "wall_time_s": 0.0,
            "versions": versions(),
        }
        self._tb = None
        if primary:
            # Fields another stage put there (a launcher's job id, say) and the last evaluation
            # of an earlier attempt survive a restart; everything else is this attempt's.
            try:
                before = read_status(self.workdir) or {}
            except (OSError, ValueError):
                before = {}
            if isinstance(before, dict):
                last_eval = before.get("last_eval") or None
                self.status = {**before, **self.status, "last_eval": last_eval}
            self.workdir.mkdir(parents=True, exist_ok=True)
            if tensorboard is None:
                tensorboard = tensorboard_available()
            if tensorboard:
                self._tb = _TensorBoard(self.workdir / "tensorboard")

    @property
    def metrics_path(self) -> Path:
        return self.workdir / "metrics.jsonl"

    def write_config(self, config: Any) -> None:
        if self.primary:
            atomic_write_json(self.workdir / "config.json", config.to_dict())

    def update(self, **fields: Any) -> None:
        """Merge ``fields`` into status.json and rewrite it atomically."""
        if "state" in fields and fields["state"] not in STATES:
            raise ValueError(f"state {fields['state']!r} is not one of {', '.join(STATES)}")
        self.status.update(fields)
        self.status["updated"] = now_iso()
        self.status["wall_time_s"] = round(time.time() - self.start_time, 3)
        if fields.get("state") in ("done", "failed", "diverged", "preempted"):
            self.status["finished"] = now_iso()
        if self.primary:
            atomic_write_json(self.workdir / "status.json", self.status)

    def train(self, record: Mapping[str, Any]) -> None:
        self._metric("train", record)

    def eval(self, record: Mapping[str, Any]) -> None:
        self._metric("eval", record)

    def _metric(self, kind: str, record: Mapping[str, Any]) -> None:
        if not self.primary:
            return
        line = {"kind": kind, **record, "wall_time": round(time.time() - self.start_time, 3)}
        append_jsonl(self.metrics_path, line)
        if self._tb is not None:
            scalars = {
                f"{kind}/{k}" if not k.startswith(kind) else k: v
                for k, v in record.items()
                if k not in ("step",) and isinstance(v, (int, float))
            }
            self._tb.write(record["step"], scalars)

    def progress(self, text: str) -> None:
        if self.primary:
            print(text, flush=True)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None


def read_status(workdir: str | os.PathLike) -> dict[str, Any] | None:
    return read_json(Path(workdir) / "status.json")
