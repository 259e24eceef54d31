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
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from sweeps.base import ConfigError
from trainer.models import efficientnet, resnet, vit
from trainer.models.common import check_num_classes, compute_dtype, model_fields
from trainer.models.efficientnet import efficientnet_defaults

__all__ = [
    "build_model",
    "tap_names",
    "efficientnet_defaults",
    "describe",
    "count_params",
    "RESNET_DEPTHS",
    "VIT_VARIANTS",
    "EFFICIENTNET_VARIANTS",
]

RESNET_DEPTHS = resnet.DEPTHS
VIT_VARIANTS = tuple(vit.VARIANTS)
EFFICIENTNET_VARIANTS = tuple(efficientnet.VARIANTS)


def _check_resnet(fields: dict[str, Any]) -> None:
    if fields["depth"] not in resnet.LAYOUTS:
        raise ConfigError(
            f"model.depth={fields['depth']!r} is not a supported ResNet depth; allowed: "
            + ", ".join(map(str, RESNET_DEPTHS))
        )


def _check_efficientnet(fields: dict[str, Any]) -> None:
    if fields["variant"] not in efficientnet.VARIANTS:
        raise ConfigError(
            f"model.variant={fields['variant']!r} is not a supported EfficientNet; allowed: "
            + ", ".join(EFFICIENTNET_VARIANTS)
        )


def build_model(model_cfg: Mapping[str, Any], num_classes: int) -> nn.Module:
    """The Flax module ``config.model`` describes, with a ``num_classes``-way head.

    Raises ``ConfigError`` (one line listing what is supported) for an unknown name, depth,
    variant, width or dtype. Keys that do not apply to the model are ignored (``depth`` for
    EfficientNet, ``variant`` for ResNet, the ViT sizes for the others).
    """
    fields = model_fields(model_cfg)
    num_classes = check_num_classes(num_classes)
    dtype = compute_dtype(fields["dtype"])
    name = fields["name"]
    if name == "resnet":
        _check_resnet(fields)
        return resnet.ResNet(
            depth=int(fields["depth"]),
            num_classes=num_classes,
            width=float(fields["width"]),
            dropout=float(fields["dropout"]),
            dtype=dtype,
        )
    if name == "vit":
        return vit.ViT(
            num_classes=num_classes,
            dropout=float(fields["dropout"]),
            encoder_dropout=float(fields["encoder_dropout"]),
            dtype=dtype,
            **vit.vit_shape(fields),
        )
    _check_efficientnet(fields)
    return efficientnet.EfficientNet(
        variant=fields["variant"],
        num_classes=num_classes,
        width=float(fields["width"]),
        dropout=float(fields["dropout"]),
        stochastic_depth=float(fields["stochastic_depth"]),
        dtype=dtype,
    )


def tap_names(model_cfg: Mapping[str, Any], image_size: int) -> list[str]:
    """The names of the taps ``model.apply(..., taps=True)`` returns, in network order."""
    fields = model_fields(model_cfg)
    if fields["name"] == "resnet":
        _check_resnet(fields)
        return resnet.tap_names(int(fields["depth"]))
    if fields["name"] == "vit":
        shape = vit.vit_shape(fields)
        if image_size < shape["patch_size"]:
            raise ConfigError(
                f"data.image_size={image_size} is smaller than the ViT patch size "
                f"{shape['patch_size']}; allowed: image_size >= patch size"
            )
        return [f"block{i + 1}" for i in range(shape["depth"])]
    _check_efficientnet(fields)
    return [f"stage{i + 1}" for i in range(len(efficientnet.TAP_STRIDES))]


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
