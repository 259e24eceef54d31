"""Sweep files: every one loads, validates and dry-runs for both presets; the paper grids cover the
study's ranges; names are stable; the trainer rebuilds exactly each trial's config from its argv."""

from __future__ import annotations

import re

import pytest
from absl import flags
from ml_collections import config_flags

from launch.__main__ import main as launch_main
from launch.trials import available_sweeps, load_trials
from sweeps import base, grid

AXES = (
    "depth",
    "width",
    "epochs",
    "weight_decay",
    "label_smoothing",
    "dropout",
    "archs",
    "crop",
    "classes",
    "skip",
)
PRESETS = ("embedded", "paper")
SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")


def test_every_axis_is_available():
    assert set(AXES) <= set(available_sweeps())


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("sweep", AXES + ("study",))
def test_sweep_loads_validates_and_dry_runs(sweep, preset, tmp_path, capsys):
    trials = load_trials(sweep, preset, runs_dir=tmp_path / "runs")
    assert len(trials) >= 3
    names = [t.name for t in trials]
    assert len(set(names)) == len(names)
    assert all(SAFE.match(n) for n in names), names
    for t in trials:
        base.validate(t.config)
        assert t.preset == preset
        assert t.workdir == tmp_path / "runs" / sweep / t.name
    assert (
        launch_main([sweep, "--preset", preset, "--runs-dir", str(tmp_path / "runs"), "--dry-run"])
        == 0
    )
    out = capsys.readouterr().out
    assert all(f"--workdir={t.workdir}" in out for t in trials)
    assert not (tmp_path / "runs").exists()  # a dry run writes nothing


def _values(sweep, key, preset="paper", **model):
    out = set()
    for t in load_trials(sweep, preset):
        if all(t.config.model[k] == v for k, v in model.items()):
            out.add(t.config.to_dict()[key.split(".")[0]][key.split(".")[1]])
    return sorted(out)


def test_paper_depth_covers_2_to_200():
    depths = _values("depth", "model.depth", name="resnet")
    assert depths[0] == 2 and depths[-1] == 200 and {6, 18, 50, 101} <= set(depths)
    assert all(t.config.data.name == "imagenet64" for t in load_trials("depth", "paper"))


def test_paper_depth_has_vit_blocks_from_1_to_full():
    b8 = _values("depth", "model.depth", name="vit", variant="B/8")
    l4 = _values("depth", "model.depth", name="vit", variant="L/4")
    assert b8[0] == 1 and b8[-1] == 12 and 2 in b8
    assert l4[0] == 1 and l4[-1] == 24 and 2 in l4
    names = {t.name for t in load_trials("depth", "paper")}
    assert {"depth-50", "vit-B8_depth-2", "vit-L4_depth-24"} <= names


STUDY_MODELS = {("resnet", 6), ("resnet", 50), ("resnet", 200), ("vit", "B/8"), ("vit", "L/4")}


def _models(sweep, preset="paper"):
    c = [t.config.model for t in load_trials(sweep, preset)]
    return {(m.name, m.depth if m.name == "resnet" else m.variant) for m in c}


@pytest.mark.parametrize("sweep", ["width", "epochs", "label_smoothing", "dropout", "crop"])
def test_paper_axes_train_the_five_architectures(sweep):
    assert _models(sweep) == STUDY_MODELS


def test_paper_weight_decay_leaves_out_vit_l4_as_the_study():
    assert _models("weight_decay") == STUDY_MODELS - {("vit", "L/4")}


def test_paper_crop_classes_and_skip_grids():
    trials = load_trials("crop", "paper")
    assert {t.config.data.crop for t in trials} == {"distorted_bbox", "center"}
    assert all(t.config.data.eval_crop == "center" for t in trials)
    trials = load_trials("classes", "paper")
    assert _models("classes") == {("resnet", 6), ("resnet", 200)}
    ks = sorted({t.config.data.classes for t in trials})
    assert ks[0] == 50 and ks[-1] == 900
    assert all(t.config.data.num_classes == t.config.data.classes for t in trials)
    trials = load_trials("skip", "paper")
    assert {t.config.model.skip for t in trials} == {True, False}
    assert max(t.config.model.depth for t in trials) == 50
    assert "depth-50_skip-false" in {t.name for t in trials}


