"""Slurm launcher (``python -m launch <sweep> --launcher slurm``), through submitit.

The pending trials of a sweep go in as ONE job array (``executor.batch()``; at most
``--slurm-array-parallelism`` tasks at once), and the evaluator (``python -m evaluator
--runs=<sweep dir> --watch``, then the report) as a job of its own. Nothing is kept besides the
trials' status.json: rerunning the command submits what is still to do (``to_run``),
and refuses while jobs of the same sweep are still in the queue, so nothing runs twice.

Each array task runs the trainer as a child process in a ``TrialJob`` (``slurm_jobs.py``: the
jobs and their requeue protocol on time limits and preemption); the flags and the submitit
parameters they give are in ``slurm_options.py``. This module plans, renders (--dry-run) and
submits the jobs, and looks at the queue.

A trial can span nodes (``--nodes``, ``--ntasks-per-node``, one task per GPU): every task runs
the same trainer command and ``distributed.initialize=auto`` starts ``jax.distributed`` from the
Slurm environment (``SLURM_NTASKS > 1``).

Job states come from Slurm (submitit reads ``sacct``; see README "Running on Slurm" for
clusters without accounting), but the launcher itself only trusts status.json.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from launch import packing, results
from launch.slurm_jobs import Command, PackedTrials, TrialJob
from launch.slurm_options import (
    JOB_PREFIX,
    SlurmError,
    SlurmOptions,
    add_slurm_args,
    eval_parameters,
    options_from_args,
    parse_extra,
    parse_time,
    trial_parameters,
)
from launch.table import status_table
from launch.trials import DONE_STATES, LaunchOptions, Trial, todo

# The launcher's interface (python -m launch and the tests use these names from here).
__all__ = [
    "ENDED",
    "JOB_PREFIX",
    "Command",
    "JobPlan",
    "SlurmError",
    "SlurmOptions",
    "TrialJob",
    "active_jobs",
    "add_slurm_args",
    "check_args",
    "dry_run",
    "eval_parameters",
    "job_folder",
    "launch",
    "options_from_args",
    "parse_extra",
    "parse_time",
    "plan",
    "queued_jobs",
    "render",
    "sbatch_script",
    "submit",
    "to_run",
    "trial_parameters",
    "wait",
]


@dataclass
class JobPlan:
    """One job to submit: its submitit parameters and what each of its tasks runs."""

    kind: str  # trials | eval
    parameters: dict[str, Any]
    payloads: list[Command]
    names: list[str]


def plan(trials: Sequence[Trial], options: LaunchOptions, opts: SlurmOptions) -> list[JobPlan]:
    """The jobs for the trials still to run (one array) and the evaluator (unless --no-eval)."""
    cwd = os.getcwd()
    left = to_run(trials)
    sweep_dir = trials[0].workdir.parent
    comment = {"comment": _sweep_tag(sweep_dir)}
    jobs = []
    if left:
        k = max(1, int(options.trials_per_device))
        env = packing.memory_env(k, accelerator=opts.gpus > 0)
        tasks = [
            TrialJob(
                t.command(options.python),
                cwd,
                str(t.status_path),
                t.name,
                log_path=str(t.log_path),
                env=env,
            )
            for t in left
        ]
        payloads: list[Any] = tasks
        if k > 1:  # K trials per array task, sharing its accelerator
            payloads = [PackedTrials(tasks[i : i + k]) for i in range(0, len(tasks), k)]
        jobs.append(
            JobPlan(
                "trials",
                {**trial_parameters(opts, trials[0].sweep), **comment},
                payloads,
                [p.name for p in payloads],
            )
        )
    if not options.no_eval:
        argvs = [
            [
                options.python,
                "-m",
                "evaluator",
                f"--runs={sweep_dir}",
                "--watch",
                f"--poll-seconds={opts.eval_poll_s:g}",
                "--allow-errors",  # error records (damaged checkpoints) must not stop the report
            ]
        ]
        if results.available("evaluator.report"):
            argvs.append([options.python, "-m", "evaluator.report", str(sweep_dir)])
        jobs.append(
            JobPlan(
                "eval",
                {**eval_parameters(opts, trials[0].sweep), **comment},
                [Command(argvs, cwd, log_path=str(sweep_dir / "evaluator.log"))],
                ["evaluator"],
            )
        )
    return jobs


def to_run(trials: Sequence[Trial]) -> list[Trial]:
    """``launch.trials.todo`` plus trials whose status says ``running``: on a cluster a trial is
    alive only while its job is queued, and ``submit`` refuses while jobs of the sweep are, so a
    ``running`` status here is a job that died without saying so (node failure, SIGKILL)."""
    left = {t.name for t in todo(trials)}
    return [t for t in trials if t.name in left or t.status().get("state") == "running"]


def job_folder(trials: Sequence[Trial], opts: SlurmOptions) -> Path:
    """submitit's folder (``%j`` is the job id): scripts, pickles and the jobs' own logs."""
    base_dir = Path(opts.folder) if opts.folder else trials[0].workdir.parent / "slurm"
    return base_dir.absolute() / "%j"


def sbatch_script(job: JobPlan, folder: Path, python: str = sys.executable) -> str:
    """The sbatch script submitit submits for ``job``: the same function submitit renders its
    submission file with (``submitit.slurm.slurm._make_sbatch_string``), with the same command."""
    from submitit.slurm import slurm as submitit_slurm

    command = " ".join(
        [shlex.quote(python), "-u -m submitit.core._submit", shlex.quote(str(folder))]
    )
    map_count = len(job.payloads) if len(job.payloads) > 1 else None
    return submitit_slurm._make_sbatch_string(
        command=command, folder=folder, map_count=map_count, **job.parameters
    )


def render(jobs: Sequence[JobPlan], folder: Path, python: str = sys.executable) -> str:
    """What --dry-run prints: per job its sbatch script, then each task's command."""
    out = []
    for job in jobs:
        kind = (
            f"job array of {len(job.payloads)} trials" if job.kind == "trials" else "evaluator job"
        )
        out.append(f"# ---- {kind}: sbatch script")
        out.append(sbatch_script(job, folder, python).rstrip())
        for i, (name, payload) in enumerate(zip(job.names, job.payloads, strict=True)):
            where = f"array task {i}" if len(job.payloads) > 1 else "task"
            for member in getattr(payload, "members", [payload]):  # PackedTrials: at once
                env = " ".join(f"{k}={v}" for k, v in member.env.items())
                for argv in member.argvs:
                    out.append(
                        f"# {where} ({name}): {(env + ' ') if env else ''}{shlex.join(argv)}"
                    )
    return "\n".join(out)


