"""Slurm launcher (``python -m launch <sweep> --launcher slurm``), through submitit.

The pending trials of a sweep go in as ONE job array (``executor.batch()``; at most
``--slurm-array-parallelism`` tasks at once), and the evaluator (``python -m evaluator
--runs=<sweep dir> --watch``, then the report) as a job of its own. Nothing is kept besides the
trials' status.json: rerunning the command submits what is still to do (``to_run``),
and refuses while jobs of the same sweep are still in the queue, so nothing runs twice.

Each array task runs the trainer as a child process (the exact argv of ``Trial.command``) in a
``TrialJob``, which follows submitit's checkpointing protocol:

* time limit: Slurm sends USR2 ``signal_delay_s`` before the end (submitit's ``--signal``);
  submitit calls ``TrialJob.checkpoint()``, which sends SIGTERM to the trainer, waits for its
  clean save (status ``preempted``, exit 0) and returns a ``DelayedSubmission`` of itself;
  submitit then requeues the job, and the trainer resumes from its workdir by itself.
* preemption, ``scancel --signal=TERM``, ``scontrol requeue``: the trainer gets SIGTERM from
  Slurm directly and saves; when the job is still RUNNING afterwards (nobody requeued or
  cancelled it) the task requeues itself with ``scontrol requeue``. A cancelled job stays
  cancelled.

The trainer ignores USR2 (it is set to SIG_IGN before exec), so only the wrapper acts on it.
A trial can span nodes (``--nodes``, ``--ntasks-per-node``, one task per GPU): every task runs
the same trainer command and ``distributed.initialize=auto`` starts ``jax.distributed`` from the
Slurm environment (``SLURM_NTASKS > 1``).

Job states come from Slurm (submitit reads ``sacct``; see README "Running on Slurm" for
clusters without accounting), but the launcher itself only trusts status.json.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from launch.table import status_table
from launch.trials import DONE_STATES, LaunchOptions, Trial, todo
from sweeps.base import ConfigError
from trainer import files

JOB_PREFIX = "psweeps"


class SlurmError(ConfigError):
    """A bad Slurm option or a refused submission; the message is one line."""


# ----------------------------------------------------------------------------- options


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


# ----------------------------------------------------------------------------- the jobs


def _ignore_usr_signal() -> None:
    """In the trainer child, before exec: Slurm's USR2 warning is for the wrapper only."""
    signal.signal(_usr_signal(), signal.SIG_IGN)


