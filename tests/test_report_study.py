"""A study-shaped sweep (sweep.json ``axes``): Table 1 from the runs, one report per axis, the
synthetic study generator."""

from __future__ import annotations

import json

import matplotlib.image
import pytest

from evaluator import report
from evaluator.report.analyse import analyse
from evaluator.report.collect import ReportError, build_rows, load_sweeps
from evaluator.report.synth import write_trial
from evaluator.report.synth_study import study_sweep
from evaluator.report.table1 import NOT_RUN, table1
from sweeps.recipes import recipe
from trainer.files import atomic_write_json

RESNET50 = {**recipe("resnet", "paper"), "model.depth": 50}


def _trial(d, name, extra, ps, steps=(100, 200, 300), top1=0.6):
    """A ResNet-50 trial (paper recipe + ``extra``) whose checkpoints score ``ps`` (a list,
    one per step, or one number for the last step with the earlier ones 1 point lower)."""
    ps = ps if isinstance(ps, list) else [ps - 1.0] * (len(steps) - 1) + [ps]
    pts = [(s, 10.0 * (i + 1), top1, p) for i, (s, p) in enumerate(zip(steps, ps, strict=True))]
    write_trial(d, name, {**RESNET50, **extra}, pts, preset="paper", bench="bapps", probes=False)
    return name


def _constructed_study(d):
    """Gains built in: width +0.5 (0.25; the larger 2.0 scores more but is not scaling down),
    weight decay +0.3, central crop -0.2, train steps +0.9 (epochs-4 at step 200; early
    stopping of the default reaches only +0.5); depth not run; no ViT at all."""
    default = [
        _trial(d, "r50_seed-0", {"seed": 0}, [67.5, 68.5, 68.0]),
        _trial(d, "r50_seed-1", {"seed": 1}, [67.7, 68.7, 68.2]),
    ]
    axes = {
        "width": ("model.width", default + [
            _trial(d, "r50_width-0.25_seed-0", {"model.width": 0.25, "seed": 0}, 68.5),
            _trial(d, "r50_width-0.25_seed-1", {"model.width": 0.25, "seed": 1}, 68.7),
            _trial(d, "r50_width-2_seed-0", {"model.width": 2.0, "seed": 0}, 70.0),
        ]),
        "weight_decay": ("train.weight_decay", default + [
            _trial(d, "r50_wd-1e-05_seed-0", {"train.weight_decay": 1e-5, "seed": 0}, 68.4),
        ]),
        "crop": ("data.crop", default + [
            _trial(d, "r50_crop-center_seed-0", {"data.crop": "center", "seed": 0}, 67.9),
        ]),
        "epochs": ("train.epochs", default + [
            _trial(d, "r50_epochs-4_seed-0", {"train.epochs": 4.0, "seed": 0}, [68.0, 69.0, 68.5]),
        ]),
    }  # fmt: skip
    atomic_write_json(d / "sweep.json", {
        "sweep": d.name, "preset": "paper",
        "axes": {k: {"key": key, "trials": names} for k, (key, names) in axes.items()},
    })  # fmt: skip
    return d


def test_table1_cells_from_constructed_gains(tmp_path):
    d = _constructed_study(tmp_path / "study")
    sweeps = load_sweeps(d, False)
    a = analyse(sweeps, build_rows(sweeps))
    rows = {r.arch: r for r in table1(a)}
    r50 = rows["resnet-50"]
    assert r50.default.value == pytest.approx(68.1) and r50.default.seeds == 2
    c = r50.cells
    assert c["width"].value == pytest.approx(0.5) and c["width"].seeds == 2
    assert c["width"].trial == "r50_width-0.25_seed-0"
    assert c["weight decay"].value == pytest.approx(0.3)
    assert c["central crop"].value == pytest.approx(-0.2)
    assert c["train steps"].value == pytest.approx(0.9)
    assert (c["train steps"].trial, c["train steps"].step) == ("r50_epochs-4_seed-0", 200)
    assert c["depth"].value is None and c["depth"].note == NOT_RUN
    assert r50.best.value == pytest.approx(69.0) and r50.best.trial == "r50_epochs-4_seed-0"
    assert rows["vit-B/8"].default.value is None and "no default" in rows["vit-B/8"].default.note
    text = report.write_report(d, plots=False).read_text()
    t1 = text.split("## Table 1")[1].split("\n## ")[0]
    assert "| resnet-50 | 68.10 (68.2) | +0.50 (+0.4) | not run (-) | +0.30 (+0.7) |" in t1
    assert "| -0.20 (+0.7) | +0.90 (+1.5) | 69.00 (69.7) |" in t1
    assert "| resnet-50 | train steps | `r50_epochs-4_seed-0` step 200 |" in t1
    assert "Kumar et al., TMLR 2022, Table 1" in t1


