"""The report's "Hypotheses" section: the study's probes (``evaluator.probes``,
``evaluator.frequency``, ``evaluator.calibration``) against PS and top-1 over every scored
checkpoint, the best single tap, the frequency curves of the shallowest and deepest trial, the
benchmark's dynamic range, and ``lin`` beside the unlearned distances.

Reads only the collected rows (results.csv's probe columns) and, for the dynamic-range curve,
the ``dynamic_range`` block of one scored result; ``draw_hypotheses`` draws the figures.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evaluator.report.analyse import Analysis
from evaluator.report.parallel import Figures
from evaluator.report.stats import Correlation, format_p, spearman


@dataclass
class Probe:
    name: str  # file stem part and table key
    label: str  # what the value is, for axes and the table
    column: str  # results.csv column
    points: list[dict[str, Any]] = field(default_factory=list)  # {trial, value, ps, top1}
    vs_ps: Correlation | None = None
    vs_top1: Correlation | None = None


@dataclass
class Hypotheses:
    bench: str
    dist: str
    probes: list[Probe]
    best_taps: list[dict[str, Any]]  # final checkpoints: trial, tap, ps, all
    tap_counts: dict[str, int]  # how often each tap is best over every scored checkpoint
    pair: list[dict[str, Any]]  # the shallowest and the deepest final row
    pair_how: str
    curves: list[dict[str, Any]]  # the pair's frequency curves
    dynamic: dict[str, Any] | None
    model_range: tuple[float, float] | None  # min and max PS over every scored checkpoint
    distances: list[str]
    gap: list[dict[str, Any]]  # per distance: shallow, deep, gap


def _probe_specs(bench: str, dist: str) -> list[Probe]:
    return [
        Probe("relmargin", "relative distortion margin (far - near) / mean", f"relmargin_{bench}_{dist}"),
        Probe("margin", "distortion margin (far - near)", f"margin_{bench}_{dist}"),
        Probe("entropy", "activation entropy (normalised, mean over taps)", f"entropy_{bench}"),
        Probe("freq_slope", "low-pass slope at high r (per unit r / size)", "freq_low_slope"),
        Probe("best_tap", "PS of the best single tap", f"best_tap_ps_{bench}_{dist}"),
    ]  # fmt: skip


def _pair(a: Analysis) -> tuple[list[dict[str, Any]], str]:
    """The final rows compared: ResNet-6 and ResNet-200 when both are there, else the
    shallowest and deepest (``model_depth``), else the first and last in report order."""
    rows = a.analysed or [a.finals[t.key] for t in a.trials if t.key in a.finals]
    if len(rows) < 2:
        return rows, "fewer than two trials"
    by_depth = {r.get("model_depth"): r for r in reversed(rows) if r.get("model_name") == "resnet"}
    if 6 in by_depth and 200 in by_depth:
        return [by_depth[6], by_depth[200]], "ResNet-6 vs ResNet-200"
    depths = [r for r in rows if isinstance(r.get("model_depth"), (int, float))]
    if depths and len({r["model_depth"] for r in depths}) > 1:
        lo = min(depths, key=lambda r: r["model_depth"])
        hi = max(reversed(depths), key=lambda r: r["model_depth"])
        return [lo, hi], "shallowest vs deepest trial by model.depth"
    return [rows[0], rows[-1]], "first vs last trial in the report's order"


def _curve(a: Analysis, row: dict[str, Any]) -> dict[str, Any] | None:
    low = {int(m[1]): v for k, v in row.items() if (m := re.fullmatch(r"freq_low_r(\d+)", k))}
    high = {int(m[1]): v for k, v in row.items() if (m := re.fullmatch(r"freq_high_r(\d+)", k))}
    if not low:
        return None
    trial = next(t for t in a.trials if t.key == row["trial"])
    size = trial.value("data.image_size") or max(low)
    rs = sorted(low)
    return {
        "label": f"{row['trial']} (top-1 {row['top1']:.1f}%)" if row.get("top1") else row["trial"],
        "x": [r / float(size) for r in rs],
        "low": [low[r] for r in rs],
        "high": [high.get(r) for r in rs],
        "slope": row.get("freq_low_slope"),
    }


def _dynamic(a: Analysis) -> dict[str, Any] | None:
    for t in a.trials:
        dyn = t.dynamic.get(a.bench)
        if isinstance(dyn, dict) and dyn.get("sigmas"):
            return dyn
    return None


def analyse(a: Analysis) -> Hypotheses | None:
    """The section's content, or None when no scored checkpoint carries probes."""
    if not a.ps_col or not any(k.startswith(("entropy_", "freq_")) for r in a.rows for k in r):
        return None
    bench, dist = a.bench, a.dist
    probes = _probe_specs(bench, dist)
    for p in probes:
        p.points = [
            {"trial": r["trial"], "value": r[p.column], "ps": a.ps(r), "top1": r.get("top1")}
            for r in a.rows
            if r.get(p.column) is not None and a.ps(r) is not None
        ]
        with_top1 = [q for q in p.points if q["top1"] is not None]
        p.vs_ps = spearman([q["value"] for q in p.points], [q["ps"] for q in p.points])
        p.vs_top1 = spearman([q["value"] for q in with_top1], [q["top1"] for q in with_top1])
    probes = [p for p in probes if p.points]
    best = [
        {
            "trial": t.key,
            "tap": a.finals[t.key].get(f"best_tap_{bench}_{dist}"),
            "ps": a.finals[t.key].get(f"best_tap_ps_{bench}_{dist}"),
            "all": a.ps(a.finals[t.key]),
        }
        for t in a.trials
        if t.key in a.finals and a.finals[t.key].get(f"best_tap_{bench}_{dist}")
    ]
    counts: dict[str, int] = {}
    for r in a.rows:
        tap = r.get(f"best_tap_{bench}_{dist}")
        if tap:
            counts[tap] = counts.get(tap, 0) + 1
    pair, how = _pair(a)
    curves = [c for c in (_curve(a, r) for r in pair) if c]
    ps_all = [a.ps(r) for r in a.rows if a.ps(r) is not None]
    gap = []
    if len(pair) == 2:
        for d in a.distances:
            lo, hi = (r.get(f"ps_{bench}_{d}") for r in pair)
            if lo is not None and hi is not None:
                gap.append({"distance": d, "first": lo, "second": hi, "gap": lo - hi})
    return Hypotheses(
        bench, dist, probes, best, counts, pair, how, curves, _dynamic(a),
        (min(ps_all), max(ps_all)) if ps_all else None, list(a.distances), gap,
    )  # fmt: skip


