"""Compile once, not once per trial: the train step takes the learning rate, momentum and weight
decay as traced inputs (trainer/optim.py ``hyperparams``), gives bitwise the results of the step with them as
constants, and lowers to one program for trials that differ only in them; the persistent
compilation cache goes where the sweep's trials share it (trainer/compile_cache.py)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sweeps import base
from tests.trainer_support import assert_trees_equal
from trainer import compile_cache, optim, pipeline, steps
from trainer.data.normalize import normalize
from trainer.models import build_model

TINY = {"model.depth": 2, "model.width": 0.0625, "data.image_size": 8}
RECIPES = {
    "sgd-l2-cosine": {},
    "sgd-smoothing-step": {
        "train.label_smoothing": 0.1,
        "train.schedule": "step",
        "train.step_boundaries": (0.3, 0.6),
        "train.weight_decay_on": "non_norm",
    },
    "adamw-decoupled": {
        "train.optimizer": "adamw",
        "train.weight_decay_mode": "decoupled",
        "train.weight_decay": 0.05,
        "train.label_smoothing": 0.3,
        "train.grad_clip": 1.0,
    },
    "rmsprop-exponential-ema": {
        "train.optimizer": "rmsprop",
        "train.schedule": "exponential",
        "train.exp_decay_epochs": 0.2,
        "train.ema_decay": 0.9,
    },
}


def _no_augment(rng, images, data_cfg):
    return normalize(images)


def _constant_vs_traced(overrides: dict, size: int, batch: int, n: int) -> None:
    config = base.config_from("embedded", overrides)
    spe, total = 5, 20
    model = build_model(config.model, 10)
    tx = optim.make_optimizer(config.train, optim.make_schedule(config.train, spe, total))
    fn = steps.make_train_step(model, config, tx, _no_augment, spe, total)
    hp = jax.tree.map(jnp.asarray, optim.hyperparams(config.train))
    constant, traced = jax.jit(fn), jax.jit(fn)
    state = steps.init_state(model, config, (size, size, 3), tx, jax.random.PRNGKey(0))
    rng = np.random.default_rng(0)
    a = b = (state, steps.zero_metrics())
    for _ in range(n):  # through warm-up and past the schedule's first boundaries
        images = jnp.asarray(rng.integers(0, 256, (batch, size, size, 3), np.uint8))
        labels = jnp.asarray(rng.integers(0, 10, (batch,)), jnp.int32)
        a = constant(*a, images, labels)
        b = traced(*b, images, labels, hp)
    assert_trees_equal(a, b)


@pytest.mark.parametrize("recipe", list(RECIPES))
def test_traced_hyperparameters_give_the_constant_step_bitwise(recipe):
    _constant_vs_traced({**TINY, **RECIPES[recipe]}, 8, 4, 8)


@pytest.mark.slow
def test_traced_step_is_bitwise_at_the_smoke_size():
    # ResNet-6 x0.25 at 16x16, batch 50: where a traced label smoothing had differed in the
    # last bits from the second step on (so it stays a constant; trainer/optim.py)
    from sweeps.smoke import SMOKE

    adamw = {"train.optimizer": "adamw", "train.weight_decay_mode": "decoupled"}
    adamw |= {"train.weight_decay": 0.05, "train.label_smoothing": 0.2}
    _constant_vs_traced({**SMOKE, **adamw}, 16, 50, 3)


def _lowered(overrides):
    config = base.config_from("embedded", {**TINY, **overrides})
    run = steps.build_run(config, pipeline.make_mesh(), 5, 20)
    state = run.abstract_state(jax.random.PRNGKey(0))
    images = jax.ShapeDtypeStruct((4, 8, 8, 3), jnp.uint8)
    labels = jax.ShapeDtypeStruct((4,), jnp.int32)
    lowered = run.jitted_step.lower(state, run.zero_metrics(), images, labels, run.hparams)
    return lowered.as_text()


def test_trials_differing_in_hyperparameters_share_one_program():
    first = _lowered({"train.weight_decay": 5e-6, "train.label_smoothing": 0.1})
    other = {"train.weight_decay": 5e-2, "train.base_lr": 0.3, "train.momentum": 0.8}
    assert _lowered({**other, "train.label_smoothing": 0.1}) == first
    # label smoothing stays a constant (trainer/optim.py), the architecture is the program
    assert _lowered({"train.weight_decay": 5e-6, "train.label_smoothing": 0.3}) != first
    assert _lowered({"model.depth": 3, "train.weight_decay": 5e-6}) != first


def test_cache_directory_is_the_sweeps(tmp_path, monkeypatch):
    monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR", raising=False)
    monkeypatch.delenv(compile_cache.ENV, raising=False)
    trial = tmp_path / "runs" / "wd" / "wd-5e-05"
    assert compile_cache.where(trial) == tmp_path / "runs" / "wd" / ".jax-cache"
    assert compile_cache.where("gs://bucket/runs/wd/t").name == "psweeps-jax-cache"  # local
    monkeypatch.setenv(compile_cache.ENV, "off")
    assert compile_cache.where(trial) is None
    monkeypatch.setenv(compile_cache.ENV, str(tmp_path / "shared"))
    assert compile_cache.where(trial) == tmp_path / "shared"
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", str(tmp_path / "jax"))
    assert compile_cache.where(trial) == tmp_path / "jax"
