"""The sweep report: results.csv, report.md and PNG plots from a sweep's run directories.

    python -m evaluator.report runs/<sweep> [--benchmark proxy|bapps] [--distance local|...]
    python -m evaluator.report runs --all        # every sweep under runs/ into runs/

It reads only files (docs/file-contracts.md), so it runs at any time: mid-sweep, after failures,
on another machine. Pieces: ``report_data`` (collect, CSV), ``report_stats`` (Spearman, Pareto,
seeds), ``report_analysis`` (what the report says), ``report_md`` and ``report_plots``.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from evaluator.report_analysis import REFERENCE_NAMES, Analysis, analyse, trial_order
from evaluator.report_data import (
    ReportError,
    Sweep,
    build_rows,
    csv_columns,
    load_sweeps,
    write_csv,
)
from evaluator.report_stats import aggregate_over_seeds, x_scale
from sweeps.base import BENCHMARKS, DISTANCES
from trainer.files import atomic_write_text

FIXED_PLOTS = ("top1_vs_ps", "ps_vs_epoch", "per_tap")


def _file_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "axis"


def axis_plot_names(a: Analysis) -> dict[str, str]:
    """sweep name -> axis plot file stem: the x key's last part (``weight_decay``), or the
    sweep's name for a categorical sweep (``archs``) or when names would collide."""
    stems = {}
    for sw in a.sweeps:
        keys = a.plans[sw.name].keys
        stems[sw.name] = _file_name(keys[0].rsplit(".", 1)[-1] if keys else sw.name)
    counts = Counter(stems.values())
    for name, stem in stems.items():
        if counts[stem] > 1 or stem in FIXED_PLOTS:
            stems[name] = _file_name(f"{name}_{stem}") if stem != name else _file_name(name)
    return stems


def _top1_label(a: Analysis) -> str:
    names = Counter(str(t.value("data.name")) for t in a.trials if t.value("data.name"))
    data = " / ".join(n for n, _ in names.most_common()) or "the"
    return f"Top-1 accuracy on {data} eval (%)"


def _kv(key: str, value: Any) -> str:
    short = key.rsplit(".", 1)[-1]
    return f"{short}={value:g}" if isinstance(value, float) else f"{short}={value}"


def _group(a: Analysis, t: Any) -> tuple[tuple, str]:
    """Trials that share a model and an x value (seeds of one grid point) share a colour:
    the group's key and its legend label (``resnet-50 weight_decay=0.0001``)."""
    prefix = f"{t.sweep}: " if len(a.sweeps) > 1 else ""
    g = a.plans[t.sweep].group_of(t.key)
    if g is None:
        return (t.sweep, t.key), prefix + t.name
    value = t.value(g.key) if g.key else None
    label = " ".join(x for x in (g.label, _kv(g.key, value) if g.key else "") if x)
    return (t.sweep, g.label, repr(value)), prefix + (label or t.name)


def axis_series(a: Analysis, sw: Sweep) -> tuple[list[dict[str, Any]], str]:
    """The axis plot's series for ``sw`` (seed-aggregated, one per model) and its x label."""
    p = a.plans[sw.name]
    by_trial = {r["trial"]: dict(r, ps=a.ps(r)) for r in a.analysed if r["sweep"] == sw.name}
    series = []
    if p.categorical:
        rows = [
            dict(by_trial[t.key], _x=g.label or t.name)
            for g in p.groups
            for t in g.trials
            if t.key in by_trial
        ]
        if rows:
            agg = aggregate_over_seeds(rows, "_x", ["ps", "top1"])
            series.append({"label": "", "agg": agg})
        return series, "model"
    for g in p.groups:
        if not g.key:
            continue
        rows = [dict(by_trial[t.key], _x=t.value(g.key)) for t in g.trials if t.key in by_trial]
        if not rows:
            continue
        label = g.label + (f" ({g.key})" if g.key != p.keys[0] else "")
        series.append(
            {"label": label.strip(), "agg": aggregate_over_seeds(rows, "_x", ["ps", "top1"])}
        )
    return series, " / ".join(p.keys)


