"""results.csv: the column order and the writer (docs/file-contracts.md). Rows come from
``collect``; at the study's scale the file is tens of MB, so it is streamed into its
temporary file."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from evaluator.names import PIXEL_METRICS
from evaluator.report.columns import PROBE_PREFIXES
from evaluator.report.stats import natural_key
from trainer.files import atomic_write

MODEL_KEYS = ("name", "depth", "width", "variant")  # a row's model_* columns
_SCORE_PREFIX_ORDER = ("ps_", "srocc_", "krocc_", "plcc_", "jnd_", "2afc_", "tap_")


def csv_columns(rows: list[dict[str, Any]], swept: list[str]) -> list[str]:
    """Identity columns first, then the score columns grouped by kind in natural order."""
    head = ["sweep", "trial", "state", *[k for k in swept if k != "seed"]]
    head += [f"model_{m}" for m in MODEL_KEYS]
    head += ["seed", "epoch", "step", "final", "top1", "top5", "top1_step"]
    seen = {k for r in rows for k in r} - set(head)
    rest = []
    refs = tuple(f"_{r}" for r in PIXEL_METRICS)

    def order(k: str) -> tuple:  # distances before the pixel references, then natural order
        bench_dist = "_".join(k.split("_")[:3])
        return (bench_dist.endswith(refs), natural_key(k))

    for prefix in (*_SCORE_PREFIX_ORDER, *PROBE_PREFIXES):
        rest += sorted((k for k in seen if k.startswith(prefix) and k not in rest), key=order)
    rest += sorted(seen - set(rest), key=natural_key)
    return head + rest


def _csv_value(v: Any) -> Any:
    if v is None:
        return ""
    if type(v) is float:
        return round(v, 6)  # drops float noise such as 100 * 0.546 = 54.599999999999994
    if isinstance(v, (list, tuple, dict)):
        return json.dumps(v)
    return v


def _lines(rows: list[dict[str, Any]], columns: list[str], lo: int, hi: int) -> str:
    """The CSV lines of ``rows[lo:hi]``. Each row converts only the cells it has (a non-final
    row lacks the probe columns)."""
    blank = dict.fromkeys(columns, "")
    # score columns are rounded floats or None already (columns.score): written as they are
    fix = [c for c in columns if not c.startswith(_SCORE_PREFIX_ORDER)]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    for r in rows[lo:hi]:
        out = blank.copy()
        out.update(r)
        for k in fix:
            v = out[k]
            if v is None or type(v) not in (str, int):
                out[k] = _csv_value(v)
        w.writerow(out.values())
    return buf.getvalue()


CHUNK_ROWS = 4096  # rows a forked process formats before it exits


def write_csv(path: Path, rows: list[dict[str, Any]], columns: list[str], workers: int = 1) -> None:
    """results.csv, its lines formatted on ``workers`` processes (most of its time is turning
    floats into text) and streamed into its temporary file in row order."""
    from evaluator.report import parallel

    spans = [(lo, min(lo + CHUNK_ROWS, len(rows))) for lo in range(0, len(rows), CHUNK_ROWS)]
    texts = parallel.map_fresh(_lines, [(rows, columns, lo, hi) for lo, hi in spans], workers)

    def write(f: Any) -> None:
        text = io.TextIOWrapper(f, encoding="utf-8", newline="")
        csv.writer(text, lineterminator="\n").writerow(columns)
        for t in texts:
            text.write(t)
        text.flush()
        text.detach()

    atomic_write(path, write)
