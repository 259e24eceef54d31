"""``python -m evaluator``: the checkpoint-scoring job, or ``score`` for one metric or checkpoint.

    python -m evaluator --runs=runs/<sweep> [--watch] [--benchmarks=proxy,bapps,nights,...]
                        [--bapps-dir=DIR] [--nights-dir=DIR] [--tid2013-dir=DIR]
                        [--kadid10k-dir=DIR] [--poll-seconds=S] [--retry-errors] [--allow-errors]
    python -m evaluator score --benchmark=proxy|bapps|nights|tid2013|kadid10k [--data-dir=DIR]
                              --metric=l2|ssim|psnr|checkpoint:<trial dir or checkpoints/<step>>
                              [--image-size=N | --native] [--json]
    python -m evaluator import --tf-checkpoints=DIR --runs=runs/<sweep> --config.model.depth=D
                               (TF checkpoints of tensorflow/tpu's ResNet as a trial: imports.py)

Exit status: 0 done, 2 bad arguments or benchmark files, or a runs directory that cannot be
written (one line on stderr), 3 some checkpoint steps are error records (damaged or unreadable;
``--allow-errors`` makes that 0), or ``score`` on such a checkpoint.
"""

from __future__ import annotations

import argparse
import errno
import json
import sys
from pathlib import Path
from typing import Any

from evaluator.bapps import IMAGE_SIZE, BenchmarkError
from evaluator.benchmarks import BENCHMARK_NAMES, FULL_SIZE
from evaluator.distances import PIXEL_METRICS
from trainer import files

EXIT_ERROR_RECORDS = 3


def _job_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m evaluator",
        description="Score every checkpoint of a sweep on the perceptual benchmarks "
        "(python -m evaluator score --help: one metric or checkpoint).",
    )
    p.add_argument("--runs", required=True, help="the sweep directory, runs/<sweep>")
    p.add_argument("--watch", action="store_true", help="keep polling until every trial ends")
    p.add_argument(
        "--benchmarks",
        help=f"comma list of {', '.join(BENCHMARK_NAMES)} (default: each trial's perceptual.*)",
    )
    p.add_argument("--bapps-dir", help="BAPPS root (default: each trial's perceptual.bapps_dir)")
    for name in FULL_SIZE:
        p.add_argument(f"--{name}-dir", help=f"{name} root (default: perceptual.{name}_dir)")
    p.add_argument("--poll-seconds", type=float, default=30.0, help="--watch polling interval")
    p.add_argument(
        "--retry-errors",
        action="store_true",
        help="score steps whose result is an error record again (once per job)",
    )
    p.add_argument(
        "--allow-errors",
        action="store_true",
        help="exit 0 even when some steps are error records (damaged or unreadable checkpoints)",
    )
    p.add_argument(
        "--stale-after",
        type=float,
        default=3600.0,
        help="--watch: a trial that says running but whose files have not changed for this many "
        "seconds is taken as ended (killed without a status update); 0 = wait forever",
    )
    return p


