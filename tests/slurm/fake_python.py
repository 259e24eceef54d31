"""Stands in for the interpreter (``--python``) in launcher tests, so the Slurm machinery is
exercised in seconds without training anything.

``-m trainer ... --workdir=W``: appends its argv to ``W/argv.jsonl``; "trains" ``FAKE_STEPS``
steps of ``FAKE_STEP_S`` seconds, recording the step in ``W/ckpt``; on SIGTERM it saves the
step, marks status.json ``preempted`` and exits 0, as the real trainer does; a later run resumes
from ``W/ckpt`` and ends ``done``. ``-m evaluator ... --runs=D`` / ``-m evaluator.report D``
append their argv to ``D/evaluator_calls.jsonl``.
"""

import json
import os
import signal
import socket
import sys
import time
from pathlib import Path


def _append(path: Path, record: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


def _status(wd: Path, **fields) -> None:
    tmp = wd / ".status.json.tmp"
    tmp.write_text(json.dumps(fields))
    os.replace(tmp, wd / "status.json")


def trainer(args: list[str]) -> int:
    wd = Path([a for a in args if a.startswith("--workdir=")][-1].split("=", 1)[1])
    wd.mkdir(parents=True, exist_ok=True)
    ckpt = wd / "ckpt"
    start = int(ckpt.read_text()) if ckpt.exists() else 0
    steps = int(os.environ.get("FAKE_STEPS", "3"))
    step_s = float(os.environ.get("FAKE_STEP_S", "0.05"))
    _append(
        wd / "argv.jsonl",
        {
            "argv": args,
            "resumed_from": start,
            "job": os.environ.get("SLURM_JOB_ID", ""),
            "rank": os.environ.get("SLURM_PROCID", ""),
            "ntasks": os.environ.get("SLURM_NTASKS", ""),
        },
    )
    state = {"step": start}
    if int(os.environ.get("SLURM_PROCID", "0") or 0) != 0:  # other ranks: train, write nothing
        time.sleep(steps * step_s / 2)
        return 0

    def on_term(signum, frame):
        ckpt.write_text(str(state["step"]))
        _status(wd, state="preempted", step=state["step"], total_steps=steps)
        sys.exit(0)

    signal.signal(signal.SIGTERM, on_term)
    common = {"host": socket.gethostname(), "pid": os.getpid(), "total_steps": steps}
    for step in range(start, steps):
        state["step"] = step
        _status(wd, state="running", step=step, **common)
        time.sleep(step_s)
    ckpt.write_text(str(steps))
    _status(wd, state="done", step=steps, **common)
    return 0


def main() -> int:
    args = sys.argv[1:]
    if args[:2] == ["-m", "trainer"]:
        return trainer(args)
    if args[:1] == ["-m"] and args[1].startswith("evaluator"):
        runs = [a.split("=", 1)[1] for a in args if a.startswith("--runs=")] or [args[2]]
        _append(Path(runs[0]) / "evaluator_calls.jsonl", {"argv": args})
        return 0
    print(f"fake_python: unexpected arguments {args}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