def _usr_signal() -> signal.Signals:
    return getattr(signal, "SIG" + os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2"))


class Command:
    """A submitit job that runs argv lists one after the other as child processes in ``cwd``.

    On a time limit or preemption it stops the running child with SIGTERM, waits for it and
    asks to be requeued (submitit's checkpointing protocol); the commands must resume by
    themselves, as the trainer and evaluator do from their run directories."""

    def __init__(
        self,
        argvs: Sequence[Sequence[str]],
        cwd: str,
        stop_timeout_s: float = 80.0,
        log_path: str = "",
    ):
        self.argvs = [list(a) for a in argvs]
        self.cwd = cwd
        self.stop_timeout_s = stop_timeout_s
        self.log_path = log_path  # rank 0's child output is appended here ('' = the job's log)
        self._pid: int | None = None
        self._returncode: int | None = None

    def __getstate__(self) -> dict[str, Any]:  # the child process does not travel in the pickle
        return {**self.__dict__, "_pid": None, "_returncode": None}

    def __call__(self) -> list[int]:
        if _own_rank() != 0:
            # submitit only calls checkpoint() on rank 0; the other ranks pass the warning on.
            signal.signal(_usr_signal(), lambda *_: self._terminate())
        codes = []
        for argv in self.argvs:
            code = self._run(argv)
            codes.append(code)
            if code != 0:
                break
        return self._finish(codes)

    def _finish(self, codes: list[int]) -> list[int]:
        if codes[-1] in (-signal.SIGTERM, 128 + signal.SIGTERM) and _own_rank() == 0:
            # stopped by Slurm's SIGTERM (preemption): run again if nobody cancelled the job
            if _requeue_self():
                sys.exit(-1)
        if codes[-1] != 0:
            raise RuntimeError(f"{shlex.join(self.argvs[len(codes) - 1])} exited {codes[-1]}")
        return codes

    def _run(self, argv: list[str]) -> int:
        self._returncode = None
        out = None
        if self.log_path and _own_rank() == 0:
            log = Path(self.cwd, self.log_path)
            log.parent.mkdir(parents=True, exist_ok=True)
            out = open(log, "ab")  # closed once the child has it
            out.write(
                f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {_job_id()} {shlex.join(argv)}\n".encode()
            )
            out.flush()
            print(f"{shlex.join(argv)}\n  output: {log}", flush=True)
        try:
            proc = subprocess.Popen(
                argv,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT if out else None,
                preexec_fn=_ignore_usr_signal,
            )
        finally:
            if out:
                out.close()
        self._pid = proc.pid
        # Reap with os.waitpid rather than Popen.wait: a signal handler (checkpoint) waits for
        # the same child, and Popen.wait's internal lock would deadlock against it.
        while self._reap() is None:
            time.sleep(0.5)
        return self._returncode if self._returncode is not None else 1

    def _reap(self) -> int | None:
        if self._returncode is not None or self._pid is None:
            return self._returncode
        try:
            pid, status = os.waitpid(self._pid, os.WNOHANG)
        except ChildProcessError:  # reaped by the other path already
            return self._returncode
        if pid == 0:
            return None
        self._returncode = os.waitstatus_to_exitcode(status)
        return self._returncode

    def _terminate(self) -> None:
        """SIGTERM to the running child, then wait (up to ``stop_timeout_s``) for it to exit."""
        if self._pid is None or self._reap() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self._pid, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout_s
        while self._reap() is None and time.monotonic() < deadline:
            time.sleep(0.2)

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        import submitit

        self._terminate()
        return submitit.helpers.DelayedSubmission(
            Command(self.argvs, self.cwd, self.stop_timeout_s, self.log_path)
        )


class TrialJob(Command):
    """The submitit job of one trial: the trainer's argv, and the trial's status.json."""

    def __init__(
        self, argv: Sequence[str], cwd: str, status_path: str, name: str, log_path: str = ""
    ):
        super().__init__([argv], cwd, log_path=log_path)
        self.status_path = status_path
        self.name = name

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        import submitit

        self._terminate()
        return submitit.helpers.DelayedSubmission(
            TrialJob(self.argvs[0], self.cwd, self.status_path, self.name, self.log_path)
        )

    def _state(self) -> str:
        path = Path(self.status_path)
        if not path.is_absolute():
            path = Path(self.cwd) / path
        try:
            return str((files.read_json(path, default={}) or {}).get("state", "?"))
        except (OSError, json.JSONDecodeError):
            return "unreadable"

    def _finish(self, codes: list[int]) -> list[int]:
        if _own_rank() != 0:  # status.json is rank 0's to write; the others report exit codes
            return super()._finish(codes)
        state = self._state()
        if state == "preempted" and _requeue_self():
            # Exit without a result, as submitit does after its own requeue; the job runs again.
            sys.exit(-1)
        if state != "done":
            raise RuntimeError(
                f"trial {self.name} ended {state} (exit {codes[-1]}); see {self.status_path}"
            )
        return codes


def _own_rank() -> int:
    """This task's global rank (submitit's ``JobEnvironment().global_rank`` reads the same)."""
    return int(os.environ.get("SLURM_PROCID", "0") or 0)


def _job_id() -> str:
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    return f"{array}_{task}" if array and task else os.environ.get("SLURM_JOB_ID", "")


def _requeue_self() -> bool:
    """Requeue this job if it is still RUNNING (a SIGTERM that nobody followed with a requeue or
    a cancel, e.g. ``scancel --signal=TERM``); a cancelled or already requeued job is left be."""
    jid = _job_id()
    if not jid:
        return False
    try:
        info = subprocess.run(
            ["scontrol", "show", "job", "-o", jid], capture_output=True, text=True, timeout=60
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return False
    m = re.search(r"\bJobState=(\w+)", info)
    if not m or m.group(1) not in ("RUNNING", "PREEMPTED"):
        return m is not None and m.group(1) in ("REQUEUED", "PENDING")
    r = subprocess.run(["scontrol", "requeue", jid], capture_output=True, text=True, timeout=60)
    print(
        f"trial preempted: requeued job {jid} ({(r.stdout + r.stderr).strip() or 'ok'})", flush=True
    )
    return r.returncode == 0


# ----------------------------------------------------------------------------- submission


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
        payloads: list[Command] = [
            TrialJob(
                t.command(options.python),
                cwd,
                str(t.status_path),
                t.name,
                log_path=str(t.log_path),
            )
            for t in left
        ]
        jobs.append(
            JobPlan(
                "trials",
                {**trial_parameters(opts, trials[0].sweep), **comment},
                payloads,
                [t.name for t in left],
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
            ]
        ]
        if _available("evaluator.report"):
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
            for argv in payload.argvs:
                out.append(f"# {where} ({name}): {shlex.join(argv)}")
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
    options = LaunchOptions(python=args.python, no_eval=args.no_eval)
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


def _available(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False