def _sweep_tag(sweep_dir: Path) -> str:
    # The sweep directory, in the jobs' comment: how a later submission finds jobs of this sweep.
    return f"psweeps:{sweep_dir.absolute()}"


def queued_jobs(sweep_dir: Path) -> list[str]:
    """Ids of this user's jobs in the queue (any state) that belong to ``sweep_dir``."""
    try:
        out = subprocess.run(
            ["squeue", "-h", "--me", "-o", "%i|%k"],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError) as e:
        said = (getattr(e, "stderr", None) or str(e)).strip().splitlines()
        raise SlurmError(
            f"squeue failed ({said[-1] if said else e}); --launcher slurm needs a reachable "
            "Slurm controller"
        ) from None
    tag = _sweep_tag(sweep_dir)
    return [line.split("|", 1)[0] for line in out.splitlines() if line.split("|", 1)[-1] == tag]


def check_args(args: argparse.Namespace) -> None:
    """Validate the Slurm flags before anything is written (``SlurmError``, one line)."""
    opts = options_from_args(args)
    if opts.dry_run:
        return
    if shutil.which("sbatch") is None:
        raise SlurmError(
            "sbatch is not on PATH; --launcher slurm needs a Slurm cluster (or use --dry-run)"
        )
    queued_jobs(Path("."))  # the controller answers (else a one-line SlurmError)


