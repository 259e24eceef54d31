"""The report's "Benchmarks" section: every human benchmark scored, side by side.

The rest of the report follows one benchmark (BAPPS when scored). This section shows each
scored benchmark's headline score for the report's distance, one column and one plot
(``bench_<name>.png``: score vs top-1, final checkpoints; for the benchmark the report follows,
its own ``top1_vs_ps.png``) per benchmark, and the Spearman
correlation of each benchmark's score with top-1 across the sweep: does "better classifiers
are worse perceptual metrics" hold beyond BAPPS? Headline scores: the Perceptual Score (% 2AFC
agreement) for proxy, BAPPS and NIGHTS; Spearman's rank correlation with the mean opinion
scores (SROCC, sign flipped so that 1 = people's order) for TID2013 and KADID-10k.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evaluator.names import BENCHMARK_NAMES, MOS_BENCHMARKS
from evaluator.report.analyse import Analysis
from evaluator.report.parallel import Figures
from evaluator.report.stats import Correlation, spearman

LABELS = {"proxy": "proxy", "bapps": "BAPPS", "nights": "NIGHTS", "tid2013": "TID2013",
          "kadid10k": "KADID-10k"}  # fmt: skip


def headline(bench: str, dist: str) -> tuple[str, str]:
    """``(results.csv column, what it is)`` of a benchmark's headline score."""
    if bench in MOS_BENCHMARKS:
        return f"srocc_{bench}_{dist}", "SROCC"
    return f"ps_{bench}_{dist}", "PS (% 2AFC)"


@dataclass
class View:
    bench: str
    column: str
    what: str
    resolution: str | None
    points: list[dict[str, Any]] = field(default_factory=list)  # final rows with both numbers
    vs_top1: Correlation | None = None


def _final_rows(a: Analysis) -> list[dict[str, Any]]:
    """The final row of each trial, finished trials only when any finished (as ``analyse``)."""
    rows = [a.finals[t.key] for t in a.trials if t.key in a.finals]
    done = [r for r in rows if r.get("state") == "done"]
    return done or rows


def analyse(a: Analysis) -> list[View]:
    """One view per benchmark with a headline column for the report's distance."""
    dist = a.dist or "local"
    keys = a.columns
    views = []
    for bench in BENCHMARK_NAMES:
        column, what = headline(bench, dist)
        if column not in keys:
            continue
        res = next((r[f"resolution_{bench}"] for r in a.rows if r.get(f"resolution_{bench}")), None)
        v = View(bench, column, what, res)
        v.points = [
            r for r in _final_rows(a) if r.get("top1") is not None and r.get(column) is not None
        ]
        v.vs_top1 = spearman([r["top1"] for r in v.points], [r[column] for r in v.points])
        views.append(v)
    return views


def _fmt(v: Any, what: str) -> str:
    if v is None:
        return "–"
    return f"{v:+.3f}" if what == "SROCC" else f"{v:.1f}"


def render(views: list[View], a: Analysis, plots: dict[str, tuple[str, str]]) -> list[str]:
    out = ["", "## Benchmarks", ""]
    if not views:
        return out + ["No benchmark scored for this distance yet."]
    dist = a.dist or "local"
    out += [
        f"Each scored benchmark's headline score for distance `{dist}`: PS (% 2AFC agreement) "
        "for proxy, BAPPS and NIGHTS; SROCC (Spearman's rank correlation with the mean "
        "opinion scores, 1 = people's order) for TID2013 and KADID-10k. Final checkpoints. "
        "Resolution: "
        + "; ".join(f"{LABELS[v.bench]} {v.resolution or 'as released'}" for v in views)
        + ".",
        "",
    ]
    head = ["trial", "top-1 (%)", *[f"{LABELS[v.bench]} {v.what}" for v in views]]
    body = []
    for r in _final_rows(a):
        line = [f"`{r['trial']}`", "–" if r.get("top1") is None else f"{r['top1']:.1f}"]
        body.append(line + [_fmt(r.get(v.column), v.what) for v in views])
    out += _table(head, body)
    out += ["", "Spearman correlation of each benchmark's score with top-1 across the sweep "
            "(final checkpoints; exact p up to 8 points):", ""]  # fmt: skip
    body = []
    for v in views:
        c = v.vs_top1
        rho = "–" if c.rho is None else f"{c.rho:+.3f}"
        p = "–" if c.p is None else f"{c.p:.3g}"
        body.append([LABELS[v.bench], v.what, str(c.n), rho, p, c.note])
    out += _table(["benchmark", "score", "n", "Spearman ρ vs top-1", "p-value", "note"], body)
    if any(v.bench == a.bench for v in views):
        out += ["", f"{LABELS[a.bench]}'s plot is the report's own, under Plots (top-1 vs PS)."]
    for v in views:
        if v.bench in plots:
            name, caption = plots[v.bench]
            out += ["", f"### {caption}", "", f"![{caption}]({name})"]
    return out


def _table(head: list[str], body: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(" --- " for _ in head) + "|"]
    return lines + ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in body]


def _draw(path: Path, v: View, caption: str) -> None:
    from evaluator.report.draw import _save, plt  # matplotlib only when plotting

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    xs, ys = [r["top1"] for r in v.points], [r[v.column] for r in v.points]
    ax.scatter(xs, ys, color="tab:blue", zorder=3)
    for r, x, y in zip(v.points, xs, ys, strict=True):
        ax.annotate(str(r["trial"]), (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel("Top-1 accuracy (%)")
    ax.set_ylabel(f"{LABELS[v.bench]} {v.what}")
    rho = v.vs_top1.rho if v.vs_top1 else None
    ax.set_title(caption + ("" if rho is None else f"\nSpearman ρ = {rho:+.2f}"), fontsize=9)
    ax.grid(alpha=0.3)
    _save(fig, path, dpi=110)


def write_plots(
    views: list[View], a: Analysis, out_dir: Path, figs: Figures
) -> dict[str, tuple[str, str]]:
    """Queue ``bench_<name>.png`` on ``figs`` per benchmark with points but the one the report
    follows (its plot is ``top1_vs_ps.png``): ``{bench: (file, caption)}``."""
    done = {}
    for v in views:
        if not v.points or v.bench == a.bench:
            continue
        name = f"bench_{v.bench}.png"
        caption = f"{LABELS[v.bench]} {v.what} vs top-1, final checkpoints ({a.dist or 'local'})"
        figs.add(out_dir / name, _draw, v, caption)
        done[v.bench] = (name, caption)
    return done
