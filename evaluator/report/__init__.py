"""The sweep report: results.csv, report.md and PNG plots from a sweep's run directories.

    python -m evaluator.report runs/<sweep> [--benchmark proxy|bapps] [--distance local|...]
    python -m evaluator.report runs --all        # every sweep under runs/ into runs/

It reads only files (docs/file-contracts.md), so it runs at any time: mid-sweep, after failures,
on another machine. One module per step: ``collect`` (files -> rows), ``results_csv``, ``axes``
(what goes on each sweep's x-axis), ``stats`` (Spearman, Pareto, seeds), ``analyse`` (what the
report says), ``render`` (report.md), ``plots`` (which PNGs) and ``draw`` (matplotlib);
``hypotheses`` (+ ``draw_hypotheses``) the study's probes section; ``benchmarks`` the
Benchmarks section (a column and a plot per human benchmark); ``table1`` the paper's Table 1 from
the runs; ``study`` one report per axis of a sweep with ``axes`` (the study sweep:
``runs/<sweep>/axes/<axis>/report.md``); ``draw_scale`` the figures for hundreds of trials;
``synth`` (+ ``synth_study``) writes synthetic sweeps for tests and previews.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from evaluator.benchmarks import BENCHMARK_NAMES, MOS_BENCHMARKS
from evaluator.distances import ALL_DISTANCES
from evaluator.report import analyse, collect, hypotheses, render, study, table1
from evaluator.report import benchmarks as bench_view
from evaluator.report.collect import ReportError
from evaluator.report.plots import write_plots
from trainer import files
from trainer.files import atomic_write_text

__all__ = ["ReportError", "main", "write_report"]


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
    sweep_dir = files.path(sweep_dir)
    sweeps = collect.load_sweeps(sweep_dir, combine_all)
    order = {t.key: i for i, t in enumerate(analyse.trial_order(sweeps))}
    rows = sorted(collect.build_rows(sweeps), key=lambda r: (order[r["trial"]], r["step"]))
    a = analyse.analyse(sweeps, rows, benchmark, distance)
    swept = []
    for sw in sweeps:
        swept += [k for k in sw.swept if k not in swept]
    collect.write_csv(sweep_dir / "results.csv", rows, collect.csv_columns(rows, swept))
    made, failed = write_plots(a, sweep_dir) if plots else ([], [])
    lead = study.render_axes(study.write_axis_reports(a, rows, sweep_dir, plots))
    t1 = table1.table1(a)
    lead = (table1.render(t1, a) if t1 else []) + lead
    hyp = hypotheses.analyse(a)
    hyp_plots, hyp_failed = hypotheses.write_plots(hyp, a, sweep_dir) if plots else ({}, [])
    views = bench_view.analyse(a)  # one column and plot per human benchmark
    bench_plots, bench_failed = bench_view.write_plots(views, a, sweep_dir) if plots else ({}, [])
    if combine_all:
        title = f"Report: all sweeps under {sweep_dir} ({', '.join(s.name for s in sweeps)})"
    else:
        title = f"Report: sweep {sweeps[0].name}"
    path = sweep_dir / "report.md"
    section = hypotheses.render(hyp, hyp_plots) + bench_view.render(views, a, bench_plots)
    failed += hyp_failed + bench_failed
    atomic_write_text(path, render.render(a, title, made, failed, section, lead))
    return path


def main(argv: list[str] | None = None) -> int:
    """``python -m evaluator.report``: 0 written, 2 bad arguments or input, or a directory that
    cannot be written (one line)."""
    p = argparse.ArgumentParser(
        prog="python -m evaluator.report",
        description="Write results.csv, report.md and plots for a sweep (runs/<sweep>), "
        "or for every sweep under runs/ with --all.",
    )
    p.add_argument("path", type=files.path, help="runs/<sweep>, or the runs directory with --all")
    p.add_argument("--all", action="store_true", help="combine every sweep under PATH")
    p.add_argument(
        "--benchmark",
        help="2AFC benchmark the report follows (default: bapps if scored, else proxy); "
        "every benchmark gets its column and plot in the Benchmarks section",
    )
    p.add_argument("--distance", help="distance function to report (default: local)")
    p.add_argument("--no-plots", action="store_true", help="write results.csv and report.md only")
    args = p.parse_args(argv)
    for flag, value, allowed in (
        ("--benchmark", args.benchmark, [b for b in BENCHMARK_NAMES if b not in MOS_BENCHMARKS]),
        ("--distance", args.distance, ALL_DISTANCES),
    ):
        if value is not None and value not in allowed:
            print(
                f"error: {flag} {value!r} is unknown; allowed: {', '.join(allowed)}",
                file=sys.stderr,
            )
            return 2
    problem = files.remote_problem(args.path)  # a bad gs:// path: one line, before any work
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    try:
        path = write_report(
            args.path, args.all, args.benchmark, args.distance, plots=not args.no_plots
        )
    except ReportError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a sweep directory that cannot be written (read-only, full)
        print(f"error: cannot write {e.filename or args.path}: {e.strerror or e}", file=sys.stderr)
        return 2
    print(f"wrote {path} and {path.parent / 'results.csv'}")
    return 0
