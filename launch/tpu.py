"""TPU VM launcher (``python -m launch <sweep> --launcher tpu``): a front to launch/tpu/*.sh.

A sweep runs on ``--tpu-slices N`` Cloud TPU VM slices at once, fed from one queue of trials
(launch/tpu_sched.py). Each trial runs detached on its workers (launch/tpu_worker.py: started
through ``gcloud ... ssh``, which returns at once), so a dropped connection, or this launcher
stopping, costs nothing: rerunning it attaches to the trainers still running. A slice found
preempted mid-trial is deleted and created again, and its trial resumes from its last checkpoint
on the next free slot. By default a trial uses a whole slice: every worker runs the trainer with
``--config.distributed.initialize=yes`` and ``jax.distributed.initialize()`` joins them (as
big_vision does on TPU VMs). With ``--tpu-per-host`` each worker of a slice runs a trial of its
own (for trials that fit one host) with ``--config.distributed.initialize=no``.

The runtime image, the number of workers per slice and the default zone come from the
accelerator type (launch/tpu_types.py, with its sources). The evaluator runs beside the trials
on a small CPU VM (``python -m evaluator --watch``), then the report. Runs live in a bucket
(``--tpu-runs gs://BUCKET/runs``) that every VM mounts with gcsfuse at ``/gcs/BUCKET``: the
trainer and evaluator write plain paths. The steps, each a script in launch/tpu/: ``sync.sh``
(records from the bucket), ``up.sh`` per slice (``create.sh``: ``tpu-vm create`` or a queued
resource; ``setup.sh``: the project tarball with BUILD_INFO.json (launch/tpu_build.py) and
``worker_setup.sh`` on every worker), ``eval_vm.sh`` (the evaluator's VM), ``run.sh`` (a trial's
start), ``state.sh`` (every slice's state, one call), ``delete.sh``. ``--dry-run`` prints every
command, shell-quoted, with the slices' facts.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from launch import tpu_build
from launch.slurm import to_run
from launch.table import status_table
from launch.tpu_options import TpuError, TpuOptions, add_tpu_args, options_from_args
from launch.tpu_sched import Scheduler
from launch.trials import DONE_STATES, LaunchOptions, Trial

SCRIPTS = Path(__file__).resolve().parent / "tpu"
REPO = Path(__file__).resolve().parent.parent
REMOTE_PYTHON = ".venv/bin/python"  # in the project folder on every VM (worker_setup.sh)
DRY_ATTEMPT = "dry-run"  # the attempt id dry runs show (a real start gets a fresh one)
__all__ = [
    "TpuError",
    "TpuOptions",
    "add_tpu_args",
    "check_args",
    "dry_run",
    "launch",
    "options_from_args",
    "remote_command",
    "trainer_command",
]


# ----------------------------------------------------------------------------- commands


def trainer_command(trial: Trial, opts: TpuOptions) -> list[str]:
    """The trainer argv on the workers: ``Trial.command`` with the project's venv python, the
    sweep file relative to the project, the workdir in the mounted bucket and the placement:
    ``jax.distributed`` over the slice's workers, or none for a trial alone on one worker."""
    argv = trial.command(REMOTE_PYTHON)
    out = []
    for a in argv:
        if a.startswith("--config=") and not a.startswith("--config.."):
            path, sep, arg = a[len("--config=") :].rpartition(":")
            p = Path(path)
            if p.is_absolute():
                try:
                    p = p.relative_to(REPO)
                except ValueError:
                    raise TpuError(
                        f"sweep file {path} is outside the project; put it under sweeps/ so the "
                        "workers get it"
                    ) from None
            a = f"--config={p}{sep}{arg}"
        elif a.startswith("--workdir="):
            a = f"--workdir={opts.mount}/{trial.sweep}/{trial.name}"
        out.append(a)
    out.insert(-1, f"--config.distributed.initialize={'no' if opts.per_host else 'yes'}")
    return out


