"""EfficientNet B0..B7 as in tensorflow/tpu's ``efficientnet_model`` (the study's code; the same
network as tf/keras ``EfficientNet``), in Flax Linen.

Compound scaling: each variant has a width and a depth coefficient (its default resolution is
only informative: the input size comes from the data). Channels go through ``round_filters``
(multiples of 8, never below 90% of the scaled value), block repeats through
``ceil(depth_coefficient * repeats)``. ``model.width`` multiplies the variant's width coefficient
(1.0 = the reference model).

Blocks are MBConv: 1x1 expansion (unless the ratio is 1), depthwise conv, squeeze-excitation
(ratio 0.25 of the block's input channels, with bias), 1x1 projection; swish activations,
BatchNorm (momentum 0.99 unless ``model.bn_momentum`` says otherwise, epsilon 1e-3), and an identity shortcut with stochastic depth
(drop-connect, one draw per example) where shapes allow. The drop rate of block ``b`` of ``B``
is ``model.stochastic_depth * b / B``, as in the reference. Stride-2 convs pad like TF 'SAME'
(the reference's ``correct_pad``). Head: 1x1 conv to round_filters(1280), BN, swish, global
average pool, dropout (``model.dropout``; the variant's reference rate is in
``efficientnet_defaults``), dense.

Taps ``stage1``..``stage4``: the last feature map at strides 4, 8, 16 and 32 (16, 8, 4 and 2
pixels for a 64x64 input); ``stage4`` is the head conv's output, the map that gets pooled.
"""

from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from sweeps.base import ConfigError
from trainer.models.common import classifier_head

# variant -> (width coefficient, depth coefficient, reference resolution, dropout)
VARIANTS: dict[str, tuple[float, float, int, float]] = {
    "b0": (1.0, 1.0, 224, 0.2),
    "b1": (1.0, 1.1, 240, 0.2),
    "b2": (1.1, 1.2, 260, 0.3),
    "b3": (1.2, 1.4, 300, 0.3),
    "b4": (1.4, 1.8, 380, 0.4),
    "b5": (1.6, 2.2, 456, 0.4),
    "b6": (1.8, 2.6, 528, 0.5),
    "b7": (2.0, 3.1, 600, 0.5),
}

# (kernel, repeats, channels in, channels out, expand ratio, stride), SE ratio 0.25 everywhere.
BLOCKS = (
    (3, 1, 32, 16, 1, 1),
    (3, 2, 16, 24, 6, 2),
    (5, 2, 24, 40, 6, 2),
    (3, 3, 40, 80, 6, 2),
    (5, 3, 80, 112, 6, 1),
    (5, 4, 112, 192, 6, 2),
    (3, 1, 192, 320, 6, 1),
)
SE_RATIO = 0.25
DIVISOR = 8
BN_MOMENTUM = 0.99
BN_EPSILON = 1e-3
TAP_STRIDES = (4, 8, 16, 32)

# tensorflow/tpu's initialisers (efficientnet_model.py:61-82: a plain normal of variance
# 2 / fan_out, not truncated). Flax's depthwise kernel is (k, k, 1, C) where TF's is (k, k, C, 1),
# so TF's fan_out (k*k) is flax's fan_in there.
_CONV_INIT = nn.initializers.variance_scaling(2.0, "fan_out", "normal")
_DEPTHWISE_INIT = nn.initializers.variance_scaling(2.0, "fan_in", "normal")
_DENSE_INIT = nn.initializers.variance_scaling(1.0 / 3.0, "fan_out", "uniform")


def check(fields: dict[str, Any], image_size: int | None = None) -> None:
    """One-line ``ConfigError`` for a variant that is not B0..B7."""
    if fields["variant"] not in VARIANTS:
        raise ConfigError(
            f"model.variant={fields['variant']!r} is not a supported EfficientNet; allowed: "
            + ", ".join(VARIANTS)
        )