def dry_run(trials: Sequence[Trial], args: argparse.Namespace) -> int:
    opts = options_from_args(args)
    k = int(getattr(args, "trials_per_device", 1))
    options = LaunchOptions(python=args.python, no_eval=args.no_eval, trials_per_device=k)
    jobs = plan(trials, options, opts)
    print(render(jobs, job_folder(trials, opts)))
    return 0


def submit(trials: Sequence[Trial], options: LaunchOptions, opts: SlurmOptions) -> list[Any]:
    """Submit the plan; returns the submitit jobs (trial tasks first, then the evaluator)."""
    import submitit

    sweep_dir = trials[0].workdir.parent
    queued = queued_jobs(sweep_dir)
    if queued:
        raise SlurmError(
            f"{sweep_dir} already has Slurm jobs in the queue ({', '.join(queued)}); "
            "wait for them or scancel them, then run again"
        )
    folder = job_folder(trials, opts)
    submitted = []
    for job in plan(trials, options, opts):
        # The job wrapper runs under this interpreter (it needs submitit and this package);
        # options.python only runs the trainer and evaluator.
        ex = submitit.SlurmExecutor(folder=folder, max_num_timeout=opts.max_timeouts)
        ex.update_parameters(**job.parameters)
        with ex.batch():
            jobs = [ex.submit(p) for p in job.payloads]
        for name, j in zip(job.names, jobs, strict=True):
            print(f"[slurm] {name}: job {j.job_id}, log {j.paths.stdout}", flush=True)
        submitted += jobs
    return submitted


ENDED = ("BOOT_FAIL", "CANCELLED", "COMPLETED", "DEADLINE", "FAILED", "NODE_FAIL")
ENDED += ("OUT_OF_MEMORY", "PREEMPTED", "TIMEOUT")


def active_jobs(job_ids: Sequence[str]) -> list[str] | None:
    """``id state`` of each of ``job_ids`` (array tasks included) that has not ended; None when
    squeue did not answer. Ended jobs stay listed for MinJobAge, then are gone."""
    ids = ",".join(sorted({j.split("_")[0] for j in job_ids}))
    r = subprocess.run(
        ["squeue", "-h", "--states=all", "-o", "%i %T", "-j", ids],
        capture_output=True,
        text=True,
        check=False,
    )
    if r.returncode != 0 and "Invalid job id" not in r.stderr:  # that one: purged, ended
        return None
    rows = [line.split() for line in r.stdout.splitlines() if line.strip()]
    return [" ".join(row) for row in rows if len(row) == 2 and row[1] not in ENDED]


def wait(job_ids: Sequence[str], poll_s: float = 5.0) -> None:
    """Block until every one of ``job_ids`` has ended (a requeued job has not): three answers
    in a row, since a requeue passes through short states."""
    ended = 0
    while ended < 3:
        active = active_jobs(job_ids)
        ended = ended + 1 if active == [] else 0
        if ended < 3:
            time.sleep(poll_s)


def launch(
    trials: Sequence[Trial], options: LaunchOptions, args: argparse.Namespace | None = None
) -> int:
    """Submit the sweep; with --slurm-wait, wait for it and return 0 only if every trial is done."""
    opts = options_from_args(args) if args is not None else SlurmOptions()
    try:
        jobs = submit(trials, options, opts)
    except (SlurmError, OSError, RuntimeError) as e:
        print(f"launch: error: {e}".splitlines()[0], file=sys.stderr)
        return 1
    if not jobs:
        print("[slurm] nothing to submit")
        return 0
    if not opts.wait:
        print(f"[slurm] submitted {len(jobs)} jobs; watch with: squeue --me, or make status")
        return 0
    wait([j.job_id for j in jobs])
    print(status_table(trials))
    return 0 if all(t.status().get("state") in DONE_STATES for t in trials) else 1