def remote_command(
    trial: Trial,
    opts: TpuOptions,
    slice_name: str | None = None,
    slot: str = "all",
    attempt: str = DRY_ATTEMPT,
) -> list[str]:
    """What run.sh runs on the workers: ``launch.tpu_worker start`` (detached trainer)."""
    where = [f"--slice={slice_name or opts.names[0]}", f"--worker={slot}", f"--attempt={attempt}"]
    if opts.per_host and opts.hosts > 1:  # this VM's chips alone, not the slice's
        where.append("--alone")
    head = [REMOTE_PYTHON, "-m", "launch.tpu_worker", "start", *where, "--"]
    return [*head, *trainer_command(trial, opts)]


def script(name: str, *args: str) -> list[str]:
    return ["bash", str(SCRIPTS / name), *args]


def start_step(
    trial: Trial, opts: TpuOptions, slice_name: str, slot: str, attempt: str
) -> list[str]:
    return script("run.sh", slot, *remote_command(trial, opts, slice_name, slot, attempt))


def sweep_dirs(trials: Sequence[Trial], opts: TpuOptions) -> tuple[str, str, Path]:
    sweep = trials[0].sweep
    return f"{opts.url}/{sweep}", f"{opts.mount}/{sweep}", trials[0].workdir.parent


def eval_step(trials: Sequence[Trial], opts: TpuOptions) -> list[str]:
    _, mounted, _ = sweep_dirs(trials, opts)
    # --allow-errors: error records (damaged checkpoints) must not keep the report from running.
    argv = ["-m", "evaluator", f"--runs={mounted}", "--watch", "--allow-errors"]
    return script("eval_vm.sh", "run", REMOTE_PYTHON, *argv)


def report_step(trials: Sequence[Trial], opts: TpuOptions) -> list[str]:
    _, mounted, _ = sweep_dirs(trials, opts)
    return script("eval_vm.sh", "run", REMOTE_PYTHON, "-m", "evaluator.report", mounted)


def sync_step(trials: Sequence[Trial], opts: TpuOptions) -> list[str]:
    url, _, local = sweep_dirs(trials, opts)
    return script("sync.sh", url, str(local))


