"""Checkpoints of a training run: orbax ``CheckpointManager`` under ``<workdir>/checkpoints``.

Layout: ``<workdir>/checkpoints/<step>/`` (orbax step directories; a step being written is a
``<step>.orbax-checkpoint-tmp*`` directory without a commit marker and is ignored by every reader).
The saved item is one dict ``{"step", "params", "batch_stats", "opt_state", "ema_params"?,
"rng"}``: everything an exact resume needs (data order is a function of (seed, step)).

Kept: the latest ``checkpoint.max_to_keep`` steps for resume, every ``checkpoint.keep_every_steps``
step for the evaluator, and the final step (orbax preservation policies).

For the evaluator: ``list_steps(ckpt_dir)`` and ``restore_variables(ckpt_dir, step)``, both
read-only (orbax may create ``_SNAPSHOTS`` there, nothing else). ``save_variables`` writes the
part of the item those read (``{"step", "params", "batch_stats"}``) for checkpoints this
pipeline did not train (the TF checkpoint importer), so they are read like any other.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from orbax.checkpoint.checkpoint_managers import preservation_policy as pp

CHECKPOINT_DIR = "checkpoints"
SNAPSHOTS = "_SNAPSHOTS"  # orbax's snapshot folder (orbax.checkpoint.checkpoint_utils._SNAPSHOTS)


def checkpoint_dir(workdir: str | os.PathLike) -> Path:
    return Path(workdir).absolute() / CHECKPOINT_DIR


def save_steps(step: int, ckpt_cfg: Any, total_steps: int) -> bool:
    """Whether the trainer saves after ``step``: every ``every_steps``, every
    ``keep_every_steps`` (so the kept ones exist) and the final step."""
    every, keep = int(ckpt_cfg.every_steps), int(ckpt_cfg.keep_every_steps)
    return step == total_steps or step % every == 0 or (keep > 0 and step % keep == 0)


class Checkpointer:
    """The training run's checkpoint manager (all processes call every method together)."""

    def __init__(self, workdir: str | os.PathLike, ckpt_cfg: Any, total_steps: int):
        policies: list[pp.PreservationPolicy] = [pp.LatestN(int(ckpt_cfg.max_to_keep))]
        if int(ckpt_cfg.keep_every_steps) > 0:
            policies.append(pp.EveryNSteps(int(ckpt_cfg.keep_every_steps)))
        policies.append(pp.CustomSteps([int(total_steps)]))
        options = ocp.CheckpointManagerOptions(
            preservation_policy=pp.AnyPreservationPolicy(policies),
            enable_async_checkpointing=bool(ckpt_cfg.async_save),
            cleanup_tmp_directories=True,
            create=True,
        )
        self.directory = checkpoint_dir(workdir)
        self.manager = ocp.CheckpointManager(
            self.directory, item_handlers=ocp.StandardCheckpointHandler(), options=options
        )
        self.last_saved = self.manager.latest_step()

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

    def save(self, step: int, state: Any) -> None:
        """Start saving ``state`` as ``step`` (async: returns once the arrays are copied), unless
        ``step`` is the one saved last (a run resumed at its end, a preemption on a save step)."""
        if step == self.last_saved:
            return
        self.manager.save(step, args=ocp.args.StandardSave(state), force=True)
        self.last_saved = step

    def reached_preemption(self, step: int) -> bool:
        """True on every process at the same step after a preemption notice (SIGTERM under
        ``jax.distributed``); always False without the preemption service."""
        return bool(self.manager.reached_preemption(step))

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.close()


# ----------------------------------------------------------------------------- evaluator side


def _reader(ckpt_dir: str | os.PathLike) -> ocp.CheckpointManager:
    return ocp.CheckpointManager(
        Path(ckpt_dir).absolute(),
        item_handlers=ocp.StandardCheckpointHandler(),
        options=ocp.CheckpointManagerOptions(read_only=True, create=False, save_interval_steps=0),
    )


def list_steps(ckpt_dir: str | os.PathLike) -> list[int]:
    """Finalised checkpoint steps in ``ckpt_dir``, ascending ([] when there is none)."""
    if not Path(ckpt_dir).is_dir():
        return []
    with _reader(ckpt_dir) as m:
        return sorted(int(s) for s in m.all_steps())


def restore_variables(ckpt_dir: str | os.PathLike, step: int) -> dict[str, Any]:
    """``{"params", "batch_stats"}`` (plus ``"ema_params"`` when the run kept an EMA) of
    checkpoint ``step`` as host numpy arrays, on any number of devices and processes."""
    steps = list_steps(ckpt_dir)
    if step not in steps:
        raise FileNotFoundError(
            f"checkpoint step {step} not found in {ckpt_dir}; finalised steps: {steps or 'none'}"
        )
    with _reader(ckpt_dir) as m:
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
        Path(ckpt_dir).absolute(), item_handlers=ocp.StandardCheckpointHandler(), options=options
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
    are never rewritten in place."""
    from etils import epath
    from orbax.checkpoint import checkpoint_utils

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
    shutil.rmtree(Path(ckpt_dir) / SNAPSHOTS / str(step), ignore_errors=True)


def drop_snapshots(ckpt_dir: Path) -> None:
    """Snapshots left by a killed reader (one evaluator per sweep owns _SNAPSHOTS)."""
    snaps = Path(ckpt_dir) / SNAPSHOTS
    if snaps.is_dir():
        for d in snaps.iterdir():
            if d.name.isdigit():
                shutil.rmtree(d, ignore_errors=True)
