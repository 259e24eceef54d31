"""The study's hypothesis probes of one scored checkpoint (Kumar et al. 2022, Sec. 8), from what
scoring already computes: no second pass over a benchmark.

* **Distortion margin** (``margins``): on the triplets every judge agreed on (p = 0 or 1; on
  the proxy: those whose order the rule makes certain), ``far`` / ``near`` = the mean distance
  from the reference to the patch people rejected / chose; ``margin = far - near`` and the
  scale-free ``relative = margin / ((far + near) / 2)`` (taps of different depths differ in
  feature scale), plus ``agree``, the 2AFC score on those triplets. Per distance, for all taps
  together and each tap alone, per category and ``pooled`` (every unanimous triplet of the
  benchmark in one set). A scope without unanimous triplets gets nulls.
* **Activation entropy** (``normalised_entropy``, computed on the device beside the distances):
  per image and tap, the softmax over all H x W x C values of the raw tap, its Shannon entropy
  divided by log(HWC) (1 = uniform, 0 = one value dominates); the mean over the benchmark's
  2AFC images (ref, p0, p1), per tap and then over taps.
* **Best single tap** (``best_taps``): the tap whose PS alone is highest, per distance.
* **Dynamic range** (``dynamic_range``): from the labels alone, the ceiling (mean max(p, 1 - p),
  the best any distance can score) and the PS of simulated distances: each label binarised
  (p > 0.5: p1 closer), d0 and d1 drawn from normals truncated to [0, 1] with means 1 and 0
  (swapped for the other label) and spread sigma, scored against the real p. sigma = 0 gives
  the ceiling; a large sigma tends to 50.

The frequency probe (extra forward passes on the eval split) is ``evaluator.frequency``; the
learned calibration is ``evaluator.calibration``. ``Settings`` reads which of them a trial
asks for (``perceptual.probes``, ``perceptual.frequency_examples``, ``perceptual.calibrate``).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from evaluator import scoring

ENTROPY = "entropy"  # the packed row kind of evaluator.features
SIGMAS = (0.0, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.0)  # below ~0.2 the means never swap
DYNAMIC_SEED = 0


@functools.cache
def _defaults() -> dict[str, Any]:
    from sweeps.base import schema

    return schema().perceptual.to_dict()


@dataclass(frozen=True)
class Settings:
    """Which analyses a trial's scoring computes: its ``perceptual`` config section, the
    schema's defaults for keys a config.json from older code lacks."""

    probes: bool
    frequency_examples: int
    calibrate: bool
    calibrate_steps: int

    @classmethod
    def from_config(cls, perc: Mapping[str, Any] | None) -> Settings:
        values = {**_defaults(), **{k: v for k, v in (perc or {}).items() if v is not None}}
        return cls(
            probes=bool(values["probes"]),
            frequency_examples=int(values["frequency_examples"]),
            calibrate=bool(values["calibrate"]),
            calibrate_steps=int(values["calibrate_steps"]),
        )

    @property
    def frequency(self) -> bool:
        return self.probes and self.frequency_examples > 0

    def block_complete(self, block: Mapping[str, Any]) -> bool:
        """Whether a benchmark's score block holds what these settings ask for (probes,
        ``lin``); a block lacking them is scored again. A MOS benchmark's block (TID2013,
        KADID-10k) has neither: complete as it is."""
        from evaluator.benchmarks import MOS_BENCHMARKS

        if block.get("kind") in MOS_BENCHMARKS:
            return True
        if self.probes and not isinstance(block.get("probes"), dict):
            return False
        return not (self.calibrate and "lin" not in (block.get("distances") or {}))

    def record_complete(self, rec: Mapping[str, Any]) -> bool:
        """Whether a result holds the per-checkpoint probes (the frequency curves)."""
        return not self.frequency or isinstance(rec.get("frequency"), dict)


# ----------------------------------------------------------------------------- entropy