def test_classes_subset_follows_the_trial_seed():
    trials = load_trials("classes", "embedded,seeds=2")
    assert {t.config.data.classes for t in trials} == {2, 5, 10}
    assert all(t.config.data.class_seed == t.config.seed for t in trials)
    assert "resnet-6_classes-2_seed-1" in {t.name for t in trials}


@pytest.mark.parametrize(
    "model",
    [dict(name="resnet", depth=d) for d in (6, 50, 200)]
    + [dict(name="vit", variant=v) for v in ("B/8", "L/4")],
)
def test_paper_width_from_sixteenth_to_4x(model):
    widths = _values("width", "model.width", **model)
    assert widths[0] == 1 / 16 and widths[-1] == 4.0 and 1.0 in widths


def test_paper_epochs_from_under_one_to_full_schedule():
    full = base.get_config("paper").train.epochs
    epochs = _values("epochs", "train.epochs", name="resnet", depth=50)
    assert epochs[0] < 1 and epochs[-1] == full
    for t in load_trials("epochs", "paper"):  # warmup never longer than the schedule
        assert t.config.train.warmup_epochs <= t.config.train.epochs


def test_paper_weight_decay_around_and_far_from_defaults():
    resnet = _values("weight_decay", "train.weight_decay", name="resnet")
    vit = _values("weight_decay", "train.weight_decay", name="vit")
    assert 1e-4 in resnet and resnet[0] <= 1e-6 and resnet[-1] >= 1e-2
    assert 0.3 in vit and vit[0] <= 1e-3 and vit[-1] >= 3.0
    for t in load_trials("weight_decay", "paper"):  # each family with its own recipe
        assert t.config.train.optimizer == ("adamw" if t.config.model.name == "vit" else "sgd")


def test_paper_label_smoothing_and_dropout_ranges():
    ls = _values("label_smoothing", "train.label_smoothing")
    assert ls[0] == 0.0 and ls[-1] == 0.5
    drop = _values("dropout", "model.dropout", name="resnet")
    enc = _values("dropout", "model.encoder_dropout", name="vit")
    assert drop[0] == 0.0 and drop[-1] == 0.8 and enc[0] == 0.0 and enc[-1] == 0.8


def test_paper_archs_are_the_out_of_the_box_models_with_their_recipes():
    trials = {t.name: t for t in load_trials("archs", "paper")}
    assert {f"resnet-{d}" for d in (18, 34, 50, 101, 152, 200)} <= set(trials)
    assert {"vit-B8", "vit-L4"} <= set(trials)
    assert {f"efficientnet-b{i}" for i in range(6)} <= set(trials)
    assert trials["vit-L4"].config.model.variant == "L/4"
    assert trials["efficientnet-b3"].config.train.optimizer == "rmsprop"
    assert trials["efficientnet-b3"].config.train.label_smoothing == 0.1
    # each EfficientNet with its own dropout (efficientnet_builder.py: b0 0.2 ... b5 0.4)
    drop = {f"b{i}": trials[f"efficientnet-b{i}"].config.model.dropout for i in range(6)}
    assert drop == {"b0": 0.2, "b1": 0.2, "b2": 0.3, "b3": 0.3, "b4": 0.4, "b5": 0.4}
    # five seeds of each, as the study; an explicit count wins
    assert len(trials) == 14 * 5 and trials["vit-L4_seed-4"].config.seed == 4
    assert len(load_trials("archs", "paper,seeds=1")) == 14
    assert trials["resnet-101"].config.train.optimizer == "sgd"


def test_seeds_multiply_trials_and_keep_seed_zero_names():
    one = [t.name for t in load_trials("weight_decay", "embedded")]
    three = load_trials("weight_decay", "embedded,seeds=3")
    assert len(three) == 3 * len(one)
    assert set(one) <= {t.name for t in three}  # growing the seeds reuses the finished trials
    assert {t.config.seed for t in three} == {0, 1, 2}
    assert "wd-5e-05_seed-1" in {t.name for t in three}


