"""Every bad input and fault tried on the pipeline, run for real: the table in docs/reliability.md.

    .venv/bin/python tests/reliability_table.py              # all cases; rewrites the table
    .venv/bin/python tests/reliability_table.py --only flip  # cases whose name has "flip"; prints

Each case prepares what it needs in a scratch directory (a copy of one trained smoke run for the
checkpoint faults), runs one command as a user would (the trainer, the launcher, the evaluator,
the report; some are signalled or run on a full or read-only file system) and records the line
that says what happened, the exit code, the number of lines printed and what was left on disk.
The script exits 1 when any case's line is a traceback, a case exits otherwise than expected
(a silent acceptance: 0 where a refusal was due) or its line lacks what it must say. About ten
minutes on 2 CPU cores; root is needed for the read-only and full-disk cases (else skipped).
"""

from __future__ import annotations

import argparse
import fcntl
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import reliability_cases as cases
import reliability_faults
import reliability_inputs
from fault_support import is_root, read_only, small_filesystem
from trainer_support import REPO, trainer_env, wait_for

DOC = REPO / "docs" / "reliability.md"
BEGIN, END = "<!-- reliability-table:begin -->", "<!-- reliability-table:end -->"


@dataclass
class Outcome:
    case: cases.Case
    line: str
    code: int | None
    lines: int
    left: str
    problems: list[str] = field(default_factory=list)


