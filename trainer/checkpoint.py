"""Checkpoints of a training run: orbax ``CheckpointManager`` under ``<workdir>/checkpoints``.

Layout: ``<workdir>/checkpoints/<step>/`` (orbax step directories; a step being written is a
``<step>.orbax-checkpoint-tmp*`` directory without a commit marker and is ignored by every reader).
The saved item is one dict ``{"step", "params", "batch_stats", "opt_state", "ema_params"?,
"rng"}``: everything an exact resume needs (data order is a function of (seed, step)).

Kept: the latest ``checkpoint.max_to_keep`` steps for resume, every ``checkpoint.keep_every_steps``
step for the evaluator, and the final step (orbax preservation policies).

Integrity (trainer/integrity.py): every step gets ``integrity.json`` before it commits, and
both restores check it first. The trainer's ``restore_latest_good`` walks back from the newest
step: a step that fails the check (or, lacking a record, fails to restore) is moved aside to
``<workdir>/checkpoints-damaged/<step>`` (outside orbax's listing, never deleted) and the next
older one is tried; with none left the run starts afresh. ``restore_variables`` raises
``integrity.Damaged`` (one line) instead, and the evaluator records that as an error.

For the evaluator: ``list_steps(ckpt_dir)`` and ``restore_variables(ckpt_dir, step)``, both
read-only (orbax may create ``_SNAPSHOTS`` there, nothing else). ``save_variables`` writes the
part of the item those read (``{"step", "params", "batch_stats"}``) for checkpoints this
pipeline did not train (the TF checkpoint importer), so they are read like any other.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from orbax.checkpoint.checkpoint_managers import preservation_policy as pp

from trainer import files, integrity

CHECKPOINT_DIR = "checkpoints"
DAMAGED_DIR = "checkpoints-damaged"  # steps moved aside by restore_latest_good
SNAPSHOTS = "_SNAPSHOTS"  # orbax's snapshot folder (orbax.checkpoint.checkpoint_utils._SNAPSHOTS)


def _abs(d: str | os.PathLike) -> Path:
    """``d`` as an absolute local path, or as an ``epath`` path for a ``gs://`` URL."""
    return files.path(d) if files.is_remote(d) else Path(d).absolute()


def checkpoint_dir(workdir: str | os.PathLike) -> Path:
    return _abs(workdir) / CHECKPOINT_DIR


def intervals(ckpt_cfg: Any, steps_per_epoch: int | None = None) -> tuple[int, int]:
    """``(every, keep)``: save every ``every`` steps and keep every ``keep``-th (0: none) for the
    evaluator. ``checkpoint.every_epochs`` > 0 sets both to that many epochs of this run (at
    least one step): a sweep asks for "a checkpoint per epoch" without knowing how many examples
    the data on the machine holds; otherwise ``every_steps`` and ``keep_every_steps``."""
    epochs = float(ckpt_cfg.get("every_epochs", 0.0) or 0.0)
    if epochs > 0:
        if not steps_per_epoch:
            raise ValueError("checkpoint.every_epochs > 0 needs the run's steps per epoch")
        n = max(1, round(epochs * steps_per_epoch))
        return n, n
    return int(ckpt_cfg.every_steps), int(ckpt_cfg.keep_every_steps)


def save_steps(step: int, every: int, keep: int, total_steps: int) -> bool:
    """Whether the trainer saves after ``step``: every ``every`` steps, every ``keep``-th (so
    the kept ones exist; ``intervals`` gives the two) and the final step."""
    return step == total_steps or step % every == 0 or (keep > 0 and step % keep == 0)


