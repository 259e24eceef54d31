"""``python -m bench.first_step``: time to the first training step of the first and the second
trial of a weight-decay sweep (compile once, not once per trial: trainer/compile_cache.py).

Writes a two-trial sweep file (the preset and ``--model`` with ``--set`` overrides, weight decay
``--wds``) under ``--runs-dir``, removes that sweep's old runs (and so its compilation cache),
runs it with the local launcher (``python -m launch ... --no-eval``: one trial after the other,
as a sweep does) and reads each trial's ``first_step_s`` from its status.json: seconds from the
trainer's process start to the end of its first step (imports, data, compile or cache load,
restore or init, the step). Target: the second <= 20% of the first. Prints one line, writes a
JSON (``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from bench.cli import model_overrides
from trainer.files import atomic_write_json, read_json

SWEEP = "first_step"
SWEEP_FILE = '''"""Two trials of one architecture, differing in weight decay (bench/first_step.py)."""
from sweeps import base

def get_config(arg=None):
    return base.config_from({preset!r}, {overrides!r})

def get_sweep(arg=None):
    return [{{"train.weight_decay": w}} for w in {wds!r}]
'''
TARGET = 0.2


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.first_step", description=__doc__)
    p.add_argument("--preset", default="embedded", help="embedded | paper")
    p.add_argument("--model", default="resnet6", help="as python -m bench --model")
    p.add_argument("--wds", default="5e-5,5e-4", help="the two trials' train.weight_decay")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--runs-dir", default="data/bench/runs", help="the sweep goes here")
    p.add_argument("--out", default="", help="JSON path; '' = <runs-dir>/first_step.json")
    p.add_argument("--timeout", type=float, default=3600.0)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    overrides = dict(model_overrides(args.model))
    overrides.setdefault("train.epochs", 0.05)
    for item in args.set:
        key, _, value = item.partition("=")
        try:
            overrides[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key.strip()] = value
    wds = [float(w) for w in args.wds.split(",")]
    runs = Path(args.runs_dir).absolute()
    sweep_file = runs / f"{SWEEP}.py"
    shutil.rmtree(runs / SWEEP, ignore_errors=True)  # fresh trials, empty cache
    runs.mkdir(parents=True, exist_ok=True)
    text = SWEEP_FILE.format(preset=args.preset, overrides=overrides, wds=wds)
    sweep_file.write_text(text)
    cmd = [sys.executable, "-m", "launch", str(sweep_file), "--runs-dir", str(runs), "--no-eval"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
    sys.stdout.write(proc.stdout)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-3000:])
        print(f"bench.first_step: the sweep failed (exit {proc.returncode})", file=sys.stderr)
        return 1
    from launch.trials import load_trials

    trials = [t.status_path for t in load_trials(str(sweep_file), runs_dir=runs)]
    statuses = [read_json(p) for p in trials]
    firsts = [s.get("first_step_s") for s in statuses]
    cpus = [s.get("first_step_cpu_s") for s in statuses]
    ratio = round(firsts[1] / firsts[0], 3) if all(firsts) and len(firsts) == 2 else None
    cpu_ratio = round(cpus[1] / cpus[0], 3) if all(cpus) and len(cpus) == 2 else None
    doc = {
        "command": "python -m bench.first_step " + " ".join(argv or sys.argv[1:]),
        "trials": [p.parent.name for p in trials],
        "first_step_s": firsts,
        "first_step_cpu_s": cpus,
        "second_over_first": ratio,
        "cpu_second_over_first": cpu_ratio,
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "host_cpus": os.cpu_count(),
        "target": TARGET,
        "meets_target": None if ratio is None else ratio <= TARGET,
        "overrides": overrides,
        "cache_dir": str(runs / SWEEP / ".jax-cache"),
    }
    out = Path(args.out) if args.out else runs / "first_step.json"
    atomic_write_json(out, doc)
    pct = lambda r: "-" if r is None else f"{100 * r:.0f}%"  # noqa: E731
    print(
        f"first step: trial 1 {firsts[0]} s, trial 2 {firsts[1]} s ({pct(ratio)} of the "
        f"first; CPU time {cpus[0]} and {cpus[1]} s, {pct(cpu_ratio)}; target <= "
        f"{100 * TARGET:.0f}%); wrote {out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