# ----------------------------------------------------------------------------- text


def _f(v: Any, digits: int = 2) -> str:
    return "–" if v is None else f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def _corr(c: Correlation | None) -> list[str]:
    if c is None or c.rho is None:
        return ["–", (c.note if c else "") or "–"]
    return [f"{c.rho:+.3f}", format_p(c.p)]


def _table(head: list[str], body: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(head) + " |", "|" + "|".join(" --- " for _ in head) + "|"]
    return out + ["| " + " | ".join(r) + " |" for r in body]


def _plot_lines(plots: dict[str, tuple[str, str]], key: str) -> list[str]:
    if key not in plots:
        return []
    name, caption = plots[key]
    return ["", f"![{caption}]({name})"]


def _range_lines(h: Hypotheses) -> list[str]:
    dyn = h.dynamic
    if not dyn:
        return ["No dynamic-range block in the results (scored before the probes existed)."]
    ceil = dyn["ceiling"]
    out = [
        f"From the benchmark's labels alone: the ceiling (mean of max(p, 1 - p)) is "
        f"**{ceil:.1f}**, and distances that order each triplet as its majority did, blurred by "
        "truncated-normal noise of spread sigma, score (seed "
        f"{dyn.get('seed', 0)}): "
        + ", ".join(f"sigma {s:g}: {v:.1f}" for s, v in zip(dyn["sigmas"], dyn["ps"], strict=True))
        + "."
    ]
    if h.model_range and ceil > 50:
        lo, hi = h.model_range
        share = lambda v: 100.0 * (v - 50.0) / (ceil - 50.0)
        out[0] += (
            f" The scored checkpoints span PS {lo:.1f} to {hi:.1f}: from {share(lo):.0f}% to "
            f"{share(hi):.0f}% of the way from chance (50) to the ceiling."
        )
    return out


