"""Loading the benchmarks by name and scoring a model or a pixel metric on them.

A benchmark's score block (the ``benchmarks.<name>`` entry of ``perceptual/<step>.json``, see
docs/file-contracts.md)::

    {"kind": "proxy"|"bapps", "note": "...", "root": "...", "version": 2 (the proxy only),
     "distances": {"local": {"2afc": {cat: %}, "ps": %, "jnd": % or null,
                             "jnd_categories": {cat: %}, "taps": {tap: PS of that tap alone}},
                   "meanpool": {...}, "style": {...},
                   "lin": {..., "calibration": {...}}},       # perceptual.calibrate only
     "reference": {"l2": {"2afc", "ps", "jnd", "jnd_categories"}, "ssim": {...}},
     "probes": {"margin", "entropy", "best_tap"},              # perceptual.probes
     "dynamic_range": {"ceiling", "sigmas", "ps", ...}}        # perceptual.probes

``jnd`` is the mean JND mAP over the benchmark's JND categories (BAPPS: traditional, cnn), null
when it has none (the proxy, NIGHTS).

NIGHTS (``evaluator.nights``) is a 2AFC benchmark like BAPPS, scored on its test split.
TID2013 and KADID-10k (``evaluator.iqa``) hold mean opinion scores instead: their distance and
reference blocks are ``evaluator.mos.correlations`` (``srocc``, ``krocc``, ``plcc``, per
distortion type) with ``taps`` = the ``srocc`` of each tap alone, and they have no probes and no
train split (so no ``lin``). The three are read at a resolution (``evaluator.imagesets``) that
their blocks record under ``"resolution"``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from evaluator import mos as mos_mod
from evaluator import probes as probes_mod
from evaluator import scoring
from evaluator.bapps import IMAGE_SIZE, Benchmark, BenchmarkError, load_bapps
from evaluator.distances import (
    FEATURE_DISTANCES,
    LEARNED_DISTANCES,
    check_pixel_metrics,
    pixel_pairs,
    pixel_triplets,
    total_distance,
)
from evaluator.names import BENCHMARK_NAMES, DIR_BENCHMARKS, FULL_SIZE, MOS_BENCHMARKS  # noqa: F401
from evaluator.proxy import VERSION as PROXY_VERSION
from evaluator.proxy import load_proxy
from trainer import files


def has_train_split(name: str) -> bool:
    """Whether ``name`` has a train split (for the ``lin`` calibration)."""
    return name not in MOS_BENCHMARKS


def load_benchmark(
    name: str, data_dir: str | os.PathLike, size: int | None = IMAGE_SIZE, split: str = "val"
) -> Benchmark:
    """``proxy`` (built at ``data_dir`` on first use), or one read from ``data_dir``;
    ``split`` = ``val`` (the scored split: NIGHTS's test) or ``train`` (for the ``lin``
    calibration); ``size`` the resolution of NIGHTS, TID2013 and KADID-10k (None: native)."""
    if data_dir and files.is_remote(data_dir) and name in BENCHMARK_NAMES:
        return _through_cache(name, data_dir, size, split)
    if name == "proxy":
        return load_proxy(data_dir, split=split)
    if name not in BENCHMARK_NAMES:
        raise BenchmarkError(
            f"benchmark {name!r} is unknown; allowed: {', '.join(BENCHMARK_NAMES)}"
        )
    if not data_dir:
        where = "python -m evaluator.bapps prints" if name == "bapps" else "README.md gives"
        raise BenchmarkError(
            f"{name} needs a directory (--{name}-dir or perceptual.{name}_dir); "
            f"{where} the download commands"
        )
    if name == "bapps":
        return load_bapps(data_dir, split=split)
    if name == "nights":
        from evaluator.nights import load_nights

        return load_nights(data_dir, "test" if split == "val" else split, size)
    if split != "val":
        raise BenchmarkError(f"{name} has no {split} split (perceptual.calibrate needs one)")
    from evaluator import iqa

    return (
        iqa.load_tid2013(data_dir, size) if name == "tid2013" else iqa.load_kadid10k(data_dir, size)
    )


def _through_cache(
    name: str, data_dir: str | os.PathLike, size: int | None, split: str
) -> Benchmark:
    """A benchmark folder on gs://, read from its local copy (trainer/mirror.py): BAPPS's
    ``2afc/<split>`` (and ``jnd/val``) once; the proxy while the bucket's proxy.json is the
    cached one's, and built in the cache and uploaded when the bucket lacks this version;
    NIGHTS, TID2013 and KADID-10k: the whole folder, once."""
    from evaluator.proxy import _found_version, ensure_proxy
    from trainer import mirror

    problem = files.remote_problem(data_dir)
    if problem:
        raise BenchmarkError(problem)
    remote = files.path(data_dir)
    if name == "proxy":
        local = mirror.cache_dir(remote)
        there = (remote / "proxy.json").exists() and _found_version(remote) == PROXY_VERSION
        if there:
            mirror.fetch(remote, "proxy.json", local=local)
        else:
            ensure_proxy(local)
            mirror.upload(local, remote, "proxy.json")
        bench = load_proxy(local, split=split)
    elif name != "bapps":
        bench = load_benchmark(name, mirror.fetch(remote), size, split)
    else:
        parts = [f"2afc/{split}"] + (["jnd/val"] if split == "val" else [])
        parts = [p for p in parts if (remote / p).is_dir()]
        local = mirror.fetch(remote, parts=parts, local=mirror.cache_dir(remote) / split)
        bench = load_bapps(local, split=split)
    bench.root = os.fspath(remote)
    return bench


def _block(twoafc: Mapping[str, float], jnd: Mapping[str, float]) -> dict[str, Any]:
    return {
        "2afc": {c: round(float(v), 4) for c, v in twoafc.items()},
        "ps": round(scoring.perceptual_score(twoafc), 4),
        "jnd": round(float(np.mean(list(jnd.values()))), 4) if jnd else None,
        "jnd_categories": {c: round(float(v), 4) for c, v in jnd.items()},
    }


def score_distance_fn(
    bench: Benchmark,
    d_triplets: Callable[[np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]],
    d_pairs: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
) -> dict[str, Any]:
    """Score one distance given as functions on uint8 batches: (ref, p0, p1) -> (d0, d1) and
    (p0, p1) -> d."""
    twoafc = {}
    for c, t in bench.twoafc.items():
        d0, d1 = d_triplets(t.ref, t.p0, t.p1)
        twoafc[c] = scoring.score_2afc(d0, d1, t.judge)
    jnd = {}
    if d_pairs is not None:
        for c, j in bench.jnd.items():
            jnd[c] = scoring.score_jnd(d_pairs(j.p0, j.p1), j.same)
    return _block(twoafc, jnd)


def score_pixels(bench: Benchmark, metrics: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``{metric: score block}`` for pixel reference metrics (``l2`` and ``ssim``: LPIPS's Lab
    versions; ``psnr``) on ``bench``; each triplet's images go to Lab once for all of them."""
    check_pixel_metrics(metrics)
    if bench.mos is not None:
        parts = [pixel_pairs(metrics, r, i) for r, i in mos_mod.pairs(bench.mos)]
        return {
            m: mos_mod.correlations(
                np.concatenate([p[m] for p in parts]), bench.mos.score, bench.mos.types
            )
            for m in metrics
        }
    twoafc: dict[str, dict[str, float]] = {m: {} for m in metrics}
    for c, t in bench.twoafc.items():
        for m, (d0, d1) in pixel_triplets(metrics, t.ref, t.p0, t.p1).items():
            twoafc[m][c] = scoring.score_2afc(d0, d1, t.judge)
    jnd: dict[str, dict[str, float]] = {m: {} for m in metrics}
    for c, j in bench.jnd.items():
        for m, d in pixel_pairs(metrics, j.p0, j.p1).items():
            jnd[m][c] = scoring.score_jnd(d, j.same)
    return {m: _block(twoafc[m], jnd[m]) for m in metrics}


