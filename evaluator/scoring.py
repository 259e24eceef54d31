"""Scores of a distance on human judgements: 2AFC, JND mAP and the Perceptual Score.

Computed as LPIPS's ``score_2afc_dataset`` / ``score_jnd_dataset`` do (lpips/trainer.py), but in
percent (0..100):

* 2AFC, per triplet ``(d0<d1)(1-p) + (d1<d0)p + 0.5(d0==d1)``, p = fraction of people who chose
  p1; the category score is the mean over its triplets.
* JND: sort pairs by distance ascending, precision/recall of "same" (a fraction of people),
  area under the precision envelope (VOC AP without the 11-point rule). Ties in distance keep the
  file order (a stable sort).
* Perceptual Score: the unweighted mean of the benchmark's 2AFC categories.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np


def twoafc_per_triplet(d0, d1, judge) -> np.ndarray:
    d0, d1, p = (np.asarray(x, dtype=np.float64).reshape(-1) for x in (d0, d1, judge))
    if not (len(d0) == len(d1) == len(p)):
        raise ValueError(
            f"2AFC needs equal lengths; got d0 {len(d0)}, d1 {len(d1)}, judge {len(p)}"
        )
    return (d0 < d1) * (1.0 - p) + (d1 < d0) * p + (d0 == d1) * 0.5


def score_2afc(d0, d1, judge) -> float:
    """Mean 2AFC agreement with people, in percent."""
    s = twoafc_per_triplet(d0, d1, judge)
    if len(s) == 0:
        raise ValueError("2AFC needs at least one triplet")
    return float(100.0 * np.mean(s))


def voc_ap(rec: np.ndarray, prec: np.ndarray) -> float:
    """Area under the precision envelope, summed where recall changes (VOC 2010+ AP)."""
    mrec = np.concatenate(([0.0], rec, [1.0]))
    mpre = np.concatenate(([0.0], prec, [0.0]))
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    i = np.nonzero(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))


def score_jnd(ds, same) -> float:
    """JND mean average precision of "same" over distances sorted ascending, in percent."""
    ds = np.asarray(ds, dtype=np.float64).reshape(-1)
    same = np.asarray(same, dtype=np.float64).reshape(-1)
    if len(ds) != len(same) or len(ds) == 0:
        raise ValueError(f"JND needs equal, non-zero lengths; got {len(ds)} distances, {len(same)}")
    order = np.argsort(ds, kind="stable")
    s = same[order]
    tps = np.cumsum(s)
    fps = np.cumsum(1.0 - s)
    fns = np.sum(s) - tps
    with np.errstate(invalid="ignore", divide="ignore"):
        precs = tps / (tps + fps)
        recs = tps / (tps + fns)
    return float(100.0 * voc_ap(recs, precs))


def perceptual_score(twoafc: Mapping[str, float]) -> float:
    """Unweighted mean of per-category 2AFC scores."""
    if not twoafc:
        raise ValueError("the Perceptual Score needs at least one 2AFC category")
    return float(np.mean([twoafc[c] for c in sorted(twoafc)]))
