"""Statistics of the report: Spearman correlation, the accuracy peak, Pareto frontier, seeds;
and the orders it sorts values and names in."""

from __future__ import annotations

import math
import re
import statistics
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

MIN_POINTS = 3  # fewer points give no meaningful rank correlation
EXACT_MAX_N = 8  # up to this many points the p-value is exact (n! <= 40320 pairings), else scipy's
LOG_SPAN = 20.0  # positive grid values spanning at least this ratio are plotted on a log axis


@dataclass
class Correlation:
    rho: float | None
    p: float | None
    n: int
    note: str = ""  # why rho is missing, when it is


def spearman(x: list[float], y: list[float]) -> Correlation:
    """Spearman's rank correlation of ``x`` and ``y`` (scipy.stats.spearmanr) with its p-value."""
    n = len(x)
    if n < MIN_POINTS:
        return Correlation(None, None, n, f"fewer than {MIN_POINTS} points")
    if len(set(x)) < 2 or len(set(y)) < 2:
        return Correlation(None, None, n, "undefined: one of the two is constant")
    res = stats.spearmanr(x, y)
    rho, p = float(res.statistic), float(res.pvalue)
    if n <= EXACT_MAX_N:
        p = _exact_p(x, y)
    elif p == 0.0 and abs(abs(rho) - 1.0) < 1e-12 and len(set(x)) == len(set(y)) == n:
        # rho = +-1 without ties: exactly 2 of the n! pairings reach it. In logs, so n! never
        # overflows; past n ~ 170 this underflows to 0.0 like scipy's own p (format_p).
        p = math.exp(math.log(2.0) - math.lgamma(n + 1))
    return Correlation(rho, p, n)


def format_p(p: float, digits: int = 3) -> str:
    """A p-value as the report prints it: ``digits`` significant digits, or ``< 1e-300`` for a
    p that underflowed to 0.0 (thousands of points with a clear trend)."""
    return f"{p:.{digits}g}" if p > 0 else "< 1e-300"


def _exact_p(x: list[float], y: list[float]) -> float:
    """Two-sided p-value of Spearman's rho over every pairing of x with y (n! of them).

    scipy's spearmanr p-value uses a t approximation that gives p = 0 for rho = +-1 at any n;
    for a handful of points the exact permutation distribution is cheap and honest.
    """
    rx = stats.rankdata(x)
    rx = rx - rx.mean()

    def rho(yy: np.ndarray, axis: int = -1) -> np.ndarray:
        ry = stats.rankdata(yy, axis=axis)
        ry = ry - ry.mean(axis=axis, keepdims=True)
        return (ry * rx).sum(axis=axis) / np.sqrt((ry**2).sum(axis=axis) * (rx**2).sum())

    res = stats.permutation_test(
        (np.asarray(y, float),),
        rho,
        permutation_type="pairings",
        n_resamples=np.inf,
        vectorized=True,
        alternative="two-sided",
    )
    return float(res.pvalue)


def median_top1(points: list[dict[str, Any]], key: str = "top1") -> float | None:
    vals = [p[key] for p in points if p.get(key) is not None]
    return statistics.median(vals) if vals else None


def above_peak(points: list[dict[str, Any]], key: str = "top1") -> tuple[list[dict], float | None]:
    """The points whose top-1 is at least the median top-1 (the upper half by accuracy).

    The study finds Perceptual Score rising with accuracy up to a point and falling beyond it;
    the upper half by top-1 is a threshold that does not depend on PS, so selecting it does not
    bias the correlation measured inside it.
    """
    threshold = median_top1(points, key)
    if threshold is None:
        return [], None
    return [p for p in points if p.get(key) is not None and p[key] >= threshold], threshold


def pareto_front(x: list[float], y: list[float]) -> list[int]:
    """Indices of the points that no other point beats on both x and y (both maximised).

    A point is dominated when another is at least as good on both and better on one; equal
    points are all on the frontier. Returned in increasing x.
    """
    xs, ys = np.asarray(x, float), np.asarray(y, float)
    front = []
    for i in range(len(xs)):
        geq = (xs >= xs[i]) & (ys >= ys[i])
        better = (xs > xs[i]) | (ys > ys[i])
        if not np.any(geq & better):
            front.append(i)
    return sorted(front, key=lambda i: (xs[i], -ys[i]))


def sort_key(v: Any) -> tuple:
    """Numbers in numeric order, then other values in text order; None last."""
    if v is None:
        return (2, 0.0, "")
    if isinstance(v, bool):
        return (1, 0.0, str(v))
    if isinstance(v, (int, float)):
        return (0, float(v), "")
    try:
        return (0, float(v), "")
    except (TypeError, ValueError):
        return (1, 0.0, str(v))


def natural_key(s: str) -> list:
    """Sort key that compares runs of digits as numbers: ``stage2`` before ``stage10``."""
    return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"(\d+)", s)]


def is_numeric(values: list[Any]) -> bool:
    return bool(values) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values
    )


def x_scale(values: list[Any]) -> str:
    """'log' (positive values spanning >= LOG_SPAN x), 'symlog' (the same plus 0), 'linear',
    or 'categorical' (values that are not all numbers)."""
    if not is_numeric(values):
        return "categorical"
    pos = [v for v in values if v > 0]
    if len(set(pos)) >= 2 and max(pos) / min(pos) >= LOG_SPAN:
        if all(v > 0 for v in values):
            return "log"
        if all(v >= 0 for v in values):
            return "symlog"
    return "linear"


def _mean_std(vals: list[float]) -> tuple[float | None, float | None]:
    vals = [v for v in vals if v is not None and math.isfinite(v)]
    if not vals:
        return None, None
    mean = float(np.mean(vals))
    std = float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0
    return mean, std


def aggregate_over_seeds(
    points: list[dict[str, Any]], x_key: str, y_keys: list[str]
) -> list[dict[str, Any]]:
    """One point per value of ``x_key``: mean and sample std (0 for one seed) of each y.

    Returns ``[{"x", "n", "seeds", "<y>_mean", "<y>_std"}]`` in numeric order of x.
    """
    groups: dict[str, list[dict]] = {}
    xs: dict[str, Any] = {}
    for p in points:
        k = repr(p.get(x_key))
        groups.setdefault(k, []).append(p)
        xs[k] = p.get(x_key)
    out = []
    for k in sorted(groups, key=lambda k: sort_key(xs[k])):
        g = groups[k]
        agg: dict[str, Any] = {
            "x": xs[k],
            "n": len(g),
            "seeds": sorted({p.get("seed") for p in g}, key=sort_key),
        }
        for y in y_keys:
            agg[f"{y}_mean"], agg[f"{y}_std"] = _mean_std([p.get(y) for p in g])
        out.append(agg)
    return out