class Gcloud:
    """The scripts run with the options' environment (``DRY_RUN=1``: printed, not run)."""

    def __init__(self, trials: Sequence[Trial], opts: TpuOptions, dry: bool, tarball: str = ""):
        self.trials, self.opts, self.dry, self.tarball = trials, opts, dry, tarball

    def env(self, name: str | None = None) -> dict[str, str]:
        env = {**os.environ, **self.opts.env(name or self.opts.names[0])}
        env |= {"DRY_RUN": "1" if self.dry else "0", "PYTHON": sys.executable}
        if self.tarball:
            env |= {"TARBALL": self.tarball, "TARBALL_READY": "1"}
        return env

    def run(
        self,
        cmd: list[str],
        name: str | None = None,
        timeout: float | None = None,
        quiet: bool = False,
    ) -> int:
        """Run a script; ``quiet``: its output is shown only when it fails."""
        sys.stdout.flush()
        out = subprocess.PIPE if quiet else None
        try:
            r = subprocess.run(
                cmd, env=self.env(name), timeout=timeout, stdout=out, stderr=out, check=False
            )
        except subprocess.TimeoutExpired:
            print(f"launch: {' '.join(cmd[1:3])} took over {timeout:.0f}s; stopped", flush=True)
            return 124
        if quiet and r.returncode != 0:
            print((r.stdout + r.stderr).decode(errors="replace")[-2000:], flush=True)
        return r.returncode

    def spawn(self, cmd: list[str], name: str, log: Path) -> subprocess.Popen:
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as out:
            return subprocess.Popen(
                cmd,
                env=self.env(name),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    def states(self) -> dict[str, str] | None:
        """Every slice's state in the zone (None when gcloud could not say)."""
        r = subprocess.run(
            script("state.sh"), env=self.env(), capture_output=True, text=True, timeout=300
        )
        if r.returncode != 0:
            print(f"launch: listing the slices failed: {r.stderr.strip()[-300:]}", flush=True)
            return None
        return dict(ln.split(None, 1) for ln in r.stdout.splitlines() if len(ln.split()) == 2)

    def sync(self) -> None:
        r = subprocess.run(sync_step(self.trials, self.opts), env=self.env(), capture_output=True)
        if r.returncode != 0:
            print(f"launch: syncing the records failed: {r.stderr.decode()[-300:]}", flush=True)


def tarball_path(opts: TpuOptions) -> str:
    """Where the project tarball is packed (once for every slice): ``$TARBALL`` or a temp file."""
    default = Path(tempfile.gettempdir()) / f"perceptual-sweeps-{opts.name}.tar.gz"
    return os.environ.get("TARBALL") or str(default)


def dry_run(trials: Sequence[Trial], args: argparse.Namespace) -> int:
    """Every gcloud command of the sweep, in order, without running any."""
    opts = options_from_args(args, trials[0].sweep)
    cloud = Gcloud(trials, opts, dry=True, tarball=tarball_path(opts))
    print(opts.describe(), flush=True)
    cloud.run(sync_step(trials, opts))
    print(f"# pack the tree and BUILD_INFO.json (launch.tpu_build) into {cloud.tarball}")
    for name in opts.names:
        print(f"# slice {name} (in the background, all slices at once: up.sh)", flush=True)
        cloud.run(script("create.sh"), name)
        cloud.run(script("setup.sh"), name)
    for cmd in eval_steps(trials, opts):
        cloud.run(cmd)
    slots = [(n, s) for n in opts.names for s in opts.slots]
    for i, t in enumerate(to_run(trials)):
        name, slot = slots[i % len(slots)]
        when = "now" if i < len(slots) else "when a slot frees"
        where = name if slot == "all" else f"{name} worker {slot}"
        print(f"# trial {t.name} -> {where} ({when}; detached, returns at once)", flush=True)
        cloud.run(start_step(t, opts, name, slot, DRY_ATTEMPT), name)
    print(
        f"# then every {opts.poll:g}s: the slices' states and the trials' status.json; a lost "
        "slice (PREEMPTED, TERMINATED, SUSPENDED, gone) is deleted and created again (up.sh) "
        "and its trials resume on the next free slot",
        flush=True,
    )
    cloud.run(script("state.sh"))
    for cmd in [report_step(trials, opts), sync_step(trials, opts)]:
        cloud.run(cmd)
    for name, cmd in teardown_steps(opts):
        cloud.run(cmd, name)
    return 0


def eval_steps(trials: Sequence[Trial], opts: TpuOptions) -> list[list[str]]:
    return [script("eval_vm.sh", "create"), script("eval_vm.sh", "setup"), eval_step(trials, opts)]


def teardown_steps(opts: TpuOptions) -> list[tuple[str | None, list[str]]]:
    if opts.keep:
        return []
    return [(n, script("delete.sh")) for n in opts.names] + [(None, script("eval_vm.sh", "delete"))]


def check_args(args: argparse.Namespace) -> None:
    """Validate the TPU flags before anything is written (``TpuError``, one line)."""
    options_from_args(args, Path(args.sweep).stem)
    if not getattr(args, "dry_run", False) and shutil.which("gcloud") is None:
        raise TpuError("gcloud is not on PATH; --launcher tpu needs the Google Cloud CLI")


def start_evaluator(
    cloud: Gcloud, trials: Sequence[Trial], opts: TpuOptions
) -> subprocess.Popen | None:
    """The evaluator VM made and set up (the slices come up meanwhile), then ``evaluator
    --watch`` on it in the background, its output in ``<runs>/<sweep>/evaluator.log``."""
    create, setup, watch = eval_steps(trials, opts)
    for cmd in (create, setup):
        if cloud.run(cmd) != 0:
            print(f"launch: error: {' '.join(cmd[1:3])} failed; no evaluator", file=sys.stderr)
            return None
    return cloud.spawn(watch, opts.names[0], trials[0].workdir.parent / "evaluator.log")


def stopped_note(opts: TpuOptions) -> str:
    """What to do with the VMs this launcher leaves when it is stopped."""
    env = f"TPU_ZONE={opts.zone} TPU_QUEUED={int(opts.queued)}"
    delete = "; ".join(f"TPU_NAME={n} {env} bash launch/tpu/delete.sh" for n in opts.names)
    return (
        f"launch: stopped; the trainers keep running detached on {', '.join(opts.names)}: run "
        f"the same command again to attach to them, or delete the slices: {delete}; and the "
        f"evaluator's VM: TPU_NAME={opts.names[0]} EVAL_VM={opts.name}-eval TPU_ZONE={opts.zone} "
        "bash launch/tpu/eval_vm.sh delete"
    )


def finish_evaluator(evaluator: subprocess.Popen, trials: Sequence[Trial]) -> int:
    """Wait for ``evaluator --watch`` to end; it waits for pending and preempted trials, so one
    left so (a slice given up, a trial started too often) ends it here instead (exit 1)."""
    left = [t.name for t in trials if t.status().get("state") not in (*DONE_STATES, "failed")]
    if not left:
        return evaluator.wait()
    print(f"[tpu] {len(left)} trials did not end ({', '.join(left[:5])}); stopping the evaluator")
    os.killpg(evaluator.pid, signal.SIGTERM)
    evaluator.wait()
    return 1


def launch(
    trials: Sequence[Trial], options: LaunchOptions, args: argparse.Namespace | None = None
) -> int:
    """Run the sweep on the slices; 0 when every trial is done (and scored)."""
    if args is None:
        print("launch: error: --launcher tpu needs its --tpu-* flags", file=sys.stderr)
        return 2
    opts = options_from_args(args, trials[0].sweep)
    tarball = tarball_path(opts)
    cloud = Gcloud(trials, opts, dry=False, tarball=tarball)
    cloud.run(sync_step(trials, opts))
    left = to_run(trials)
    if not left:
        print(status_table(trials))
        return 0
    info = tpu_build.pack(tarball)
    dirty = ", uncommitted changes" if info["git_dirty"] else ""
    print(f"[tpu] packed {info['files']} files at {info['git_commit']}{dirty}", flush=True)
    print(opts.describe(), flush=True)
    sched = Scheduler(
        cloud,
        opts.names,
        opts.slots,
        lambda t, name, slot, attempt: start_step(t, opts, name, slot, attempt),
        script("up.sh"),
        trials[0].workdir.parent,
        poll=opts.poll,
        stale=opts.stale,
    )
    evaluator = None
    try:
        sched.begin(left)
        if not options.no_eval:
            evaluator = start_evaluator(cloud, trials, opts)
        sched.wait()
    except BaseException:
        sched.close()
        if evaluator is not None:
            os.killpg(evaluator.pid, signal.SIGTERM)
        print(stopped_note(opts), file=sys.stderr)
        raise
    sched.close()
    print(f"[tpu] at most {sched.max_busy} trials ran at once", flush=True)
    rc = int(not options.no_eval and evaluator is None)
    if evaluator is not None:
        rc = rc or int(finish_evaluator(evaluator, trials) != 0)
        rc = rc or int(cloud.run(report_step(trials, opts)) != 0)
    cloud.run(sync_step(trials, opts))
    for name, cmd in teardown_steps(opts):
        cloud.run(cmd, name)
    print(status_table(trials))
    return 0 if rc == 0 and all(t.status().get("state") in DONE_STATES for t in trials) else 1
