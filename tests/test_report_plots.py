"""The report's PNG plots exist, are valid images of a sensible size, and are linked."""

from __future__ import annotations

import matplotlib.image
import numpy as np

from evaluator import report
from evaluator.report.synth import demo_sweep, write_trial
from trainer.files import atomic_write_json

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
HYPOTHESIS_PLOTS = ("relmargin", "margin", "entropy", "freq_slope", "best_tap", "frequency",
                    "dynamic_range", "distances")  # fmt: skip


def _check_png(path):
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC), path
    img = matplotlib.image.imread(path)
    h, w = img.shape[:2]
    assert 400 <= h <= 3000 and 600 <= w <= 4000, (path.name, img.shape)
    assert float(np.std(img[..., :3])) > 0.02, f"{path.name} is blank"


def test_plots_of_a_weight_decay_sweep(tmp_path):
    d = demo_sweep(tmp_path / "weight_decay")
    path = report.write_report(d)
    names = {"top1_vs_ps.png", "weight_decay.png", "ps_vs_epoch.png", "per_tap.png"}
    names |= {f"hyp_{p}.png" for p in HYPOTHESIS_PLOTS}  # synthetic probes: the Hypotheses plots
    assert {p.name for p in d.glob("*.png")} == names
    for name in names:
        _check_png(d / name)
    text = path.read_text()
    for name in names:
        assert f"]({name})" in text
    assert not list(d.glob(".*.tmp"))  # atomic writes left no temporary files


def test_categorical_axis_and_combined_sweeps(tmp_path):
    runs = tmp_path / "runs"
    arch = runs / "archs"
    for i, (name, variant) in enumerate([("vit", "B/8"), ("efficientnet", "b0"), ("resnet", "")]):
        ov = {"model.name": name, "model.variant": variant}
        if name == "vit":
            ov["model.depth"] = 0
        write_trial(arch, f"a{i}", ov, [(100, 1.0, 0.6 + 0.05 * i, 60.0 + i)])
    atomic_write_json(
        arch / "sweep.json", {"sweep": "archs", "axis": ["model.name", "model.variant"]}
    )
    demo_sweep(runs / "weight_decay")
    assert report.main([str(runs), "--all"]) == 0
    pngs = {p.name for p in runs.glob("*.png")}
    assert {"archs.png", "weight_decay.png", "top1_vs_ps.png", "per_tap.png"} <= pngs
    for p in runs.glob("*.png"):
        _check_png(p)


def test_a_plot_that_fails_does_not_cost_the_report(tmp_path, monkeypatch):
    from evaluator.report import draw

    def broken(*args, **kwargs):
        raise ValueError("no room for the legend")

    monkeypatch.setattr(draw, "per_tap", broken)
    d = tmp_path / "depth"
    for i, depth in enumerate((6, 10, 14)):
        write_trial(d, f"depth-{depth}", {"model.depth": depth}, [(100, 1.0, 0.5 + 0.1 * i, 60.0)])
    text = report.write_report(d).read_text()
    assert "could not draw per_tap.png: ValueError: no room for the legend" in text
    assert not (d / "per_tap.png").exists()
    _check_png(d / "depth.png")
    _check_png(d / "top1_vs_ps.png")


def test_long_legends_list_grid_points_not_seeds():
    from evaluator.report.draw import legend_labels

    series = [
        {"label": f"wd-{v}_seed-{s}", "group": ("wd", v), "group_label": f"wd={v}"}
        for v in (1, 2, 3, 4, 5, 6)
        for s in (0, 1)
    ]
    labels, title, n = legend_labels(series)
    assert n == 6 and "seed" in title
    assert [x for x in labels if x] == [f"wd={v}" for v in (1, 2, 3, 4, 5, 6)]
    labels, title, n = legend_labels(series[:4])
    assert n == 4 and labels == [s["label"] for s in series[:4]] and title == "trial"
