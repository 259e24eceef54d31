"""``python -m trainer.data <name>``: prepare a dataset's train and eval splits ahead of time.

Wrapped by ``make data DATA=<name> ARGS="..."``. ``bapps`` prints how to fetch the BAPPS
perceptual benchmark instead: the evaluator owns it, so this runs ``python -m evaluator.bapps``
(a process of its own: no trainer module loads the evaluator).
"""

from __future__ import annotations

import argparse
import subprocess
import sys

from sweeps.base import ConfigError, apply_overrides, get_config, validate
from sweeps.recipes import PRESETS
from trainer.data.errors import DataError
from trainer.data.load import DATASETS, WHICH, load_split, prepare_split, prepared_root, split_dir


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m trainer.data",
        description="Prepare a dataset's train and eval splits into the prepared-split format.",
    )
    p.add_argument("name", help=f"dataset: {', '.join(DATASETS)}, or bapps (download help)")
    p.add_argument(
        "--preset",
        choices=PRESETS,
        help="take data.* defaults (image size, ...) from this config preset; default: paper "
        "for imagenet64 (64x64), embedded otherwise (32x32)",
    )
    p.add_argument("--image-size", type=int, help="side of the prepared images")
    p.add_argument("--source-dir", help="raw files (imagenet64 batches, a TFDS data_dir, ...)")
    p.add_argument("--prepared-dir", help="where splits go (default $PSWEEPS_DATA_DIR or ./data)")
    p.add_argument("--train-examples", type=int, help="prepare a class-balanced subset of N examples")
    p.add_argument("--eval-examples", type=int, help="prepare a class-balanced subset of N examples")
    p.add_argument("--splits", default="train,eval", help="comma list of train, eval")
    p.add_argument("--force", action="store_true", help="prepare again even if present")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.name == "bapps":
        return subprocess.call([sys.executable, "-m", "evaluator.bapps"])
    try:
        overrides = {"data.name": args.name}
        for key, value in (
            ("image_size", args.image_size),
            ("source_dir", args.source_dir),
            ("prepared_dir", args.prepared_dir),
            ("train_examples", args.train_examples),
            ("eval_examples", args.eval_examples),
        ):
            if value is not None:
                overrides[f"data.{key}"] = value
        preset = args.preset or ("paper" if args.name == "imagenet64" else "embedded")
        cfg = get_config(preset)
        apply_overrides(cfg, overrides)
        validate(cfg)
        data = cfg.data
        which = [w for w in args.splits.split(",") if w]
        bad = [w for w in which if w not in WHICH]
        if bad or not which:
            raise DataError(f"--splits={args.splits!r}; allowed: a comma list of train, eval")
        if args.force and "://" in str(prepared_root(data)):  # prepared in the local cache
            raise DataError(
                f"--force with data.prepared_dir={prepared_root(data)}: delete the split in the "
                "bucket instead; the next run prepares and uploads it again"
            )
        for w in which:
            if args.force:
                prepare_split(data, w, force=True)
            split = load_split(data, w, check_num_classes=False)
            m = split.meta
            subset = f" (class-balanced subset of {m['subset']['of']})" if "subset" in m else ""
            print(
                f"{w}: {split.num_examples} images{subset}, images {tuple(split.images.shape)} "
                f"{split.images.dtype}, labels {tuple(split.labels.shape)} {split.labels.dtype}, "
                f"{split.num_classes} classes"
            )
            print(f"  source: {m['source']}, split {m['source_split']!r} in {m['source_dir']}")
            print(f"  prepared: {split_dir(data, w)}")
    except (DataError, ConfigError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
