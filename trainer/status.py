"""The run's records in its workdir: ``config.json``, ``status.json``, ``metrics.jsonl``, optional
TensorBoard events, and the progress line on stdout (formats in docs/file-contracts.md).

Only process 0 writes; other processes get a ``Records`` that does nothing. Process 0 also holds
an exclusive ``flock`` on ``<workdir>/.trainer.lock`` from its ``Records`` until ``close``, so a
second trainer on the same workdir is refused (``WorkdirError``, one line) before it writes
anything; the kernel drops the lock with the process, so a kill leaves nothing stale.
TensorBoard events
(``train/*``, ``eval/*`` scalars and the config as hyperparameters) are written without
TensorFlow by ``trainer.events`` (``PSWEEPS_TENSORBOARD=0`` turns them off); so is a Weights &
Biases run when ``wandb`` is installed and configured.
"""

from __future__ import annotations

import datetime
import errno
import importlib.metadata
import json
import os
import platform
import re
import socket
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sweeps import base
from trainer import events, files
from trainer.files import Busy, FileLock, append_jsonl, atomic_write_json, read_json
from trainer.files import path as as_path

STATES = ("pending", "running", "done", "failed", "diverged", "preempted")
LOCK_FILE = ".trainer.lock"
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


class WorkdirError(Exception):
    """The workdir cannot be used: another trainer holds it, or it cannot be written (one line)."""


def resolve_workdir(workdir: str | os.PathLike) -> Path:
    """``workdir`` as an absolute local path or an epath ``gs://`` path; a bad gs:// one (no
    bucket, no gcsfs) raises ``WorkdirError`` in one line, before any work."""
    problem = files.remote_problem(workdir)
    if problem:
        raise WorkdirError(problem)
    return as_path(workdir) if files.is_remote(workdir) else Path(workdir).absolute()


_OS_CODE = re.compile(r"\[os_error_code='?(\d+)'?\]")  # how TensorStore passes errno on
_QUOTED_PATH = re.compile(r'"(/[^"]+)"')


def os_error_code(e: BaseException) -> int | None:
    """The errno behind ``e``: an ``OSError``'s, or the one TensorStore (orbax's writer) puts in
    its message; None for errors that do not come from the operating system."""
    if isinstance(e, OSError) and e.errno:
        return e.errno
    m = _OS_CODE.search(str(e))
    return int(m.group(1)) if m else None


def error_line(e: BaseException) -> str:
    """One line for status.json and the console: the operating system's reason and the file
    for OS errors (a full disk, a read-only file system), else the exception's first line."""
    code = os_error_code(e)
    if code is not None:
        path = getattr(e, "filename", None) or next(iter(_QUOTED_PATH.findall(str(e))[-1:]), "")
        return f"{os.strerror(code)} [errno {code}]" + (f" writing {path}" if path else "")
    lines = f"{type(e).__name__}: {e}".strip().splitlines()
    return (lines[0] if lines else type(e).__name__)[:2000]


# ----------------------------------------------------------------------------- config.json


def check_config(workdir: str | os.PathLike, config: Any) -> bool:
    """Refuse (``ConfigError``, one line) a workdir whose config.json holds a different config.
    Returns whether config.json already exists."""
    path = as_path(workdir) / "config.json"
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
            f"{path} holds a different config ({base.drift_text(diff)}); use another workdir"
        )
    return True


# ----------------------------------------------------------------------------- TensorBoard


def tensorboard_available() -> bool:
    if os.environ.get("PSWEEPS_TENSORBOARD", "1") == "0":
        return False
    return events.available()


def scalar_tags(kind: str, record: Mapping[str, Any]) -> dict[str, float]:
    """A metrics.jsonl record as TensorBoard scalars: ``train_loss`` -> ``train/loss``,
    ``eval_top1`` -> ``eval/top1``, ``lr`` -> ``train/lr`` (the step is the axis; an eval's
    epoch is the train line's)."""
    skip = ("step", "epoch") if kind == "eval" else ("step",)
    return {
        f"{kind}/{k.removeprefix(kind + '_')}": float(v)
        for k, v in record.items()
        if k not in skip and isinstance(v, (int, float)) and not isinstance(v, bool)
    }


# ----------------------------------------------------------------------------- the lock


def workdir_problem(workdir: Path, e: OSError) -> str:
    """One line for an OSError met while claiming or writing ``workdir``."""
    if e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return f"the workdir {workdir} cannot be written ({e.strerror}); use another --workdir"
    if e.errno in (errno.ENOTDIR, errno.EEXIST):
        return f"the workdir {workdir} (or a folder above it) is a file; use another --workdir"
    return f"the workdir {workdir}: {e.strerror or e}"


def claim(workdir: Path) -> FileLock:
    """Take ``<workdir>/.trainer.lock``; ``WorkdirError`` (one line) when another trainer holds
    it or the workdir cannot be written."""
    try:
        return FileLock(as_path(workdir) / LOCK_FILE).acquire()
    except Busy as e:
        raise WorkdirError(
            f"another trainer (pid {e.owner}) is running in {workdir}; wait for it or stop it first"
        ) from None
    except OSError as e:
        raise WorkdirError(workdir_problem(as_path(workdir), e)) from None


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
        self.workdir = as_path(workdir)
        self.primary = primary
        self.start_time = time.time()
        self.status = new_status(command, total_steps=int(total_steps))
        self._tb = None
        self._lock: FileLock | None = None
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
            self._lock = claim(self.workdir)
            if tensorboard is None:
                tensorboard = tensorboard_available()
            self._tb = events.writers(self.workdir, tensorboard)

    @property
    def metrics_path(self) -> Path:
        return self.workdir / "metrics.jsonl"

    def write_config(self, config: Any) -> None:
        if self.primary:
            atomic_write_json(self.workdir / "config.json", config.to_dict())
            if self._tb is not None:
                self._tb.hparams(base.flatten(config), self.workdir.name)

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
            self._tb.scalars(record["step"], scalar_tags(kind, record))

    def progress(self, text: str) -> None:
        if self.primary:
            print(text, flush=True)

    def close(self, **final: Any) -> None:
        """Write the ``final`` status fields (if any), stop TensorBoard, release the workdir."""
        try:
            if final:
                self.update(**final)
        finally:
            if self._tb is not None:
                self._tb.close()
                self._tb = None
            if self._lock is not None:
                self._lock.release()
                self._lock = None


def read_status(workdir: str | os.PathLike) -> dict[str, Any] | None:
    return read_json(as_path(workdir) / "status.json")