def build(fields: dict[str, Any], num_classes: int, dtype: Any) -> EfficientNet:
    return EfficientNet(
        variant=fields["variant"],
        num_classes=num_classes,
        width=float(fields["width"]),
        dropout=float(fields["dropout"]),
        stochastic_depth=float(fields["stochastic_depth"]),
        dtype=dtype,
        bn_momentum=float(fields["bn_momentum"]) or BN_MOMENTUM,
    )


def tap_names(fields: dict[str, Any]) -> list[str]:
    return [f"stage{i + 1}" for i in range(len(TAP_STRIDES))]


def efficientnet_defaults(variant: str) -> dict[str, float | int]:
    """The reference scaling of ``variant``: width, depth, resolution and dropout rate."""
    width, depth, resolution, dropout = VARIANTS[variant]
    return {"width": width, "depth": depth, "resolution": resolution, "dropout": dropout}


def round_filters(filters: int, width: float) -> int:
    filters *= width
    new = max(DIVISOR, int(filters + DIVISOR / 2) // DIVISOR * DIVISOR)
    if new < 0.9 * filters:
        new += DIVISOR
    return int(new)


def round_repeats(repeats: int, depth: float) -> int:
    return int(math.ceil(depth * repeats))


def _same_pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TF/XLA 'SAME' padding of one spatial dimension: the odd pixel goes after."""
    total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class DepthwiseConv(nn.Module):
    """``nn.Conv(C, (k, k), strides, padding="SAME", feature_group_count=C, use_bias=False)``
    with the same parameter (``kernel``, shape (k, k, 1, C)). On the CPU it is k*k shifted
    multiply-adds: XLA:CPU's grouped convolution is 2-45x slower forward and backward at
    EfficientNet's shapes (docs/performance.md); elsewhere the convolution itself."""

    kernel_size: int
    strides: int = 1
    kernel_init: Any = _DEPTHWISE_INIT
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: Any) -> Any:
        k, s, c = self.kernel_size, self.strides, x.shape[-1]
        kernel = self.param("kernel", self.kernel_init, (k, k, 1, c), jnp.float32)
        x, kernel = nn.dtypes.promote_dtype(x, kernel, dtype=self.dtype)
        if jax.default_backend() != "cpu":
            return lax.conv_general_dilated(
                x, kernel, (s, s), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"),
                feature_group_count=c,
            )  # fmt: skip
        (h0, h1), (w0, w1) = _same_pads(x.shape[1], k, s), _same_pads(x.shape[2], k, s)
        x = jnp.pad(x, ((0, 0), (h0, h1), (w0, w1), (0, 0)))
        ho, wo = (x.shape[1] - k) // s + 1, (x.shape[2] - k) // s + 1
        out = None
        for i in range(k):
            for j in range(k):
                tap = x[:, i : i + s * (ho - 1) + 1 : s, j : j + s * (wo - 1) + 1 : s, :]
                out = tap * kernel[i, j, 0] if out is None else out + tap * kernel[i, j, 0]
        return out


def _conv_bn(
    x: Any,
    prefix: str,
    features: int,
    kernel: int,
    train: bool,
    dtype: Any,
    *,
    momentum: float = BN_MOMENTUM,
    kernel_init: Any = _CONV_INIT,
    depthwise: bool = False,
    **conv_kwargs: Any,
) -> Any:
    """The conv ``{prefix}_conv`` (no bias; ``depthwise``: a ``DepthwiseConv``, 'SAME' padded)
    and its BatchNorm ``{prefix}_bn``. Call it inside a compact ``__call__``: the layers become
    that module's submodules."""
    if depthwise:
        stride = conv_kwargs.get("strides", (1, 1))[0]
        x = DepthwiseConv(kernel, stride, kernel_init, dtype, name=f"{prefix}_conv")(x)
    else:
        x = nn.Conv(
            features,
            (kernel, kernel),
            use_bias=False,
            kernel_init=kernel_init,
            dtype=dtype,
            name=f"{prefix}_conv",
            **conv_kwargs,
        )(x)
    return nn.BatchNorm(
        use_running_average=not train,
        momentum=momentum,
        epsilon=BN_EPSILON,
        dtype=dtype,
        name=f"{prefix}_bn",
    )(x)