def test_early_stopping_alone_fills_train_steps(tmp_path):
    d = tmp_path / "study"
    names = [_trial(d, f"r50_seed-{s}", {"seed": s}, [68.0 + s, 69.0, 68.0]) for s in (0, 1)]
    names.append(_trial(d, "r50_wd-1e-05_seed-0", {"train.weight_decay": 1e-5, "seed": 0}, 67.0))
    atomic_write_json(d / "sweep.json", {"axes": {
        "weight_decay": {"key": "train.weight_decay", "trials": names},
        "epochs": {"key": "train.epochs", "trials": names[:2]},
    }})  # fmt: skip
    sweeps = load_sweeps(d, False)
    (r50,) = [r for r in table1(analyse(sweeps, build_rows(sweeps))) if r.arch == "resnet-50"]
    assert r50.default.value == pytest.approx(68.0)
    assert r50.cells["train steps"].value == pytest.approx(1.0)  # step 200, mean of both seeds
    assert r50.cells["train steps"].step == 200 and r50.cells["train steps"].seeds == 2
    assert r50.cells["weight decay"].value == pytest.approx(-1.0)


@pytest.mark.slow  # ~20-50 s on 2 shared cores: 45 trials and eight figures
def test_one_report_per_axis_with_its_figures(tmp_path):
    d = study_sweep(tmp_path / "study", seeds=1, checkpoints=4, axes=["width", "crop"])
    meta = json.loads((d / "sweep.json").read_text())
    assert {k: v["key"] for k, v in meta["axes"].items()} == {
        "width": "model.width",
        "crop": "data.crop",
    }
    width, crop = set(meta["axes"]["width"]["trials"]), set(meta["axes"]["crop"]["trials"])
    assert (
        len(width) == 35
        and len(crop) == 10
        and width & crop
        == {
            "resnet-6_seed-0",
            "resnet-50_seed-0",
            "resnet-200_seed-0",
            "vit-B8_seed-0",
            "vit-L4_seed-0",
        }
    )  # fmt: skip: the defaults sit on both axes
    assert report.main([str(d)]) == 0
    text = (d / "report.md").read_text()
    assert "## Axes" in text and "](axes/width/report.md)" in text
    assert "![" in text and "](axes/width/width.png)" in text
    for axis, n in (("width", 35), ("crop", 10)):
        sub = (d / "axes" / axis / "report.md").read_text()
        assert f"Report: sweep study, axis {axis}" in sub and f"Trials: {n} ({n} done)" in sub
        img = matplotlib.image.imread(d / "axes" / axis / f"{axis}.png")
        assert img.shape[1] > 1200, (axis, img.shape)  # five panels side by side
    # 35 trials: PS along training faceted by architecture, one curve per width
    img = matplotlib.image.imread(d / "axes" / "width" / "ps_vs_epoch.png")
    assert img.shape[1] > 1200, img.shape
    assert "| width |" in text.split("## Table 1")[1]
    assert "not run" in text.split("## Table 1")[1]  # no depth, epochs or weight decay axis


def test_bad_axes_in_sweep_json_is_one_line(tmp_path):
    d = tmp_path / "study"
    _trial(d, "r50_seed-0", {"seed": 0}, 68.0)
    atomic_write_json(d / "sweep.json", {"axes": {"width": {"key": 3, "trials": ["x"]}}})
    with pytest.raises(ReportError, match="'axes' must map axis names.*'width' is not"):
        load_sweeps(d, False)
    assert report.main([str(d), "--no-plots"]) == 2


def test_synth_cli_refuses_a_used_directory(tmp_path, capsys):
    from evaluator.report.synth import main

    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "x").write_text("")
    assert main([str(tmp_path / "used"), "--study"]) == 2
    assert "is not empty" in capsys.readouterr().err
    assert main([str(tmp_path / "new"), "--study", "--seeds", "0"]) == 2