def score_pixel(bench: Benchmark, metric: str) -> dict[str, Any]:
    """One pixel reference metric's score block on ``bench`` (``score_pixels``)."""
    return score_pixels(bench, [metric])[metric]


def _distance_block(bench: Benchmark, trip, pair, kind: str, taps: Sequence[str]) -> dict:
    """One distance's score block from per-tap triplet and pair distances."""
    twoafc, jnd, per_tap = {}, {}, {t: {} for t in taps}
    for c, t in bench.twoafc.items():
        d = trip[c][kind]
        d0 = np.asarray(total_distance({k: v[0] for k, v in d.items()}))
        d1 = np.asarray(total_distance({k: v[1] for k, v in d.items()}))
        twoafc[c] = scoring.score_2afc(d0, d1, t.judge)
        for tap in taps:
            per_tap[tap][c] = scoring.score_2afc(d[tap][0], d[tap][1], t.judge)
    for c, j in bench.jnd.items():
        jnd[c] = scoring.score_jnd(np.asarray(total_distance(pair[c][kind])), j.same)
    block = _block(twoafc, jnd)
    block["taps"] = {tap: round(scoring.perceptual_score(per_tap[tap]), 4) for tap in per_tap}
    return block


def score_model(
    bench: Benchmark, sm: Any, distances: Sequence[str] = FEATURE_DISTANCES
) -> dict[str, Any]:
    """Every feature distance of a ``ScoringModel`` on ``bench``: totals and each tap alone."""
    if bench.mos is not None:
        return score_model_mos(bench, sm, distances)
    return score_model_probes(bench, sm, distances)[0]