class Checkpointer:
    """The training run's checkpoint manager (all processes call every method together).

    Saves go through orbax's async checkpointer even with ``checkpoint.async_save=False`` (which
    then waits for each save): its post-finalization callback is where the integrity record is
    written, before the step commits."""

    def __init__(
        self,
        workdir: str | os.PathLike,
        ckpt_cfg: Any,
        total_steps: int,
        steps_per_epoch: int | None = None,
    ):
        self.every, self.keep = intervals(ckpt_cfg, steps_per_epoch)
        self.total_steps = int(total_steps)
        policies: list[pp.PreservationPolicy] = [pp.LatestN(int(ckpt_cfg.max_to_keep))]
        if self.keep > 0:
            policies.append(pp.EveryNSteps(self.keep))
        policies.append(pp.CustomSteps([int(total_steps)]))
        options = ocp.CheckpointManagerOptions(
            preservation_policy=pp.AnyPreservationPolicy(policies),
            enable_async_checkpointing=True,
            async_options=ocp.AsyncOptions(post_finalization_callback=self._write_record),
            cleanup_tmp_directories=True,
            create=True,
        )
        self.wait_each_save = not bool(ckpt_cfg.async_save)
        self.directory = checkpoint_dir(workdir)
        self.damaged_dir = _abs(workdir) / DAMAGED_DIR
        self._saving: int | None = None  # the step of the save in flight (one at a time)
        self.manager = ocp.CheckpointManager(
            self.directory, item_handlers=ocp.StandardCheckpointHandler(), options=options
        )
        self.last_saved = self.manager.latest_step()

    def should_save(self, step: int) -> bool:
        """``save_steps`` with this run's intervals."""
        return save_steps(step, self.every, self.keep, self.total_steps)

    def __enter__(self) -> Checkpointer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def restore(self, step: int, like: Any) -> Any:
        """Restore ``step`` into the structure, shapes, dtypes and shardings of ``like`` (arrays
        or ``ShapeDtypeStruct``s with shardings)."""
        abstract = jax.tree.map(
            lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=a.sharding), like
        )
        return self.manager.restore(step, args=ocp.args.StandardRestore(abstract))

    def restore_latest_good(
        self, like: Any, say: Callable[[str], None]
    ) -> tuple[int | None, Any, list[dict[str, Any]]]:
        """``(step, state, moved)``: the newest step that passes its integrity check and
        restores, walking back from the latest; each step that does not is moved aside (see the
        module doc) and reported through ``say`` in one line. ``(None, None, moved)`` when no
        step is left. ``moved`` lists ``{"step", "reason", "moved_to"}``."""
        moved: list[dict[str, Any]] = []
        for step in sorted(self.manager.all_steps(), reverse=True):
            verdict = None
            try:
                verdict = integrity.verify(self.directory / str(step))
                with _quiet_unraisable():
                    state = self.restore(step, like)
            except Exception as e:
                # A verified step that fails to restore is not damaged (a bug, memory): raise.
                if not isinstance(e, integrity.Damaged) and verdict == integrity.VERIFIED:
                    raise
                reason = str(e) if isinstance(e, integrity.Damaged) else read_error(e)
                to = self._move_aside(step)
                moved.append({"step": step, "reason": reason, "moved_to": str(to)})
                say(f"checkpoint {step} is damaged ({reason}); moved to {to}, trying older ones")
                continue
            if verdict == integrity.NO_RECORD:
                say(f"checkpoint {step} has {integrity.NO_RECORD}: saved by an older version")
            self.last_saved = step
            return step, state, moved
        self.last_saved = None
        return None, None, moved

    def _move_aside(self, step: int) -> Path:
        """Rename ``checkpoints/<step>`` into ``checkpoints-damaged/`` (a new name if taken)."""
        _sync(f"psweeps-move-aside-{step}")  # every process is done with the step
        to = self.damaged_dir / str(step)
        n = 1
        while to.exists():
            n += 1
            to = self.damaged_dir / f"{step}-{n}"
        if jax.process_index() == 0:
            self.damaged_dir.mkdir(parents=True, exist_ok=True)
            _move(self.directory / str(step), to)
        _sync(f"psweeps-moved-aside-{step}")
        self.manager.reload()
        return to

    def save(self, step: int, state: Any) -> None:
        """Start saving ``state`` as ``step`` (async: returns once the arrays are copied), unless
        ``step`` is the one saved last (a run resumed at its end, a preemption on a save step)."""
        if step == self.last_saved:
            return
        self.manager.wait_until_finished()  # the previous save's record names its own step
        self._saving = step
        self.manager.save(step, args=ocp.args.StandardSave(state), force=True)
        self.last_saved = step
        if self.wait_each_save:
            self.manager.wait_until_finished()

    def _write_record(self) -> None:
        """orbax's post-finalization callback (primary process, background thread): the step's
        files are all written and not yet committed."""
        step = self._saving
        tmp = sorted(self.directory.glob(f"{step}.orbax-checkpoint-tmp*"))
        # Without atomic renames (a commit-marker filesystem) the step is written in place.
        integrity.write_record(tmp[-1] if tmp else self.directory / str(step), int(step))

    def reached_preemption(self, step: int) -> bool:
        """True on every process at the same step after a preemption notice (SIGTERM under
        ``jax.distributed``); always False without the preemption service."""
        return bool(self.manager.reached_preemption(step))

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.close()


