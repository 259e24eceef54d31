"""The TPU launcher's options: its ``--tpu-*`` flags, checked into a ``TpuOptions``.

The accelerator type gives the defaults for the zone and the runtime and the number of workers
per slice (launch/tpu_types.py); ``--tpu-slices N`` names the slices ``<name>-0`` ..
``<name>-<N-1>`` (one slice keeps ``<name>``), and ``--tpu-per-host`` makes every worker of a
slice a slot of its own.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass

from launch.tpu_types import SliceType, slice_type
from sweeps.base import ConfigError

_NAME = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")


class TpuError(ConfigError):
    """A bad TPU option; the message is one line."""


def add_tpu_args(parser: argparse.ArgumentParser) -> None:
    """The TPU flags, for ``python -m launch``'s parser."""
    g = parser.add_argument_group("TPU VM (--launcher tpu)")
    g.add_argument("--tpu-name", default="", help="slice name (default psweeps-<sweep>)")
    g.add_argument(
        "--tpu-type", default="v4-8", help="accelerator type: v4-32, v5litepod-16, v6e-8"
    )
    g.add_argument("--tpu-zone", default="", help="zone (default: one offering the type)")
    g.add_argument("--tpu-version", default="", help="runtime version (default: the type's)")
    g.add_argument("--tpu-project", default="", help="Google Cloud project (default: gcloud's)")
    g.add_argument("--tpu-runs", default="", help="runs folder in a bucket: gs://BUCKET/runs")
    g.add_argument("--tpu-data", default="", help="gs:// folder of prepared data splits")
    g.add_argument("--tpu-slices", type=int, default=1, help="slices running trials at once")
    g.add_argument(
        "--tpu-per-host", action="store_true", help="one trial per worker (trials fitting a host)"
    )
    g.add_argument("--tpu-queued", action="store_true", help="create through queued resources")
    g.add_argument("--tpu-spot", action="store_true", help="spot (preemptible) capacity")
    g.add_argument("--tpu-keep", action="store_true", help="keep the VMs after the sweep")
    g.add_argument("--tpu-poll", type=float, default=60.0, help="seconds between status polls")
    g.add_argument(
        "--tpu-stale",
        type=float,
        default=3600.0,
        help="re-send the start of a trial whose status has not changed for this long (0: never)",
    )
    g.add_argument(
        "--tpu-eval-machine",
        default="e2-standard-8",
        help="machine type of the evaluator's CPU VM (default e2-standard-8)",
    )


@dataclass
class TpuOptions:
    name: str
    zone: str
    project: str
    stype: SliceType
    version: str
    bucket: str
    prefix: str  # path inside the bucket ('' = its root)
    data: str
    slices: int
    per_host: bool
    queued: bool
    spot: bool
    keep: bool
    eval_machine: str
    poll: float = 60.0
    stale: float = 3600.0

    @property
    def type(self) -> str:
        return self.stype.type

    @property
    def hosts(self) -> int:
        """Worker VMs per slice (launch/tpu_types.py)."""
        return self.stype.workers

    @property
    def names(self) -> list[str]:
        """The slices: ``<name>`` alone, or ``<name>-0`` .. ``<name>-<N-1>``."""
        return [self.name] if self.slices == 1 else [f"{self.name}-{i}" for i in range(self.slices)]

    @property
    def slots(self) -> list[str]:
        """What one slice runs at once: one trial on all workers, or one per worker."""
        return [str(k) for k in range(self.hosts)] if self.per_host else ["all"]

    @property
    def mount(self) -> str:
        """The runs folder as the VMs see it (gcsfuse mount of the bucket)."""
        return "/".join(p for p in (f"/gcs/{self.bucket}", self.prefix) if p)

    @property
    def url(self) -> str:
        return "/".join(p for p in (f"gs://{self.bucket}", self.prefix) if p)

    def env(self, name: str) -> dict[str, str]:
        return {
            "TPU_NAME": name,
            "TPU_ZONE": self.zone,
            "TPU_PROJECT": self.project,
            "TPU_TYPE": self.type,
            "TPU_VERSION": self.version,
            "TPU_QUEUED": "1" if self.queued else "0",
            "TPU_SPOT": "1" if self.spot else "0",
            "GCS_BUCKET": self.bucket,
            "DATA_URL": self.data,
            "EVAL_VM": f"{self.name}-eval",
            "EVAL_MACHINE": self.eval_machine,
        }

    def describe(self) -> str:
        per = "one trial per worker" if self.per_host else "one trial per slice"
        init = "no" if self.per_host else "yes"
        return (
            f"# {self.slices} slice(s) {', '.join(self.names)}: {self.stype.describe()}\n"
            f"# zone {self.zone}, runtime {self.version}; {per} "
            f"(--config.distributed.initialize={init}), each trainer detached on its workers"
        )


def options_from_args(args: argparse.Namespace, sweep: str) -> TpuOptions:
    """``TpuOptions`` from the flags, checked (one-line ``TpuError``)."""
    name = args.tpu_name or f"psweeps-{sweep}".lower().replace("_", "-")
    longest = name if args.tpu_slices <= 1 else f"{name}-{args.tpu_slices - 1}"
    if not _NAME.match(name) or len(longest) > 58:
        raise TpuError(
            f"--tpu-name={name!r} is not allowed; expected lowercase letters, digits and '-', "
            "starting with a letter, at most 58 characters with the slice number"
        )
    m = re.fullmatch(r"gs://([a-z0-9][-a-z0-9_.]{1,220}[a-z0-9])(/[^\s]*)?", args.tpu_runs or "")
    if not m:
        raise TpuError(
            f"--tpu-runs={args.tpu_runs!r} is not allowed; expected a bucket folder gs://BUCKET/runs"
        )
    if args.tpu_data and not args.tpu_data.startswith("gs://"):
        raise TpuError(f"--tpu-data={args.tpu_data!r} is not allowed; expected gs://...")
    for flag, value in (("--tpu-zone", args.tpu_zone), ("--tpu-version", args.tpu_version)):
        if value and not re.fullmatch(r"[a-z0-9][-a-z0-9.]*", value):
            raise TpuError(f"{flag}={value!r} is not allowed; expected e.g. us-central2-b")
    for flag, value, low in (
        ("--tpu-slices", args.tpu_slices, 1),
        ("--tpu-poll", args.tpu_poll, 0.01),
        ("--tpu-stale", args.tpu_stale, 0),
    ):
        if value < low:
            raise TpuError(f"{flag}={value} is not allowed; expected a number >= {low}")
    try:
        stype = slice_type(args.tpu_type)
    except ConfigError as e:
        raise TpuError(str(e)) from None
    return TpuOptions(
        name=name,
        zone=args.tpu_zone or stype.generation.zone,
        project=args.tpu_project,
        stype=stype,
        version=args.tpu_version or stype.generation.runtime,
        bucket=m.group(1),
        prefix=(m.group(2) or "").strip("/"),
        data=args.tpu_data,
        slices=args.tpu_slices,
        per_host=bool(args.tpu_per_host),
        queued=bool(args.tpu_queued),
        spot=bool(args.tpu_spot),
        keep=bool(args.tpu_keep),
        eval_machine=args.tpu_eval_machine,
        poll=args.tpu_poll,
        stale=args.tpu_stale,
    )
