"""Several trials on one accelerator: ``--trials-per-device K`` (local and Slurm launchers).

A small network at 64x64 uses a fraction of an H200, and what a study pays for is accelerator
hours; so K trainer processes may share one device, each with its share of device memory:
``XLA_PYTHON_CLIENT_MEM_FRACTION = 0.9 / K`` and ``XLA_PYTHON_CLIENT_PREALLOCATE=true`` (each
process claims its share when it starts, so K processes never race for the same memory and one
that needs more than its share fails at once, with an out-of-memory error naming it, instead of
starving the others later). On a CPU, where nothing is preallocated, nothing is set: the K
processes share the cores (the local launcher's slot). A trial's results do not depend on K:
each process runs the same program on the same data (tests/test_packing.py checks the final
parameters bit for bit).

This module owns the option: its allowed values (``parse``), its one-line error, the ``auto``
rule (``auto_trials``) and the environment of a packed process (``memory_env``).

``auto``: 1 on a CPU (no accelerator visible). On a GPU the smallest over the sweep's models of

* a size rule, by parameter count (``AUTO_BY_PARAMS``): up to 3M parameters (ResNet-2..6 at
  width 1: 0.07-2.3M, the study's small nets) 4 per device, up to 12M (ResNet-10..18,
  EfficientNet-B0..B2) 2, larger 1;
* a memory rule: ``floor(0.9 * device memory / need)`` with ``need = RUNTIME_BYTES +
  BYTES_PER_PARAM * parameters`` (the runtime and activations at batch 1024, 64x64, bf16,
  rounded up from the H200 bench's device peaks: ResNet-50 3.9 GB, ResNet-6 0.9 GB).

The size thresholds are where the H200's aggregate images/s of K = 1, 2, 4 packed trials is to
decide them (bench/gpu_check.sh measures it; docs/performance.md); until that run they are the
estimate above. Where no GPU is visible to the launcher (a Slurm login node) only the size rule
applies; pass an integer to override.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from typing import Any

from sweeps.base import ConfigError

AUTO = "auto"
MAX_TRIALS_PER_DEVICE = 8
MEMORY_TOTAL_FRACTION = 0.9  # of one device, split between its K processes
AUTO_BY_PARAMS = ((3_000_000, 4), (12_000_000, 2))  # (most parameters, K); larger: 1
RUNTIME_BYTES = 2 * 2**30
BYTES_PER_PARAM = 160
ALLOWED = f"an integer 1..{MAX_TRIALS_PER_DEVICE} or {AUTO}"
HELP = (
    f"trials sharing one accelerator, each with 0.9/K of its memory: {ALLOWED} "
    "(auto: from model size and device memory; 1 on a CPU). Default 1"
)


def parse(text: str | int) -> int | str:
    """``--trials-per-device``'s value: an int in 1..MAX or ``"auto"``; one-line ConfigError."""
    value = str(text).strip().lower()
    if value == AUTO:
        return AUTO
    try:
        k = int(value)
    except ValueError:
        k = 0
    if not 1 <= k <= MAX_TRIALS_PER_DEVICE or str(k) != value.lstrip("+"):
        raise ConfigError(f"--trials-per-device {text!r} is not allowed; expected {ALLOWED}")
    return k


def memory_env(k: int, accelerator: bool = True) -> dict[str, str]:
    """The environment of one of ``k`` processes sharing a GPU: its memory share (module doc);
    nothing for ``k == 1`` or on a CPU."""
    if k <= 1 or not accelerator:
        return {}
    return {
        "XLA_PYTHON_CLIENT_MEM_FRACTION": f"{MEMORY_TOTAL_FRACTION / k:.3f}",
        "XLA_PYTHON_CLIENT_PREALLOCATE": "true",
    }


def by_size(params: int) -> int:
    for most, k in AUTO_BY_PARAMS:
        if params <= most:
            return k
    return 1


def auto_trials(params: Iterable[int], device_bytes: int | None) -> int:
    """``auto``'s K for models of ``params`` parameters each on devices of ``device_bytes``
    (None: no accelerator visible -> 1; 0: unknown memory -> the size rule alone)."""
    params = list(params)
    if device_bytes is None or not params:
        return 1
    k = min(by_size(p) for p in params)
    if device_bytes:
        need = RUNTIME_BYTES + BYTES_PER_PARAM * max(params)
        k = min(k, math.floor(MEMORY_TOTAL_FRACTION * device_bytes / need))
    return max(1, min(k, MAX_TRIALS_PER_DEVICE))


def gpu_memory_bytes() -> int | None:
    """Memory of the first GPU this launcher sees (``nvidia-smi``), 0 when it cannot say, None
    without a GPU (no ``nvidia-smi``, or ``CUDA_VISIBLE_DEVICES`` empty / -1)."""
    import shutil
    import subprocess

    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return None
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=memory.total", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        ).stdout.split()
        return int(float(out[0]) * 2**20) if out else 0
    except (OSError, subprocess.SubprocessError, ValueError):
        return 0


def parameter_count(config: Any) -> int:
    """The model's parameter count, from shapes alone (``jax.eval_shape`` of its init)."""
    import jax
    import jax.numpy as jnp

    from trainer.models import build_model

    model = build_model(config.model, config.data.num_classes)
    size = int(config.data.image_size)
    dummy = jax.ShapeDtypeStruct((1, size, size, 3), jnp.float32)
    shapes = jax.eval_shape(lambda x: model.init(jax.random.PRNGKey(0), x, train=False), dummy)
    return sum(math.prod(a.shape) for a in jax.tree.leaves(shapes.get("params", {})))


def resolve(value: int | str, configs: Iterable[Any], device_bytes: int | None) -> int:
    """K for the trials of ``configs``: an int as given; ``auto`` by the rule (module doc) for
    devices of ``device_bytes`` (``gpu_memory_bytes()``; None on a CPU, 0 when unknown)."""
    if value != AUTO:
        return int(value)
    if device_bytes is None:
        return 1  # CPU: the cores are already shared out between the --jobs processes
    distinct = {}
    for c in configs:  # one count per distinct model (a grid repeats them)
        distinct.setdefault(repr(c.model.to_dict()) + repr(c.data.image_size), c)
    return auto_trials((parameter_count(c) for c in distinct.values()), device_bytes)
