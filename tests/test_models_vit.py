"""ViT: the standard layout's exact size, variants and overrides, CLS taps, a forward per variant."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_models_support import perturbed

from sweeps.base import ConfigError, get_config
from trainer.models import build_model, describe, tap_names
from trainer.models.vit import VARIANTS as VIT_VARIANTS

# (hidden, depth, mlp, heads) of the published variants
PUBLISHED = {
    "Ti": (192, 12, 768, 3),
    "S": (384, 12, 1536, 6),
    "B": (768, 12, 3072, 12),
    "L": (1024, 24, 4096, 16),
    "H": (1280, 32, 5120, 16),
}


def vit(variant, **kw):
    m = get_config().model.to_dict()
    m.update(name="vit", variant=variant, depth=0, width=1.0)
    m.update(kw)
    return m


def expected_params(patch, hidden, depth, mlp, tokens, classes):
    embed = patch * patch * 3 * hidden + hidden
    block = 4 * hidden + 4 * (hidden * hidden + hidden) + 2 * hidden * mlp + mlp + hidden
    return (
        embed
        + hidden
        + (tokens + 1) * hidden
        + depth * block
        + 2 * hidden
        + hidden * classes
        + classes
    )


def test_vit_b16_at_224_has_the_standard_parameter_count():
    assert describe(vit("B/16"), 224, 1000)["params"] == 86_567_656


@pytest.mark.parametrize("name", VIT_VARIANTS)
def test_variants_sizes_and_taps_at_64(name):
    hidden, depth, mlp, _ = PUBLISHED[name]
    info = describe(vit(f"{name}/8"), 64, 10)
    assert info["params"] == expected_params(8, hidden, depth, mlp, 64, 10)
    assert list(info["taps"]) == [f"block{i + 1}" for i in range(depth)]
    assert list(info["taps"]) == tap_names(vit(f"{name}/8"), 64)
    assert all(shape == [hidden] for shape in info["taps"].values())


def test_overrides_and_width():
    cfg = vit("B/16", depth=3, hidden_size=64, mlp_dim=100, num_heads=4, patch_size=4)
    model = build_model(cfg, 10)
    assert (model.depth, model.hidden_size, model.mlp_dim, model.num_heads, model.patch_size) == (
        3,
        64,
        100,
        4,
        4,
    )
    info = describe(cfg, 64, 10)
    assert info["params"] == expected_params(4, 64, 3, 100, 256, 10)
    assert list(info["taps"]) == ["block1", "block2", "block3"]
    # width scales hidden (to a multiple of the heads) and MLP size
    half = build_model(vit("B/16", width=0.5), 10)
    assert (half.hidden_size, half.mlp_dim, half.num_heads) == (384, 1536, 12)
    odd = build_model(vit("B/16", width=0.3), 10)  # 230.4 -> 19 heads' worth of 12 = 228
    assert odd.hidden_size == 228 and odd.hidden_size % 12 == 0


def test_bad_vit_configs_fail_with_one_line():
    with pytest.raises(
        ConfigError, match=r"model.hidden_size=100 .*multiple of model.num_heads"
    ) as e:
        build_model(vit("B/16", hidden_size=100, num_heads=12), 10)
    assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match=r"model.variant='Q/16'.*Ti\|S\|B\|L\|H") as e:
        build_model(vit("Q/16"), 10)
    assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="model.variant='B'"):
        build_model(vit("B"), 10)
    with pytest.raises(ConfigError, match="image_size=8 is smaller than the ViT patch size 16"):
        tap_names(vit("B/16"), 8)


def test_every_variant_runs_a_forward_pass_at_64():
    images = jnp.asarray(np.random.default_rng(0).standard_normal((2, 64, 64, 3), np.float32))
    for name in VIT_VARIANTS:
        # the variant's depth, a tiny width so that the test stays fast on a CPU
        cfg = vit(f"{name}/16", hidden_size=16, mlp_dim=32, num_heads=2)
        model = build_model(cfg, 10)
        variables = model.init(jax.random.key(0), images)
        assert "batch_stats" not in variables
        # the head starts at zero: logits are 0, the taps are not
        logits, taps = model.apply(variables, images, train=False, taps=True)
        assert logits.shape == (2, 10) and np.all(logits == 0)
        variables = perturbed(variables)
        logits, taps = model.apply(variables, images, train=False, taps=True)
        assert np.all(np.isfinite(logits)) and not np.allclose(logits[0], logits[1]), name
        assert list(taps) == [f"block{i + 1}" for i in range(PUBLISHED[name][1])]
        for tap in taps.values():
            assert tap.shape == (2, 16) and tap.dtype == jnp.float32
        assert not np.allclose(taps["block1"], taps[f"block{len(taps)}"])


def test_taps_under_jit_match_eager():
    images = jnp.asarray(np.random.default_rng(1).standard_normal((2, 32, 32, 3), np.float32))
    model = build_model(vit("Ti/8", depth=2, hidden_size=8, mlp_dim=16, num_heads=2), 5)
    variables = model.init(jax.random.key(3), images)
    eager_logits, eager_taps = model.apply(variables, images, taps=True)
    logits, taps = jax.jit(lambda v, x: model.apply(v, x, taps=True))(variables, images)
    np.testing.assert_allclose(logits, eager_logits, rtol=1e-5, atol=1e-6)
    for k in eager_taps:
        np.testing.assert_allclose(taps[k], eager_taps[k], rtol=1e-5, atol=1e-6)
