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
    diff = base.config_drift(old, config)
    if diff:
        raise base.ConfigError(
            f"{path} holds a different config ({', '.join(diff)}); use another workdir"
        )
    return True


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


def new_status(command: str, **fields: Any) -> dict[str, Any]:
    """A status.json for a run starting now in this process: every field of the contract
    (docs/file-contracts.md), then ``fields``."""
    now = now_iso()
    return {
        "state": "running",
        "step": 0,
        "total_steps": 0,
        "epoch": 0.0,
        "last_eval": None,
        "error": None,
        "command": command,
        "cwd": os.getcwd(),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "started": now,
        "updated": now,
        "finished": None,
        "wall_time_s": 0.0,
        "versions": versions(),
        **fields,
    }


class Records:
    """status.json / metrics.jsonl / TensorBoard / stdout of one run (no-op unless ``primary``)."""

    def __init__(
        self,
        workdir: str | os.PathLike,
        *,
        primary: bool,
        command: str,
        total_steps: int = 0,
        tensorboard: bool | None = None,
    ):
        self.workdir = Path(workdir)
        self.primary = primary
        self.start_time = time.time()
        self.status = new_status(command, total_steps=int(total_steps))
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
