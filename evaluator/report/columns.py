"""The score columns of results.csv, from one ``perceptual/<step>.json``: each distance's and
reference's scores per benchmark, the hypothesis probes (``evaluator.probes``) and the
frequency probe (``evaluator.frequency``); names in docs/file-contracts.md."""

from __future__ import annotations

import math
import re
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


def clean(name: str) -> str:
    """A column-safe version of a category or tap name."""
    return re.sub(r"[^A-Za-z0-9]+", "_", str(name)).strip("_") or "x"


def num(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return float(v)


MOS_SCORES = ("srocc", "krocc", "plcc")  # TID2013, KADID-10k blocks (evaluator.mos)


def resolution_text(r: Any) -> str | None:
    """A block's ``resolution`` record as ``resize 64x64`` / ``native 512x384``."""
    if not isinstance(r, dict) or not r.get("mode"):
        return None
    return f"{r['mode']} {r.get('width')}x{r.get('height')}"


def _mos_columns(tag: str, s: dict) -> dict[str, float | None]:
    out = {f"{k}_{tag}": num(s.get(k)) for k in MOS_SCORES}
    for kind in ("srocc", "krocc"):
        for t, v in (s.get(f"{kind}_types") or {}).items():
            out[f"{kind}_{tag}_{clean(t)}"] = num(v)
    for tap, v in (s.get("taps") or {}).items():
        out[f"tap_{tag}_{clean(tap)}"] = num(v)
    return out


def score_columns(bench: str, b: dict) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if resolution_text(b.get("resolution")):
        out[f"resolution_{bench}"] = resolution_text(b.get("resolution"))
    groups = list((b.get("distances") or {}).items()) + list((b.get("reference") or {}).items())
    for dist, s in groups:
        if not isinstance(s, dict):
            continue
        tag = f"{bench}_{clean(dist)}"
        if "srocc" in s:  # a MOS block: correlations, not 2AFC
            out.update(_mos_columns(tag, s))
            continue
        out[f"ps_{tag}"] = num(s.get("ps"))
        out[f"jnd_{tag}"] = num(s.get("jnd"))
        for cat, v in (s.get("2afc") or {}).items():
            out[f"2afc_{tag}_{clean(cat)}"] = num(v)
        for cat, v in (s.get("jnd_categories") or {}).items():
            out[f"jnd_{tag}_{clean(cat)}"] = num(v)
        for tap, v in (s.get("taps") or {}).items():
            out[f"tap_{tag}_{clean(tap)}"] = num(v)
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
