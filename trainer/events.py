"""TensorBoard event files written without TensorFlow: the trainer's ``train/*`` and ``eval/*``
scalars, the evaluator's ``perceptual/*`` and ``probes/*`` scalars and a run's hyperparameters.

An event file is a sequence of TFRecords (length, masked CRC-32C of the length, an ``Event``
protobuf, its masked CRC-32C), the format TensorBoard reads. The protobufs and the CRC come from
the ``tensorboard`` package (``tensorboard.compat.proto``, its TensorFlow stub's
``masked_crc32c``); nothing here imports TensorFlow, so training and scoring never pay its
import or need its wheels. Each writer owns one file, ``events.out.tfevents.<time>.<host>.<pid>
<suffix>``: the trainer and the evaluator write into the same ``<trial>/tensorboard/`` folder,
each its own file, and TensorBoard shows them on one step axis.

A Weights & Biases run is logged beside them when ``wandb`` is installed (the ``wandb`` extra)
and configured: ``WANDB_PROJECT`` or ``WANDB_MODE`` set (``WANDB_MODE=offline`` writes under
``<workdir>/wandb/``), and ``PSWEEPS_WANDB`` is not ``0``. One run per trial (its id derived
from the workdir, so a resumed trial continues it), named after the trial, grouped by sweep.
A writer that fails is dropped with one line on stderr; training goes on.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import socket
import struct
import sys
import time
from collections.abc import Mapping
from typing import Any

TAG_PREFIXES = ("train", "eval", "perceptual", "probes")  # the first part of every scalar tag


def available() -> bool:
    """Whether the ``tensorboard`` package (a default dependency) can be imported."""
    try:
        from tensorboard.compat.proto import event_pb2  # noqa: F401
    except ImportError:
        return False
    return True


def hparam_value(value: Any) -> bool | int | float | str:
    """A config value as TensorBoard's HParams plugin takes it: numbers and booleans as they
    are, anything else (tuples, None) as its text."""
    return value if isinstance(value, (bool, int, float, str)) else str(value)


class EventWriter:
    """Appends scalars (and once, hyperparameters) to a new event file in ``logdir``."""

    def __init__(self, logdir: str | os.PathLike, suffix: str = ""):
        from tensorboard.compat.proto import event_pb2, summary_pb2
        from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c

        self._event_pb2, self._summary_pb2, self._crc = event_pb2, summary_pb2, masked_crc32c
        name = f"events.out.tfevents.{time.time():.6f}.{socket.gethostname()}.{os.getpid()}"
        self.path = os.path.join(os.fspath(logdir), name + suffix)
        if "://" in self.path:  # gs://: through etils.epath; an object is uploaded on close
            from etils import epath

            epath.Path(logdir).mkdir(parents=True, exist_ok=True)
            self._file = epath.Path(self.path).open("wb")
        else:
            os.makedirs(logdir, exist_ok=True)
            self._file = open(self.path, "ab")  # noqa: SIM115 (held open while the run lasts)
        self._write(event_pb2.Event(wall_time=time.time(), file_version="brain.Event:2"))

    def _write(self, event: Any) -> None:
        data = event.SerializeToString()
        head = struct.pack("<Q", len(data))
        self._file.write(head + struct.pack("<I", self._crc(head)))
        self._file.write(data + struct.pack("<I", self._crc(data)))

    def scalars(self, step: int, values: Mapping[str, float]) -> None:
        """One event at ``step`` with a scalar per tag (``train/loss``: ``0.41``)."""
        summary = self._summary_pb2.Summary(
            value=[
                self._summary_pb2.Summary.Value(tag=tag, simple_value=float(v))
                for tag, v in values.items()
            ]
        )
        self._write(self._event_pb2.Event(wall_time=time.time(), step=int(step), summary=summary))
        self._file.flush()

    def hparams(self, values: Mapping[str, Any], group: str | None = None) -> None:
        """The run's hyperparameters for TensorBoard's HParams tab (``group``: the trial's
        name, so a resumed run stays one row)."""
        from tensorboard.plugins.hparams import summary_v2

        pb = summary_v2.hparams_pb({k: hparam_value(v) for k, v in values.items()}, group)
        self._write(self._event_pb2.Event(wall_time=time.time(), step=0, summary=pb))
        self._file.flush()

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()


def wandb_wanted(env: Mapping[str, str] = os.environ) -> bool:
    """Whether to log to Weights & Biases: ``wandb`` installed and configured (module doc)."""
    if env.get("PSWEEPS_WANDB", "1") == "0":
        return False
    if not (env.get("WANDB_PROJECT") or env.get("WANDB_MODE")):
        return False
    return importlib.util.find_spec("wandb") is not None


class WandbRun:
    """The trial's Weights & Biases run, with the interface of ``EventWriter``."""

    def __init__(self, workdir: str | os.PathLike):
        import wandb

        os.environ.setdefault("WANDB_SILENT", "true")  # no banners in train.log
        path = os.path.abspath(os.fspath(workdir))
        trial, sweep = os.path.basename(path), os.path.basename(os.path.dirname(path))
        self._run = wandb.init(
            project=os.environ.get("WANDB_PROJECT") or "perceptual-sweeps",
            id=hashlib.sha256(path.encode()).hexdigest()[:16],
            name=trial,
            group=sweep,
            dir=path,
            resume="allow",
            settings=wandb.Settings(console="off"),
        )

    def scalars(self, step: int, values: Mapping[str, float]) -> None:
        self._run.log(dict(values), step=int(step))

    def hparams(self, values: Mapping[str, Any], group: str | None = None) -> None:
        self._run.config.update(
            {k: hparam_value(v) for k, v in values.items()}, allow_val_change=True
        )

    def close(self) -> None:
        self._run.finish()


class Writers:
    """Every writer of a run behind one interface; one that raises is dropped, said once."""

    def __init__(self, writers: list[Any]):
        self._writers = writers

    def _each(self, method: str, *args: Any) -> None:
        for w in list(self._writers):
            try:
                getattr(w, method)(*args)
            except Exception as e:  # logging is optional: report once, keep training
                self._writers.remove(w)
                print(f"{type(w).__name__} off: {type(e).__name__}: {e}", file=sys.stderr)

    def scalars(self, step: int, values: Mapping[str, float]) -> None:
        if values:
            self._each("scalars", step, values)

    def hparams(self, values: Mapping[str, Any], group: str | None = None) -> None:
        self._each("hparams", values, group)

    def close(self) -> None:
        self._each("close")
        self._writers = []


def writers(
    workdir: str | os.PathLike, tensorboard: bool = True, wandb: bool | None = None
) -> Writers | None:
    """The run's writers: TensorBoard events in ``<workdir>/tensorboard`` (when ``tensorboard``
    and the package is there) and a wandb run (when ``wandb_wanted()``); None when neither."""
    made: list[Any] = []
    makers = []
    if tensorboard and available():
        logdir = os.path.join(os.fspath(workdir), "tensorboard")
        makers.append(("tensorboard", lambda: EventWriter(logdir)))
    if wandb_wanted() if wandb is None else wandb:
        makers.append(("wandb", lambda: WandbRun(workdir)))
    for name, make in makers:
        try:
            made.append(make())
        except Exception as e:  # optional: say so once, keep going
            print(f"{name} logging off: {type(e).__name__}: {e}", file=sys.stderr)
    return Writers(made) if made else None
