"""Which value goes on a sweep's x-axis, and which trials share a line (evaluator.report.axes)."""

from __future__ import annotations

from evaluator import report
from evaluator.report import plots
from evaluator.report.analyse import analyse
from evaluator.report.axes import plan
from evaluator.report.collect import build_rows, load_sweeps
from evaluator.report.synth import write_trial
from sweeps.recipes import recipe


def _chained_dropout(d):
    """The paper's dropout sweep shape: ResNet-50 over model.dropout, ViT-B/8 over
    model.encoder_dropout, each with its own recipe, two seeds; no sweep.json."""
    res = {**recipe("resnet", "paper"), "model.depth": 50}
    vit = {**recipe("vit", "paper"), "model.dropout": 0.0}
    for i, r in enumerate([0.0, 0.1, 0.2]):
        for seed in (0, 1):
            ov = {**res, "model.dropout": r, "seed": seed}
            pts = [(2000, 90.0, 0.70 + 0.01 * i + 0.002 * seed, 66.0 - i + 0.2 * seed)]
            write_trial(d, f"resnet-50_dropout-{r}_seed-{seed}", ov, pts, preset="paper")
            ov = {**vit, "model.encoder_dropout": r, "seed": seed}
            pts = [(2000, 90.0, 0.74 + 0.01 * i, 65.0 - 0.5 * i - 0.2 * seed)]
            write_trial(d, f"vit-B8_encdrop-{r}_seed-{seed}", ov, pts, preset="paper")


def test_chained_sweep_one_line_per_model_with_its_own_x_key(tmp_path):
    d = tmp_path / "dropout"
    _chained_dropout(d)
    (sw,) = load_sweeps(d, False)
    assert {"model.dropout", "model.encoder_dropout", "train.optimizer", "seed"} <= set(sw.swept)
    p = plan(sw)
    assert p.primary == "model.dropout"  # named like the sweep
    assert {g.label: g.key for g in p.groups} == {
        "resnet-50": "model.dropout",
        "vit-B/8": "model.encoder_dropout",
    }
    assert p.keys == ["model.dropout", "model.encoder_dropout"]
    a = analyse([sw], build_rows([sw]))
    series, label = plots.axis_series(a, sw)
    assert label == "model.dropout / model.encoder_dropout"
    by_label = {s["label"]: s["agg"] for s in series}
    assert set(by_label) == {"resnet-50", "vit-B/8 (model.encoder_dropout)"}
    res = by_label["resnet-50"]
    assert [g["x"] for g in res] == [0.0, 0.1, 0.2] and all(g["n"] == 2 for g in res)
    assert res[0]["ps_mean"] == 66.1  # the two seeds, 66.0 and 66.2
    text = report.write_report(d, plots=False).read_text()
    table = text.split("## Trials")[1].split("##")[0]
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    assert rows[0].startswith("| `resnet-50_dropout-0.0_seed-0` | resnet-50 | 0 |")
    assert rows[-1].startswith("| `vit-B8_encdrop-0.2_seed-1` | vit-B/8 |")


def test_architecture_sweep_is_one_categorical_series(tmp_path):
    d = tmp_path / "archs"
    models = [
        {"model.name": "resnet", "model.depth": 18},
        {**recipe("vit", "paper"), "model.variant": "Ti/4", "model.depth": 4},
        {**recipe("efficientnet", "paper"), "model.variant": "b0"},
    ]
    for i, m in enumerate(models):
        write_trial(d, f"m{i}", m, [(100, 1.0, 0.6 + 0.05 * i, 60.0 + i)])
    (sw,) = load_sweeps(d, False)
    p = plan(sw)
    assert p.primary is None and p.categorical and p.keys == []
    assert sorted(g.label for g in p.groups) == [
        "efficientnet-b0",
        "resnet-18",
        "vit-Ti/4 depth 4",
    ]
    a = analyse([sw], build_rows([sw]))
    (series,), label = plots.axis_series(a, sw)
    assert label == "model" and len(series["agg"]) == 3
    assert plots.axis_plot_names(a) == {"archs": "archs"}


def test_single_key_sweep_uses_that_key(tmp_path):
    d = tmp_path / "my-grid"
    for w in (0.25, 0.5, 1.0):
        write_trial(d, f"w{w}", {"model.width": w}, [(100, 1.0, 0.5 + w / 4, 60.0 + w)])
    (sw,) = load_sweeps(d, False)
    p = plan(sw)
    assert p.primary == "model.width" and len(p.groups) == 1 and p.groups[0].label == ""
    a = analyse([sw], build_rows([sw]))
    assert plots.axis_plot_names(a) == {"my-grid": "width"}
