"""The study sweep: every axis in one sweep, each resolved config trained once and listed under
every axis that has it (sweep.json's ``axes``), the dry run's per-axis table, one-line errors."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from launch import trials as tr
from launch.__main__ import main as launch_main
from launch.axes import resolved
from sweeps import base, study

REPO = Path(__file__).resolve().parent.parent
SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")


@pytest.fixture(scope="module")
def paper():
    return tr.load_trials("study", "paper")


@pytest.fixture(scope="module")
def axis_trials():
    """Each axis sweep's own trials under ``paper``, as ``python -m launch <axis>`` loads them."""
    return {axis: tr.load_trials(axis, "paper") for axis in study.AXES}


def test_every_axis_trial_is_one_study_trial_listed_under_its_axis(paper, axis_trials):
    axes = paper[0].axes
    assert all(t.axes is axes for t in paper)
    assert list(axes.trials) == list(study.AXES)
    names = [t.name for t in paper]
    assert len(set(names)) == len(names) and all(SAFE.match(n) for n in names)
    configs = [resolved(t.config) for t in paper]
    assert len(set(configs)) == len(configs)  # each resolved config trains once
    by_config = dict(zip(configs, names, strict=True))
    for axis, own in axis_trials.items():
        assert axes.keys[axis] == study.AXES[axis]
        assert axes.sizes[axis] == len(own)
        # the axis's own trials, in its order, each as the study trial with its config
        assert axes.trials[axis] == list(dict.fromkeys(by_config[resolved(t.config)] for t in own))
        for t in own:  # the study trial has the axis's own config exactly, or its twin
            kept = paper[names.index(by_config[resolved(t.config)])]
            if kept.name == f"{axis}_{t.name}":
                assert kept.config.to_dict() == t.config.to_dict()
    assert len(paper) < sum(len(v) for v in axis_trials.values())


def test_shared_trial_is_named_by_its_first_axis_and_listed_under_all(paper):
    axes = paper[0].axes
    default = resolved(base.get_config("paper"))  # ResNet-50 with its recipe
    (r50,) = [t for t in paper if resolved(t.config) == default]
    assert r50.name == "depth_depth-50"
    holders = {axis for axis, names in axes.trials.items() if r50.name in names}
    assert holders == set(study.AXES) - {"classes"}  # classes trains subsets only
    # ViT-B/8 at depth 0 (the variant's 12 blocks) and at depth 12 are one trial
    assert "depth_vit-B8_depth-12" in axes.trials["width"]
    assert "width_vit-B8_width-1" not in {t.name for t in paper}


def test_prepare_writes_one_directory_per_config_and_the_axes(tmp_path):
    runs = tmp_path / "runs"
    trials = tr.load_trials("study", "embedded", runs_dir=runs)
    tr.prepare(trials)
    sweep = json.loads((runs / "study" / "sweep.json").read_text())
    dirs = {p.name for p in (runs / "study").iterdir() if p.is_dir()}
    assert dirs == {t.name for t in trials} == set(sweep["trials"])
    assert set(sweep["axes"]) == set(study.AXES)  # atomic_write_json sorts the keys
    assert sweep["axes"]["width"]["key"] == "model.width"
    assert sweep["axes"]["archs"]["key"] is None
    # the embedded ResNet-6 is on seven axes, trained once under depth's name
    holders = [a for a, v in sweep["axes"].items() if "depth_depth-6" in v["trials"]]
    assert set(holders) == set(study.AXES) - {"crop", "classes", "archs"}
    assert all(set(v["trials"]) <= dirs for v in sweep["axes"].values())


def _table(out: str) -> dict[str, list[str]]:
    """The rows under the dry run's ``axis key trials ...`` header: {axis or total: cells}."""
    lines = out.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.split()[:3] == ["axis", "key", "trials"])
    rows = {}
    for line in lines[start + 1 : start + 2 + len(study.AXES)]:
        name, *cells = line.split()
        rows[name] = cells if name != "total" else ["", *cells]
    return rows


