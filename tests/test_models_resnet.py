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


def _zero_last_bns(variables):
    """Zero the scale and bias of every block's last BatchNorm: its main path then outputs 0."""
    params = jax.tree.map(np.array, variables["params"])
    for name, block in params.items():
        if "_block" in name:
            last = max(k for k in block if k.startswith("bn"))
            block[last]["scale"][:] = 0.0
            block[last]["bias"][:] = 0.0
    return {**variables, "params": params}


def test_resnet50_without_skip_has_no_residual_additions():
    images = jnp.asarray(np.random.default_rng(3).standard_normal((2, 64, 64, 3), np.float32))
    plain = build_model(resnet(50, width=0.0625, skip=False), 10)
    variables = random_variables(plain, images)
    assert not any("proj" in k for block in variables["params"].values() for k in block)
    # With every block's main path silenced, a block that adds nothing to its input outputs
    # relu(0) = 0: every stage is zero and the logits do not depend on the image.
    logits, taps = plain.apply(_zero_last_bns(variables), images, train=False, taps=True)
    assert all(float(jnp.abs(t).max()) == 0.0 for t in taps.values())
    np.testing.assert_array_equal(logits[0], logits[1])
    # The same silencing in the default ResNet-50 leaves the shortcuts' signal.
    residual = build_model(resnet(50, width=0.0625), 10)
    variables = random_variables(residual, images)
    logits, taps = residual.apply(_zero_last_bns(variables), images, train=False, taps=True)
    assert all(float(jnp.abs(t).max()) > 0.0 for t in taps.values())
    assert not np.allclose(logits[0], logits[1])


def test_no_skip_blocks_start_at_bn_scale_one():
    images = jnp.zeros((1, 32, 32, 3))
    key = jax.random.key(0, impl="rbg")  # cheap to compile on CPU
    plain = build_model(resnet(10, width=0.0625, skip=False), 10).init(key, images)["params"]
    assert float(plain["stage1_block1"]["bn2"]["scale"].min()) == 1.0
    default = build_model(resnet(10, width=0.0625), 10).init(key, images)["params"]
    assert float(jnp.abs(default["stage1_block1"]["bn2"]["scale"]).max()) == 0.0


def test_bn_momentum_key_sets_the_running_average():
    images = jnp.asarray(np.random.default_rng(5).standard_normal((4, 32, 32, 3), np.float32))
    stats = {}
    for m in (0.0, 0.9, 0.5):  # 0 = the family's own (0.9)
        model = build_model(resnet(6, width=0.0625, bn_momentum=m), 10)
        variables = model.init(jax.random.key(0), images)
        _, upd = model.apply(variables, images, train=True, mutable=["batch_stats"])
        stats[m] = np.asarray(upd["batch_stats"]["stem_bn"]["mean"])
    np.testing.assert_array_equal(stats[0.0], stats[0.9])
    np.testing.assert_allclose(stats[0.5], stats[0.9] * 0.5 / 0.1, rtol=1e-5)  # from mean 0
