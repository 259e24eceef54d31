"""Importing tensorflow/tpu ResNet checkpoints (the study's released runs), tested for real.

tests/tf_release.py builds tensorflow/tpu's ResNet v1 in TensorFlow itself (resnet_model.py's
layers, names and order), with random weights and BatchNorm statistics, and saves it with a TF1
Saver at two steps (Momentum slots and global_step included). ``python -m evaluator import``
turns that into a trial directory; the Flax ResNet restored from it must give TF's logits and
the four stage taps on 64x64 images to 1e-4 (float32). Then: a checkpoint of another depth, a
truncated one, a renamed variable and a wrong global_step each stop with one line and write
nothing; a second import adds only new steps; the evaluator job, the report and ``score`` take
the imported trial like any other.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import tf_release  # tests/ is on sys.path, as for the other helpers; TensorFlow loads on use

from evaluator import proxy
from evaluator.__main__ import main
from trainer import checkpoint

# TensorFlow is in the dev extra; without it there is nothing to build the reference with.
pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("tensorflow") is None,
    reason="needs TensorFlow (pip install -e '.[tf]')",
)

STEPS = (1000, 2000)
PROBE = np.random.default_rng(7).integers(0, 256, (4, 64, 64, 3), dtype=np.uint8)


def _release(tmp_path_factory, depth: int, num_classes: int = 1000, prefix: str = ""):
    out = tmp_path_factory.mktemp(f"tf-resnet{depth}")
    outs = tf_release.write_release(
        out, depth, list(STEPS), num_classes, prefix=prefix, probe=PROBE
    )
    return out, outs


@pytest.fixture(scope="module")
def release6(tmp_path_factory):
    return _release(tmp_path_factory, 6)


@pytest.fixture(scope="module")
def release18(tmp_path_factory):
    return _release(tmp_path_factory, 18, num_classes=1001)  # with a background class


@pytest.fixture(scope="module")
def proxy_dir(tmp_path_factory) -> Path:
    return proxy.build_proxy(tmp_path_factory.mktemp("bench") / "proxy", per_category=6)


def _import(src: Path, runs: Path, depth: int, *extra: str) -> int:
    return main(
        ["import", f"--tf-checkpoints={src}", f"--runs={runs}", f"--config.model.depth={depth}"]
        + list(extra)
    )


def _flax_outputs(trial: Path, step: int):
    """Logits and taps of the restored checkpoint, built from the trial's config in float32."""
    from trainer.data import normalize
    from trainer.models import build_model

    cfg = json.loads((trial / "config.json").read_text())
    model = build_model({**cfg["model"], "dtype": "float32"}, cfg["data"]["num_classes"])
    variables = checkpoint.restore_variables(checkpoint.checkpoint_dir(trial), step)
    variables = {"params": variables["params"], "batch_stats": variables["batch_stats"]}
    return model.apply(variables, normalize(PROBE), train=False, taps=True)


def _assert_equivalent(trial: Path, outs: dict, depth: int) -> None:
    for step in STEPS:
        tf_logits, endpoints = outs[step]
        logits, taps = _flax_outputs(trial, step)
        pairs = [("logits", tf_logits, logits)]
        pairs += [
            (f"stage{i}", endpoints[f"reduction_{i}"], taps[f"stage{i}"]) for i in (1, 2, 3, 4)
        ]
        for name, want, got in pairs:
            want, got = np.asarray(want), np.asarray(got)
            assert got.shape == want.shape, (depth, step, name)
            err = float(np.abs(got - want).max())  # values up to ~7; measured errors <= 1e-5
            assert err <= 1e-4, f"ResNet-{depth} step {step} {name}: max |Flax - TF| = {err}"
    a, b = outs[STEPS[0]][0], outs[STEPS[1]][0]
    assert np.abs(a - b).max() > 1e-2  # the steps hold different weights


def _assert_nothing_written(runs: Path) -> None:
    assert not runs.exists() or not any(runs.iterdir()), sorted(runs.iterdir())


