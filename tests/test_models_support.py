"""Helpers the model-zoo tests share (this module holds no tests itself)."""

import jax
import jax.numpy as jnp
import numpy as np

from sweeps.base import get_config
from trainer.models import build_model, describe


def model_cfg(name, **kw):
    """``config.model`` of the schema with ``name`` and the given keys set."""
    m = get_config().model.to_dict()
    m.update(name=name, **kw)
    return m


def random_variables(model, images, seed=0):
    """Variables of the right shapes without running the initialisers (fast on CPU): He-scaled
    normal kernels, BatchNorm scales near 1, small biases, statistics at mean 0 / variance 1."""
    shapes = jax.eval_shape(lambda x: model.init(jax.random.key(0), x), images)
    rng = np.random.default_rng(seed)

    def param(path, s):
        noise = rng.standard_normal(s.shape, np.float32)
        if path[-1].key == "kernel":
            return noise * np.sqrt(2.0 / np.prod(s.shape[:-1]))
        return 1.0 + 0.1 * noise if path[-1].key == "scale" else 0.1 * noise

    out = {"params": jax.tree_util.tree_map_with_path(param, shapes["params"])}
    if "batch_stats" in shapes:
        out["batch_stats"] = jax.tree_util.tree_map_with_path(
            lambda p, s: np.full(s.shape, 1.0 if p[-1].key == "var" else 0.0, np.float32),
            shapes["batch_stats"],
        )
    return out


def assert_forward_pass(cfg, images, label, num_classes=10):
    """A real forward pass of ``cfg``'s model on random variables: float32 logits that are finite
    and depend on the image, the same without taps, and float32 taps of the shapes (and in the
    order) ``describe`` gives. ``label`` names the model in failure messages."""
    model = build_model(cfg, num_classes)
    variables = random_variables(model, images)
    logits, taps = model.apply(variables, images, train=False, taps=True)
    n = images.shape[0]
    assert logits.shape == (n, num_classes) and logits.dtype == jnp.float32, label
    assert np.all(np.isfinite(logits)), label
    assert not np.allclose(logits[0], logits[1]), label  # depends on the image
    expected = describe(cfg, images.shape[1], num_classes)["taps"]
    assert list(taps) == list(expected), label
    for name, shape in expected.items():
        assert taps[name].shape == (n, *shape) and taps[name].dtype == jnp.float32, (label, name)
    np.testing.assert_array_equal(model.apply(variables, images, train=False), logits)


def perturbed(variables, scale=0.05, seed=1):
    """``variables`` plus small normal noise (moves zero-initialised heads off zero)."""
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda p: p + scale * rng.standard_normal(p.shape, np.float32), variables)