class Runner:
    """Runs cases in ``root``; holds the shared trained run and the JAX compilation cache."""

    def __init__(self, root: Path):
        self.root = root
        self.env = trainer_env(root / "jax-cache")
        self._reference: Path | None = None
        self.n = 0
        self.verbose = False

    def scratch(self) -> Path:
        self.n += 1
        d = self.root / f"case{self.n:03d}"
        d.mkdir()
        return d

    def reference(self) -> Path:
        """One trained smoke run (checkpoints 10, 20, 30, 40), made once."""
        if self._reference is None:
            wd = self.root / "reference" / "sw" / "depth-6"
            r = self.run(cases.trainer(wd, *cases.RUN))
            if r.returncode != 0:
                raise SystemExit(f"the reference run failed:\n{r.stdout}{r.stderr}")
            self._reference = wd
        return self._reference

    def trained_copy(self, d: Path) -> Path:
        wd = d / "sw" / "depth-6"
        shutil.copytree(self.reference(), wd)
        return wd

    def run(self, argv: list[str], env: dict | None = None, timeout: float = 900):
        return subprocess.run(
            argv,
            cwd=REPO,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def start(self, argv: list[str]) -> subprocess.Popen:
        return subprocess.Popen(
            argv,
            cwd=REPO,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    # -- how a case's command is run --------------------------------------------------------

    def execute(self, case: cases.Case, d: Path, argv: list[str]) -> tuple[str, int | None]:
        how = case.how
        if how in ("plain", "full_disk"):
            r = self.run(argv)
            return r.stdout + r.stderr, r.returncode
        if how == "two_devices":
            r = self.run(argv, env={"XLA_FLAGS": "--xla_force_host_platform_device_count=2"})
            return r.stdout + r.stderr, r.returncode
        if how == "read_only":
            with read_only(case.ro_path(d)):
                r = self.run(argv)
            return r.stdout + r.stderr, r.returncode
        if how in ("sigterm", "sigint", "sigkill"):
            return self._signalled(case, d, argv)
        if how == "second_trainer":
            return self._second_trainer(d, argv)
        if how == "launcher_busy":
            return self._launcher_busy(d, argv)
        raise ValueError(how)

    def _signalled(self, case, d, argv):
        from trainer_support import train_steps_logged

        from trainer.checkpoint import list_steps

        wd = case.workdir(d)
        p = self.start(argv)
        if case.how == "sigkill":  # after a checkpoint is final and a later step ran
            ready = lambda: (s := list_steps(wd / "checkpoints")) and train_steps_logged(wd) > s[-1]
        else:
            ready = lambda: train_steps_logged(wd) >= 10
        wait_for(ready, p, timeout=600, poll=0.05)
        sig = {"sigterm": signal.SIGTERM, "sigint": signal.SIGINT, "sigkill": signal.SIGKILL}
        p.send_signal(sig[case.how])
        out = p.communicate(timeout=300)[0]
        if case.how != "sigkill":
            return out, p.returncode
        r = self.run(argv)  # the rerun is what the row shows
        return r.stdout + r.stderr, r.returncode

    def _second_trainer(self, d, argv):
        from trainer_support import train_steps_logged

        wd = cases.workdir_of(argv)
        first = self.start(argv)
        try:
            wait_for(lambda: train_steps_logged(wd) >= 1, first, timeout=600, poll=0.05)
            r = self.run(argv)
        finally:
            first.send_signal(signal.SIGTERM)
            first.communicate(timeout=300)
        return r.stdout + r.stderr, r.returncode

    def _launcher_busy(self, d, argv):
        sweep_dir = d / "runs" / "smoke"
        sweep_dir.mkdir(parents=True)
        with open(sweep_dir / ".launch.lock", "a+") as f:  # as another launcher holds it
            fcntl.flock(f, fcntl.LOCK_EX)
            f.write("4242")
            f.flush()
            r = self.run(argv)
        return r.stdout + r.stderr, r.returncode

    def case(self, case: cases.Case) -> Outcome | None:
        if case.needs_root and not is_root():
            return None
        d = self.scratch()
        if case.how == "full_disk":
            with small_filesystem(d / "small", "3m"):
                return self._case_in(case, d)
        return self._case_in(case, d)

    def _case_in(self, case: cases.Case, d: Path) -> Outcome:
        argv = case.setup(self, d)
        t0 = time.time()
        out, code = self.execute(case, d, argv)
        lines = [ln for ln in out.splitlines() if ln.strip()]
        shown = case.pick_line(lines)
        o = Outcome(case, shown, code, len(lines), case.left(d))
        if code not in case.codes:
            o.problems.append(f"exit {code}, expected {case.codes}")
        if shown.startswith(("Traceback", "  File ")) or not shown:
            o.problems.append("no one-line message")
        if case.says and case.says not in shown:
            o.problems.append(f"the line lacks {case.says!r}")
        print(f"[{time.time() - t0:5.1f}s] {case.name}: exit {code}: {shown}", flush=True)
        if self.verbose:
            print("\n".join("    | " + ln for ln in lines))
        for p in o.problems:
            print(f"    PROBLEM: {p}\n" + "\n".join("    | " + ln for ln in lines[-15:]))
        return o


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def table(outcomes: list[Outcome]) -> str:
    rows = [
        "| # | input or fault | command | message (the line that says what happened) | exit "
        "| lines | left on disk |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for i, o in enumerate(outcomes, 1):
        line = o.line.replace(str(o.case.root or ""), "") if o.case.root else o.line
        rows.append(
            f"| {i} | {_cell(o.case.name)} | {o.case.tool} | `{_cell(line)[:400]}` | {o.code} "
            f"| {o.lines} | {_cell(o.left)} |"
        )
    return "\n".join(rows)


def write_doc(text: str) -> None:
    doc = DOC.read_text()
    head, _, rest = doc.partition(BEGIN)
    _, _, tail = rest.partition(END)
    DOC.write_text(f"{head}{BEGIN}\n{text}\n{END}{tail}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--only", help="run the cases whose name contains this; print, write nothing")
    p.add_argument("--keep", action="store_true", help="keep the scratch directory")
    p.add_argument("--verbose", action="store_true", help="print every line each case printed")
    args = p.parse_args(argv)
    logging.getLogger("absl").setLevel(logging.ERROR)  # this process's own checkpoint reads
    every = reliability_inputs.CASES + reliability_faults.CASES
    selected = [c for c in every if not args.only or args.only in c.name]
    root = Path(tempfile.mkdtemp(prefix="psweeps-reliability-"))
    runner = Runner(root)
    runner.verbose = args.verbose
    try:
        outcomes = []
        for c in selected:
            c.root = root
            o = runner.case(c)
            if o is not None:
                outcomes.append(o)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    bad = [o for o in outcomes if o.problems]
    skipped = len(selected) - len(outcomes)
    print(f"{len(outcomes)} case(s) run, {skipped} skipped (root needed), {len(bad)} with problems")
    if args.only:
        print(table(outcomes))
    elif not bad:
        write_doc(table(outcomes))
        print(f"wrote {DOC}")
    return 1 if bad else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