def test_resnet6_imports_and_matches_tensorflow(release6, tmp_path, capsys):
    src, outs = release6
    runs = tmp_path / "released"
    assert _import(src, runs, 6) == 0
    trial = runs / "resnet-6"
    assert checkpoint.list_steps(checkpoint.checkpoint_dir(trial)) == list(STEPS)
    cfg = json.loads((trial / "config.json").read_text())
    assert cfg["model"]["depth"] == 6 and cfg["data"]["num_classes"] == 1000
    assert cfg["data"]["name"] == "imagenet64" and cfg["train"]["batch_size"] == 1024
    status = json.loads((trial / "status.json").read_text())
    assert status["state"] == "done" and status["step"] == 2000
    assert status["command"].startswith("python -m evaluator import --tf-checkpoints=")
    prov = json.loads((trial / "import.json").read_text())
    assert prov["source"] == str(src) and prov["skipped_variables"] == 29  # Momentum slots
    assert prov["steps"]["2000"] == {"file": "model.ckpt-2000", "global_step": 2000}
    _assert_equivalent(trial, outs, 6)
    capsys.readouterr()
    assert _import(src, runs, 6) == 0  # again: nothing to do
    assert "nothing to import" in capsys.readouterr().out


def test_resnet18_with_1001_classes_matches_tensorflow(release18, tmp_path):
    src, outs = release18
    assert _import(src, tmp_path, 18, "--name=r18") == 0
    cfg = json.loads((tmp_path / "r18" / "config.json").read_text())
    assert cfg["data"]["num_classes"] == 1001
    _assert_equivalent(tmp_path / "r18", outs, 18)


@pytest.mark.slow
def test_resnet50_matches_tensorflow(tmp_path_factory, tmp_path):
    src, outs = _release(tmp_path_factory, 50)
    assert _import(src, tmp_path, 50) == 0
    _assert_equivalent(tmp_path / "resnet-50", outs, 50)


def test_a_common_name_prefix_is_tolerated(tmp_path_factory, tmp_path, capsys):
    src, outs = _release(tmp_path_factory, 6, prefix="resnet_model")
    assert main(["import", f"--tf-checkpoints={src}", "--list", "--config.model.depth=6"]) == 0
    out = capsys.readouterr().out
    assert "resnet_model/conv2d_8/kernel" in out and "params/stage4_block1/conv1/kernel" in out
    assert "under prefix 'resnet_model/' (9 conv2d kernels: depth 6)" in out
    assert _import(src, tmp_path, 6) == 0
    _assert_equivalent(tmp_path / "resnet-6", outs, 6)


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def test_a_checkpoint_of_another_depth_is_refused(release18, tmp_path, capsys):
    src, _ = release18
    runs = tmp_path / "runs"
    assert _import(src, runs, 6) == 2
    line = _error_line(capsys)
    assert "model.ckpt-1000: conv2d_3/kernel has shape [3, 3, 64, 64]" in line
    assert "the depth-6 width-1 ResNet expects [1, 1, 64, 128]" in line
    assert "its 21 conv2d kernels fit depth 18" in line
    _assert_nothing_written(runs)
    assert main(["import", f"--tf-checkpoints={src}", "--list", "--config.model.depth=6"]) == 2
    assert "fit depth 18" in _error_line(capsys)


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_a_truncated_checkpoint_is_refused_and_nothing_written(release6, tmp_path, capsys):
    src = _copy(release6[0], tmp_path / "src")
    data = src / "model.ckpt-2000.data-00000-of-00001"
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    runs = tmp_path / "runs"
    assert _import(src, runs, 6) == 2
    assert _error_line(capsys).startswith("error: model.ckpt-2000: unreadable (")
    _assert_nothing_written(runs)  # step 1000 was converted, then dropped with the staging


def test_a_renamed_variable_is_refused(release6, tmp_path, capsys):
    src = _copy(release6[0], tmp_path / "src")
    tf_release.rename_variable(
        str(src / "model.ckpt-2000"), "batch_normalization_3/gamma", "batch_normalization_3/scale"
    )
    runs = tmp_path / "runs"
    assert _import(src, runs, 6) == 2
    line = _error_line(capsys)
    assert "model.ckpt-2000: batch_normalization_3/gamma is missing" in line
    assert "expects it with shape [128] (stage2_block1/proj_bn/scale)" in line
    _assert_nothing_written(runs)


