"""The score columns of results.csv, from one ``perceptual/<step>.json``: each distance's and
reference's scores per benchmark, the hypothesis probes (``evaluator.probes``) and the
frequency probe (``evaluator.frequency``); names in docs/file-contracts.md."""

from __future__ import annotations

import functools
import math
import re
import sys
from typing import Any

PROBE_PREFIXES = (
    "best_tap_",
    "margin_",
    "relmargin_",
    "unanimous_",
    "entropy_",
    "ceiling_",
    "freq_",
)


@functools.lru_cache(maxsize=4096)  # the same few names, once per scored checkpoint
def clean(name: str) -> str:
    """A column-safe version of a category or tap name."""
    return re.sub(r"[^A-Za-z0-9]+", "_", str(name)).strip("_") or "x"


def num(v: Any) -> float | None:
    if type(v) is float:  # the common case, first
        return v if math.isfinite(v) else None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return float(v)


@functools.lru_cache(maxsize=65536)
def column(*parts: str) -> str:
    """``column("ps", "bapps_local")`` -> ``ps_bapps_local``, one shared string per name: a
    study's 80,000 rows hold each name once, not once per row."""
    return sys.intern("_".join(parts))


@functools.lru_cache(maxsize=4096)
def _names(kind: str, tag: str, keys: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(column(kind, tag, clean(k)) for k in keys)


def score(v: Any) -> float | None:
    """A score (a percentage) as the rows keep it: rounded to 1e-6, as results.csv writes it
    (100 * 0.546 = 54.599999999999994 -> 54.6). ``round(v * 1e6) / 1e6`` is ``round(v, 6)``
    for a finite |v| < 1e9 but for exact ties (none in 2.2 million random values), at 2.4x its
    speed: a study's report rounds 4.6 million scores."""
    if type(v) is float and -1e9 < v < 1e9:  # nearly every value: the short way
        return round(v * 1e6) / 1e6
    v = num(v)
    return None if v is None else round(v, 6)


def scores(values: Any) -> list[float | None]:
    """``[score(v) for v in values]`` with ``score``'s common case inline (no call per value:
    about 60 values a checkpoint)."""
    return [
        round(v * 1e6) / 1e6 if type(v) is float and -1e9 < v < 1e9 else score(v) for v in values
    ]


MOS_SCORES = ("srocc", "krocc", "plcc")  # TID2013, KADID-10k blocks (evaluator.mos)


def resolution_text(r: Any) -> str | None:
    """A block's ``resolution`` record as ``resize 64x64`` / ``native 512x384``."""
    if not isinstance(r, dict) or not r.get("mode"):
        return None
    return f"{r['mode']} {r.get('width')}x{r.get('height')}"


def _mos_columns(tag: str, s: dict) -> dict[str, float | None]:
    out = {column(k, tag): score(s.get(k)) for k in MOS_SCORES}
    for kind in ("srocc", "krocc"):
        values = s.get(f"{kind}_types") or {}
        out.update(zip(_names(kind, tag, tuple(values)), scores(values.values()), strict=True))
    values = s.get("taps") or {}
    out.update(zip(_names("tap", tag, tuple(values)), scores(values.values()), strict=True))
    return out


@functools.lru_cache(maxsize=4096)
def _block_names(tag: str, afc: tuple, jnd: tuple, taps: tuple) -> tuple[str, ...]:
    """A 2AFC distance block's column names, in ``_block_values``' order."""
    return (
        column("ps", tag),
        column("jnd", tag),
        *_names("2afc", tag, afc),
        *_names("jnd", tag, jnd),
        *_names("tap", tag, taps),
    )


def score_columns(bench: str, b: dict) -> dict[str, Any]:
    out: dict[str, Any] = {}
    resolution = resolution_text(b.get("resolution"))
    if resolution:
        out[f"resolution_{bench}"] = resolution
    groups = list((b.get("distances") or {}).items()) + list((b.get("reference") or {}).items())
    for dist, s in groups:
        if not isinstance(s, dict):
            continue
        tag = column(bench, clean(dist))
        if "srocc" in s:  # a MOS block: correlations, not 2AFC
            out.update(_mos_columns(tag, s))
            continue
        afc, jnd, taps = s.get("2afc") or {}, s.get("jnd_categories") or {}, s.get("taps") or {}
        names = _block_names(tag, tuple(afc), tuple(jnd), tuple(taps))
        values = [s.get("ps"), s.get("jnd"), *afc.values(), *jnd.values(), *taps.values()]
        out.update(zip(names, scores(values), strict=True))
    return out


def _margin_columns(tag: str, m: dict) -> dict[str, float | None]:
    """One distance's margin block: pooled (all taps, each tap) and per category (all taps)."""
    out: dict[str, float | None] = {}
    scopes = [("", (m.get("pooled") or {}).get("all"))]
    scopes += [
        (f"_tap_{clean(t)}", v) for t, v in ((m.get("pooled") or {}).get("taps") or {}).items()
    ]
    scopes += [
        (f"_cat_{clean(c)}", (v or {}).get("all")) for c, v in (m.get("categories") or {}).items()
    ]
    for suffix, stats in scopes:
        stats = stats if isinstance(stats, dict) else {}
        out[f"margin_{tag}{suffix}"] = num(stats.get("margin"))
        out[f"relmargin_{tag}{suffix}"] = num(stats.get("relative"))
    return out


def probe_columns(bench: str, b: dict) -> dict[str, Any]:
    """A benchmark block's probe columns (docs/file-contracts.md, results.csv)."""
    out: dict[str, Any] = {}
    probes = b.get("probes") if isinstance(b.get("probes"), dict) else {}
    margin = probes.get("margin") or {}
    for dist, m in (margin.get("distances") or {}).items():
        if isinstance(m, dict):
            out.update(_margin_columns(f"{bench}_{clean(dist)}", m))
    if isinstance(margin.get("n"), dict):
        out[f"unanimous_{bench}"] = margin["n"].get("pooled")
    ent = probes.get("entropy") or {}
    if ent:
        out[f"entropy_{bench}"] = num(ent.get("mean"))
        out.update({f"entropy_{bench}_{clean(t)}": num(v) for t, v in ent.get("taps", {}).items()})
    for dist, best in (probes.get("best_tap") or {}).items():
        out[f"best_tap_{bench}_{clean(dist)}"] = best.get("tap")
        out[f"best_tap_ps_{bench}_{clean(dist)}"] = num(best.get("ps"))
    dyn = b.get("dynamic_range")
    if isinstance(dyn, dict):
        out[f"ceiling_{bench}"] = num(dyn.get("ceiling"))
    return out


def frequency_columns(freq: Any) -> dict[str, Any]:
    """The frequency probe's columns: clean top-1 on its images, the low-pass slope, and the
    low-pass / high-pass curves (normalised accuracy) per filter edge r in pixels."""
    if not isinstance(freq, dict) or not freq.get("r"):
        return {}
    out: dict[str, Any] = {
        "freq_examples": freq.get("examples"),
        "freq_clean_top1": num(freq.get("clean_top1")),
        "freq_low_slope": num(freq.get("low_slope")),
    }
    for kind in ("low", "high"):
        for r, v in zip(freq["r"], freq.get(f"{kind}pass") or [], strict=False):
            out[f"freq_{kind}_r{r}"] = num(v)
    return out
