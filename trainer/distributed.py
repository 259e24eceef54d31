"""Multi-process start-up: ``jax.distributed.initialize()`` when ``config.distributed`` asks.

``distributed.initialize``: ``yes`` always, ``no`` never, ``auto`` when the job looks multi-process:
a coordinator address is configured, Slurm runs more than one task (``SLURM_NTASKS > 1``), or a TPU
pod names several workers (``TPU_WORKER_HOSTNAMES`` / ``MEGASCALE_COORDINATOR_ADDRESS``). With no
explicit address/count/id, JAX's own cluster detection (Slurm, TPU, MPI) fills them in.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import jax


def should_initialize(dist_cfg: Any, env: Mapping[str, str] | None = None) -> bool:
    env = os.environ if env is None else env
    mode = dist_cfg.initialize
    if mode == "yes":
        return True
    if mode == "no":
        return False
    if dist_cfg.coordinator_address:
        return True
    try:
        if int(env.get("SLURM_NTASKS", "1") or "1") > 1:
            return True
    except ValueError:
        pass
    if "," in env.get("TPU_WORKER_HOSTNAMES", ""):
        return True
    return bool(env.get("MEGASCALE_COORDINATOR_ADDRESS"))


def initialize(dist_cfg: Any, env: Mapping[str, str] | None = None) -> bool:
    """Call ``jax.distributed.initialize`` if ``dist_cfg`` says so (before any JAX work).
    Returns whether it did."""
    if not should_initialize(dist_cfg, env):
        return False
    if jax.distributed.is_initialized():  # a second run in the same process
        return True
    kwargs: dict[str, Any] = {}
    if dist_cfg.coordinator_address:
        kwargs["coordinator_address"] = dist_cfg.coordinator_address
    if int(dist_cfg.num_processes) > 0:
        kwargs["num_processes"] = int(dist_cfg.num_processes)
    if int(dist_cfg.process_id) >= 0:
        kwargs["process_id"] = int(dist_cfg.process_id)
    jax.distributed.initialize(**kwargs)
    return True


def is_initialized() -> bool:
    """Whether ``jax.distributed`` is up in this process."""
    return bool(jax.distributed.is_initialized())


def block_every_step() -> bool:
    """Multi-process CPU (gloo) collectives can deadlock when steps pile up asynchronously, so
    the loop blocks on each step there; elsewhere dispatch stays asynchronous."""
    return jax.process_count() > 1 and jax.default_backend() == "cpu"