def _move(src: Path, dst: Path) -> None:
    """Rename a directory; on gs:// (no directories to rename) copy each object, then delete."""
    if not files.is_remote(src):
        os.rename(src, dst)
        return
    for f in files.walk_files(src):
        f.copy(dst / os.fspath(f)[len(os.fspath(src)) + 1 :])
    src.rmtree()


def _sync(name: str) -> None:
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


class _quiet_unraisable:
    """Silence "Exception ignored in <coroutine>" reports while a restore runs: a TensorStore read
    that fails leaves orbax's pending coroutines behind, each printing a traceback ending in
    "Event loop is closed" when collected; the failure itself is raised and reported once."""

    def __enter__(self) -> None:
        self._old = sys.unraisablehook
        sys.unraisablehook = lambda unraisable: None

    def __exit__(self, *exc: Any) -> None:
        import gc

        gc.collect()  # collect the leftovers while the hook is quiet
        sys.unraisablehook = self._old


def read_error(e: BaseException) -> str:
    """One line for an orbax restore that failed: the innermost cause (orbax wraps TensorStore's
    error, which names the file and what is wrong with it, in a generic one)."""
    while e.__cause__ is not None:
        e = e.__cause__
    text = " ".join(str(e).split()).split(" See full TensorStore details")[0]
    return f"{type(e).__name__}: {text}"[:300]


# ----------------------------------------------------------------------------- evaluator side


def _reader(ckpt_dir: str | os.PathLike) -> ocp.CheckpointManager:
    return ocp.CheckpointManager(
        _abs(ckpt_dir),
        item_handlers=ocp.StandardCheckpointHandler(),
        options=ocp.CheckpointManagerOptions(read_only=True, create=False, save_interval_steps=0),
    )


def list_steps(ckpt_dir: str | os.PathLike) -> list[int]:
    """Finalised checkpoint steps in ``ckpt_dir``, ascending ([] when there is none)."""
    if not files.path(ckpt_dir).is_dir():
        return []
    with _reader(ckpt_dir) as m:
        return sorted(int(s) for s in m.all_steps())


def restore_variables(ckpt_dir: str | os.PathLike, step: int) -> dict[str, Any]:
    """``{"params", "batch_stats"}`` (plus ``"ema_params"`` when the run kept an EMA) of
    checkpoint ``step`` as host numpy arrays, on any number of devices and processes, after its
    integrity check (``integrity.Damaged``, one line; a step without a record is read as is)."""
    steps = list_steps(ckpt_dir)
    if step not in steps:
        raise FileNotFoundError(
            f"checkpoint step {step} not found in {ckpt_dir}; finalised steps: {steps or 'none'}"
        )
    try:
        integrity.verify(files.path(ckpt_dir) / str(step))
    except integrity.Damaged as e:
        raise integrity.Damaged(f"checkpoint {step} is damaged: {e}") from None
    with _reader(ckpt_dir) as m, _quiet_unraisable():
        meta = m.item_metadata(step)
        # Metadata -> numpy targets: restores onto the host whatever the saving topology was.
        target = jax.tree.map(lambda a: np.zeros(a.shape, a.dtype), _plain(meta))
        state = m.restore(step, args=ocp.args.StandardRestore(target))
    out = {"params": state["params"], "batch_stats": state.get("batch_stats", {})}
    if state.get("ema_params") is not None:
        out["ema_params"] = state["ema_params"]
    return out


