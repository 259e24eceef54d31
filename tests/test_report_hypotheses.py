"""The report's Hypotheses section and probe columns, on synthetic results with probe blocks."""

from __future__ import annotations

import csv
import json

from test_report_plots import _check_png

from evaluator import report
from evaluator.report.synth import write_trial
from trainer.files import atomic_write_json


def _depth_sweep(tmp_path, depths, lin=True, probes=True):
    """One done trial per depth; PS falls with depth, lin narrows the gap (made-up numbers)."""
    d = tmp_path / "depth"
    trials = []
    for i, depth in enumerate(depths):
        name = f"depth-{depth}"
        ps, top1 = 70.0 - 0.5 * i, 0.6 + 0.05 * i
        gain = (0.5 + 0.3 * i) if lin else None
        pts = [(100, 1.0, top1 - 0.1, ps - 1.0), (200, 2.0, top1, ps)]
        write_trial(d, name, {"model.depth": depth}, pts, probes=probes, lin_gain=gain)
        trials.append({"name": name, "overrides": {"model.depth": depth}})
    atomic_write_json(
        d / "sweep.json", {"sweep": "depth", "axis": ["model.depth"], "trials": trials}
    )
    return d


def _rows(d):
    with open(d / "results.csv") as f:
        return list(csv.DictReader(f))


def test_hypotheses_section_plots_and_probe_columns(tmp_path):
    d = _depth_sweep(tmp_path, [2, 6, 18, 50, 200])
    text = report.write_report(d).read_text()
    section = text.split("## Hypotheses")[1].split("## Missing")[0]
    # every probe against PS and top-1, over every scored checkpoint (5 trials x 2 steps)
    for label in ("relative distortion margin", "activation entropy", "low-pass slope",
                  "PS of the best single tap"):  # fmt: skip
        line = next(x for x in section.splitlines() if x.startswith(f"| {label}"))
        assert "| 10 |" in line, line
    # the synthetic margin rises with PS: Spearman +1 against PS
    assert "| relative distortion margin (far - near) / mean | 10 | +1.000 |" in section
    assert "### Best single tap" in section and "| `depth-2` | `stage3` |" in section
    assert "### Spatial frequency (ResNet-6 vs ResNet-200)" in section
    assert "ceiling (mean of max(p, 1 - p)) is **80.0**" in section
    # lin beside the others, and the ResNet-6 vs ResNet-200 gap with and without it
    gap = {r.split("|")[1].strip(): r for r in section.splitlines() if r.startswith("| ")}
    assert "| 69.50 | 68.00 | 1.50 |" in gap["local"]
    assert "| 70.30 | 69.70 | 0.60 |" in gap["lin"]  # narrowed, not closed
    assert "The calibration moves the gap from 1.50 (`local`) to 0.60 (`lin`)." in section
    for name in ("relmargin", "margin", "entropy", "freq_slope", "best_tap", "frequency",
                 "dynamic_range", "distances"):  # fmt: skip
        assert f"](hyp_{name}.png)" in section
        _check_png(d / f"hyp_{name}.png")
    rows = _rows(d)
    cols = rows[0].keys()
    for c in ("ps_proxy_lin", "margin_proxy_local", "relmargin_proxy_local",
              "margin_proxy_local_tap_stage1", "relmargin_proxy_lin_cat_blur", "unanimous_proxy",
              "entropy_proxy", "entropy_proxy_stage4", "best_tap_proxy_local",
              "best_tap_ps_proxy_local", "ceiling_proxy", "freq_low_slope", "freq_clean_top1",
              "freq_low_r32", "freq_high_r2"):  # fmt: skip
        assert c in cols, c
    final = [r for r in rows if r["final"] == "True"]
    assert [r["best_tap_proxy_local"] for r in final] == ["stage3"] * 5
    assert float(final[0]["ceiling_proxy"]) == 80.0 and float(final[0]["freq_low_r32"]) == 1.0


def test_shallowest_vs_deepest_without_lin(tmp_path):
    d = _depth_sweep(tmp_path, [2, 10, 34], lin=False)
    section = report.write_report(d, plots=False).read_text().split("## Hypotheses")[1]
    assert "### Spatial frequency (shallowest vs deepest trial by model.depth)" in section
    assert "`lin` not scored: set `perceptual.calibrate=true`" in section
    assert "PS of `depth-2` minus PS of `depth-34`" in section
    assert not list(d.glob("hyp_*.png"))


def test_results_without_probes_say_so(tmp_path):
    d = _depth_sweep(tmp_path, [2, 6], lin=False, probes=False)
    text = report.write_report(d).read_text()
    assert "## Hypotheses" in text
    assert "No scored checkpoint carries the probes (`perceptual.probes`) yet." in text
    assert not list(d.glob("hyp_*.png"))
    assert not any(c.startswith(("margin_", "freq_")) for c in _rows(d)[0])


def test_report_on_the_lin_distance(tmp_path):
    d = _depth_sweep(tmp_path, [2, 6])
    assert report.main([str(d), "--distance", "lin", "--no-plots"]) == 0
    text = (d / "report.md").read_text()
    assert "distance used: `lin`" in text and "| PS lin (used) |" in text
    assert report.main([str(d), "--distance", "lpips"]) == 2


def test_records_without_frequency_curves(tmp_path):
    d = _depth_sweep(tmp_path, [2, 6], lin=False)
    for f in d.glob("*/perceptual/*.json"):
        rec = json.loads(f.read_text())
        del rec["frequency"]
        atomic_write_json(f, rec)
    text = report.write_report(d).read_text()
    assert "No frequency curves scored." in text and "low-pass slope" not in text
