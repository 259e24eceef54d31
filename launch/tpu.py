"""TPU VM launcher (``python -m launch <sweep> --launcher tpu``): a thin front to launch/tpu/*.sh.

One slice runs the sweep's trials in sequence; every worker of the slice runs the same trainer
command and ``jax.distributed.initialize()`` joins them. The evaluator runs beside it on a small
CPU VM (``python -m evaluator --watch``), then the report. The runs live in a bucket
(``--tpu-runs gs://BUCKET/runs``) that every VM mounts with gcsfuse at ``/gcs/BUCKET``, because
the trainer and evaluator write plain paths. Steps, each a script in launch/tpu/:

1. ``sync.sh``: the trials' status.json from the bucket into the local runs dir (what is left
   to run is ``launch.trials.todo``, as for every launcher, plus ``running`` trials: this
   launcher runs the sweep's trials itself, one at a time, so such a status is a dead run);
2. ``create.sh`` the slice (``tpu-vm create`` or a queued resource), ``setup.sh`` the project on
   every worker (``--worker=all``); ``eval_vm.sh create`` / ``setup`` the evaluator VM;
3. ``eval_vm.sh run`` the evaluator (in the background), ``run.sh`` each trial, streaming the
   workers' output here and into ``<runs>/<sweep>/<trial>/train.log``;
4. ``eval_vm.sh run`` the report, ``sync.sh`` the results back, ``delete.sh`` the slice and
   ``eval_vm.sh delete`` (unless ``--tpu-keep``).

``--dry-run`` prints every command (the scripts run with ``DRY_RUN=1``), shell-quoted.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from launch.slurm import to_run
from launch.table import status_table
from launch.trials import DONE_STATES, LaunchOptions, Trial
from sweeps.base import ConfigError

SCRIPTS = Path(__file__).resolve().parent / "tpu"
REPO = Path(__file__).resolve().parent.parent
REMOTE_PYTHON = ".venv/bin/python"  # in the project folder on every VM (worker_setup.sh)
_NAME = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")


class TpuError(ConfigError):
    """A bad TPU option; the message is one line."""


def add_tpu_args(parser: argparse.ArgumentParser) -> None:
    """The TPU flags, for ``python -m launch``'s parser."""
    g = parser.add_argument_group("TPU VM (--launcher tpu)")
    g.add_argument("--tpu-name", default="", help="TPU VM name (default psweeps-<sweep>)")
    g.add_argument("--tpu-zone", default="us-central2-b", help="zone (default us-central2-b, v4)")
    g.add_argument("--tpu-project", default="", help="Google Cloud project (default: gcloud's)")
    g.add_argument("--tpu-type", default="v4-8", help="accelerator type, e.g. v4-8, v4-32")
    g.add_argument("--tpu-version", default="tpu-ubuntu2204-base", help="TPU VM runtime version")
    g.add_argument("--tpu-runs", default="", help="runs folder in a bucket: gs://BUCKET/runs")
    g.add_argument("--tpu-data", default="", help="gs:// folder of prepared data splits")
    g.add_argument("--tpu-queued", action="store_true", help="create through queued resources")
    g.add_argument("--tpu-spot", action="store_true", help="spot (preemptible) capacity")
    g.add_argument("--tpu-keep", action="store_true", help="keep the VMs after the sweep")
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
    type: str
    version: str
    bucket: str
    prefix: str  # path inside the bucket ('' = its root)
    data: str
    queued: bool
    spot: bool
    keep: bool
    eval_machine: str

    @property
    def mount(self) -> str:
        """The runs folder as the VMs see it (gcsfuse mount of the bucket)."""
        return "/".join(p for p in (f"/gcs/{self.bucket}", self.prefix) if p)

    @property
    def url(self) -> str:
        return "/".join(p for p in (f"gs://{self.bucket}", self.prefix) if p)

    @property
    def hosts(self) -> int:
        """Workers of the slice, for v2-v4 and v5p types (8 TensorCores per host); 1 otherwise."""
        m = re.fullmatch(r"v(2|3|4|5p)-(\d+)", self.type)
        return max(1, int(m.group(2)) // 8) if m else 1

    def env(self, sweep: str) -> dict[str, str]:
        return {
            "TPU_NAME": self.name,
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


def options_from_args(args: argparse.Namespace, sweep: str) -> TpuOptions:
    """``TpuOptions`` from the flags, checked (one-line ``TpuError``)."""
    name = args.tpu_name or f"psweeps-{sweep}".lower().replace("_", "-")
    if not _NAME.match(name) or len(name) > 58:
        raise TpuError(
            f"--tpu-name={name!r} is not allowed; expected lowercase letters, digits and '-', "
            "starting with a letter, at most 58 characters"
        )
    m = re.fullmatch(r"gs://([a-z0-9][-a-z0-9_.]{1,220}[a-z0-9])(/[^\s]*)?", args.tpu_runs or "")
    if not m:
        raise TpuError(
            f"--tpu-runs={args.tpu_runs!r} is not allowed; expected a bucket folder gs://BUCKET/runs"
        )
    if args.tpu_data and not args.tpu_data.startswith("gs://"):
        raise TpuError(f"--tpu-data={args.tpu_data!r} is not allowed; expected gs://...")
    for flag, value in (("--tpu-zone", args.tpu_zone), ("--tpu-type", args.tpu_type)):
        if not re.fullmatch(r"[a-z0-9][-a-z0-9]*", value):
            raise TpuError(f"{flag}={value!r} is not allowed; expected e.g. us-central2-b, v4-32")
    return TpuOptions(
        name=name,
        zone=args.tpu_zone,
        project=args.tpu_project,
        type=args.tpu_type,
        version=args.tpu_version,
        bucket=m.group(1),
        prefix=(m.group(2) or "").strip("/"),
        data=args.tpu_data,
        queued=bool(args.tpu_queued),
        spot=bool(args.tpu_spot),
        keep=bool(args.tpu_keep),
        eval_machine=args.tpu_eval_machine,
    )


# ----------------------------------------------------------------------------- commands


def remote_command(trial: Trial, opts: TpuOptions) -> list[str]:
    """The trainer argv on the workers: ``Trial.command`` with the project's venv python, the
    sweep file relative to the project and the workdir in the mounted bucket."""
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
    if opts.hosts > 1:  # workers do not see the slice in their environment: ask for it
        out.insert(-1, "--config.distributed.initialize=yes")
    return out


def script(name: str, *args: str) -> list[str]:
    return ["bash", str(SCRIPTS / name), *args]


def sweep_dirs(trials: Sequence[Trial], opts: TpuOptions) -> tuple[str, str, Path]:
    sweep = trials[0].sweep
    return f"{opts.url}/{sweep}", f"{opts.mount}/{sweep}", trials[0].workdir.parent


def setup_steps(opts: TpuOptions) -> list[list[str]]:
    return [
        script("create.sh"),
        script("setup.sh"),
        script("eval_vm.sh", "create"),
        script("eval_vm.sh", "setup"),
    ]


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


def teardown_steps(opts: TpuOptions) -> list[list[str]]:
    return [] if opts.keep else [script("delete.sh"), script("eval_vm.sh", "delete")]


def _run(cmd: list[str], env: dict[str, str], dry: bool, log: Path | None = None) -> int:
    full_env = {**os.environ, **env, "DRY_RUN": "1" if dry else "0"}
    if dry or log is None:
        return subprocess.run(cmd, env=full_env, check=False).returncode
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as f:
        proc = subprocess.Popen(cmd, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        assert proc.stdout is not None
        for line in proc.stdout:  # stream the workers' output here and into the trial's log
            sys.stdout.buffer.write(line)
            sys.stdout.flush()
            f.write(line)
        return proc.wait()


def dry_run(trials: Sequence[Trial], args: argparse.Namespace) -> int:
    """Every gcloud command of the sweep, in order, without running any."""
    opts = options_from_args(args, trials[0].sweep)
    env = opts.env(trials[0].sweep)
    sys.stdout.flush()
    for cmd in [sync_step(trials, opts), *setup_steps(opts), eval_step(trials, opts)]:
        _run(cmd, env, dry=True)
    for t in to_run(trials):
        print(f"# trial {t.name}", flush=True)
        _run(script("run.sh", *remote_command(t, opts)), env, dry=True)
    for cmd in [report_step(trials, opts), sync_step(trials, opts), *teardown_steps(opts)]:
        _run(cmd, env, dry=True)
    return 0


def check_args(args: argparse.Namespace) -> None:
    """Validate the TPU flags before anything is written (``TpuError``, one line)."""
    options_from_args(args, Path(args.sweep).stem)
    if not getattr(args, "dry_run", False) and shutil.which("gcloud") is None:
        raise TpuError("gcloud is not on PATH; --launcher tpu needs the Google Cloud CLI")


def launch(
    trials: Sequence[Trial], options: LaunchOptions, args: argparse.Namespace | None = None
) -> int:
    """Run the sweep on a slice; 0 when every trial is done."""
    if args is None:
        print("launch: error: --launcher tpu needs its --tpu-* flags", file=sys.stderr)
        return 2
    opts = options_from_args(args, trials[0].sweep)
    env = opts.env(trials[0].sweep)
    _run(sync_step(trials, opts), env, dry=False)
    left = to_run(trials)
    if not left:
        print(status_table(trials))
        return 0
    rc = 0
    evaluator = None
    try:
        for cmd in setup_steps(opts):
            if _run(cmd, env, dry=False) != 0:
                print(f"launch: error: {' '.join(cmd[1:])} failed", file=sys.stderr)
                return 1
        if not options.no_eval:
            with open(trials[0].workdir.parent / "evaluator.log", "ab") as eval_log:
                evaluator = subprocess.Popen(
                    eval_step(trials, opts),
                    env={**os.environ, **env, "DRY_RUN": "0"},
                    stdout=eval_log,
                    stderr=subprocess.STDOUT,
                )
        for t in left:
            print(f"[tpu] {t.name} on {opts.name} ({opts.type})", flush=True)
            code = _run(script("run.sh", *remote_command(t, opts)), env, False, t.log_path)
            print(f"[tpu] {t.name} exited {code}", flush=True)
            rc = rc or int(code != 0)
        if evaluator is not None:
            rc = rc or int(evaluator.wait() != 0)
            rc = rc or int(_run(report_step(trials, opts), env, dry=False) != 0)
        _run(sync_step(trials, opts), env, dry=False)
    finally:
        if evaluator is not None and evaluator.poll() is None:
            evaluator.terminate()
        for cmd in teardown_steps(opts):
            _run(cmd, env, dry=False)
    print(status_table(trials))
    return 0 if rc == 0 and all(t.status().get("state") in DONE_STATES for t in trials) else 1
