"""``python -m launch <sweep> [options] [--config.k=v ...]``: run a sweep (``make sweep``).

    python -m launch depth                      # embedded preset, local, one trial at a time
    python -m launch depth --preset paper,seeds=3 --jobs 4
    python -m launch depth --dry-run            # the trials and their trainer commands; no files
    python -m launch depth --status             # the status table
    python -m launch my_sweep.py --config.train.epochs=1

``<sweep>`` is a file in sweeps/ (depth, width, epochs, weight_decay, label_smoothing, dropout,
archs, crop, classes, skip, study, smoke) or a path to a sweep .py file. Trials go to
``<runs-dir>/<sweep>/<trial>``. A sweep of axes (``study``) dry-runs with a per-axis table of
trials, distinct trials and estimated H200-hours (``launch.axes``).
The config flags are the trainer's (sweeps/command.py reads them with config_flags): instead of
``<sweep> --preset P``, ``--config=sweeps/<sweep>.py:P``; with ``--workdir=DIR`` too, the
launcher runs the one trial a trainer command describes, so the ``command`` of a status.json
runs as is after ``python -m launch`` (``--launcher``, ``--dry-run``, ... still apply)::

    python -m launch --config=sweeps/depth.py:embedded --config.model.depth=2 \
        --workdir=runs/depth/depth-2 --launcher=slurm

Exit codes: 0 all trials done (and scored), 1 a trial (or the evaluator/report) failed, 2 bad
input, a trial directory holding another config, or another local launcher already on the sweep
(nothing started), 130 interrupted.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import shlex
import sys
from collections.abc import Sequence

from launch import axes, packing, table
from launch.trials import (
    LaunchOptions,
    Trial,
    check_drift,
    load_trial,
    load_trials,
    prepare,
    todo,
)
from sweeps.base import ConfigError
from sweeps.command import ConfigArgs, parse_config_args

LAUNCHERS = ("local", "slurm", "tpu")  # each a module launch.<name> with launch(trials, options)
EXIT_BAD_INPUT = 2


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m launch",
        description="Run a sweep's trials, then score and report them.",
        epilog="--config=FILE[:ARG] names the sweep as the trainer's flag does; any "
        "--config.<key>=<value> (or --config.<key> <value>) applies to every trial.",
    )
    p.add_argument(
        "sweep", nargs="?", help="a sweep in sweeps/ or a path to a sweep .py file (or --config)"
    )
    p.add_argument(
        "--preset", default=None, help="the sweep's arg: embedded | paper, e.g. paper,seeds=3"
    )
    p.add_argument(
        "--workdir",
        default=None,
        help="run only the trial a trainer command with this --workdir is",
    )
    p.add_argument("--launcher", default="local", help="local | slurm | tpu")
    p.add_argument("--jobs", type=int, default=1, help="trials at once (local: processes)")
    p.add_argument("--trials-per-device", default="1", metavar="K", help=packing.HELP)
    p.add_argument("--runs-dir", default="runs", help="trials go to <runs-dir>/<sweep>/<trial>")
    p.add_argument("--dry-run", action="store_true", help="list trials and commands; write nothing")
    p.add_argument("--status", action="store_true", help="print the status table and exit")
    p.add_argument("--no-eval", action="store_true", help="train only; skip evaluator and report")
    p.add_argument("--python", default=sys.executable, help="the interpreter for the trainer")
    p.add_argument(
        "--launcher-opt",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an option for the launcher (e.g. Slurm partition); repeatable",
    )
    for name in LAUNCHERS[1:]:  # their own flags (--slurm-*, --tpu-*): add_<name>_args(parser)
        add = getattr(_launcher_module(name), f"add_{name}_args", None)
        if add is not None:
            add(p)
    return p


def _launcher_module(name: str):
    """``launch.<name>``, or None when it cannot be imported here (e.g. an optional dependency)."""
    try:
        return importlib.import_module(f"launch.{name}")
    except ImportError:
        return None


def _device_bytes(args: argparse.Namespace) -> int | None:
    """The accelerator memory ``--trials-per-device auto`` decides with (launch/packing.py):
    this machine's GPU for the local launcher; for Slurm tasks without GPUs None (CPU), else
    this machine's GPU where it has one, else 0 (unknown: the size rule alone)."""
    if args.launcher == "slurm":
        if not getattr(args, "slurm_gpus", 0):
            return None
        return packing.gpu_memory_bytes() or 0
    return packing.gpu_memory_bytes()


