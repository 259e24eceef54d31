"""The Slurm launcher's flags (``--slurm-*``), checked into ``SlurmOptions``, and the submitit
parameters of the trials' job array and of the evaluator job."""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sweeps.base import ConfigError

JOB_PREFIX = "psweeps"


class SlurmError(ConfigError):
    """A bad Slurm option or a refused submission; the message is one line."""


def add_slurm_args(parser: argparse.ArgumentParser) -> None:
    """The Slurm flags, for ``python -m launch``'s parser."""
    g = parser.add_argument_group("Slurm (--launcher slurm)")
    g.add_argument("--slurm-partition", default="", help="partition (default: the cluster's)")
    g.add_argument(
        "--slurm-time",
        default="4:00:00",
        help="time limit per job: minutes, H:M:S or D-H:M:S (default 4:00:00); a trial that "
        "hits it saves, is requeued and resumes",
    )
    g.add_argument("--slurm-gpus", type=int, default=0, help="GPUs per task (default 0)")
    g.add_argument("--slurm-cpus", type=int, default=4, help="CPUs per task (default 4)")
    g.add_argument(
        "--slurm-mem", default="", help="memory per node, e.g. 64G (default: the cluster's)"
    )
    g.add_argument("--slurm-account", default="", help="account to charge")
    g.add_argument("--slurm-qos", default="", help="quality of service")
    g.add_argument(
        "--slurm-extra",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other sbatch option, e.g. constraint=a100 or exclusive (repeatable)",
    )
    g.add_argument(
        "--slurm-array-parallelism",
        type=int,
        default=64,
        help="most trials running at once (default 64)",
    )
    g.add_argument("--nodes", type=int, default=1, help="nodes per trial (default 1)")
    g.add_argument(
        "--ntasks-per-node",
        type=int,
        default=1,
        help="tasks (processes) per node, one per GPU (default 1)",
    )
    g.add_argument(
        "--slurm-max-timeouts",
        type=int,
        default=20,
        help="how many times a trial may hit the time limit and be requeued (default 20)",
    )
    g.add_argument(
        "--slurm-eval-gpus",
        type=int,
        default=-1,
        help="GPUs of the evaluator job (default: min(1, --slurm-gpus))",
    )
    g.add_argument(
        "--slurm-eval-cpus",
        type=int,
        default=-1,
        help="CPUs of the evaluator job (default: --slurm-cpus)",
    )
    g.add_argument(
        "--slurm-eval-poll",
        type=float,
        default=60.0,
        help="seconds between the evaluator job's looks for new checkpoints (default 60)",
    )
    g.add_argument(
        "--slurm-wait", action="store_true", help="wait until every job has left the queue"
    )
    g.add_argument(
        "--slurm-folder",
        default="",
        help="submitit's folder for job scripts, pickles and logs (default <runs>/<sweep>/slurm)",
    )


@dataclass
class SlurmOptions:
    partition: str = ""
    time_min: int = 240
    gpus: int = 0
    cpus: int = 4
    mem: str = ""
    account: str = ""
    qos: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    array_parallelism: int = 64
    nodes: int = 1
    ntasks_per_node: int = 1
    max_timeouts: int = 20
    eval_gpus: int = 0
    eval_cpus: int = 4
    eval_poll_s: float = 60.0
    wait: bool = False
    folder: str = ""
    dry_run: bool = False


_TIME = re.compile(r"^(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?$")


