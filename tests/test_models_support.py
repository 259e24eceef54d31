"""Helpers the model-zoo tests share (this module holds no tests itself)."""

import jax
import numpy as np

from sweeps.base import get_config


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


def perturbed(variables, scale=0.05, seed=1):
    """``variables`` plus small normal noise (moves zero-initialised heads off zero)."""
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda p: p + scale * rng.standard_normal(p.shape, np.float32), variables)
