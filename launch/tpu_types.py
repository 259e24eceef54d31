"""Cloud TPU accelerator types: the runtime image, workers (VMs) per slice and a default zone.

``python -m launch.tpu_types v5litepod-16`` prints what the TPU launcher takes from a type. The
rules, one row per generation in ``GENERATIONS``, come from Google's pages (read 2025):

* Runtime (``--version`` / ``--runtime-version``) for JAX, https://cloud.google.com/tpu/docs/runtimes
  ("TPU software versions"): v6e ``v2-alpha-tpuv6e``, v5p ``v2-alpha-tpuv5``, v5e
  ``v2-alpha-tpuv5-lite``, v4 and older ``tpu-ubuntu2204-base``.
* v2, v3, v4, v5p types count TensorCores, two per chip, and a VM holds four chips: v4-8 is one
  VM (2x2x1), v4-32 is 16 chips (2x2x4) on four VMs (https://cloud.google.com/tpu/docs/v4,
  https://cloud.google.com/tpu/docs/v5p; google/xpk ``src/xpk/core/system_characteristics.py``:
  v4-32 ``2x2x4``, 4 VMs of 4 chips; v5p-16 2 VMs).
* v5e (``v5litepod-N``) and v6e (``v6e-N``) types count chips. A slice of up to 8 chips is one VM
  (1, 4 or 8 chips); a larger one is several VMs of 4 chips each: the v6e page's table
  (https://cloud.google.com/tpu/docs/v6e) gives v6e-8 one VM (``ct6e-standard-8t``), 4x4 (16
  chips) 4 VMs, 16x16 64 VMs; for v5e, https://cloud.google.com/tpu/docs/v5e-training ("if the
  slice shape is more than 8 chips, there are multiple VMs in one slice"; install with
  ``--worker=all``) and xpk (v5litepod-16 ``4x4``, 4 VMs of ``ct5lp-hightpu-4t``, 4 chips each).
  The v5e page's "Number of hosts" column (4x4: 2) counts physical 8-chip hosts, not the VMs
  ``--worker=all`` reaches.
* Zones: https://cloud.google.com/tpu/docs/regions-zones (v4 only in us-central2-b).
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass

from sweeps.base import ConfigError


@dataclass(frozen=True)
class Generation:
    prefix: str  # the accelerator type's prefix: v4, v5litepod, v6e
    name: str  # what Google's pages call it
    runtime: str  # the TPU VM runtime (software) version for JAX
    zone: str  # a zone offering it, the launcher's default
    per_chip: int  # units of the type's number per chip: 2 TensorCores, or 1 (types count chips)
    chips_per_vm: int  # chips per VM in a slice of several VMs
    one_vm_max: int  # the most chips one VM holds (slices up to this size are one VM)


GENERATIONS = {
    g.prefix: g
    for g in (
        Generation("v2", "TPU v2", "tpu-ubuntu2204-base", "us-central1-b", 2, 4, 4),
        Generation("v3", "TPU v3", "tpu-ubuntu2204-base", "us-central1-a", 2, 4, 4),
        Generation("v4", "TPU v4", "tpu-ubuntu2204-base", "us-central2-b", 2, 4, 4),
        Generation("v5p", "TPU v5p", "v2-alpha-tpuv5", "us-east5-a", 2, 4, 4),
        Generation("v5litepod", "TPU v5e", "v2-alpha-tpuv5-lite", "us-west4-a", 1, 4, 8),
        Generation("v6e", "TPU v6e (Trillium)", "v2-alpha-tpuv6e", "us-east5-b", 1, 4, 8),
    )
}


@dataclass(frozen=True)
class SliceType:
    """One accelerator type: its generation, chips and the VMs (workers) of a slice."""

    type: str
    generation: Generation
    chips: int

    @property
    def workers(self) -> int:
        g = self.generation
        return 1 if self.chips <= g.one_vm_max else self.chips // g.chips_per_vm

    @property
    def chips_per_worker(self) -> int:
        return self.chips // self.workers

    def describe(self) -> str:
        g = self.generation
        vms = "1 worker VM" if self.workers == 1 else f"{self.workers} worker VMs"
        return (
            f"{self.type}: {g.name}, {self.chips} chip(s) on {vms} ({self.chips_per_worker} "
            f"each), runtime {g.runtime}, default zone {g.zone}"
        )


def slice_type(accelerator: str) -> SliceType:
    """The ``SliceType`` of ``v4-32``, ``v5litepod-16``, ``v6e-8``...; ``ConfigError`` (one line)
    for a name that is not a slice of a known generation."""
    allowed = ", ".join(f"{p}-N" for p in GENERATIONS)
    m = re.fullmatch(r"([a-z0-9]+)-(\d+)", accelerator)
    if not m or m.group(1) not in GENERATIONS:
        raise ConfigError(
            f"--tpu-type={accelerator!r} is not a known TPU type; allowed: {allowed} "
            "(v5e is v5litepod-N)"
        )
    g, n = GENERATIONS[m.group(1)], int(m.group(2))
    if g.per_chip > 1:  # TensorCore counts: whole chips and, past one VM, whole VMs
        ok = n >= 8 and n % 8 == 0
        unit = "TensorCores, a multiple of 8"
    else:
        ok = n in (1, 4, 8) or (n > 8 and n % 16 == 0)
        unit = "chips: 1, 4, 8 or a multiple of 16"
    if not ok:
        raise ConfigError(f"--tpu-type={accelerator!r} is not a slice; {g.prefix}-N counts {unit}")
    return SliceType(accelerator, g, n // g.per_chip)


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: python -m launch.tpu_types TYPE [TYPE...]", file=sys.stderr)
        return 2
    try:
        for a in argv:
            print(slice_type(a).describe())
    except ConfigError as e:
        print(f"tpu_types: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