def save_variables(ckpt_dir: str | os.PathLike, step: int, variables: dict[str, Any]) -> None:
    """Write ``{"step", "params", "batch_stats"}`` (host arrays) as the finalised checkpoint
    ``step`` of ``ckpt_dir`` (synchronously; other steps are kept), the item
    ``restore_variables`` reads back."""
    item = {
        "step": np.asarray(step, np.int32),
        "params": variables["params"],
        "batch_stats": variables.get("batch_stats") or {},
    }
    options = ocp.CheckpointManagerOptions(enable_async_checkpointing=False, create=True)
    with ocp.CheckpointManager(
        _abs(ckpt_dir), item_handlers=ocp.StandardCheckpointHandler(), options=options
    ) as m:
        m.save(int(step), args=ocp.args.StandardSave(item), force=True)


def _plain(meta: Any) -> Any:
    """The metadata tree with orbax's metadata mapping types turned into plain dicts."""
    if hasattr(meta, "tree"):
        meta = meta.tree
    return meta


# ----------------------------------------------------------------------------- snapshots


def snapshot(ckpt_dir: Path, step: int) -> Path | None:
    """Hard-link copy of ``ckpt_dir/<step>`` at ``ckpt_dir/_SNAPSHOTS/<step>``, so a trainer
    deleting the step meanwhile cannot pull files from under a restore; returns the snapshot
    root (restore from it as a checkpoint directory), None when the step vanished. orbax's own
    snapshot helper is private and deep-copies; links cost nothing and committed orbax files
    are never rewritten in place. On gs:// (no links; a copy would double the traffic) the step
    is read where it is: one deleted mid-restore fails, and the caller skips a vanished step."""
    from etils import epath
    from orbax.checkpoint import checkpoint_utils

    if files.is_remote(ckpt_dir):
        return files.path(ckpt_dir) if (files.path(ckpt_dir) / str(step)).is_dir() else None

    src = Path(ckpt_dir) / str(step)
    dst = Path(checkpoint_utils.get_snapshot_dir_from_step_dir(epath.Path(src)))
    if dst.exists():  # left by a killed reader: rebuild, it may be partial
        shutil.rmtree(dst, ignore_errors=True)
    dst.parent.mkdir(parents=True, exist_ok=True)

    def link(s, d):
        try:
            os.link(s, d)
        except OSError:  # another filesystem / no hard links: copy
            shutil.copy2(s, d)

    try:
        shutil.copytree(src, dst, copy_function=link)
    except (FileNotFoundError, shutil.Error):
        shutil.rmtree(dst, ignore_errors=True)
        if not src.exists():
            return None
        raise
    return dst.parent


def release_snapshot(ckpt_dir: Path, step: int) -> None:
    if files.is_remote(ckpt_dir):
        return  # snapshot() made none there
    shutil.rmtree(Path(ckpt_dir) / SNAPSHOTS / str(step), ignore_errors=True)


def drop_snapshots(ckpt_dir: Path) -> None:
    """Snapshots left by a killed reader (one evaluator per sweep owns _SNAPSHOTS)."""
    snaps = files.path(ckpt_dir) / SNAPSHOTS
    if not files.is_remote(snaps) and snaps.is_dir():
        for d in snaps.iterdir():
            if d.name.isdigit():
                shutil.rmtree(d, ignore_errors=True)
