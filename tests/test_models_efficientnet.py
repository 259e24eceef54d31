"""EfficientNet B0..B7: reference parameter counts, compound scaling, taps, forward passes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_models_support import assert_forward_pass, model_cfg, random_variables

from trainer.models import build_model, describe, efficientnet_defaults, tap_names
from trainer.models.efficientnet import VARIANTS as EFFICIENTNET_VARIANTS
from trainer.models.efficientnet import round_filters, round_repeats


def effnet(variant, **kw):
    return model_cfg("efficientnet", variant=variant, **{"width": 1.0, **kw})


@pytest.mark.parametrize("variant, expected", [("b0", 5_288_548), ("b7", 66_347_960)])
def test_parameter_counts_match_the_keras_reference(variant, expected):
    assert describe(effnet(variant), 224, 1000)["params"] == expected


def test_compound_scaling_rules():
    # round_filters: multiples of 8, never below 90% of the scaled value
    assert [round_filters(c, 1.0) for c in (32, 16, 24, 40, 80, 112, 192, 320, 1280)] == [
        32,
        16,
        24,
        40,
        80,
        112,
        192,
        320,
        1280,
    ]
    assert round_filters(32, 1.1) == 32 and round_filters(1280, 1.1) == 1408
    assert round_filters(24, 1.4) == 32 and round_filters(40, 2.0) == 80
    assert round_filters(16, 0.0625) == 8  # never below the divisor
    assert round_repeats(3, 3.1) == 10 and round_repeats(1, 1.1) == 2 and round_repeats(4, 1.0) == 4
    assert [efficientnet_defaults(f"b{i}")["dropout"] for i in range(8)] == [
        0.2,
        0.2,
        0.3,
        0.3,
        0.4,
        0.4,
        0.5,
        0.5,
    ]
    assert efficientnet_defaults("b3") == {
        "width": 1.2,
        "depth": 1.4,
        "resolution": 300,
        "dropout": 0.3,
    }


@pytest.mark.parametrize("variant", EFFICIENTNET_VARIANTS)
def test_taps_at_strides_4_8_16_32(variant):
    width = efficientnet_defaults(variant)["width"]
    info = describe(effnet(variant), 64, 10)
    assert (
        list(info["taps"])
        == tap_names(effnet(variant), 64)
        == ["stage1", "stage2", "stage3", "stage4"]
    )
    channels = [round_filters(c, width) for c in (24, 40, 112, 1280)]
    assert info["taps"] == {
        f"stage{i + 1}": [size, size, c]
        for i, (size, c) in enumerate(zip((16, 8, 4, 2), channels, strict=True))
    }


def test_width_multiplies_the_variants_coefficient():
    narrow = describe(effnet("b0", width=0.5), 64, 10)
    assert narrow["taps"]["stage4"] == [2, 2, 640] and narrow["taps"]["stage1"] == [16, 16, 16]
    assert narrow["params"] < describe(effnet("b0"), 64, 10)["params"] / 3


@pytest.mark.slow
def test_every_variant_runs_a_forward_pass_at_64():
    images = jnp.asarray(np.random.default_rng(0).standard_normal((2, 64, 64, 3), np.float32))
    for variant in EFFICIENTNET_VARIANTS:
        assert_forward_pass(effnet(variant, width=0.0625), images, variant)


def test_stochastic_depth_only_in_training():
    images = jnp.asarray(np.random.default_rng(1).standard_normal((4, 32, 32, 3), np.float32))
    model = build_model(effnet("b0", width=0.0625, stochastic_depth=0.8), 10)
    variables = random_variables(model, images)
    run = lambda key: model.apply(
        variables,
        images,
        train=True,
        mutable=["batch_stats"],
        rngs={"dropout": jax.random.key(key)},
    )[0]
    a, b = run(0), run(1)
    assert not np.allclose(a, b)  # different blocks dropped
    np.testing.assert_array_equal(run(0), a)  # same key, same blocks
    eval_a = model.apply(variables, images, train=False)
    eval_b = model.apply(variables, images, train=False)
    np.testing.assert_array_equal(eval_a, eval_b)
    plain = build_model(effnet("b0", width=0.0625), 10)  # rate 0: no randomness in training
    c = plain.apply(
        variables, images, train=True, mutable=["batch_stats"], rngs={"dropout": jax.random.key(0)}
    )[0]
    d = plain.apply(
        variables, images, train=True, mutable=["batch_stats"], rngs={"dropout": jax.random.key(1)}
    )[0]
    np.testing.assert_array_equal(c, d)


@pytest.mark.parametrize(
    "size,channels,kernel,stride", [(16, 8, 3, 1), (15, 24, 5, 2), (8, 16, 3, 2), (2, 32, 5, 1)]
)
def test_cpu_depthwise_conv_is_the_grouped_convolution(size, channels, kernel, stride):
    """The CPU's shifted multiply-adds give the grouped convolution's output ('SAME' padding,
    the odd pixel after) from the same parameter tree."""
    import flax.linen as nn

    from trainer.models.efficientnet import DepthwiseConv

    x = jax.random.normal(jax.random.PRNGKey(1), (3, size, size, channels))
    ours = DepthwiseConv(kernel, stride)
    ref = nn.Conv(channels, (kernel, kernel), (stride, stride), padding="SAME",
                  feature_group_count=channels, use_bias=False)  # fmt: skip
    params = ours.init(jax.random.PRNGKey(0), x)
    ref_params = ref.init(jax.random.PRNGKey(0), x)
    assert jax.tree.map(jnp.shape, params) == jax.tree.map(jnp.shape, ref_params)
    got, want = ours.apply(params, x), ref.apply(params, x)
    assert got.shape == want.shape
    assert float(jnp.max(jnp.abs(got - want))) < 1e-5
