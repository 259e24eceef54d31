"""The report at the study's scale: statistics on tens of thousands of points, trials that did
not learn, and what a near-chance trial is kept out of."""

from __future__ import annotations

import math

import numpy as np
import pytest

from evaluator import report
from evaluator.report.analyse import CHANCE_MARGIN, analyse
from evaluator.report.collect import build_rows, load_sweeps
from evaluator.report.stats import format_p, spearman
from evaluator.report.synth import write_trial
from trainer.files import atomic_write_json

N_STUDY = 80_864  # 722 trials x 112 scored checkpoints, the study's record count


def test_spearman_at_80k_points_perfect_and_strong():
    x = np.arange(N_STUDY, dtype=float)
    c = spearman(list(x), list(2.0 * x + 1.0))  # perfect: 2 of n! pairings, n! far past floats
    assert c.rho == pytest.approx(1.0) and c.n == N_STUDY
    assert c.p == 0.0 and format_p(c.p) == "< 1e-300"
    c = spearman(list(x), list(-x))
    assert c.rho == pytest.approx(-1.0) and c.p == 0.0
    rng = np.random.default_rng(0)
    y = x + rng.normal(0.0, 0.15 * N_STUDY, N_STUDY)  # strong, not perfect: scipy's p underflows
    c = spearman(list(x), list(y))
    assert 0.8 < c.rho < 0.99
    assert c.p == 0.0 and format_p(c.p) == "< 1e-300"
    # ties (many checkpoints share an accuracy): rho = 1 is reached by more pairings, no formula
    xt = np.repeat(np.arange(N_STUDY // 8, dtype=float), 8)
    c = spearman(list(xt), list(xt))
    assert c.rho == pytest.approx(1.0) and c.p == 0.0


def test_spearman_p_in_between_sizes():
    for n in (9, 100, 170, 171, 500):  # past 170, n! overflows a float: the log form does not
        xs = [float(i) for i in range(n)]
        c = spearman(xs, xs)
        assert c.rho == pytest.approx(1.0)
        expected = math.exp(math.log(2.0) - math.lgamma(n + 1))
        assert c.p == pytest.approx(expected, rel=1e-9, abs=0.0)
    assert format_p(0.000123456) == "0.000123"


def _archs(d, efficientnet_top1):
    """Three finished trials of 10 classes; the EfficientNet at ``efficientnet_top1``."""
    models = [
        ("resnet-18", {"model.name": "resnet", "model.depth": 18}, 0.855, 73.0),
        ("vit-Ti4", {"model.name": "vit", "model.variant": "Ti/4", "model.depth": 4}, 0.78, 76.3),
        ("effnet-b0", {"model.name": "efficientnet", "model.variant": "b0"}, efficientnet_top1, 80.0),
        ("resnet-10", {"model.name": "resnet", "model.depth": 10}, 0.80, 71.0),
    ]  # fmt: skip
    for name, ov, top1, ps in models:
        pts = [(100, 1.0, top1 * 0.7, ps - 1.0), (200, 2.0, top1, ps)]
        write_trial(d, name, {**ov, "data.num_classes": 10}, pts)
    atomic_write_json(d / "sweep.json", {"sweep": "archs", "trials": [m[0] for m in models]})


def test_a_near_chance_trial_is_flagged_and_left_out(tmp_path):
    d = tmp_path / "archs"
    _archs(d, efficientnet_top1=0.10 + (CHANCE_MARGIN - 3.2) / 100)  # 11.8 % on 10 classes
    sweeps = load_sweeps(d, False)
    a = analyse(sweeps, build_rows(sweeps))
    assert set(a.untrained) == {"effnet-b0"}
    assert "11.8%" in a.untrained["effnet-b0"] and "10.0%" in a.untrained["effnet-b0"]
    assert {r["trial"] for r in a.analysed} == {"resnet-18", "vit-Ti4", "resnet-10"}
    assert all(r["trial"] != "effnet-b0" for r in a.rows)
    assert a.best["row"]["trial"] == "vit-Ti4"  # its PS of 80 would have ranked first
    assert all(r["trial"] != "effnet-b0" for r in a.frontier)
    # 3 finals (2 above the median top-1), 6 scored rows (3 above): never the untrained one's
    assert [c.n for _, c in a.correlations] == [3, 2, 6, 3]
    text = report.write_report(d, plots=False).read_text()
    table = text.split("## Trials")[1].split("\n## ")[0]
    line = next(x for x in table.splitlines() if x.startswith("| `effnet-b0`"))
    assert "done (did not learn)" in line and "11.8" in line
    missing = text.split("## Missing")[1]
    assert "`effnet-b0`: did not learn: final top-1 11.8% is within 5 points of chance" in missing
    csv_text = (d / "results.csv").read_text()
    assert "effnet-b0" in csv_text  # results.csv keeps every row


def test_a_trial_just_past_the_margin_counts(tmp_path):
    d = tmp_path / "archs"
    _archs(d, efficientnet_top1=0.10 + (CHANCE_MARGIN + 0.5) / 100)
    sweeps = load_sweeps(d, False)
    a = analyse(sweeps, build_rows(sweeps))
    assert not a.untrained and len(a.analysed) == 4
    assert a.best["row"]["trial"] == "effnet-b0"


def test_many_trials_draw_faceted_figures(tmp_path):
    """26 trials of two models: PS along training and per tap as one panel per model, one
    curve per swept value (seeds averaged), and the scatter with few names."""
    import matplotlib.image

    d = tmp_path / "width"
    for depth in (6, 10):
        for w in (0.0625, 0.125, 0.25, 0.5, 1.0, 2.0, 4.0)[: 7 if depth == 6 else 6]:
            for seed in (0, 1):
                ps = 65.0 + w - 0.1 * depth + 0.1 * seed
                pts = [(100, 1.0, 0.3 + 0.05 * w, ps - 1.0), (200, 2.0, 0.4 + 0.05 * w, ps)]
                ov = {"model.depth": depth, "model.width": w, "seed": seed}
                write_trial(d, f"d{depth}_w{w}_s{seed}", ov, pts, probes=False)
    atomic_write_json(d / "sweep.json", {"axis": ["model.width", "seed"]})
    path = report.write_report(d)
    text = path.read_text()
    for name in ("ps_vs_epoch.png", "per_tap.png", "top1_vs_ps.png", "width.png"):
        assert f"]({name})" in text, name
        img = matplotlib.image.imread(d / name)
        assert img.shape[0] > 400 and float(np.std(img[..., :3])) > 0.02, name
    assert "could not draw" not in text