def parse_time(text: str) -> int:
    """A Slurm time limit (``90``, ``90:00``, ``4:00:00``, ``1-12``, ``2-00:00:00``) in whole
    minutes (rounded up), the unit submitit counts in (it needs a number to judge timeouts and
    has no parser for Slurm's formats)."""
    m = _TIME.match(text.strip())
    if not m or not text.strip():
        raise SlurmError(
            f"--slurm-time={text!r} is not a Slurm time; expected minutes, M:S, H:M:S, D-H, D-H:M or D-H:M:S"
        )
    days, a, b, c = m.groups()
    nums = [int(x) for x in (a, b, c) if x is not None]
    if days is None:  # M | M:S | H:M:S
        weights = {1: (60,), 2: (60, 1), 3: (3600, 60, 1)}[len(nums)]
        seconds = sum(n * w for n, w in zip(nums, weights, strict=True))
    else:
        # D-H | D-H:M | D-H:M:S
        h, mi, s = (nums + [0, 0])[:3]
        seconds = int(days) * 86400 + h * 3600 + mi * 60 + s
    minutes = -(-seconds // 60)
    if minutes < 1:
        raise SlurmError(f"--slurm-time={text!r} is under a minute; expected at least 1 minute")
    return minutes


def parse_extra(items: Sequence[str]) -> dict[str, Any]:
    """``["constraint=a100", "exclusive"]`` -> ``{"constraint": "a100", "exclusive": True}``."""
    out: dict[str, Any] = {}
    for item in items:
        key, eq, value = item.partition("=")
        key = key.strip().lstrip("-")
        if not key or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", key):
            raise SlurmError(
                f"--slurm-extra {item!r} is not allowed; expected KEY=VALUE or KEY (an sbatch long option)"
            )
        out[key.replace("_", "-")] = value if eq else True
    return out


def options_from_args(args: argparse.Namespace) -> SlurmOptions:
    """``SlurmOptions`` from the parsed flags, checked (one-line ``SlurmError``)."""
    for flag, value, lo in (
        ("--slurm-gpus", args.slurm_gpus, 0),
        ("--slurm-cpus", args.slurm_cpus, 1),
        ("--slurm-array-parallelism", args.slurm_array_parallelism, 1),
        ("--nodes", args.nodes, 1),
        ("--ntasks-per-node", args.ntasks_per_node, 1),
        ("--slurm-max-timeouts", args.slurm_max_timeouts, 0),
        ("--slurm-eval-poll", args.slurm_eval_poll, 0.1),
    ):
        if value < lo:
            raise SlurmError(f"{flag}={value} is not allowed; expected a number >= {lo}")
    if args.slurm_mem and not re.fullmatch(r"\d+[KMGT]?B?", args.slurm_mem, re.I):
        raise SlurmError(
            f"--slurm-mem={args.slurm_mem!r} is not allowed; expected e.g. 64G, 512M, 0"
        )
    k = int(getattr(args, "trials_per_device", 1) or 1)
    if k > 1 and (args.nodes > 1 or args.ntasks_per_node > 1):
        raise SlurmError(
            f"--trials-per-device {k} packs trials into one single-task job; allowed with "
            "--nodes 1 --ntasks-per-node 1"
        )
    eval_gpus = args.slurm_eval_gpus if args.slurm_eval_gpus >= 0 else min(1, args.slurm_gpus)
    eval_cpus = args.slurm_eval_cpus if args.slurm_eval_cpus >= 1 else args.slurm_cpus
    return SlurmOptions(
        partition=args.slurm_partition,
        time_min=parse_time(args.slurm_time),
        gpus=args.slurm_gpus,
        cpus=args.slurm_cpus,
        mem=args.slurm_mem,
        account=args.slurm_account,
        qos=args.slurm_qos,
        extra=parse_extra(args.slurm_extra),
        array_parallelism=args.slurm_array_parallelism,
        nodes=args.nodes,
        ntasks_per_node=args.ntasks_per_node,
        max_timeouts=args.slurm_max_timeouts,
        eval_gpus=eval_gpus,
        eval_cpus=eval_cpus,
        eval_poll_s=args.slurm_eval_poll,
        wait=bool(getattr(args, "slurm_wait", False)),
        folder=args.slurm_folder,
        dry_run=bool(getattr(args, "dry_run", False)),
    )


def trial_parameters(opts: SlurmOptions, sweep: str) -> dict[str, Any]:
    """submitit ``SlurmExecutor.update_parameters`` keywords of the trials' job array."""
    p: dict[str, Any] = {
        "job_name": f"{JOB_PREFIX}-{sweep}",
        "time": opts.time_min,
        "nodes": opts.nodes,
        "ntasks_per_node": opts.ntasks_per_node,
        "cpus_per_task": opts.cpus,
        "array_parallelism": opts.array_parallelism,
        "stderr_to_stdout": True,
    }
    if opts.gpus:
        p["gpus_per_task"] = opts.gpus
    return {**p, **_common(opts)}


def eval_parameters(opts: SlurmOptions, sweep: str) -> dict[str, Any]:
    """submitit keywords of the evaluator job (one task)."""
    p: dict[str, Any] = {
        "job_name": f"{JOB_PREFIX}-{sweep}-eval",
        "time": opts.time_min,
        "nodes": 1,
        "ntasks_per_node": 1,
        "cpus_per_task": opts.eval_cpus,
        "stderr_to_stdout": True,
    }
    if opts.eval_gpus:
        p["gpus_per_task"] = opts.eval_gpus
    return {**p, **_common(opts)}


def _common(opts: SlurmOptions) -> dict[str, Any]:
    p: dict[str, Any] = {}
    if opts.partition:
        p["partition"] = opts.partition
    if opts.mem:
        p["mem"] = opts.mem
    if opts.account:
        p["account"] = opts.account
    if opts.qos:
        p["qos"] = opts.qos
    if opts.extra:
        p["additional_parameters"] = dict(opts.extra)
    return p