def render(h: Hypotheses | None, plots: dict[str, tuple[str, str]]) -> list[str]:
    """The section's markdown lines; ``plots`` maps a plot key to (file, caption)."""
    out = ["", "## Hypotheses", ""]
    if h is None:
        return out + ["No scored checkpoint carries the probes (`perceptual.probes`) yet."]
    out += [
        f"The study's probes, on `{h.bench}` with distance `{h.dist}` (definitions: "
        "evaluator/probes.py, evaluator/frequency.py, evaluator/calibration.py; every field in "
        "docs/file-contracts.md). Spearman correlations over every scored checkpoint (two-sided "
        "p-values, exact up to 8 points).",
        "",
    ]
    body = [[p.label, str(len(p.points)), *_corr(p.vs_ps), *_corr(p.vs_top1)] for p in h.probes]
    out += _table(["probe", "n", "ρ vs PS", "p", "ρ vs top-1", "p"], body)
    for p in h.probes:
        out += _plot_lines(plots, p.name)
    out += ["", "### Best single tap", ""]
    if h.best_taps:
        out += _table(
            ["trial (final checkpoint)", "best tap", "its PS", "PS, all taps"],
            [[f"`{b['trial']}`", f"`{b['tap']}`", _f(b["ps"]), _f(b["all"])] for b in h.best_taps],
        )
        counts = ", ".join(f"`{t}` {n}" for t, n in sorted(h.tap_counts.items()))
        out += ["", f"Best tap over every scored checkpoint: {counts}."]
    out += ["", f"### Spatial frequency ({h.pair_how})", ""]
    for c in h.curves:
        out.append(f"- `{c['label']}`: low-pass slope at high r {_f(c['slope'], 3)}.")
    out += _plot_lines(plots, "frequency") if h.curves else ["No frequency curves scored."]
    out += ["", "### Dynamic range of PS", ""] + _range_lines(h) + _plot_lines(plots, "dynamic")
    out += ["", "### Distances, learned (`lin`) and not", ""]
    if "lin" not in h.distances:
        out += ["`lin` not scored: set `perceptual.calibrate=true` to fit it.", ""]
    if h.gap:
        a, b = (f"`{r['trial']}`" for r in h.pair)
        out += [f"PS of {a} minus PS of {b} ({h.pair_how}), per distance:", ""]
        out += _table(
            ["distance", a, b, "gap"],
            [[g["distance"], _f(g["first"]), _f(g["second"]), _f(g["gap"])] for g in h.gap],
        )
        gaps = {g["distance"]: g["gap"] for g in h.gap}
        if "lin" in gaps and h.dist in gaps and h.dist != "lin":
            out += ["", f"The calibration moves the gap from {gaps[h.dist]:.2f} (`{h.dist}`) to "
                    f"{gaps['lin']:.2f} (`lin`)."]  # fmt: skip
    return out + _plot_lines(plots, "distances")


def write_plots(
    h: Hypotheses | None, a: Analysis, out_dir: Path, figs: Figures
) -> dict[str, tuple[str, str]]:
    """Queue the section's PNGs on ``figs``: ``{key: (file, caption)}``."""
    if h is None:
        return {}
    from evaluator.report import draw_hypotheses as dh

    tag = f"{h.bench}, {h.dist} distance" + (", not BAPPS" if h.bench == "proxy" else "")
    jobs: list[tuple[str, str, str, Any, tuple]] = []
    for p in h.probes:
        cap = f"{p.label} vs Perceptual Score and vs top-1, every scored checkpoint ({tag})"
        jobs.append((p.name, f"hyp_{p.name}.png", cap, dh.probe_scatter, (p, a.trials, cap)))
    if h.curves:
        cap = f"Top-1 on low-pass / high-pass filtered eval images over clean top-1, {h.pair_how}"
        jobs.append(("frequency", "hyp_frequency.png", cap, dh.frequency_curves, (h.curves, cap)))
    if h.dynamic:
        cap = f"Dynamic range of PS on {h.bench}: simulated distances vs the scored checkpoints"
        jobs.append(("dynamic", "hyp_dynamic_range.png", cap, dh.dynamic_range, (h, cap)))
    if a.analysed and a.distances:
        cap = f"Perceptual Score per distance function, final checkpoints ({h.bench})"
        args = (a.analysed, a.distances, h.bench, cap)
        jobs.append(("distances", "hyp_distances.png", cap, dh.distance_bars, args))
    done = {}
    for key, name, caption, fn, args in jobs:
        figs.add(out_dir / name, fn, *args)
        done[key] = (name, caption)
    return done
