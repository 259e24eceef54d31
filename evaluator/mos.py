"""Scores of a distance on mean opinion scores (TID2013, KADID-10k): rank and linear
correlation with people, overall and per distortion type.

For distances ``d`` (reference vs distorted image) and quality scores ``q`` (higher = better in
both sets, ``evaluator.iqa``), with ``x = -d`` so that 1 means perfect agreement:

* ``srocc``: Spearman's rank correlation of x and q (``scipy.stats.spearmanr``);
* ``krocc``: Kendall's tau-b of x and q (``scipy.stats.kendalltau``);
* ``plcc``: Pearson's correlation of q and the 5-parameter logistic of x fitted to q
  (``scipy.optimize.curve_fit``), the mapping of the VQEG FR-TV Phase I final report (2000)
  in the form of Sheikh, Sabir & Bovik, "A statistical evaluation of recent full reference
  image quality assessment algorithms", IEEE TIP 15(11), 2006:
  ``Q(x) = b1 (1/2 - 1/(1 + exp(b2 (x - b3)))) + b4 x + b5``, fitted on x standardised
  (``logistic`` holds b1..b5 for that scale; ``scipy.optimize.least_squares``, b2 bounded).

Per distortion type (``srocc_types``, ``krocc_types``): the same rank correlations within each
type, as TID2013's and KADID-10k's papers tabulate them. Undefined values (a constant input,
fewer than 3 images) are null.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

MIN_N = 3  # fewer images give no meaningful correlation
MAX_STEEPNESS = 50.0  # b2 on standardised x: a step within 1/50 of a standard deviation
MAX_EVALUATIONS = 5000
KEEP_BYTES = 1 << 30  # MOS sets up to this size keep their (reference, distorted) batches


def _finite(v: Any) -> float | None:
    v = float(v)
    return round(v, 4) if math.isfinite(v) else None


def _defined(x: np.ndarray, q: np.ndarray) -> bool:
    return len(x) >= MIN_N and np.ptp(x) > 0 and np.ptp(q) > 0


def spearman(x: np.ndarray, q: np.ndarray) -> float | None:
    from scipy import stats

    return _finite(stats.spearmanr(x, q).statistic) if _defined(x, q) else None


def kendall(x: np.ndarray, q: np.ndarray) -> float | None:
    from scipy import stats

    return _finite(stats.kendalltau(x, q).statistic) if _defined(x, q) else None


def logistic5(x: np.ndarray, b1: float, b2: float, b3: float, b4: float, b5: float) -> np.ndarray:
    """Sheikh et al. (2006)'s 5-parameter logistic (see the module doc)."""
    z = np.clip(b2 * (x - b3), -500.0, 500.0)  # exp overflow -> inf -> a warning, not a value
    return b1 * (0.5 - 1.0 / (1.0 + np.exp(z))) + b4 * x + b5


def logistic_pearson(x: np.ndarray, q: np.ndarray) -> tuple[float | None, list[float] | None, str]:
    """``(plcc, [b1..b5], note)`` of the fitted logistic; (None, None, why) when undefined."""
    from scipy import optimize, stats

    if not _defined(x, q):
        return None, None, "undefined: fewer than 3 images or a constant input"
    # Fitted on x standardised: the family is closed under affine maps of x, and distances of
    # 1e-3 otherwise leave the optimiser badly scaled. The start is a rising logistic spanning q.
    z = (x - np.mean(x)) / np.std(x)
    # The steepness b2 is bounded (a step at one point otherwise fits a few images exactly and
    # never converges) and b3 kept within the data; the best fit found is used even where the
    # evaluation limit stops the optimiser (noted), as MATLAB's nlinfit does.
    p0 = [float(np.ptp(q)), 1.0, 0.0, 0.0, float(np.mean(q))]
    lo = [-np.inf, 0.0, float(z.min()), -np.inf, -np.inf]
    hi = [np.inf, MAX_STEEPNESS, float(z.max()), np.inf, np.inf]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = optimize.least_squares(
            lambda b: logistic5(z, *b) - q, p0, bounds=(lo, hi), max_nfev=MAX_EVALUATIONS
        )
    fitted = logistic5(z, *res.x)
    if not np.all(np.isfinite(fitted)) or np.ptp(fitted) == 0:
        return None, None, "logistic fit is constant or not finite"
    note = "" if res.success else f"logistic fit stopped after {MAX_EVALUATIONS} evaluations"
    return _finite(stats.pearsonr(fitted, q).statistic), [float(b) for b in res.x], note


def correlations(d: np.ndarray, q: np.ndarray, types: np.ndarray) -> dict[str, Any]:
    """One distance's block (module doc) from its distances ``d`` (N,) to the references."""
    x = -np.asarray(d, np.float64).reshape(-1)
    q = np.asarray(q, np.float64).reshape(-1)
    if len(x) != len(q):
        raise ValueError(f"MOS scoring needs equal lengths; got {len(x)} distances, {len(q)}")
    plcc, beta, note = logistic_pearson(x, q)
    block: dict[str, Any] = {
        "n": len(x),
        "srocc": spearman(x, q),
        "krocc": kendall(x, q),
        "plcc": plcc,
        "logistic": beta,
        "srocc_types": {},
        "krocc_types": {},
    }
    if note:
        block["plcc_note"] = note
    for t in sorted(set(types.tolist())):
        sel = types == t
        block["srocc_types"][t] = spearman(x[sel], q[sel])
        block["krocc_types"][t] = kendall(x[sel], q[sel])
    return block


def _pairs(mos: Any, chunk: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    for start in range(0, len(mos), chunk):
        idx = mos.ref_index[start : start + chunk]
        yield mos.refs[idx], mos.images[start : start + chunk]


def pairs(mos: Any, chunk: int = 1024) -> Sequence[tuple[np.ndarray, np.ndarray]] | Iterator:
    """``(references, distorted)`` batches of a ``bapps.MOS`` set, ``chunk`` images at a time.
    Up to ``KEEP_BYTES`` of images the batches are made once and kept on the set, so every
    checkpoint scores the same arrays (on an accelerator they stay on the device,
    ``features._ResidentImages``); above, each reference is copied per image only within a
    chunk, for as long as it is scored (at native size a whole copy would double the memory)."""
    if mos.images.nbytes > KEEP_BYTES:
        return _pairs(mos, chunk)
    if mos.pair_cache is None:
        mos.pair_cache = list(_pairs(mos, chunk))
    return mos.pair_cache
