"""After training: score the sweep's checkpoints and write its report, through their CLIs.

``python -m evaluator --runs=<sweep_dir>`` (output to ``<sweep_dir>/evaluator.log``, a short
line on the console), then ``python -m evaluator.report <sweep_dir>`` (its output on the
console), then the report's results table and the paths of report.md, results.csv and the plots.
Separate processes, so a crash in either leaves the launcher's state and the trained checkpoints
as they are; a stage that is not installed is reported and skipped.

On a machine without GPUs the local launcher starts the evaluator with ``--watch`` before the
first trainer instead (``start_watching``), so checkpoints are scored while later trials train:
compiling, loading and the pixel references leave cores idle that the other process uses (the
embedded ``archs`` sweep: about a minute quicker on 2 cores, docs/performance.md). With GPUs it
runs after training, as the trainers hold the GPUs' memory.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import time
from pathlib import Path

from launch.procs import last_line, stop_all

EXIT_ERROR_RECORDS = 3  # python -m evaluator: some steps could not be scored (evaluator.__main__)


def available(module: str) -> bool:
    """Whether ``module`` can be imported here (a stage may be left out of an install)."""
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


EVALUATOR = "evaluator.__main__"  # the module ``python -m evaluator`` runs
STOP_GRACE_S = 20.0  # an interrupted evaluator's time to stop before it is killed
WATCH_POLL_S = 2.0  # the evaluator beside the trainers: how often it looks for new checkpoints


def _evaluator_cmd(sweep_dir: Path, python: str, watch: bool) -> list[str]:
    watching = ["--watch", f"--poll-seconds={WATCH_POLL_S:g}"] if watch else []
    return [python, "-m", "evaluator", f"--runs={sweep_dir}", *watching]


def _start(sweep_dir: Path, python: str, watch: bool) -> subprocess.Popen | None:
    """Start the evaluator, its output appended to ``<sweep_dir>/evaluator.log``; None (and a
    line saying so) when it is not installed."""
    if not available(EVALUATOR):
        print("launch: the evaluator (python -m evaluator) is not available; scoring skipped")
        return None
    log = sweep_dir / "evaluator.log"
    cmd = _evaluator_cmd(sweep_dir, python, watch)
    with open(log, "ab") as f:
        f.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(cmd)}\n".encode())
        f.flush()
        proc = subprocess.Popen(
            cmd,
            stdout=f,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=_env(),
            start_new_session=watch,  # beside the trainers: the launcher stops it as it stops them
        )
    when = " as they are saved, beside the trainers" if watch else ""
    print(f"[evaluator] scoring checkpoints of {sweep_dir}{when}; log {log}", flush=True)
    return proc


def start_watching(sweep_dir: Path, python: str) -> subprocess.Popen | None:
    """``python -m evaluator --runs=<sweep_dir> --watch`` in the background: it scores each
    checkpoint as it lands and ends once every trial has ended (``finish`` waits for it)."""
    return _start(Path(sweep_dir), python, watch=True)


def finish(proc: subprocess.Popen | None, sweep_dir: Path, started: float) -> int:
    """Wait for an evaluator ``_start`` began and say how it ended; its exit code (0 if none)."""
    if proc is None:
        return 0
    try:
        rc = proc.wait()
    except BaseException:  # Ctrl-C: an evaluator in a session of its own would outlive us
        stop_all([proc], STOP_GRACE_S)
        raise
    log = Path(sweep_dir) / "evaluator.log"
    took = f"{time.time() - started:.0f}s"
    if rc == 0:
        print(f"[evaluator] done in {took}: {_counts(last_line(log))}", flush=True)
    elif rc == EXIT_ERROR_RECORDS:  # finished; some steps are error records, not scores
        print(f"[evaluator] ERRORS after {took}: {_counts(last_line(log))}; log {log}", flush=True)
    else:
        print(f"[evaluator] FAILED (exit {rc}): {last_line(log)}; log {log}", flush=True)
    return rc


def ended_early(rc: int, sweep_dir: Path) -> str:
    """The line for an evaluator watching beside the trainers that ended with ``rc`` != 0
    while they still run (``finish`` reports it again once training is over)."""
    log = Path(sweep_dir) / "evaluator.log"
    return (
        f"[evaluator] FAILED beside the trainers (exit {rc}): {last_line(log)}; training goes "
        f"on; log {log}"
    )


def evaluate(sweep_dir: Path, python: str) -> int:
    """Score every checkpoint of the sweep not scored yet; the exit code (0 when skipped)."""
    t0 = time.time()
    return finish(_start(Path(sweep_dir), python, watch=False), sweep_dir, t0)


def _counts(line: str) -> str:
    """The job's last line without its prefix: "N step(s) scored, E error(s), S skipped ..."."""
    return line.removeprefix("evaluator: ")


def report(sweep_dir: Path, python: str) -> int:
    """Write results.csv, report.md and the plots; its output goes to the console."""
    if not available("evaluator.report"):
        print("launch: the report (python -m evaluator.report) is not available; report skipped")
        return 0
    cmd = [python, "-m", "evaluator.report", str(sweep_dir)]
    rc = subprocess.run(cmd, stdin=subprocess.DEVNULL, env=_env(), check=False).returncode
    if rc != 0:
        print(f"[report] FAILED (exit {rc})", flush=True)
        return rc
    print(summary(sweep_dir), flush=True)
    return rc


def summary(sweep_dir: Path) -> str:
    """The report's first table (the trials' results) and the paths of its files and plots."""
    out = []
    md = sweep_dir / "report.md"
    try:
        lines = md.read_text().splitlines()
    except OSError:
        lines = []
    start = next((i for i, ln in enumerate(lines) if ln.startswith("|")), None)
    if start is not None:
        end = next(
            (i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines)
        )
        out += ["", *lines[start:end], ""]
    if md.exists():
        out.append(f"report: {md}")
    if (sweep_dir / "results.csv").exists():
        out.append(f"results: {sweep_dir / 'results.csv'}")
    out += [f"plot: {p}" for p in sorted(sweep_dir.glob("*.png"))]
    return "\n".join(out)


def evaluate_and_report(
    sweep_dir: Path, python: str, watching: subprocess.Popen | None = None, since: float = 0.0
) -> int:
    """Both stages, the report even when scoring failed (it shows what there is). ``watching``:
    an evaluator ``start_watching`` began at ``since``, waited for instead of starting one."""
    if watching is not None:
        rc_eval = finish(watching, Path(sweep_dir), since)
    else:
        rc_eval = evaluate(Path(sweep_dir), python)
    rc_report = report(Path(sweep_dir), python)
    return rc_eval or rc_report


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1"}