def test_dry_run_prints_trials_unique_and_hours_per_axis(paper, axis_trials, tmp_path, capsys):
    runs = tmp_path / "runs"
    assert launch_main(["study", "--preset", "paper", "--runs-dir", str(runs), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert not runs.exists()
    rows = _table(out)
    assert list(rows) == [*study.AXES, "total"]
    first = {}
    for axis, names in paper[0].axes.trials.items():
        for n in names:
            first.setdefault(n, axis)
    new_hours = 0.0
    for axis, own in axis_trials.items():
        key, trials, unique, new, hours, hours_new = rows[axis]
        assert key == (study.AXES[axis] or "-")
        assert int(trials) == len(own)
        assert int(unique) == len(paper[0].axes.trials[axis])
        assert int(new) == sum(a == axis for a in first.values())
        assert float(hours.replace(",", "")) >= float(hours_new.replace(",", "")) > 0
        new_hours += float(hours_new.replace(",", ""))
    _, trials, unique, new, hours, hours_new = rows["total"]
    assert int(trials) == sum(len(v) for v in axis_trials.values())
    assert int(unique) == int(new) == len(paper)
    assert abs(float(hours_new.replace(",", "")) - new_hours) < 1.0
    assert f"{len(paper)} trials of study (paper)" in out
    assert "722 networks" in out


def test_readme_states_the_paper_study_counts(paper):
    readme = " ".join((REPO / "README.md").read_text().split())  # lines wrap anywhere
    total = sum(paper[0].axes.sizes.values())
    assert f"{total} axis trials, {len(paper)} distinct" in readme


@pytest.mark.parametrize(
    "preset, message",
    [
        ("paper,seed=3", "sweep option 'seed' is unknown; allowed: seeds"),
        ("papr", "sweep preset 'papr' is unknown; allowed: embedded, paper"),
    ],
)
def test_bad_arg_is_one_line_before_anything(preset, message, tmp_path, capsys):
    runs = tmp_path / "runs"
    assert launch_main(["study", "--preset", preset, "--runs-dir", str(runs)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert not runs.exists()


BAD_AXES = """
from sweeps import smoke

get_config = smoke.get_config


def get_axes(arg=None):
    return {"a": ("model.depth", [("a_depth-2", {"model.depth": 2})]), "b": AXIS_B}
"""


@pytest.mark.parametrize(
    "axis_b, message",
    [
        ("('model.width', [])", "axis 'b' trials are not a non-empty list of (name, dict) pairs"),
        ("[('x', {})]", "axis 'b' is not a (key, trials) pair"),
        ("(3, [('b', {})])", "axis 'b' key 3 is not a string or None"),
        ("(None, [('b', {'model.depth': 7})])", "trial 'b': model.depth=7"),
    ],
)
def test_bad_get_axes_is_one_line(axis_b, message, tmp_path):
    sweep = tmp_path / "bad_axes.py"
    sweep.write_text(BAD_AXES.replace("AXIS_B", axis_b))
    with pytest.raises(base.ConfigError, match=re.escape(message)) as e:
        tr.load_trials(str(sweep), runs_dir=tmp_path / "runs")
    assert "\n" not in str(e.value)


SHARED = """
from sweeps import smoke

get_config = smoke.get_config


def get_axes(arg=None):
    # b's trial sets smoke's own width explicitly: another override set, the same config
    return {
        "a": ("model.depth", [("a_depth-2", {"model.depth": 2})]),
        "b": ("model.width", [("b_width-0.25", {"model.depth": 2, "model.width": 0.25})]),
    }
"""


@pytest.mark.slow
def test_a_shared_trial_trains_once_with_the_real_trainer(tmp_path):
    import subprocess

    sweep = tmp_path / "shared.py"
    sweep.write_text(SHARED)
    runs = tmp_path / "runs"
    args = [sys.executable, "-m", "launch", str(sweep), "--runs-dir", str(runs), "--no-eval"]
    r = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    sweep_dir = runs / "shared"
    # hidden: the sweep's own files (.jax-cache, the shared compilation cache)
    trials = {p.name for p in sweep_dir.iterdir() if p.is_dir() and not p.name.startswith(".")}
    assert trials == {"a_depth-2"}
    (trial,) = tr.load_trials(str(sweep), runs_dir=runs)
    assert trial.status()["state"] == "done"
    log = trial.log_path.read_text().splitlines()
    assert sum(ln.startswith("=== ") for ln in log) == 1
    meta = json.loads((sweep_dir / "sweep.json").read_text())
    assert meta["axes"] == {
        "a": {"key": "model.depth", "trials": ["a_depth-2"]},
        "b": {"key": "model.width", "trials": ["a_depth-2"]},
    }


def test_seeds_option_reaches_every_axis():
    trials = tr.load_trials("study", "embedded,seeds=2")
    axes = trials[0].axes
    for axis in study.AXES:
        assert axes.sizes[axis] == len(tr.load_trials(axis, "embedded,seeds=2"))
    assert {t.config.seed for t in trials} == {0, 1}
    assert "depth_depth-6_seed-1" in axes.trials["width"]
