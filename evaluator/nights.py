"""Reader for NIGHTS (Fu et al. 2023, DreamSim's 2AFC dataset) in its released layout.

```
<root>/data.csv                      one row per triplet (DreamSim's dataset/dataset.py reads it)
<root>/ref/<NNN>/<MMM>.png           reference
<root>/distort/<NNN>/<MMM>_{0,1}.png the two variations (left, right)
```
``data.csv`` columns read here (by name): ``id``, ``right_vote`` (the fraction of votes for the
right image: DreamSim's ``p``), ``votes`` (how many agreeing votes), ``ref_path``,
``left_path``, ``right_path`` (relative to the root), ``split`` (train / val / test) and,
when present, ``is_imagenet``. As DreamSim's loader does, only triplets with ``votes >= 6``
are kept. The scored split is ``test`` (DreamSim's reported numbers); ``train`` is read for the
``lin`` calibration. Triplets are scored with BAPPS's 2AFC rule (``evaluator.scoring``: left =
p0, right = p1); the categories are DreamSim's two test subsets, ``imagenet`` and
``no_imagenet`` (``is_imagenet``), or ``all`` without that column; PS is their unweighted
mean, as for BAPPS (the pooled mean DreamSim prints weighs them by size).

Images are read at ``size`` (``evaluator.imagesets``). Anything malformed is a
``BenchmarkError`` naming the file, column or row, raised before any scoring starts.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from evaluator.bapps import Benchmark, BenchmarkError, TwoAFC
from evaluator.imagesets import csv_rows, read_images, resolution_record

CSV_NAME = "data.csv"
COLUMNS = ("id", "right_vote", "votes", "ref_path", "left_path", "right_path", "split")
MIN_VOTES = 6  # DreamSim dataset/dataset.py: "Filter out triplets with less than 6 unanimous votes"
SPLITS = ("test", "train", "val")
NOTE = "NIGHTS (Fu et al. 2023) {split} split, 2AFC human judgements (votes >= 6)"
DOWNLOAD = "https://data.csail.mit.edu/nights/nights.zip"  # DreamSim dataset/download_dataset.sh


def _number(row: dict, column: str, where: str) -> float:
    try:
        v = float(row[column])
    except (TypeError, ValueError):
        raise BenchmarkError(f"{where}: {column}={row[column]!r} is not a number") from None
    if not math.isfinite(v):
        raise BenchmarkError(f"{where}: {column}={row[column]!r} is not a finite number")
    return v


def read_rows(root: Path, split: str) -> list[dict]:
    """The checked rows of ``split`` with at least ``MIN_VOTES`` votes."""
    path = root / CSV_NAME
    if not path.is_file():
        raise BenchmarkError(f"missing file {path}; NIGHTS's root holds data.csv, ref/, distort/")
    rows = []
    for where, row in csv_rows(path, COLUMNS, "NIGHTS's data.csv has " + ", ".join(COLUMNS)):
        p = _number(row, "right_vote", where)
        if not 0.0 <= p <= 1.0:
            raise BenchmarkError(f"{where}: right_vote={p} must be a fraction in [0, 1]")
        if row["split"] == split and _number(row, "votes", where) >= MIN_VOTES:
            rows.append({**row, "p": p, "where": where})
    if not rows:
        raise BenchmarkError(
            f"{path} has no {split!r} triplet with votes >= {MIN_VOTES}; splits: train, val, test"
        )
    return rows


def _category(row: dict) -> str:
    if "is_imagenet" not in row or row["is_imagenet"] is None:
        return "all"
    return "imagenet" if row["is_imagenet"].strip().lower() in ("true", "1") else "no_imagenet"


def _paths(root: Path, rows: list[dict], column: str) -> list[Path]:
    out = []
    for row in rows:
        rel = row[column]
        path = root / rel
        if not rel or not path.is_file():
            raise BenchmarkError(f"{path} is missing ({column} at {row['where']})")
        out.append(path)
    return out


def load_nights(root: str | os.PathLike, split: str = "test", size: int | None = 64) -> Benchmark:
    """NIGHTS ``split`` (``test`` scored, ``train`` for calibration) at ``size`` (None: native)."""
    if split not in SPLITS:
        raise BenchmarkError(f"NIGHTS split {split!r} is unknown; allowed: {', '.join(SPLITS)}")
    root = Path(root)
    if not root.is_dir():
        raise BenchmarkError(f"NIGHTS directory {root} does not exist")
    rows = read_rows(root, split)
    cats: dict[str, list[dict]] = {}
    for row in rows:
        cats.setdefault(_category(row), []).append(row)
    columns = ("ref_path", "left_path", "right_path")
    paths = {c: {k: _paths(root, rs, k) for k in columns} for c, rs in cats.items()}
    bench = Benchmark(
        name="nights", kind="nights", root=str(root), note=NOTE.format(split=split), split=split
    )
    for c in sorted(cats):
        bench.twoafc[c] = TwoAFC(
            ref=read_images(paths[c]["ref_path"], size),
            p0=read_images(paths[c]["left_path"], size),
            p1=read_images(paths[c]["right_path"], size),
            judge=np.array([r["p"] for r in cats[c]], np.float32),
        )
    shapes = {t.ref.shape[1:] for t in bench.twoafc.values()}
    shapes |= {a.shape[1:] for t in bench.twoafc.values() for a in (t.p0, t.p1)}
    if len(shapes) > 1:
        raise BenchmarkError(
            f"NIGHTS images under {root} differ in size ({sorted(shapes)}); "
            "perceptual.resolution=native needs one size (use resize)"
        )
    bench.resolution = resolution_record(size, next(iter(bench.twoafc.values())).ref)
    return bench