def normalised_entropy(f):
    """(N,): per image, the Shannon entropy of the softmax over all of a tap's values (H x W x C,
    or C for a vector tap) divided by log of their number. Jittable."""
    import jax
    import jax.numpy as jnp

    x = f.reshape(f.shape[0], -1).astype(jnp.float32)
    n = x.shape[1]
    if n < 2:
        return jnp.zeros((x.shape[0],), jnp.float32)
    logp = x - jax.nn.logsumexp(x, axis=1, keepdims=True)
    h = -jnp.sum(jnp.exp(logp) * logp, axis=1)
    return h / math.log(n)


def entropy_block(per_category: Mapping[str, Mapping[str, np.ndarray]]) -> dict[str, Any]:
    """``{"mean", "taps": {tap: mean}}`` over every image of every category (per-triplet values
    are already the mean of its three images, so triplets weigh alike)."""
    cats = list(per_category)
    taps = list(per_category[cats[0]]) if cats else []
    out = {
        t: float(np.mean(np.concatenate([np.asarray(per_category[c][t]) for c in cats])))
        for t in taps
    }
    return {
        "mean": _r(float(np.mean(list(out.values())))) if out else None,
        "taps": {t: _r(v) for t, v in out.items()},
    }


# ----------------------------------------------------------------------------- margins


def _r(v: float | None, digits: int = 6) -> float | None:
    if v is None or not math.isfinite(v):
        return None
    return round(float(v), digits)


def margin_stats(d0, d1, judge) -> dict[str, float | None]:
    """``far``, ``near``, ``margin``, ``relative``, ``agree`` (%) and ``n`` over the triplets
    with p = 0 or 1 (p = fraction who chose p1: p = 1 means p1 near, p0 far)."""
    d0, d1, p = (np.asarray(x, np.float64).reshape(-1) for x in (d0, d1, judge))
    sel = (p == 0.0) | (p == 1.0)
    n = int(sel.sum())
    if n == 0:
        return {"n": 0, "far": None, "near": None, "margin": None, "relative": None, "agree": None}
    one = p[sel] == 1.0
    near = np.where(one, d1[sel], d0[sel]).mean()
    far = np.where(one, d0[sel], d1[sel]).mean()
    mid = (far + near) / 2.0
    return {
        "n": n,
        "far": _r(far, 8),
        "near": _r(near, 8),
        "margin": _r(far - near, 8),
        "relative": _r((far - near) / mid if mid > 0 else None),
        "agree": _r(scoring.score_2afc(d0[sel], d1[sel], p[sel]), 4),
    }


def _scope(pairs: Mapping[str, tuple[np.ndarray, np.ndarray]], judge) -> dict[str, Any]:
    """One scope (a category or the pooled set): all taps summed, then each tap alone."""
    taps = sorted(pairs)
    total0 = sum(np.asarray(pairs[t][0], np.float64) for t in taps)
    total1 = sum(np.asarray(pairs[t][1], np.float64) for t in taps)
    return {
        "all": margin_stats(total0, total1, judge),
        "taps": {t: margin_stats(pairs[t][0], pairs[t][1], judge) for t in pairs},
    }


def margins(
    trip: Mapping[str, Mapping[str, Mapping[str, tuple[np.ndarray, np.ndarray]]]],
    judges: Mapping[str, np.ndarray],
    kinds: Sequence[str],
) -> dict[str, Any]:
    """``{"n": {"pooled", "categories"}, "distances": {kind: {"pooled": S, "categories":
    {cat: S}}}}`` with S = ``{"all": stats, "taps": {tap: stats}}`` (``margin_stats``).

    ``trip``: ``{category: {kind: {tap: (d0, d1)}}}`` as ``ScoringModel.triplet_scores``
    gives them; ``judges``: ``{category: p}``."""
    cats = list(trip)
    pooled_judge = np.concatenate([np.asarray(judges[c]) for c in cats]) if cats else np.zeros(0)
    unanimous = lambda p: int(np.sum((np.asarray(p) == 0.0) | (np.asarray(p) == 1.0)))
    out: dict[str, Any] = {
        "n": {
            "pooled": unanimous(pooled_judge),
            "categories": {c: unanimous(judges[c]) for c in cats},
        },
        "distances": {},
    }
    for kind in kinds:
        taps = list(trip[cats[0]][kind]) if cats else []
        pooled = {
            t: tuple(
                np.concatenate([np.asarray(trip[c][kind][t][i]) for c in cats]) for i in (0, 1)
            )
            for t in taps
        }
        out["distances"][kind] = {
            "pooled": _scope(pooled, pooled_judge),
            "categories": {c: _scope(trip[c][kind], judges[c]) for c in cats},
        }
    return out


