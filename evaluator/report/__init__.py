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

from evaluator.names import ALL_DISTANCES, BENCHMARK_NAMES, MOS_BENCHMARKS
from evaluator.report import analyse, collect, hypotheses, parallel, render, study, table1
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
    workers: int | None = None,
) -> Path:
    """Write results.csv, report.md and the plots into ``sweep_dir``; return report.md's path.

    With ``combine_all``, ``sweep_dir`` is the runs directory and every sweep under it is
    combined. ``workers``: processes for reading trials and drawing figures (default: the
    cores; 1 for a gs:// sweep). Raises ``ReportError`` (one line) for input it cannot use.
    """
    sweep_dir = files.path(sweep_dir)
    n = parallel.workers() if workers is None else workers
    n = 1 if files.is_remote(sweep_dir) else n  # a GCS client is not fork-safe
    with parallel.collector_paused():
        sweeps = collect.load_sweeps(sweep_dir, combine_all, n)
        order = {t.key: i for i, t in enumerate(analyse.trial_order(sweeps))}
        rows = sorted(collect.build_rows(sweeps), key=lambda r: (order[r["trial"]], r["step"]))
    swept = []
    for sw in sweeps:
        swept += [k for k in sw.swept if k not in swept]
    n = parallel.for_trials(n, sum(len(sw.trials) for sw in sweeps))

    a = analyse.analyse(sweeps, rows, benchmark, distance)
    # ---- figures: queued here, drawn by workers once results.csv and Table 1 are done. Both
    # read every row, so they come first: this process touching the rows while workers run
    # would copy the memory pages holding them (docs/performance.md: 1.14 GB in all, not 0.96)
    figs = parallel.Figures(n) if plots else None
    made = write_plots(a, sweep_dir, figs) if figs else []
    axes = study.queue_axis_reports(a, rows, sweep_dir, figs)
    hyp = hypotheses.analyse(a)
    hyp_plots = hypotheses.write_plots(hyp, a, sweep_dir, figs) if figs else {}
    views = bench_view.analyse(a)  # one column and plot per human benchmark
    bench_plots = bench_view.write_plots(views, a, sweep_dir, figs) if figs else {}
    collect.write_csv(sweep_dir / "results.csv", rows, collect.csv_columns(rows, swept), n)
    t1 = table1.table1(a)
    if figs:
        figs.draw()
        made = figs.kept(sweep_dir, made)
        hyp_plots = {k: v for k, v in hyp_plots.items() if figs.drawn(sweep_dir / v[0])}
        bench_plots = {k: v for k, v in bench_plots.items() if figs.drawn(sweep_dir / v[0])}

    # ---- report.md: the axes' own reports, then the combined one
    lead = study.render_axes(study.write_axis_reports(axes, figs))
    lead = (table1.render(t1, a) if t1 else []) + lead
    if combine_all:
        title = f"Report: all sweeps under {sweep_dir} ({', '.join(s.name for s in sweeps)})"
    else:
        title = f"Report: sweep {sweeps[0].name}"
    path = sweep_dir / "report.md"
    section = hypotheses.render(hyp, hyp_plots) + bench_view.render(views, a, bench_plots)
    failed = figs.failed(sweep_dir) if figs else []
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
    p.add_argument(
        "--workers",
        type=int,
        help="processes for reading trials and drawing figures (default: the cores, at most "
        f"{parallel.MAX_WORKERS}; sweeps under {parallel.MIN_TRIALS} trials use one); each "
        "worker adds up to ~300 MB at the study's scale",
    )
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
    if args.workers is not None and args.workers < 1:
        print(
            f"error: --workers {args.workers} is not allowed; expected 1 or more", file=sys.stderr
        )
        return 2
    problem = files.remote_problem(args.path)  # a bad gs:// path: one line, before any work
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    try:
        path = write_report(
            args.path,
            args.all,
            args.benchmark,
            args.distance,
            plots=not args.no_plots,
            workers=args.workers,
        )
    except ReportError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a sweep directory that cannot be written (read-only, full)
        print(f"error: cannot write {e.filename or args.path}: {e.strerror or e}", file=sys.stderr)
        return 2
    print(f"wrote {path} and {path.parent / 'results.csv'}")
    return 0