def dry_run(trials: Sequence[Trial], python: str) -> None:
    try:
        check_drift(trials)
    except ConfigError as e:
        print(f"launch: warning: {e}")
    left = {t.name for t in todo(trials)}
    print(
        f"{len(trials)} trials of {trials[0].sweep} ({trials[0].config_arg}) in {trials[0].workdir.parent}:"
    )
    for t in trials:
        state = t.status().get("state")
        note = "" if t.name in left else f"  # {state}, skipped"
        print(f"{t.name}{note}\n  {shlex.join(t.command(python))}")
    if trials[0].axes is not None:  # a sweep of axes: what each axis trains and costs
        print(axes.summary(trials, trials[0].axes))


def runs_dir_problem(runs_dir: str, e: OSError) -> str:
    what = {errno.ENOTDIR: "is a file, or lies under one", errno.EEXIST: "is a file"}
    why = what.get(e.errno, f"cannot be written ({e.strerror or e})")
    return f"--runs-dir {runs_dir!r} {why}: {e.filename}; use another --runs-dir"


def sweep_and_preset(args: argparse.Namespace, cfg: ConfigArgs) -> tuple[str, str]:
    """The sweep file and its arg, from ``<sweep> [--preset P]`` or ``--config=FILE[:P]``."""
    if cfg.spec is not None and args.sweep is not None:
        raise ConfigError(f"give the sweep once: {args.sweep!r} or --config={cfg.spec}, not both")
    if cfg.spec is not None and args.preset is not None and cfg.arg is not None:
        raise ConfigError(f"give the preset once: --preset {args.preset} or --config={cfg.spec}")
    sweep = cfg.file if cfg.spec is not None else args.sweep
    if not sweep:
        raise ConfigError("a sweep is required: python -m launch <sweep> or --config=FILE[:ARG]")
    return sweep, args.preset or cfg.arg or "embedded"


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        cfg = parse_config_args(argv)
    except ConfigError as e:
        print(f"launch: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    args = parser().parse_args(cfg.rest)
    try:
        if args.launcher not in LAUNCHERS:
            raise ConfigError(
                f"--launcher {args.launcher!r} is unknown; allowed: {', '.join(LAUNCHERS)}"
            )
        if args.jobs < 1:
            raise ConfigError(f"--jobs {args.jobs} is not allowed; expected an integer >= 1")
        if "://" in args.runs_dir:  # pids, locks and logs live beside the trials
            raise ConfigError(
                f"--runs-dir {args.runs_dir!r}: the launchers need a local, shared or "
                "gcsfuse-mounted folder; for gs:// run python -m trainer --workdir=gs://..., "
                "python -m evaluator --runs=gs://... and python -m evaluator.report gs://... "
                "directly, or mount the bucket (the TPU launcher does)"
            )
        per_device = packing.parse(args.trials_per_device)
        if per_device != 1 and args.launcher == "tpu":
            raise ConfigError(
                f"--trials-per-device {args.trials_per_device} is not allowed with --launcher "
                "tpu (one process per TPU chip); allowed with local or slurm"
            )
        opts = {}
        for item in args.launcher_opt:
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise ConfigError(f"--launcher-opt {item!r} is not allowed; expected KEY=VALUE")
            opts[key] = value
        sweep, preset = sweep_and_preset(args, cfg)
        args.sweep, args.preset = sweep, preset  # what the launchers read
        if args.workdir:
            trials = [load_trial(sweep, preset, cfg.overrides, args.workdir)]
        else:
            trials = load_trials(sweep, preset, cfg.overrides, args.runs_dir)
        if args.status:
            print(table.status_table(trials))
            return 0
        # Resolved once (auto: from the trials' models); the launchers read the int.
        configs = [t.config for t in trials]
        args.trials_per_device = packing.resolve(per_device, configs, _device_bytes(args))
        if args.dry_run:
            dry_run(trials, args.python)
            if args.launcher != "local":  # the sbatch scripts / gcloud commands
                return importlib.import_module(f"launch.{args.launcher}").dry_run(trials, args)
            return 0
        module = importlib.import_module(f"launch.{args.launcher}")
        if hasattr(module, "check_args"):  # launcher flags, before anything is written
            module.check_args(args)
        prepare(trials, args.python, sweep_record=not args.workdir)
    except ConfigError as e:
        print(f"launch: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except ModuleNotFoundError as e:
        print(
            f"launch: error: the {args.launcher} launcher is not available ({e})", file=sys.stderr
        )
        return EXIT_BAD_INPUT
    except OSError as e:  # a runs dir that is a file or cannot be written
        print(f"launch: error: {runs_dir_problem(args.runs_dir, e)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    options = LaunchOptions(
        jobs=args.jobs,
        trials_per_device=args.trials_per_device,
        python=args.python,
        no_eval=args.no_eval,
        launcher_opts=opts,
    )
    if args.launcher != "local":
        return module.launch(trials, options, args)
    return module.launch(trials, options)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