def test_trial_names_are_stable():
    assert grid.trial_name({"train.weight_decay": 3e-5, "seed": 1}) == "wd-3e-05_seed-1"
    assert grid.trial_name({"model.depth": 50}) == "depth-50"
    assert grid.trial_name({"model.width": 0.25}) == "width-0.25"
    assert grid.trial_name({"train.label_smoothing": 0.1}) == "ls-0.1"
    assert grid.trial_name({"train.epochs": 2.0}) == "epochs-2"
    assert grid.trial_name({"data.source_dir": "a b/'c"}) == "source_dir-abc"
    # the same sweep loaded twice names its trials the same, in the same order
    assert [t.name for t in load_trials("width", "paper")] == [
        t.name for t in load_trials("width", "paper")
    ]
    names = {t.name for t in load_trials("width", "paper")}
    assert {"resnet-6_width-0.0625", "resnet-200_width-4", "vit-B8_width-0.25"} <= names


@pytest.mark.parametrize(
    "arg, message",
    [
        ("papr", "preset 'papr' is unknown; allowed: embedded, paper"),
        ("paper,seed=3", "option 'seed' is unknown; allowed: seeds"),
        ("paper,seeds=0", "seeds='0': expected an integer >= 1"),
        ("seeds=2,paper", "the preset must come first"),
    ],
)
def test_bad_sweep_arg_is_one_line(arg, message):
    with pytest.raises(base.ConfigError, match=re.escape(message)) as e:
        grid.parse_arg(arg)
    assert "\n" not in str(e.value)


def _trainer_config(argv):
    """The config the trainer builds from ``argv`` (its config_flags, on a private FlagValues)."""
    args = ["trainer", *argv[3:]]
    fv = flags.FlagValues()
    holder = config_flags.DEFINE_config_file(
        "config", None, "", flag_values=fv, lock_config=True, sys_argv=args
    )
    flags.DEFINE_string("workdir", None, "", flag_values=fv)
    fv(args)
    return holder.value, fv["workdir"].value


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("sweep", AXES + ("smoke", "study"))
def test_trainer_argv_rebuilds_each_trial_config(sweep, preset, monkeypatch):
    monkeypatch.chdir(base.__file__.rsplit("/sweeps/", 1)[0])
    extra = {"data.source_dir": 'dir with spaces/it\'s "quoted"'}
    # a tuple on the command line: the ResNet recipe's own step boundaries, else set here
    if not any("train.step_boundaries" in t.overrides for t in load_trials(sweep, preset)):
        extra["train.step_boundaries"] = (0.5, 0.75)
    commands = []
    for t in load_trials(sweep, preset, extra):
        commands.append(" ".join(t.command("python")))
        config, workdir = _trainer_config(t.command("python"))
        assert config.to_dict() == t.config.to_dict(), t.name
        assert config.data.source_dir == extra["data.source_dir"]
        assert workdir == str(t.workdir)
    assert any("--config.train.step_boundaries=(" in c for c in commands)


def _builds(config):
    import jax
    import jax.numpy as jnp

    from trainer.models import build_model

    model = build_model(config.model, config.data.num_classes)
    size = config.data.image_size
    x = jnp.zeros((2, size, size, 3))
    rngs = {"params": jax.random.key(0), "dropout": jax.random.key(1)}
    shapes = jax.eval_shape(lambda: model.init(rngs, x, train=False))
    logits = jax.eval_shape(lambda v: model.apply(v, x, train=False), shapes)
    assert logits.shape == (2, config.data.num_classes)


def test_every_embedded_model_builds():
    seen = set()
    for sweep in AXES:
        for t in load_trials(sweep, "embedded"):
            key = repr(t.config.model.to_dict())
            if key not in seen:
                seen.add(key)
                _builds(t.config)


@pytest.mark.parametrize(
    "sweep, name",
    [
        ("width", "resnet-6_width-4"),
        ("width", "vit-B8_width-0.0625"),
        ("archs", "vit-L4"),
        ("archs", "efficientnet-b5"),
    ],
)
def test_paper_extremes_build(sweep, name):
    (t,) = [t for t in load_trials(sweep, "paper") if t.name == name]
    _builds(t.config)


def test_keys_added_later_are_no_drift_at_their_default():
    old = base.normalised(base.get_config())
    del old["model.skip"], old["data.classes"]  # a config.json written before those keys
    assert base.config_drift(old, base.get_config()) == []
    changed = base.config_from("embedded", {"model.skip": False})
    assert base.config_drift(old, changed) == ["model.skip: <absent> -> false"]