# ----------------------------------------------------------------------------- best tap


def best_taps(distances: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """``{kind: {"tap", "ps"}}``: the tap whose PS alone is highest (the first on a tie)."""
    out = {}
    for kind, block in distances.items():
        taps = {t: v for t, v in (block.get("taps") or {}).items() if v is not None}
        if taps:
            best = max(taps, key=lambda t: taps[t])  # max keeps the first of equal values
            out[kind] = {"tap": best, "ps": taps[best]}
    return out


# ----------------------------------------------------------------------------- dynamic range


def _truncnorm(rng: np.random.Generator, mean: np.ndarray, sigma: float) -> np.ndarray:
    """Draws from normals of ``mean`` (per element) and ``sigma`` truncated to [0, 1]."""
    from scipy import stats

    if sigma == 0.0:
        return mean.astype(np.float64)
    a, b = (0.0 - mean) / sigma, (1.0 - mean) / sigma
    return stats.truncnorm.rvs(a, b, loc=mean, scale=sigma, random_state=rng)


def ceiling(judge) -> float:
    """The highest 2AFC score any distance can reach on these labels, in %: mean max(p, 1 - p)."""
    p = np.asarray(judge, np.float64)
    return float(100.0 * np.mean(np.maximum(p, 1.0 - p)))


def dynamic_range(
    judges: Mapping[str, np.ndarray], sigmas: Sequence[float] = SIGMAS, seed: int = DYNAMIC_SEED
) -> dict[str, Any]:
    """The benchmark's reachable PS range from its labels (see the module docstring):
    ``{"ceiling", "ceiling_2afc": {cat}, "sigmas", "ps", "seed"}``; PS as the benchmark's (the
    unweighted mean over categories), each category drawn from its own seeded generator."""
    ceil = {c: ceiling(p) for c, p in judges.items()}
    curve = []
    for sigma in sigmas:
        per_cat = {}
        for i, (c, p) in enumerate(sorted(judges.items())):
            p = np.asarray(p, np.float64)
            rng = np.random.default_rng([seed, i, int(round(sigma * 1e6))])
            first = p > 0.5  # p1 chosen: d1 near (mean 0), d0 far (mean 1)
            d0 = _truncnorm(rng, np.where(first, 1.0, 0.0), float(sigma))
            d1 = _truncnorm(rng, np.where(first, 0.0, 1.0), float(sigma))
            per_cat[c] = scoring.score_2afc(d0, d1, p)
        curve.append(round(scoring.perceptual_score(per_cat), 4))
    return {
        "ceiling": round(scoring.perceptual_score(ceil), 4),
        "ceiling_2afc": {c: round(v, 4) for c, v in ceil.items()},
        "sigmas": [float(s) for s in sigmas],
        "ps": curve,
        "seed": seed,
    }


def expected_dynamic_ps(judges: Mapping[str, np.ndarray], sigma: float) -> float:
    """The expectation of ``dynamic_range``'s PS at ``sigma`` (for tests and readers): with
    q = P(far draw > near draw), each triplet scores q max(p, 1-p) + (1-q) min(p, 1-p)."""
    from scipy import integrate, stats

    if sigma == 0.0:
        q = 1.0
    else:
        far = stats.truncnorm((0 - 1) / sigma, 0.0, loc=1.0, scale=sigma)
        near = stats.truncnorm(0.0, 1 / sigma, loc=0.0, scale=sigma)
        q = integrate.quad(lambda x: far.pdf(x) * near.cdf(x), 0.0, 1.0, limit=200)[0]
    per_cat = {}
    for c, p in judges.items():
        p = np.asarray(p, np.float64)
        hi = np.maximum(p, 1.0 - p)
        per_cat[c] = 100.0 * float(np.mean(q * hi + (1.0 - q) * (1.0 - hi)))
    return scoring.perceptual_score(per_cat)
