"""The model registry: config errors, deterministic init, compute dtype, dropout, the CLI."""

import json
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from test_models_support import model_cfg, perturbed, random_variables

from sweeps.base import ConfigError, get_config
from trainer.models import build_model, describe, tap_names

ROOT = Path(__file__).resolve().parents[1]
# 16x16 keeps the number of distinct op shapes (what costs time on a CPU) small
IMAGES = jnp.asarray(np.random.default_rng(0).standard_normal((2, 16, 16, 3), np.float32))

SMALL = {
    "resnet": model_cfg("resnet", depth=6, width=0.0625),
    "vit": model_cfg("vit", variant="Ti/8", depth=2, hidden_size=8, mlp_dim=16, num_heads=2),
    "efficientnet": model_cfg("efficientnet", variant="b0", width=0.0625),
}


def one_line_error(fn, *args, match):
    with pytest.raises(ConfigError, match=match) as e:
        fn(*args)
    assert "\n" not in str(e.value)
    return str(e.value)


def test_unsupported_depth_variant_width_fail_with_the_supported_list():
    msg = one_line_error(build_model, model_cfg("resnet", depth=7), 10, match="model.depth=7")
    assert "2, 3, 4, 5, 6, 10, 14, 18, 26, 34, 50, 101, 152, 200" in msg
    msg = one_line_error(tap_names, model_cfg("resnet", depth=49), 64, match="model.depth=49")
    assert "152, 200" in msg
    msg = one_line_error(
        build_model, model_cfg("efficientnet", variant="b8"), 10, match="model.variant='b8'"
    )
    assert "b0, b1, b2, b3, b4, b5, b6, b7" in msg
    msg = one_line_error(
        build_model, model_cfg("vit", variant="XL/16"), 10, match="model.variant='XL/16'"
    )
    assert "Ti|S|B|L|H" in msg
    for width in (0.0, 0.03, 4.5, -1.0):
        msg = one_line_error(build_model, model_cfg("resnet", width=width), 10, match="model.width")
        assert "[0.0625, 4]" in msg
    one_line_error(
        build_model, model_cfg("mlp"), 10, match="model.name='mlp'.*resnet, vit, efficientnet"
    )
    one_line_error(build_model, model_cfg("resnet", dtype="float16"), 10, match="float32, bfloat16")
    one_line_error(
        build_model, {"name": "resnet", "depht": 6}, 10, match="unknown model config key.*depht"
    )
    one_line_error(build_model, model_cfg("resnet"), 0, match="num_classes=0")
    one_line_error(build_model, model_cfg("resnet", dropout=1.0), 10, match="model.dropout")


def test_accepts_configdict_and_partial_dicts():
    config = get_config("paper")
    model = build_model(config.model, 1000)
    assert model.depth == 50 and model.dtype == jnp.bfloat16
    assert build_model(ml_collections.ConfigDict({"name": "resnet", "depth": 18}), 10).depth == 18
    assert describe({"name": "resnet", "depth": 18}, 224, 1000)["params"] == 11_693_736
    # numbers read back from JSON/numpy are fine too
    model = build_model({"name": "vit", "variant": "S/16", "depth": np.int64(2)}, np.int64(10))
    assert (model.depth, model.num_classes, model.hidden_size) == (2, 10, 384)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_init_is_deterministic_for_a_seed(name):
    model = build_model(SMALL[name], 10)
    init = lambda seed: model.init(jax.random.key(seed), IMAGES)
    a, b, c = init(0), init(0), init(1)
    assert jax.tree.structure(a) == jax.tree.structure(c)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(x, y)
    kernels = lambda v: [
        leaf
        for path, leaf in jax.tree_util.tree_leaves_with_path(v["params"])
        if path[-1].key == "kernel" and np.any(leaf != 0)
    ]
    assert len(kernels(a)) > 3
    for x, y in zip(kernels(a), kernels(c), strict=True):
        assert not np.array_equal(x, y)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_bfloat16_compute_keeps_float32_params(name):
    model = build_model({**SMALL[name], "dtype": "bfloat16"}, 10)
    abstract = jax.eval_shape(model.init, jax.random.key(0), IMAGES)  # what init would make
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(abstract))
    variables = random_variables(model, IMAGES)
    (logits, taps), state = model.apply(
        variables, IMAGES, taps=True, capture_intermediates=True, mutable=["intermediates"]
    )
    assert logits.dtype == jnp.float32 and all(t.dtype == jnp.float32 for t in taps.values())
    inner = {k: v for k, v in state["intermediates"].items() if k != "__call__"}  # submodules
    outputs = [leaf for leaf in jax.tree.leaves(inner) if leaf.ndim >= 2]
    assert len(outputs) > 5 and all(o.dtype == jnp.bfloat16 for o in outputs)
    # the same model in float32 computes in float32 and agrees to bf16 precision
    f32 = build_model(SMALL[name], 10)
    assert f32.apply(variables, IMAGES).dtype == jnp.float32
    f32_out = f32.apply(variables, IMAGES, capture_intermediates=True, mutable=["intermediates"])[1]
    assert all(
        leaf.dtype == jnp.float32
        for leaf in jax.tree.leaves(f32_out["intermediates"])
        if leaf.ndim >= 2
    )


