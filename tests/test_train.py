"""The train loop and ``python -m trainer``: step semantics, config checks, records, divergence."""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from trainer_support import REPO, final_variables, run_trainer, trainer_env

from sweeps import base, smoke
from sweeps.command import command_from_config
from trainer import checkpoint, distributed, optim, status, steps
from trainer.data import normalize
from trainer.files import read_jsonl
from trainer.models import build_model


def _no_augment(rng, images, data_cfg):
    return normalize(images)


def _setup(dropout: float, **overrides):
    config = base.config_from(
        "embedded",
        {
            "model.depth": 2,
            "model.width": 0.0625,
            "model.dropout": dropout,
            "data.image_size": 8,
            **overrides,
        },
    )
    model = build_model(config.model, 10)
    tx = optim.make_optimizer(config.train, optim.make_schedule(config.train, 10, 10))
    step = jax.jit(steps.make_train_step(model, config, tx, _no_augment))
    state = steps.init_state(model, config, (8, 8, 3), tx, jax.random.PRNGKey(0))
    images = jnp.asarray(np.random.default_rng(0).integers(0, 256, (4, 8, 8, 3), np.uint8))
    labels = jnp.array([0, 1, 2, 3])
    return model, step, state, images, labels


@pytest.mark.parametrize("dropout", [0.0, 0.5])
def test_dropout_only_in_training(dropout):
    model, step, state, images, labels = _setup(dropout)
    metrics = steps.zero_metrics()
    other = dict(state, rng=jax.random.PRNGKey(123))  # same params, another dropout key
    a, _ = step(state, metrics, images, labels)
    b, _ = step(other, metrics, images, labels)
    learned = lambda s: (s["params"], s["batch_stats"], s["opt_state"])
    same = all(
        np.array_equal(x, y)
        for x, y in zip(jax.tree.leaves(learned(a)), jax.tree.leaves(learned(b)), strict=True)
    )
    assert same == (dropout == 0.0)
    # Evaluation takes no key and is deterministic: the inference path, no dropout.
    ev = jax.jit(steps.make_eval_step(model, normalize))
    mask = jnp.ones((4,), jnp.float32)
    e1 = ev(state["params"], state["batch_stats"], images, labels, mask)
    e2 = ev(state["params"], state["batch_stats"], images, labels, mask)
    assert float(e1["loss"]) == float(e2["loss"])
    logits = model.apply(
        {"params": state["params"], "batch_stats": state["batch_stats"]},
        normalize(images),
        train=False,
    )
    expected = optim.cross_entropy(logits, labels, 0.0).sum()
    assert float(e1["loss"]) == pytest.approx(float(expected), rel=1e-5)


def test_train_step_counts_and_flags_nonfinite():
    _, step, state, images, labels = _setup(0.0)
    s1, m1 = step(state, steps.zero_metrics(), images, labels)
    assert int(s1["step"]) == 1 and float(m1["count"]) == 4 and int(m1["nonfinite"]) == 0
    bad = dict(state, params=jax.tree.map(lambda p: p * jnp.nan, state["params"]))
    _, m2 = step(bad, steps.zero_metrics(), images, labels)
    assert int(m2["nonfinite"]) == 1


def test_ema_is_kept_in_the_state():
    _, step, state, images, labels = _setup(
        0.0, **{"train.ema_decay": 0.75, "train.warmup_epochs": 0.0}
    )
    assert_close = np.testing.assert_allclose
    for a, b in zip(
        jax.tree.leaves(state["ema_params"]), jax.tree.leaves(state["params"]), strict=True
    ):
        assert_close(np.asarray(a), np.asarray(b))
    new, _ = step(state, steps.zero_metrics(), images, labels)
    expected = jax.tree.map(lambda e, p: 0.75 * e + 0.25 * p, state["ema_params"], new["params"])
    for a, b in zip(jax.tree.leaves(new["ema_params"]), jax.tree.leaves(expected), strict=True):
        assert_close(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-7)
    assert not all(
        np.array_equal(a, b)
        for a, b in zip(
            jax.tree.leaves(new["ema_params"]), jax.tree.leaves(new["params"]), strict=True
        )
    )
    _, _, plain, _, _ = _setup(0.0)
    assert "ema_params" not in plain


def test_bfloat16_compute_keeps_float32_state():
    _, step, state, images, labels = _setup(
        0.0, **{"model.dtype": "bfloat16", "train.warmup_epochs": 0.0}
    )
    new, m = step(state, steps.zero_metrics(), images, labels)
    dtypes = {x.dtype for x in jax.tree.leaves((new["params"], new["batch_stats"]))}
    assert dtypes == {jnp.dtype("float32")}
    assert m["loss_sum"].dtype == jnp.float32 and np.isfinite(float(m["loss_sum"]))
    assert int(m["nonfinite"]) == 0
    assert not np.array_equal(
        np.asarray(jax.tree.leaves(new["params"])[0]),
        np.asarray(jax.tree.leaves(state["params"])[0]),
    )


