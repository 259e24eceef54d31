"""The cases of the reliability table (tests/reliability_table.py): each bad input or fault, how
to set it up, the command a user would run, the exit codes allowed and what the line must say."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fault_support import DAMAGE

PY = sys.executable
RUN = [  # the shared trained run: 40 steps of the smoke config, checkpoints 10, 20, 30, 40
    "--config.train.epochs=1",
    "--config.checkpoint.every_steps=10",
    "--config.checkpoint.max_to_keep=10",
]
SHORT = ["--config.train.epochs=0.05"]  # 2 steps: cases that only need the run to start


def trainer(workdir: Path, *overrides: str, config: str = "sweeps/smoke.py") -> list[str]:
    return [PY, "-m", "trainer", f"--config={config}", *overrides, f"--workdir={workdir}"]


def workdir_of(argv: list[str]) -> Path:
    return Path(next(a for a in argv if a.startswith("--workdir=")).split("=", 1)[1])


def describe(d: Path) -> str:
    """What a case left under ``d``: each trial directory's state, checkpoints, steps moved
    aside and evaluator records; "nothing written" when there is none."""
    trials = sorted({p.parent for n in ("status.json", "config.json") for p in d.rglob(n)})
    trials = [t for t in trials if "reference" not in t.parts]
    out = []
    for t in trials:
        bits = []
        st = _json(t / "status.json")
        if st:
            bits.append(
                f"status {st.get('state')}" + (f" at step {st['step']}" if "step" in st else "")
            )
        ck = sorted(int(p.name) for p in (t / "checkpoints").glob("[0-9]*") if p.name.isdigit())
        if ck:
            bits.append("checkpoints " + ",".join(map(str, ck)))
        moved = sorted(p.name for p in (t / "checkpoints-damaged").glob("*"))
        if moved:
            bits.append("moved aside " + ",".join(moved))
        recs = [_json(p) or {} for p in (t / "perceptual").glob("*.json")]
        if recs:
            errors = sum(1 for r in recs if r.get("error"))
            bits.append(f"perceptual: {len(recs) - errors} scored, {errors} error record(s)")
        ex = (st or {}).get("examples") or {}
        for which, e in ex.items():
            if e.get("asked", 0) > e.get("used", 0):
                bits.append(f"examples.{which} {e['used']} of {e['asked']} asked")
        out.append(f"{t.name}: " + ("; ".join(bits) or "config.json only"))
    return " / ".join(out) or "nothing written"


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


@dataclass
class Case:
    name: str  # the bad input or fault, as the table says it
    tool: str  # the command, in short
    setup: Callable[[Any, Path], list[str]]  # (runner, scratch dir) -> argv
    codes: tuple[int, ...]  # exit codes that are right
    says: str = ""  # what the line must contain
    pick: str = ""  # the line shown: the first one containing this, else the last line
    how: str = "plain"  # plain | read_only | full_disk | sigterm | sigint | sigkill | ...
    ro: str = ""  # read_only: the path under the scratch dir made read-only
    needs_root: bool = False
    root: Path | None = None  # set by the runner: stripped from the lines shown

    def pick_line(self, lines: list[str]) -> str:
        if self.pick:
            for ln in lines:
                if self.pick in ln:
                    return ln.strip()
        return lines[-1].strip() if lines else ""

    def left(self, d: Path) -> str:
        return describe(d)

    def ro_path(self, d: Path) -> Path:
        return d / self.ro

    def workdir(self, d: Path) -> Path:
        return d / "sw" / "depth-6"


# ----------------------------------------------------------------------------- set-ups


def fresh(*overrides: str):
    def setup(r, d):
        return trainer(d / "sw" / "depth-6", *overrides)

    return setup


def on_copy(*overrides: str, damage: dict[int, str] | None = None, drop_record=(), cmd="trainer"):
    """A copy of the trained run, damaged; then the trainer (or evaluator / score) on it."""

    def setup(r, d):
        wd = r.trained_copy(d)
        for step in drop_record:
            (wd / "checkpoints" / str(step) / "integrity.json").unlink()
        for step, kind in (damage or {}).items():
            DAMAGE[kind](wd / "checkpoints" / str(step))
        if cmd == "evaluator":
            return [PY, "-m", "evaluator", f"--runs={wd.parent}"]
        if cmd.startswith("score:"):
            target = wd / "checkpoints" / cmd.split(":")[1]
            return [
                PY,
                "-m",
                "evaluator",
                "score",
                "--benchmark=proxy",
                f"--metric=checkpoint:{target}",
            ]
        return trainer(wd, *RUN, *overrides)

    return setup


def sweep_file(body: str):
    def setup(r, d):
        f = d / "my_sweep.py"
        f.write_text(
            "from sweeps import smoke\n\ndef get_config(arg=None):\n"
            "    return smoke.get_config(arg)\n\n" + body
        )
        return [PY, "-m", "launch", str(f), "--runs-dir", str(d / "runs"), "--no-eval"]

    return setup


def launcher(runs_dir: str, make: Callable[[Path], None] = lambda d: None, *extra: str):
    def setup(r, d):
        make(d)
        return [PY, "-m", "launch", "smoke", "--runs-dir", str(d / runs_dir), "--no-eval", *extra]

    return setup


def a_file(path: str) -> Callable[[Path], None]:
    def make(d: Path) -> None:
        (d / path).parent.mkdir(parents=True, exist_ok=True)
        (d / path).write_text("not a directory\n")

    return make