def write_plots(a: Analysis, out_dir: Path) -> tuple[list[tuple[str, str]], list[str]]:
    """Write every plot the data allows; return ``[(file name, caption)]`` and the failures."""
    from evaluator import report_plots as rp  # matplotlib only when plotting

    done: list[tuple[str, str]] = []
    failed: list[str] = []

    def draw(name: str, caption: str, fn: Any, *args: Any) -> None:
        try:
            fn(out_dir / name, *args)
            done.append((name, caption))
        except Exception as e:  # a plot that cannot be drawn must not cost the report
            failed.append(f"{name}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
            print(f"report: {failed[-1]}", file=sys.stderr)

    if not a.ps_col:
        return done, failed
    tag = f"{a.bench}, {a.dist} distance"
    if a.bench == "proxy":
        tag = f"embedded proxy, not BAPPS; {a.dist} distance"
    top1_label = _top1_label(a)
    if a.analysed:  # the plots against top-1 need points with both numbers
        pts = [{"label": r["trial"], "top1": r["top1"], "ps": a.ps(r)} for r in a.analysed]
        front_keys = {r["trial"] for r in a.frontier}
        frontier = [i for i, r in enumerate(a.analysed) if r["trial"] in front_keys]
        frontier.sort(key=lambda i: (pts[i]["top1"], -pts[i]["ps"]))
        refs = {
            f"{REFERENCE_NAMES.get(k, k)}, same benchmark": v["ps"]
            for k, v in a.references.items()
            if v.get("ps") is not None
        }
        caption = f"Top-1 vs Perceptual Score, final checkpoints ({tag})"
        draw("top1_vs_ps.png", caption, rp.top1_vs_ps, pts, frontier, refs, caption, top1_label)

        stems = axis_plot_names(a)
        for sw in a.sweeps:
            series, label = axis_series(a, sw)
            if not series:
                continue
            scale = x_scale([g["x"] for s in series for g in s["agg"]])
            caption = f"Perceptual Score and top-1 vs {label} (sweep {sw.name}, {tag})"
            name = f"{stems[sw.name]}.png"
            draw(name, caption, rp.axis_plot, label, series, scale, caption, top1_label)

    series = []  # PS alone is enough here: an imported trial (evaluator.imports) has no top-1
    for t in a.trials:
        ps = [(r.get("epoch"), a.ps(r)) for r in a.rows if r["trial"] == t.key]
        if not any(p[1] is not None for p in ps):
            continue
        top1 = [
            (e.get("epoch"), 100.0 * e["eval_top1"])
            for e in t.evals.values()
            if e.get("eval_top1") is not None
        ]
        group, group_label = _group(a, t)
        series.append(
            {"label": t.key, "group": group, "group_label": group_label, "ps": ps, "top1": top1}
        )
    if series:
        caption = f"Perceptual Score and top-1 during training ({tag})"
        draw("ps_vs_epoch.png", caption, rp.ps_vs_epoch, series, caption, top1_label)

    if a.taps and a.analysed:
        trials = {t.key: t for t in a.trials}
        tap_series = [
            {
                "label": r["trial"],
                "group": _group(a, trials[r["trial"]])[0],
                "group_label": _group(a, trials[r["trial"]])[1],
                "values": [r.get(f"tap_{a.bench}_{a.dist}_{tap}") for tap in a.taps],
            }
            for r in a.analysed
        ]
        caption = f"Perceptual Score of each tap alone, final checkpoints ({tag})"
        draw("per_tap.png", caption, rp.per_tap, a.taps, tap_series, caption)
    return done, failed


def write_report(
    sweep_dir: Path,
    combine_all: bool = False,
    benchmark: str | None = None,
    distance: str | None = None,
    plots: bool = True,
) -> Path:
    """Write results.csv, report.md and the plots into ``sweep_dir``; return report.md's path.

    With ``combine_all``, ``sweep_dir`` is the runs directory and every sweep under it is
    combined. Raises ``ReportError`` (one line) for input it cannot use.
    """
    sweep_dir = Path(sweep_dir)
    sweeps = load_sweeps(sweep_dir, combine_all)
    order = {t.key: i for i, t in enumerate(trial_order(sweeps))}
    rows = sorted(build_rows(sweeps), key=lambda r: (order[r["trial"]], r["step"]))
    a = analyse(sweeps, rows, benchmark, distance)
    swept = []
    for sw in sweeps:
        swept += [k for k in sw.swept if k not in swept]
    write_csv(sweep_dir / "results.csv", rows, csv_columns(rows, swept))
    made, failed = write_plots(a, sweep_dir) if plots else ([], [])
    if combine_all:
        title = f"Report: all sweeps under {sweep_dir} ({', '.join(s.name for s in sweeps)})"
    else:
        title = f"Report: sweep {sweeps[0].name}"
    from evaluator.report_md import render

    path = sweep_dir / "report.md"
    atomic_write_text(path, render(a, title, made, failed))
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m evaluator.report",
        description="Write results.csv, report.md and plots for a sweep (runs/<sweep>), "
        "or for every sweep under runs/ with --all.",
    )
    p.add_argument("path", type=Path, help="runs/<sweep>, or the runs directory with --all")
    p.add_argument("--all", action="store_true", help="combine every sweep under PATH")
    p.add_argument("--benchmark", help="benchmark to report (default: bapps if scored, else proxy)")
    p.add_argument("--distance", help="distance function to report (default: local)")
    p.add_argument("--no-plots", action="store_true", help="write results.csv and report.md only")
    args = p.parse_args(argv)
    for flag, value, allowed in (
        ("--benchmark", args.benchmark, BENCHMARKS),
        ("--distance", args.distance, DISTANCES),
    ):
        if value is not None and value not in allowed:
            print(
                f"error: {flag} {value!r} is unknown; allowed: {', '.join(allowed)}",
                file=sys.stderr,
            )
            return 2
    try:
        path = write_report(
            args.path, args.all, args.benchmark, args.distance, plots=not args.no_plots
        )
    except ReportError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {path} and {path.parent / 'results.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