def score_model_mos(bench: Benchmark, sm: Any, distances: Sequence[str]) -> dict[str, Any]:
    """``distances`` of a ``ScoringModel`` on a MOS benchmark: each one's correlations
    (``evaluator.mos``) and the ``srocc`` of each tap alone."""
    parts = [sm.pair_distances(r, i) for r, i in mos_mod.pairs(bench.mos)]
    q, types = bench.mos.score, bench.mos.types
    out = {}
    for kind in distances:
        per_tap = {t: np.concatenate([p[kind][t] for p in parts]) for t in sm.tap_names}
        block = mos_mod.correlations(np.asarray(total_distance(per_tap)), q, types)
        block["taps"] = {t: mos_mod.spearman(-per_tap[t].astype(np.float64), q) for t in per_tap}
        out[kind] = block
    return out


def score_model_probes(
    bench: Benchmark,
    sm: Any,
    distances: Sequence[str] = FEATURE_DISTANCES,
    probes: bool = False,
    lin: Mapping[str, np.ndarray] | None = None,
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """``(distances, probes)`` of a ``ScoringModel`` on ``bench`` in one pass over its images:
    the score blocks of ``distances`` (and of ``lin`` when its weights ``{tap: (C,)}`` are
    given), and with ``probes`` the benchmark's probe block (``evaluator.probes``: distortion
    margins of every distance scored, activation entropy, best single tap)."""
    trip, entropy = {}, {}
    for c, t in bench.twoafc.items():
        trip[c], entropy[c] = sm.triplet_scores(t.ref, t.p0, t.p1, probes=probes, lin=lin)
    pair = {c: sm.pair_distances(j.p0, j.p1, lin=lin) for c, j in bench.jnd.items()}
    kinds = [*distances, *(LEARNED_DISTANCES if lin is not None else ())]
    out = {kind: _distance_block(bench, trip, pair, kind, sm.tap_names) for kind in kinds}
    if not probes:
        return out, None
    judges = {c: t.judge for c, t in bench.twoafc.items()}
    block = {
        "margin": probes_mod.margins(trip, judges, kinds),
        "entropy": probes_mod.entropy_block(entropy),
        "best_tap": probes_mod.best_taps(out),
    }
    return out, block


def benchmark_header(bench: Benchmark) -> dict[str, Any]:
    """What a score block says about its benchmark; ``version`` for a versioned one (the proxy)."""
    root = bench.root if files.is_remote(bench.root) else str(Path(bench.root).absolute())
    head = {"kind": bench.kind, "note": bench.note, "root": root}
    if bench.version is not None:
        head["version"] = bench.version
    if bench.resolution is not None:
        head["resolution"] = dict(bench.resolution)
    if bench.kind == "nights":
        head["split"] = bench.split
    return head


def is_outdated(name: str, block: Mapping[str, Any]) -> bool:
    """Whether a score block of benchmark ``name`` was scored on an older build than this code
    reads (a proxy block of another version, or one from before versions were recorded)."""
    return name == "proxy" and block.get("version") != PROXY_VERSION
