"""The model zoo: ResNet v1 (depths 2..200), ViT (Ti..H, any patch size), EfficientNet B0..B7.

Everything is built from ``config.model`` through one registry::

    model = build_model(config.model, num_classes)
    variables = model.init({"params": key}, images, train=False)
    logits = model.apply(variables, images, train=False)
    logits, taps = model.apply(variables, images, train=False, taps=True)
    logits, updates = model.apply(variables, images, train=True, mutable=["batch_stats"],
                                  rngs={"dropout": key})

Images are NHWC floats (already normalised). Activations use ``config.model.dtype`` (float32 or
bfloat16); parameters are float32; logits and taps are returned in float32. ResNet and
EfficientNet keep BatchNorm statistics in the ``batch_stats`` collection (ViT has none).
``taps`` is a Python bool, so a jitted function that passes a constant compiles one variant.

Taps (``tap_names``): ResNet and EfficientNet ``stage1``..``stage4`` (NHWC maps at strides
4, 8, 16, 32; ResNet-3..5 have fewer stages, ResNet-2 taps ``stem``), ViT ``block1``..``blockN``
(the CLS token after each encoder block, shape ``[hidden]``).

Each model module owns its variants and its checks (``check(fields, image_size)``); the config
schema (sweeps/base.py) asks ``check`` here, so a model is judged in one place.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from trainer.models import efficientnet, resnet, vit
from trainer.models.common import DTYPES, check_num_classes, compute_dtype, model_fields
from trainer.models.efficientnet import efficientnet_defaults

__all__ = [
    "DTYPES",
    "MODEL_NAMES",
    "build_model",
    "check",
    "count_params",
    "describe",
    "efficientnet_defaults",
    "tap_names",
]

MODULES = {"resnet": resnet, "vit": vit, "efficientnet": efficientnet}
MODEL_NAMES = tuple(MODULES)


def check(model_cfg: Mapping[str, Any], image_size: int | None = None) -> dict[str, Any]:
    """``config.model`` as complete fields, or a one-line ``ConfigError`` naming the first key the
    schema or the model's own module rejects (with ``image_size``, also what does not fit the
    images, e.g. a ViT patch larger than them)."""
    fields = model_fields(model_cfg)
    MODULES[fields["name"]].check(fields, image_size)
    return fields


def build_model(model_cfg: Mapping[str, Any], num_classes: int) -> nn.Module:
    """The Flax module ``config.model`` describes, with a ``num_classes``-way head.

    Raises ``ConfigError`` (one line listing what is supported) for an unknown name, depth,
    variant, width or dtype. Keys that do not apply to the model are ignored (``depth`` for
    EfficientNet, ``variant`` for ResNet, the ViT sizes for the others).
    """
    fields = check(model_cfg)
    num_classes = check_num_classes(num_classes)
    return MODULES[fields["name"]].build(fields, num_classes, compute_dtype(fields["dtype"]))


def tap_names(model_cfg: Mapping[str, Any], image_size: int) -> list[str]:
    """The names of the taps ``model.apply(..., taps=True)`` returns, in network order."""
    fields = check(model_cfg, image_size)
    return MODULES[fields["name"]].tap_names(fields)


def count_params(params: Any) -> int:
    """The number of scalars in a parameter tree (arrays or ShapeDtypeStructs)."""
    return int(sum(np.prod(leaf.shape, dtype=np.int64) for leaf in jax.tree.leaves(params)))


def describe(model_cfg: Mapping[str, Any], image_size: int, num_classes: int) -> dict[str, Any]:
    """``{"params": int, "taps": {name: [H, W, C] or [C]}}`` from shapes alone (jax.eval_shape),
    so even the largest models are instant."""
    model = build_model(model_cfg, num_classes)
    names = tap_names(model_cfg, image_size)
    images = jax.ShapeDtypeStruct((1, image_size, image_size, 3), jnp.float32)
    variables = jax.eval_shape(
        lambda x: model.init({"params": jax.random.key(0)}, x, train=False), images
    )
    _, taps = jax.eval_shape(
        lambda v, x: model.apply(v, x, train=False, taps=True), variables, images
    )
    return {
        "params": count_params(variables["params"]),
        "taps": {name: list(taps[name].shape[1:]) for name in names},
    }