def test_a_step_that_disagrees_with_global_step_is_refused(release6, tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    for f in release6[0].glob("model.ckpt-1000.*"):
        shutil.copy(f, src / f.name.replace("-1000.", "-3000."))
    runs = tmp_path / "runs"
    assert _import(src, runs, 6) == 2
    assert "model.ckpt-3000: global_step is 1000, the file name says 3000" in _error_line(capsys)
    _assert_nothing_written(runs)


def test_bad_arguments_are_one_line(release6, tmp_path, capsys):
    src = release6[0]
    assert main(["import", f"--tf-checkpoints={src}", f"--runs={tmp_path}"]) == 2
    assert "--config.model.depth is required" in _error_line(capsys)
    assert _import(src, tmp_path, 6, "--steps=1000,1500") == 2
    assert "step(s) [1500] not found; found [1000, 2000]" in _error_line(capsys)
    assert _import(tmp_path / "nowhere", tmp_path, 6) == 2
    assert "no such directory" in _error_line(capsys)
    assert _import(src, tmp_path, 6, "--config.model.detph=6") == 2
    assert "unknown config key 'model.detph'" in _error_line(capsys)
    assert not any(tmp_path.iterdir())


def test_a_second_import_adds_new_steps_only(release6, tmp_path, capsys):
    src, outs = release6
    runs = tmp_path / "runs"
    assert _import(src, runs, 6, "--steps=1000") == 0
    assert "imported model.ckpt-1000" in capsys.readouterr().out
    trial = runs / "resnet-6"
    first = (trial / "checkpoints" / "1000").stat().st_mtime_ns
    assert _import(src, runs, 6) == 0
    assert "imported model.ckpt-1000" not in capsys.readouterr().out
    assert (trial / "checkpoints" / "1000").stat().st_mtime_ns == first
    assert checkpoint.list_steps(checkpoint.checkpoint_dir(trial)) == list(STEPS)
    prov = json.loads((trial / "import.json").read_text())
    assert sorted(prov["steps"]) == ["1000", "2000"]
    lines = [json.loads(x) for x in (trial / "metrics.jsonl").read_text().splitlines()]
    assert [(x["kind"], x["step"]) for x in lines] == [("import", 1000), ("import", 2000)]
    assert json.loads((trial / "status.json").read_text())["step"] == 2000
    _assert_equivalent(trial, outs, 6)
    # Another config into the same trial, or another source, is refused.
    assert _import(src, runs, 6, "--config.model.dtype=float32") == 2
    assert "holds a different config (model.dtype" in _error_line(capsys)
    other = _copy(src, tmp_path / "other")
    assert _import(other, runs, 6) == 2
    assert f"resnet-6 exists and was not imported from {other}" in _error_line(capsys)
    assert sorted(p.name for p in runs.iterdir()) == ["resnet-6"]  # no staging left


@pytest.mark.slow
def test_imported_trial_is_scored_reported_and_scored_alone(release6, tmp_path, proxy_dir, capsys):
    from evaluator.report import write_report

    runs = tmp_path / "released"
    fast = [
        "--config.model.dtype=float32",
        "--config.perceptual.batch_size=16",
    ]  # bf16 is slow on CPU
    assert _import(release6[0], runs, 6, f"--config.perceptual.proxy_dir={proxy_dir}", *fast) == 0
    assert main([f"--runs={runs}", "--benchmarks=proxy"]) == 0
    trial = runs / "resnet-6"
    recs = {s: json.loads((trial / "perceptual" / f"{s}.json").read_text()) for s in STEPS}
    assert recs[1000]["epoch"] == pytest.approx(1000 * 1024 / 1281167, abs=1e-4)
    assert recs[2000]["benchmarks"]["proxy"]["distances"]["local"]["ps"] > 0
    report = write_report(runs)
    rows = (runs / "results.csv").read_text().splitlines()
    assert len(rows) == 3 and "(ps_vs_epoch.png)" in report.read_text()  # PS without top-1
    assert (runs / "ps_vs_epoch.png").is_file()
    capsys.readouterr()
    argv = ["score", "--benchmark=proxy", f"--data-dir={proxy_dir}", "--json"]
    assert main([*argv, f"--metric=checkpoint:{trial}"]) == 0
    alone = json.loads(capsys.readouterr().out)
    assert alone["step"] == 2000
    assert alone["ps"] == pytest.approx(
        recs[2000]["benchmarks"]["proxy"]["distances"]["local"]["ps"]
    )
