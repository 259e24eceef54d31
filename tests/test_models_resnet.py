"""ResNet v1: exact parameter counts, taps of every depth, a real forward pass of every depth."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_models_support import assert_forward_pass, model_cfg, random_variables

from trainer.models import build_model, describe, tap_names
from trainer.models.resnet import DEPTHS as RESNET_DEPTHS


def resnet(depth, width=1.0, **kw):
    return model_cfg("resnet", depth=depth, width=width, **kw)


@pytest.mark.parametrize(
    "depth, expected",
    [(18, 11_693_736), (50, 25_557_032), (101, 44_549_160), (152, 60_192_808)],
)
def test_parameter_counts_at_224_with_1000_classes(depth, expected):
    assert describe(resnet(depth), 224, 1000)["params"] == expected


def test_resnet18_is_torchvision_plus_a_projection_in_stage1():
    # 64->64 1x1 projection (4,096) + its BatchNorm scale and bias (128).
    assert describe(resnet(18), 224, 1000)["params"] - 11_689_512 == 4_224


def test_resnet6_layout():
    info = describe(resnet(6), 64, 1000)
    conv = lambda k, cin, cout: k * k * cin * cout + 2 * cout  # conv + BN scale/bias
    stem = conv(7, 3, 64)
    blocks = sum(
        conv(3, c_in, c) + conv(1, c_in, c)
        for c_in, c in [(64, 64), (64, 128), (128, 256), (256, 512)]
    )
    assert info["params"] == stem + blocks + 512 * 1000 + 1000
    assert info["taps"] == {
        "stage1": [16, 16, 64],
        "stage2": [8, 8, 128],
        "stage3": [4, 4, 256],
        "stage4": [2, 2, 512],
    }


@pytest.mark.parametrize("depth", RESNET_DEPTHS)
def test_taps_of_every_depth_at_64(depth):
    info = describe(resnet(depth), 64, 10)
    names = tap_names(resnet(depth), 64)
    assert list(info["taps"]) == names
    expansion = 4 if depth in (14, 26, 50, 101, 152, 200) else 1
    if depth == 2:
        assert info["taps"] == {"stem": [16, 16, 64]}
    else:
        n_stages = min(depth - 2, 4) if depth <= 6 else 4
        assert names == [f"stage{i + 1}" for i in range(n_stages)]
        for i, name in enumerate(names):
            size = 16 >> i
            assert info["taps"][name] == [size, size, 64 * 2**i * expansion]


def test_width_multiplies_every_conv_and_rounds():
    info = describe(resnet(50, width=0.0625), 64, 10)
    assert info["taps"]["stage1"] == [16, 16, 16] and info["taps"]["stage4"] == [2, 2, 128]
    info = describe(resnet(18, width=0.3), 64, 10)  # 64*0.3 = 19.2 -> 19
    assert info["taps"]["stage1"][-1] == 19 and info["taps"]["stage4"][-1] == round(512 * 0.3)
    assert describe(resnet(6, width=4.0), 64, 10)["taps"]["stage4"][-1] == 2048


def test_every_depth_runs_a_forward_pass_at_64():
    images = jnp.asarray(np.random.default_rng(1).standard_normal((2, 64, 64, 3), np.float32))
    for depth in RESNET_DEPTHS:
        assert_forward_pass(resnet(depth, width=0.0625), images, depth)


def test_train_mode_updates_batch_stats_and_odd_sizes_work():
    model = build_model(resnet(10, width=0.0625), 7)
    images = jnp.asarray(np.random.default_rng(2).standard_normal((3, 33, 33, 3), np.float32))
    variables = random_variables(model, images)
    logits, updates = model.apply(variables, images, train=True, mutable=["batch_stats"])
    assert logits.shape == (3, 7)
    before = jax.tree.leaves(variables["batch_stats"])
    after = jax.tree.leaves(updates["batch_stats"])
    assert len(before) == len(after) and all(
        a.shape == b.shape for a, b in zip(after, before, strict=True)
    )
    assert any(not np.allclose(a, b) for a, b in zip(after, before, strict=True))