def test_eval_step_masks_padding():
    model, _, state, images, labels = _setup(0.0)
    ev = jax.jit(steps.make_eval_step(model, normalize))
    full = ev(state["params"], state["batch_stats"], images, labels, jnp.ones(4))
    half = ev(state["params"], state["batch_stats"], images, labels, jnp.array([1.0, 1, 0, 0]))
    first = ev(
        state["params"], state["batch_stats"], images[:2], labels[:2], jnp.ones(2, jnp.float32)
    )
    assert float(full["count"]) == 4 and float(half["count"]) == 2
    assert float(half["loss"]) == pytest.approx(float(first["loss"]), rel=1e-5)
    assert float(half["top5"]) == float(first["top5"])


# ----------------------------------------------------------------------------- config checks


def test_config_drift_names_the_keys():
    old = smoke.get_config()
    new = base.config_from("embedded", {**smoke.SMOKE, "train.epochs": 3.0, "seed": 4})
    diff = base.config_drift(old.to_dict(), new.to_dict())
    assert diff == ["seed: 0 -> 4", "train.epochs: 2.0 -> 3.0"]
    # JSON round trip (tuples become lists) and the placement keys are not drift.
    as_json = json.loads(json.dumps(old.to_dict()))
    moved = base.config_from("embedded", {**smoke.SMOKE, "distributed.process_id": 1})
    assert base.config_drift(as_json, moved.to_dict()) == []


def test_workdir_with_another_config_is_refused_before_work(tmp_path):
    wd = tmp_path / "run"
    wd.mkdir()
    other = base.config_from("embedded", {**smoke.SMOKE, "train.epochs": 3.0})
    (wd / "config.json").write_text(json.dumps(other.to_dict()))
    r = run_trainer(wd)
    assert r.returncode == 2, r.stdout + r.stderr
    line = r.stderr.strip().splitlines()
    assert len(line) == 1 and "train.epochs: 3.0 -> 2.0" in line[0]
    assert sorted(p.name for p in wd.iterdir()) == ["config.json"]


def test_launcher_config_json_is_accepted(tmp_path):
    cfg = smoke.get_config()
    (tmp_path / "config.json").write_text(json.dumps(json.loads(json.dumps(cfg.to_dict()))))
    assert status.check_config(tmp_path, cfg) is True
    assert status.check_config(tmp_path / "fresh", cfg) is False


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--config.train.optimizer=lamb"], "train.optimizer='lamb'"),
        (["--config.train.nope=1"], "nope"),
        (["--config.data.image_size=4"], "data.image_size"),
        (["--config.train.batch_size=7", "--config.distributed.initialize=no"], None),
        (["--config.train.batch_size=2050"], "larger than the 2000 training examples"),
        (["--config.model.name=vit", "--config.model.variant=Ti/5"], "not a multiple of"),
    ],
)
def test_bad_config_exits_2_with_one_line(tmp_path, args, needle):
    wd = tmp_path / "run"
    env = trainer_env(devices=2)
    r = run_trainer(wd, *args, env=env)
    assert r.returncode == 2, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    if needle:
        assert needle in lines[0]
        assert not wd.exists()
    else:  # batch 7 over 2 devices: refused before the workdir is claimed (nothing written)
        assert "train.batch_size=7" in lines[0] and "multiple of 2" in lines[0]
        assert not (wd / "checkpoints").exists()
        assert not wd.exists()