def _score_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m evaluator score",
        description="Score one pixel metric or one checkpoint on one benchmark.",
    )
    p.add_argument("--benchmark", required=True, help=", ".join(BENCHMARK_NAMES))
    p.add_argument(
        "--data-dir", help="the benchmark's root (proxy: default <prepared_dir>/proxy, built)"
    )
    p.add_argument(
        "--metric",
        required=True,
        help="l2, ssim, psnr, or checkpoint:<trial dir or trial/checkpoints/<step>>",
    )
    size = p.add_mutually_exclusive_group()
    size.add_argument(
        "--image-size",
        type=int,
        help=f"{', '.join(FULL_SIZE)}: resize to N x N (default: the checkpoint's "
        f"data.image_size, {IMAGE_SIZE} for a pixel metric)",
    )
    size.add_argument(
        "--native", action="store_true", help=f"{', '.join(FULL_SIZE)}: score at native size"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    return p


def _checkpoint_target(path: str) -> tuple[Path, int]:
    from evaluator.features import CheckpointError
    from trainer import checkpoint

    p = files.path(path)
    if (p / "config.json").is_file():
        steps = checkpoint.list_steps(checkpoint.checkpoint_dir(p))
        if not steps:
            raise CheckpointError(f"{p} has no finalised checkpoint under {p / 'checkpoints'}")
        return p, steps[-1]
    if p.name.isdigit() and p.parent.name == checkpoint.CHECKPOINT_DIR:
        trial = p.parent.parent
        if not (trial / "config.json").is_file():
            raise CheckpointError(f"{trial / 'config.json'} is missing; it gives the model")
        return trial, int(p.name)
    raise CheckpointError(
        f"checkpoint:{path} is neither a trial directory (with config.json) nor "
        "<trial>/checkpoints/<step>"
    )


def _print_block(title: str, block: dict[str, Any]) -> None:
    print(title)
    if "srocc" in block:  # TID2013, KADID-10k (evaluator.mos)
        for t, v in block["srocc_types"].items():
            print(f"  SROCC {t:<24s} {'–' if v is None else f'{v:+.3f}'}")
        for k in ("srocc", "krocc", "plcc"):
            v = block.get(k)
            print(f"  {k.upper():<5s} {'all':<24s} {'–' if v is None else f'{v:+.3f}'}")
        return
    for c, v in block["2afc"].items():
        print(f"  2AFC {c:<16s} {v:6.2f}")
    print(f"  2AFC {'mean (PS)':<16s} {block['ps']:6.2f}")
    for c, v in (block.get("jnd_categories") or {}).items():
        print(f"  JND  {c:<16s} {v:6.2f}")
    if block.get("jnd") is not None:
        print(f"  JND  {'mean':<16s} {block['jnd']:6.2f}")
    if block.get("taps"):
        print("  PS per tap: " + ", ".join(f"{t} {v:.2f}" for t, v in block["taps"].items()))


def _score_size(args: argparse.Namespace, target: tuple[Path, int] | None) -> int | None:
    """The resolution ``score`` reads NIGHTS / TID2013 / KADID-10k at (None: native)."""
    if args.native:
        return None
    if args.image_size is not None:
        return args.image_size
    if target is None:
        return IMAGE_SIZE
    from evaluator.features import read_trial_config

    return int(read_trial_config(target[0])["data"]["image_size"])


def _score(argv: list[str]) -> int:
    from evaluator import benchmarks as bm
    from evaluator.proxy import default_dir

    args = _score_parser().parse_args(argv)
    if args.benchmark not in bm.BENCHMARK_NAMES:
        raise BenchmarkError(
            f"--benchmark={args.benchmark!r} is unknown; allowed: {', '.join(bm.BENCHMARK_NAMES)}"
        )
    metric = args.metric
    if metric not in PIXEL_METRICS and not metric.startswith("checkpoint:"):
        raise BenchmarkError(
            f"--metric={metric!r} is unknown; allowed: {', '.join(PIXEL_METRICS)}, "
            "checkpoint:<path>"
        )
    if args.image_size is not None and not 8 <= args.image_size <= 1024:
        raise BenchmarkError(f"--image-size={args.image_size} must be in [8, 1024]")
    data_dir = args.data_dir
    if not data_dir:
        if args.benchmark != "proxy":
            raise BenchmarkError(f"--data-dir is required for {args.benchmark} (its root)")
        data_dir = str(default_dir(None))
    target = None
    if metric.startswith("checkpoint:"):
        target = _checkpoint_target(metric.split(":", 1)[1])
    size = _score_size(args, target)
    bench = bm.load_benchmark(args.benchmark, data_dir, size)
    if target is None:
        out: dict[str, Any] = {
            "benchmark": args.benchmark,
            "metric": metric,
            **bm.benchmark_header(bench),
            **bm.score_pixel(bench, metric),
        }
        blocks = {metric: out}
    else:
        from evaluator.features import ScoringModel, read_trial_config
        from evaluator.imagesets import model_for

        trial, step = target
        sm = ScoringModel.from_checkpoint(trial, step)
        if args.benchmark in FULL_SIZE:
            sm = model_for(sm, read_trial_config(trial), size)
        dists = bm.score_model(bench, sm)
        out = {
            "benchmark": args.benchmark,
            "metric": metric,
            "trial": str(trial),
            "step": step,
            "resolution": sm.resolution,
            **bm.benchmark_header(bench),
            **dists["local"],
            "distances": dists,
        }
        if bench.resolution is not None:  # the images' resolution, and the model's adaptation
            out["resolution"] = {**bench.resolution, "model": sm.resolution["how"]}
        blocks = dists
    if args.json:
        print(json.dumps(out, indent=2, sort_keys=True))
    else:
        print(f"{args.benchmark} ({bench.note}) at {bench.root}")
        for name, block in blocks.items():
            _print_block(f"{name}:", block)
    return 0


def _quiet_absl() -> None:
    """orbax logs a warning per read-only restore through absl; keep the job's output one line
    per scored step."""
    try:
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.ERROR)
    except ImportError:  # absl comes with jax/orbax; nothing to quiet without it
        pass


def main(argv: list[str] | None = None) -> int:
    from evaluator.features import CheckpointError
    from evaluator.job import JobError, run_job
    from sweeps.base import ConfigError
    from trainer.integrity import Damaged

    argv = list(sys.argv[1:] if argv is None else argv)
    _quiet_absl()
    try:
        if argv and argv[0] == "score":
            return _score(argv[1:])
        if argv and argv[0] == "import":
            from evaluator.imports import main as import_main

            return import_main(argv[1:])
        args = _job_parser().parse_args(argv)
        benches = [b for b in (args.benchmarks or "").split(",") if b] or None
        for b in benches or ():
            if b not in BENCHMARK_NAMES:
                raise JobError(
                    f"--benchmarks has {b!r}; allowed: a comma list of {', '.join(BENCHMARK_NAMES)}"
                )
        if args.poll_seconds <= 0:
            raise JobError(f"--poll-seconds={args.poll_seconds} must be > 0")
        if args.stale_after < 0:
            raise JobError(f"--stale-after={args.stale_after} must be >= 0 (0 = wait forever)")
        counts = run_job(
            args.runs,
            watch=args.watch,
            benchmarks=benches,
            bapps_dir=args.bapps_dir,
            dirs={n: d for n in FULL_SIZE if (d := getattr(args, f"{n}_dir")) is not None},
            poll_seconds=args.poll_seconds,
            retry_errors=args.retry_errors,
            stale_after=args.stale_after,
        )
        return EXIT_ERROR_RECORDS if counts.error_steps and not args.allow_errors else 0
    except (BenchmarkError, CheckpointError, ConfigError, JobError) as e:
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    except Damaged as e:  # score: the checkpoint fails its integrity check
        print(f"error: {e}", file=sys.stderr)
        return EXIT_ERROR_RECORDS
    except OSError as e:  # a runs directory that cannot be written, a full disk
        unwritable = e.errno in (errno.EROFS, errno.EACCES, errno.EPERM)
        what = "cannot write" if unwritable else "error on"
        print(f"error: {what} {e.filename or 'a file'}: {e.strerror or e}", file=sys.stderr)
        return 2 if unwritable else 1


if __name__ == "__main__":
    sys.exit(main())
