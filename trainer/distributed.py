"""Multi-process start-up: ``jax.distributed.initialize()`` when ``config.distributed`` asks.

``distributed.initialize``: ``yes`` always, ``no`` never, ``auto`` when the job looks multi-process:
a coordinator address is configured, Slurm runs more than one task (``SLURM_NTASKS > 1``), a TPU
pod names several workers (``TPU_WORKER_HOSTNAMES`` / ``MEGASCALE_COORDINATOR_ADDRESS``), or this
is a Cloud TPU VM. On a TPU VM the workers' environment does not name the slice (JAX finds its
peers in the VM metadata), so ``auto`` initialises there always, as big_vision does
(big_vision/run_tpu.sh sets ``BV_JAX_INIT=1`` for big_vision/train.py, which then calls
``jax.distributed.initialize()``; one VM alone makes a cluster of one). A TPU VM is told the way
JAX itself tells it (``jax._src.cloud_tpu_init``): a PCI device of Google's vendor id with a TPU
device id (``jax._src.hardware_utils.num_available_tpu_chips_and_device_id``) and libtpu
installed (without it JAX runs on the CPU and finds no TPU cluster to join). With no explicit
address/count/id, JAX's own cluster detection (Slurm, TPU, MPI) fills them in.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax

GOOGLE_PCI_VENDOR = "0x1ae0"
# TPU chips' PCI device ids (v3, an unnamed one, v4, v5p, v5e, v6e, TPU7x), from
# jax/_src/hardware_utils.py (_TPU_PCI_DEVICE_IDS).
TPU_PCI_DEVICES = ("0x0027", "0x0056", "0x005e", "0x0062", "0x0063", "0x006f", "0x0076")
PCI_DEVICES = Path("/sys/bus/pci/devices")


def tpu_chips(pci_devices: str | os.PathLike = PCI_DEVICES) -> int:
    """TPU chips attached to this machine through PCI (0 off a TPU VM)."""
    n = 0
    for vendor in Path(pci_devices).glob("*/vendor"):
        try:
            if vendor.read_text().strip() != GOOGLE_PCI_VENDOR:
                continue  # Google's vendor id alone is also its virtual NIC on any GCE VM
            if (vendor.parent / "device").read_text().strip() in TPU_PCI_DEVICES:
                n += 1
        except OSError:
            continue
    return n


def libtpu_installed(env: Mapping[str, str] | None = None) -> bool:
    """Whether JAX would load the TPU runtime: ``TPU_LIBRARY_PATH`` or the libtpu package."""
    env = os.environ if env is None else env
    path = env.get("TPU_LIBRARY_PATH")
    return bool(path and os.path.isfile(path)) or importlib.util.find_spec("libtpu") is not None


def on_tpu_vm(
    pci_devices: str | os.PathLike = PCI_DEVICES, env: Mapping[str, str] | None = None
) -> bool:
    """A Cloud TPU VM as JAX sees one: TPU chips on the PCI bus and libtpu to drive them."""
    return tpu_chips(pci_devices) > 0 and libtpu_installed(env)


def should_initialize(
    dist_cfg: Any,
    env: Mapping[str, str] | None = None,
    pci_devices: str | os.PathLike = PCI_DEVICES,
) -> bool:
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
    if env.get("MEGASCALE_COORDINATOR_ADDRESS"):
        return True
    return on_tpu_vm(pci_devices, env)


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
