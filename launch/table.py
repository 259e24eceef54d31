"""The sweep status table (``python -m launch <sweep> --status`` and the end of every run).

One row per trial from its status.json: trial, state, step/total, top-1 of the last eval, wall
time. A 'running' trial whose process is gone on this host shows as ``running (dead)``. The
last line counts the states and estimates when the sweep ends (``sweep_eta``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from launch.procs import is_dead
from launch.trials import Trial

HEADER = ("trial", "state", "step/total", "top-1", "time")


def row(trial: Trial) -> tuple[str, ...]:
    st = trial.status()
    state = str(st.get("state", "?"))
    if state == "running" and is_dead(st):
        state = "running (dead)"
    step, total = st.get("step"), st.get("total_steps")
    steps = f"{step if step is not None else '-'}/{total if total is not None else '-'}"
    top1 = (st.get("last_eval") or {}).get("top1")
    top1_text = f"{100 * top1:.2f}%" if isinstance(top1, (int, float)) else "-"
    return (trial.name, state, steps, top1_text, _duration(st.get("wall_time_s")))


def _duration(seconds: Any) -> str:
    if not isinstance(seconds, (int, float)):
        return "-"
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def format_rows(rows: Sequence[Sequence[str]], header: Sequence[str] = HEADER) -> str:
    """A plain aligned text table (a few lines; no dependency needed)."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
        for r in [header, *rows]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def sweep_eta(statuses: Sequence[dict[str, Any]]) -> str:
    """``ETA ~12m`` for the trials still to run, or '' when nothing is known yet: a running
    trial takes its own pace (wall time per step so far) to its last step, a trial not
    started the mean time of the trials that ended (else of the running ones' projections),
    and the sum is shared by the trials running at once (at least one)."""
    ended: list[float] = []  # wall times of ended trials
    projected: list[float] = []  # running trials' whole durations at their pace so far
    left, waiting, running = 0.0, 0, 0
    for st in statuses:
        state, wall = st.get("state"), st.get("wall_time_s")
        step, total = st.get("step") or 0, st.get("total_steps") or 0
        if state in ("done", "diverged"):
            if isinstance(wall, (int, float)):
                ended.append(float(wall))
        elif state == "running" and not is_dead(st) and step > 0 and total and wall:
            running += 1
            left += (total - step) * wall / step
            projected.append(total * wall / step)
        else:
            waiting += 1
    per_trial = ended or projected
    if not per_trial:
        return ""
    left += waiting * sum(per_trial) / len(per_trial)
    return f"ETA ~{_duration(left / max(running, 1))}" if left else ""


def status_table(trials: Sequence[Trial]) -> str:
    """The table for ``trials`` plus a count per state and the sweep's ETA."""
    statuses = [t.status() for t in trials]
    rows = [row(t) for t in trials]
    counts: dict[str, int] = {}
    for r in rows:
        counts[r[1]] = counts.get(r[1], 0) + 1
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    eta = sweep_eta(statuses)
    return f"{format_rows(rows)}\n{len(rows)} trials: {summary}" + (f"; {eta}" if eta else "")