class MBConv(nn.Module):
    channels_in: int
    channels_out: int
    kernel: int
    strides: int
    expand_ratio: int
    drop_rate: float
    dtype: Any = jnp.float32
    bn_momentum: float = BN_MOMENTUM

    @nn.compact
    def __call__(self, x, train: bool):
        inputs = x
        m = self.bn_momentum
        channels = self.channels_in * self.expand_ratio
        if self.expand_ratio != 1:
            x = nn.swish(_conv_bn(x, "expand", channels, 1, train, self.dtype, momentum=m))
        x = _conv_bn(
            x,
            "depthwise",
            channels,
            self.kernel,
            train,
            self.dtype,
            momentum=m,
            kernel_init=_DEPTHWISE_INIT,
            strides=(self.strides, self.strides),
            depthwise=True,
        )
        x = nn.swish(x)

        se_channels = max(1, int(self.channels_in * SE_RATIO))
        se = jnp.mean(x, axis=(1, 2), keepdims=True)
        se = nn.Conv(
            se_channels, (1, 1), kernel_init=_CONV_INIT, dtype=self.dtype, name="se_reduce"
        )(se)
        se = nn.Conv(channels, (1, 1), kernel_init=_CONV_INIT, dtype=self.dtype, name="se_expand")(
            nn.swish(se)
        )
        x = x * nn.sigmoid(se)

        x = _conv_bn(x, "project", self.channels_out, 1, train, self.dtype, momentum=m)
        if self.strides == 1 and self.channels_in == self.channels_out:
            # Drop-connect: the whole residual branch of an example, rescaled by 1/(1-rate).
            x = nn.Dropout(self.drop_rate, broadcast_dims=(1, 2, 3), deterministic=not train)(x)
            x = x + inputs
        return x


class EfficientNet(nn.Module):
    variant: str
    num_classes: int
    width: float = 1.0  # multiplies the variant's width coefficient
    dropout: float = 0.0
    stochastic_depth: float = 0.0
    dtype: Any = jnp.float32
    bn_momentum: float = BN_MOMENTUM

    @nn.compact
    def __call__(self, x, train: bool = False, taps: bool = False):
        width_coef, depth_coef, _, _ = VARIANTS[self.variant]
        width_coef *= self.width
        x = jnp.asarray(x, self.dtype)
        stem = round_filters(32, width_coef)
        m = self.bn_momentum
        x = _conv_bn(
            x, "stem", stem, 3, train, self.dtype, momentum=m, strides=(2, 2), padding="SAME"
        )
        x = nn.swish(x)
        stride = 2

        last_at: dict[int, Any] = {}
        total = sum(round_repeats(r, depth_coef) for _, r, *_ in BLOCKS)
        index = 0
        for g, (kernel, repeats, c_in, c_out, expand, first_stride) in enumerate(BLOCKS):
            c_in, c_out = round_filters(c_in, width_coef), round_filters(c_out, width_coef)
            for j in range(round_repeats(repeats, depth_coef)):
                strides = first_stride if j == 0 else 1
                x = MBConv(
                    channels_in=c_in if j == 0 else c_out,
                    channels_out=c_out,
                    kernel=kernel,
                    strides=strides,
                    expand_ratio=expand,
                    drop_rate=self.stochastic_depth * index / total,
                    dtype=self.dtype,
                    bn_momentum=m,
                    name=f"group{g + 1}_block{j + 1}",
                )(x, train)
                stride *= strides
                last_at[stride] = x
                index += 1

        head = round_filters(1280, width_coef)
        x = nn.swish(_conv_bn(x, "head", head, 1, train, self.dtype, momentum=m))
        last_at[stride] = x
        features = {f"stage{i + 1}": last_at[s] for i, s in enumerate(TAP_STRIDES)}
        return classifier_head(
            jnp.mean(x, axis=(1, 2)),
            features,
            num_classes=self.num_classes,
            dropout=self.dropout,
            train=train,
            dtype=self.dtype,
            kernel_init=_DENSE_INIT,
            taps=taps,
        )