def test_command_from_config_rebuilds_the_config(tmp_path):
    cfg = base.config_from(
        "paper",
        {"model.depth": 18, "train.step_boundaries": (0.5, 0.8), "data.crop": "none"},
    )
    cmd = shlex.split(command_from_config(cfg, tmp_path))
    assert cmd[:4] == ["python", "-m", "trainer", "--config=sweeps/base.py:paper"]
    # Parse it exactly as ``python -m trainer`` does (absl's global flags, in a fresh process).
    code = (
        "import json, sys\n"
        "from absl import flags\n"
        "from trainer.__main__ import _CONFIG, _WORKDIR\n"
        "flags.FLAGS(sys.argv)\n"
        "print(json.dumps([_CONFIG.value.to_dict(), _WORKDIR.value]))\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code, *cmd[3:]], cwd=REPO, capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    parsed, workdir = json.loads(r.stdout.strip().splitlines()[-1])
    assert base.config_drift(parsed, cfg.to_dict()) == []
    assert workdir == str(tmp_path)


def test_distributed_auto_detection():
    c = base.get_config().distributed
    assert not distributed.should_initialize(c, env={})
    assert distributed.should_initialize(c, env={"SLURM_NTASKS": "4"})
    assert not distributed.should_initialize(c, env={"SLURM_NTASKS": "1"})
    assert distributed.should_initialize(c, env={"TPU_WORKER_HOSTNAMES": "a,b"})
    assert not distributed.should_initialize(c, env={"TPU_WORKER_HOSTNAMES": "a"})
    c2 = base.config_from(None, {"distributed.coordinator_address": "h:1"}).distributed
    assert distributed.should_initialize(c2, env={})
    no = base.config_from(None, {"distributed.initialize": "no"}).distributed
    assert not distributed.should_initialize(no, env={"SLURM_NTASKS": "4"})


# ----------------------------------------------------------------------------- real runs


@pytest.mark.slow
def test_smoke_run_trains_and_writes_its_records(tmp_path):
    wd = tmp_path / "run"
    env = trainer_env()
    env["PSWEEPS_TENSORBOARD"] = "1"
    r = run_trainer(wd, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(
        r"^step 40/80 ep 1\.00 loss [\d.]+ acc [\d.]+ \d+ img/s eta \d+:\d\d$", r.stdout, re.M
    )
    st = json.loads((wd / "status.json").read_text())
    assert st["state"] == "done" and st["step"] == st["total_steps"] == 80 and st["epoch"] == 2.0
    assert st["error"] is None and st["finished"] and st["versions"]["jax"] == jax.__version__
    assert st["command"].startswith("python -m trainer --config=sweeps/smoke.py")
    assert st["last_eval"]["step"] == 80 and st["last_eval"]["top1"] > 0.6  # chance: 0.1
    train, ev = st["examples"]["train"], st["examples"]["eval"]
    assert (train["asked"], train["used"], ev["asked"], ev["used"]) == (2000, 2000, 500, 500)
    assert train["split"] >= 2000 and ev["split"] >= 500  # the prepared splits' sizes
    assert json.loads((wd / "config.json").read_text()) == json.loads(
        json.dumps(smoke.get_config().to_dict())
    )
    recs = read_jsonl(wd / "metrics.jsonl")
    assert [r["step"] for r in recs if r["kind"] == "train"] == list(range(10, 81, 10))
    evals = [r for r in recs if r["kind"] == "eval"]
    assert [r["step"] for r in evals] == [40, 80]  # every epoch
    assert evals[-1]["eval_top1"] == st["last_eval"]["top1"]
    assert 0 < evals[-1]["eval_top1"] <= evals[-1]["eval_top5"] <= 1
    # every 20 saved; kept: latest 2 (60, 80), every 40th (40, 80), the final (80)
    assert checkpoint.list_steps(wd / "checkpoints") == [40, 60, 80]
    v = final_variables(wd)
    assert set(v) == {"params", "batch_stats"}
    if importlib.util.find_spec("tensorflow") and importlib.util.find_spec("tensorboard"):
        assert list((wd / "tensorboard").glob("events.out.tfevents.*"))


@pytest.mark.slow
def test_more_examples_than_the_split_holds_are_all_used_and_said(tmp_path):
    wd = tmp_path / "run"
    r = run_trainer(wd, "--config.data.eval_examples=1000000", "--config.train.epochs=0.05")
    assert r.returncode == 0, r.stdout + r.stderr
    st = json.loads((wd / "status.json").read_text())
    ev = st["examples"]["eval"]
    assert ev["asked"] == 1_000_000 and ev["used"] == ev["split"] < 1_000_000
    line = f"data.eval_examples=1000000 but the eval split has {ev['split']} images: using all"
    assert line in r.stdout


@pytest.mark.slow
def test_divergence_stops_with_exit_3_and_saves_nothing_after(tmp_path):
    wd = tmp_path / "run"
    r = run_trainer(
        wd,
        "--config.model.depth=2",
        "--config.train.base_lr=999",
        "--config.train.log_every_steps=2",
        "--config.checkpoint.every_steps=1",
        env=trainer_env(),
    )
    assert r.returncode == 3, r.stdout + r.stderr
    st = json.loads((wd / "status.json").read_text())
    assert st["state"] == "diverged" and "non-finite" in st["error"] and st["step"] < 80
    for s in checkpoint.list_steps(wd / "checkpoints"):
        v = checkpoint.restore_variables(wd / "checkpoints", s)
        assert all(np.isfinite(x).all() for x in jax.tree.leaves(v))
        assert s < st["step"]


def test_records_keep_foreign_fields_and_the_last_eval(tmp_path):
    (tmp_path / "status.json").write_text(
        json.dumps(
            {
                "state": "preempted",
                "job_id": "1234_5",
                "last_eval": {"step": 20, "top1": 0.5},
                "finished": "2026-01-01T00:00:00+00:00",
                "error": "old",
            }
        )
    )
    rec = status.Records(tmp_path, primary=True, command="cmd", total_steps=9, tensorboard=False)
    rec.update(state="running")
    st = json.loads((tmp_path / "status.json").read_text())
    assert st["job_id"] == "1234_5" and st["last_eval"] == {"step": 20, "top1": 0.5}
    assert st["state"] == "running" and st["finished"] is None and st["error"] is None
    assert st["command"] == "cmd" and st["total_steps"] == 9
    rec.update(state="done")
    assert json.loads((tmp_path / "status.json").read_text())["finished"]
    other = status.Records(tmp_path / "p1", primary=False, command="c", total_steps=1)
    other.update(state="running")
    assert not (tmp_path / "p1").exists()