@pytest.mark.parametrize("name", sorted(SMALL))
def test_dropout_only_with_train_true(name):
    cfg = {**SMALL[name], "dropout": 0.5}
    model = build_model(cfg, 10)
    variables = random_variables(model, IMAGES)
    mutable = ["batch_stats"] if "batch_stats" in variables else False

    def train(key):
        out = model.apply(
            variables, IMAGES, train=True, mutable=mutable, rngs={"dropout": jax.random.key(key)}
        )
        return out[0] if mutable else out

    a, b = train(0), train(1)
    assert not np.allclose(a, b)
    np.testing.assert_array_equal(train(0), a)
    # evaluation ignores dropout rngs and is identical to a model built without dropout
    e1 = model.apply(variables, IMAGES, train=False)
    e2 = model.apply(variables, IMAGES, train=False, rngs={"dropout": jax.random.key(5)})
    np.testing.assert_array_equal(e1, e2)
    np.testing.assert_array_equal(build_model(SMALL[name], 10).apply(variables, IMAGES), e1)
    with pytest.raises(Exception, match="dropout"):
        model.apply(variables, IMAGES, train=True, mutable=mutable)


def test_vit_encoder_dropout_only_with_train_true():
    model = build_model({**SMALL["vit"], "encoder_dropout": 0.3}, 10)
    variables = perturbed(model.init(jax.random.key(0), IMAGES))
    taps = lambda key: model.apply(
        variables, IMAGES, train=True, taps=True, rngs={"dropout": jax.random.key(key)}
    )[1]
    assert not np.allclose(taps(0)["block1"], taps(1)["block1"])
    e1 = model.apply(variables, IMAGES, taps=True)[1]["block2"]
    e2 = build_model(SMALL["vit"], 10).apply(variables, IMAGES, taps=True)[1]["block2"]
    np.testing.assert_array_equal(e1, e2)


def test_taps_work_inside_jit_with_batch_stats():
    model = build_model(SMALL["resnet"], 10)
    variables = model.init(jax.random.key(0), IMAGES)
    step = jax.jit(lambda v, x: model.apply(v, x, train=False, taps=True))
    logits, taps = step(variables, IMAGES)
    assert logits.shape == (2, 10)
    assert {k: v.shape for k, v in taps.items()} == {
        "stage1": (2, 4, 4, 4),
        "stage2": (2, 2, 2, 8),
        "stage3": (2, 1, 1, 16),
        "stage4": (2, 1, 1, 32),
    }


def run_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "trainer.models", "--config=sweeps/base.py", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_cli_prints_params_and_tap_shapes():
    r = run_cli(
        "--config.model.name=resnet",
        "--config.model.depth=50",
        "--config.model.width=1.0",
        "--config.data.image_size=224",
        "--config.data.num_classes=1000",
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {
        "model": {
            "name": "resnet",
            "depth": 50,
            "width": 1.0,
            "image_size": 224,
            "num_classes": 1000,
        },
        "params": 25_557_032,
        "taps": {
            "stage1": [56, 56, 256],
            "stage2": [28, 28, 512],
            "stage3": [14, 14, 1024],
            "stage4": [7, 7, 2048],
        },
    }


def test_cli_rejects_a_bad_config_with_one_line_and_exit_2():
    r = run_cli("--config.model.depth=7")
    assert r.returncode == 2 and r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "model.depth=7" in lines[0] and "152, 200" in lines[0]
