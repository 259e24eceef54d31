"""Soak: a sweep run by the local launcher while its launcher, trainers and evaluator are killed at
seeded random moments, rerun until done; its results.csv must equal an uninterrupted run's.

    .venv/bin/python tests/soak.py --seed 0 --kills 20              # the embedded depth sweep
    .venv/bin/python tests/soak.py --seed 0 --kills 20 --write-doc  # and record it in docs/

The uninterrupted reference (``python -m launch <sweep> --runs-dir <reference-dir>``) is run once
and reused while its results.csv exists. Then ``python -m launch <sweep> --runs-dir <soak dir>``
runs again and again: every ``U(--min-delay, --max-delay)`` seconds one of this soak's own
processes (found by the soak directory in their command lines: the launcher, a trainer, the
evaluator) gets SIGKILL or SIGTERM, chosen by ``random.Random(seed)``; a launcher that exits is
started again. The evaluator only runs once a launcher run has trained every trial, so the last
``--evaluator-kills`` kills wait for it: each falls ``U(1, --max-delay)`` s into an evaluator's
run, on the evaluator (or, one time in four, the launcher). After ``--kills`` kills the processes left (a trainer orphaned by a killed
launcher goes on) are waited for and the launcher is run until it exits 0 with every trial
done. Runs are deterministic on one CPU: every (trial, step) row of the reference must be in the
soak's results.csv with the very same values. The soak may score more steps: a SIGTERM makes a
trainer save where it stands, and the evaluator scores such a checkpoint while it exists; those
extra rows are listed, not compared.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "reliability.md"
BEGIN, END = "<!-- soak:begin -->", "<!-- soak:end -->"
KINDS = {"launcher": 0.3, "trainer": 0.5, "evaluator": 0.2}  # victim weights when all are live


def launcher_argv(sweep: str, runs_dir: Path) -> list[str]:
    return [sys.executable, "-m", "launch", sweep, "--runs-dir", str(runs_dir), "--jobs", "1"]


def run_reference(sweep: str, ref_dir: Path) -> Path:
    csv_path = ref_dir / sweep / "results.csv"
    if csv_path.exists():
        print(f"soak: reference {csv_path} (cached)", flush=True)
        return csv_path
    print(f"soak: uninterrupted reference run into {ref_dir}", flush=True)
    t0 = time.time()
    r = subprocess.run(launcher_argv(sweep, ref_dir), cwd=REPO, capture_output=True, text=True)
    if r.returncode != 0 or not csv_path.exists():
        raise SystemExit(
            f"soak: the reference run failed (exit {r.returncode}):\n{r.stdout[-3000:]}"
        )
    print(f"soak: reference done in {time.time() - t0:.0f} s", flush=True)
    return csv_path


def ours(marker: str) -> list[tuple[int, str]]:
    """(pid, kind) of the live processes whose command line holds ``marker`` (the soak dir)."""
    out = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            cmd = (p / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (p / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker not in cmd or state == "Z" or int(p.name) == os.getpid():
            continue
        for kind, needle in (
            ("trainer", " -m trainer "),
            ("report", " -m evaluator.report "),
            ("evaluator", " -m evaluator "),
            ("launcher", " -m launch "),
        ):
            if needle in f" {cmd} ":
                out.append((int(p.name), kind))
                break
    return out


def trial_states(sweep_dir: Path) -> dict[str, str]:
    out = {}
    for st in sorted(sweep_dir.glob("*/status.json")):
        try:
            out[st.parent.name] = json.loads(st.read_text()).get("state")
        except (OSError, ValueError):
            out[st.parent.name] = "unreadable"
    return out


class Soak:
    def __init__(self, sweep: str, soak_dir: Path, rng: random.Random, log: Path):
        self.sweep, self.dir, self.rng = sweep, soak_dir, rng
        self.marker = str(soak_dir)
        self.log = open(log, "a")
        self.launcher: subprocess.Popen | None = None
        self.kills: list[dict] = []
        self.launches = 0
        self.t0 = time.time()

    def start_launcher(self) -> None:
        self.launches += 1
        self.log.write(f"\n=== soak launch {self.launches} at {time.time() - self.t0:.0f} s\n")
        self.log.flush()
        self.launcher = subprocess.Popen(
            launcher_argv(self.sweep, self.dir),
            cwd=REPO,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )

    def launcher_done(self) -> int | None:
        return None if self.launcher is None else self.launcher.poll()

    def kill_one(self, only: tuple[str, ...] | None = None) -> bool:
        live = [(pid, kind) for pid, kind in ours(self.marker) if kind in (only or KINDS)]
        if not live:
            return False
        kinds = sorted({k for _, k in live})
        kind = self.rng.choices(kinds, weights=[KINDS[k] for k in kinds])[0]
        pid = self.rng.choice(sorted(p for p, k in live if k == kind))
        sig = self.rng.choice([signal.SIGKILL, signal.SIGTERM])
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
            os.kill(pid, sig)
        except (OSError, ProcessLookupError):
            return False
        trial = next((a.split("/")[-1] for a in cmd.split("\0") if a.startswith("--workdir=")), "")
        k = {
            "t": round(time.time() - self.t0, 1),
            "kind": kind,
            "trial": trial,
            "signal": signal.Signals(sig).name,
        }
        self.kills.append(k)
        print(f"soak: kill {len(self.kills)}: {k}", flush=True)
        return True

    def kill_phase(self, n: int, lo: float, hi: float, in_evaluator: bool = False) -> None:
        """Kill until ``n`` kills are made, each ``U(lo, hi)`` s after the last one (or after a
        launcher was started again). ``in_evaluator``: the delay starts when an evaluator is
        running, and the victim is the evaluator or (one time in four) the launcher."""
        while len(self.kills) < n:
            if self.launcher is None or self.launcher_done() is not None:
                if self.launcher is not None and self.finished() and not ours(self.marker):
                    print("soak: the sweep finished before every kill was made", flush=True)
                    return
                self.start_launcher()
            if in_evaluator:  # the evaluator runs once a launcher has trained every trial
                while self.launcher_done() is None and not self.live("evaluator"):
                    time.sleep(0.2)
            deadline = time.time() + self.rng.uniform(lo, hi)
            while time.time() < deadline and self.launcher_done() is None:
                time.sleep(0.2)
            if self.launcher_done() is None:  # a launcher that ended is started again first
                only = (
                    ("evaluator" if self.rng.random() < 0.75 else "launcher",)
                    if in_evaluator
                    else None
                )
                self.kill_one(only)

    def live(self, kind: str) -> bool:
        return any(k == kind for _, k in ours(self.marker))

    def finished(self) -> bool:
        states = trial_states(self.dir / self.sweep)
        return bool(states) and all(s == "done" for s in states.values())

    def finish_phase(self, tries: int = 10) -> int:
        """Wait for what is left, then run the launcher until it exits 0 with all trials done."""
        for _ in range(tries):
            while self.launcher_done() is None or ours(self.marker):
                time.sleep(1)
            if self.launcher is not None and self.launcher.returncode == 0 and self.finished():
                return 0
            self.start_launcher()
            self.launcher.wait()
        return 1


def compare(ref_csv: Path, soak_csv: Path) -> dict:
    def rows(path: Path) -> dict[tuple[str, str], dict]:
        with open(path, newline="") as f:
            return {(r["trial"], r["step"]): r for r in csv.DictReader(f)}

    ref, got = rows(ref_csv), rows(soak_csv)
    missing = sorted(set(ref) - set(got))
    differ = sorted(k for k in set(ref) & set(got) if ref[k] != got[k])
    return {
        "reference_rows": len(ref),
        "soak_rows": len(got),
        "missing": [list(k) for k in missing],
        "differ": [list(k) for k in differ],
        "extra": [list(k) for k in sorted(set(got) - set(ref))],
        "equal": not missing and not differ,
    }


def write_doc(summary: dict) -> None:
    kinds: dict[str, int] = {}
    for k in summary["kills"]:
        key = f"{k['kind']} {k['signal']}"
        kinds[key] = kinds.get(key, 0) + 1
    c = summary["compare"]
    lines = [
        f"`python tests/soak.py --seed {summary['seed']} --kills {summary['kills_asked']}` "
        f"({summary['date']}, {summary['sweep']} sweep, 2-core CPU): "
        f"**{len(summary['kills'])} kills** ({', '.join(f'{n} {k}' for k, n in sorted(kinds.items()))}), "
        f"{summary['launches']} launcher runs, {summary['wall_s'] / 60:.0f} min in all. "
        f"results.csv: {c['reference_rows']} rows in the uninterrupted run, "
        f"{'all' if c['equal'] else 'NOT all'} present with equal values "
        f"({len(c['missing'])} missing, {len(c['differ'])} different); "
        f"{len(c['extra'])} extra row(s) for checkpoints that SIGTERM saves added"
        + (f" ({', '.join(f'{t} step {s}' for t, s in c['extra'])})." if c["extra"] else "."),
        "",
        "| # | at (s) | process | trial | signal |",
        "| --- | --- | --- | --- | --- |",
        *[
            f"| {i} | {k['t']} | {k['kind']} | {k['trial']} | {k['signal']} |"
            for i, k in enumerate(summary["kills"], 1)
        ],
    ]
    doc = DOC.read_text()
    head, _, rest = doc.partition(BEGIN)
    _, _, tail = rest.partition(END)
    DOC.write_text(f"{head}{BEGIN}\n" + "\n".join(lines) + f"\n{END}{tail}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sweep", default="depth")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--kills", type=int, default=20)
    p.add_argument(
        "--evaluator-kills",
        type=int,
        default=5,
        help="of the kills, how many fall while the evaluator runs (the last ones: it runs "
        "once training is done)",
    )
    p.add_argument("--min-delay", type=float, default=2.0)
    p.add_argument("--max-delay", type=float, default=20.0)
    p.add_argument(
        "--reference-dir", type=Path, default=Path(tempfile.gettempdir()) / "psweeps-soak-reference"
    )
    p.add_argument("--dir", type=Path, help="the soak's runs dir (default: a new temporary one)")
    p.add_argument(
        "--write-doc", action="store_true", help="record the outcome in docs/reliability.md"
    )
    args = p.parse_args(argv)
    os.environ.setdefault("PSWEEPS_TENSORBOARD", "0")  # the same for both runs; saves TF imports
    ref_csv = run_reference(args.sweep, args.reference_dir)
    soak_dir = args.dir or Path(tempfile.mkdtemp(prefix="psweeps-soak-"))
    soak_dir.mkdir(parents=True, exist_ok=True)
    print(f"soak: seed {args.seed}, {args.kills} kills, in {soak_dir}", flush=True)
    soak = Soak(args.sweep, soak_dir, random.Random(args.seed), soak_dir / "soak.log")
    during_training = args.kills - args.evaluator_kills
    soak.kill_phase(during_training, args.min_delay, args.max_delay)
    soak.kill_phase(args.kills, 1.0, args.max_delay, in_evaluator=True)
    rc = soak.finish_phase()
    states = trial_states(soak_dir / args.sweep)
    soak_csv = soak_dir / args.sweep / "results.csv"
    result = compare(ref_csv, soak_csv) if rc == 0 and soak_csv.exists() else {"equal": False}
    summary = {
        "sweep": args.sweep,
        "seed": args.seed,
        "kills_asked": args.kills,
        "kills": soak.kills,
        "launches": soak.launches,
        "wall_s": round(time.time() - soak.t0, 1),
        "date": time.strftime("%Y-%m-%d"),
        "states": states,
        "compare": result,
    }
    (soak_dir / "soak.json").write_text(json.dumps(summary, indent=2))
    print(
        json.dumps({k: summary[k] for k in ("states", "compare", "launches", "wall_s")}, indent=2)
    )
    ok = rc == 0 and result.get("equal") and len(soak.kills) >= args.kills
    if ok and args.write_doc:
        write_doc(summary)
        print(f"soak: wrote {DOC}")
    if ok and args.dir is None:
        shutil.rmtree(soak_dir, ignore_errors=True)
    print("soak: PASSED" if ok else f"soak: FAILED (left in {soak_dir})", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
