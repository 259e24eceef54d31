"""ResNet v1 as in tensorflow/tpu's ``resnet_model`` (the study's models), in Flax Linen.

Layout (all convs without bias, each followed by BatchNorm, momentum 0.9 unless
``model.bn_momentum`` says otherwise, epsilon 1e-5):

* stem: 7x7/2 conv with 64 channels, BN, ReLU, 3x3/2 max-pool (SAME);
* four stages of residual blocks with 64/128/256/512 base channels and strides 1/2/2/2; the
  first block of every stage has a projection shortcut (1x1 conv + BN), as in tensorflow/tpu,
  which is why ResNet-18 has 4,224 more parameters than torchvision's;
* global average pool, dropout (``model.dropout``), dense layer (normal(0.01) init).

Convs pad ``(k-1)//2`` on both sides (tensorflow/tpu's ``conv2d_fixed_padding``), so a 64x64
input gives stages of 16, 8, 4 and 2 pixels. The stride of a bottleneck block sits in its 3x3
conv. The last BN of every block starts with a zero scale.

Block kinds: ``single`` (one 3x3 conv: the study's ResNet-2..6, depth = 2 + number of blocks),
``basic`` (two 3x3 convs: 10, 18, 34) and ``bottleneck`` (1x1, 3x3, 1x1 with 4x expansion:
14, 26, 50, 101, 152, 200).

Taps: ``stage1``..``stageN``, the output of each stage (ResNet-3..5 have 1..3 stages);
ResNet-2 has no stage and taps ``stem`` (after the max-pool, 16x16x64 for 64x64).

Checked against tensorflow/tpu's models/official/resnet/resnet_model.py at commit 0325bff (pull
request 991, the study's code): same layers, order, padding, BN settings and head, no
difference found; tests/test_tf_import.py compares logits and taps with that network built in
TensorFlow (ResNet-6/18/50, within 1e-5). ``resnet_tf`` reads its TF checkpoints into this model.

``model.skip=false`` (the study's no-skip ResNets, Fig. 16) removes every shortcut: a block is
``relu(main path)`` with no addition, and the projection shortcuts (1x1 conv + BN) are removed
too, so no block adds anything to its input. The last BN of a block then starts with scale 1:
with zero scales and no shortcut, every block would output relu(0) = 0 and no gradient would
reach any layer. With ``skip`` true (the default) the computation is exactly as above.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from sweeps.base import ConfigError
from trainer.models.common import classifier_head, scaled_channels

# depth -> (block kind, blocks per stage)
LAYOUTS: dict[int, tuple[str, tuple[int, ...]]] = {
    2: ("single", ()),
    3: ("single", (1,)),
    4: ("single", (1, 1)),
    5: ("single", (1, 1, 1)),
    6: ("single", (1, 1, 1, 1)),
    10: ("basic", (1, 1, 1, 1)),
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    14: ("bottleneck", (1, 1, 1, 1)),
    26: ("bottleneck", (2, 2, 2, 2)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
    200: ("bottleneck", (3, 24, 36, 3)),
}
DEPTHS = tuple(sorted(LAYOUTS))

BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5


def check(fields: dict[str, Any], image_size: int | None = None) -> None:
    """One-line ``ConfigError`` for a depth without a layout or a variant (ResNets have none)."""
    if fields["depth"] not in LAYOUTS:
        raise ConfigError(
            f"model.depth={fields['depth']!r} is not a supported ResNet depth; allowed: "
            + ", ".join(map(str, DEPTHS))
        )
    if fields["variant"]:
        raise ConfigError(
            f"model.variant={fields['variant']!r} is not allowed for resnet; expected '' "
            "(depth and width select the model)"
        )


def build(fields: dict[str, Any], num_classes: int, dtype: Any) -> ResNet:
    return ResNet(
        depth=int(fields["depth"]),
        num_classes=num_classes,
        width=float(fields["width"]),
        dropout=float(fields["dropout"]),
        dtype=dtype,
        skip=bool(fields["skip"]),
        bn_momentum=float(fields["bn_momentum"]) or BN_MOMENTUM,
    )


def tap_names(fields: dict[str, Any]) -> list[str]:
    _, stages = LAYOUTS[int(fields["depth"])]
    return [f"stage{i + 1}" for i in range(len(stages))] or ["stem"]


def _pad(kernel: int) -> tuple[tuple[int, int], tuple[int, int]]:
    # tensorflow/tpu's fixed padding: (k-1)//2 on each side, independent of the input size.
    p = (kernel - 1) // 2
    return ((p, p), (p, p))


class ResidualBlock(nn.Module):
    """One residual block of kind ``single``, ``basic`` or ``bottleneck``."""

    kind: str
    channels: int  # the block's base channels (bottleneck output is 4x)
    out_channels: int
    strides: int
    projection: bool
    dtype: Any = jnp.float32
    skip: bool = True
    bn_momentum: float = BN_MOMENTUM

    @nn.compact
    def __call__(self, x, train: bool):
        conv = partial(nn.Conv, use_bias=False, dtype=self.dtype)
        norm = partial(
            nn.BatchNorm,
            use_running_average=not train,
            momentum=self.bn_momentum,
            epsilon=BN_EPSILON,
            dtype=self.dtype,
        )
        last_init = nn.initializers.zeros if self.skip else nn.initializers.ones
        s = (self.strides, self.strides)
        shortcut = x
        if self.projection and self.skip:
            shortcut = conv(self.out_channels, (1, 1), s, padding=_pad(1), name="proj_conv")(x)
            shortcut = norm(name="proj_bn")(shortcut)

        if self.kind == "single":
            y = conv(self.out_channels, (3, 3), s, padding=_pad(3), name="conv1")(x)
            y = norm(scale_init=last_init, name="bn1")(y)
        elif self.kind == "basic":
            y = conv(self.channels, (3, 3), s, padding=_pad(3), name="conv1")(x)
            y = nn.relu(norm(name="bn1")(y))
            y = conv(self.out_channels, (3, 3), padding=_pad(3), name="conv2")(y)
            y = norm(scale_init=last_init, name="bn2")(y)
        else:
            y = conv(self.channels, (1, 1), padding=_pad(1), name="conv1")(x)
            y = nn.relu(norm(name="bn1")(y))
            y = conv(self.channels, (3, 3), s, padding=_pad(3), name="conv2")(y)
            y = nn.relu(norm(name="bn2")(y))
            y = conv(self.out_channels, (1, 1), padding=_pad(1), name="conv3")(y)
            y = norm(scale_init=last_init, name="bn3")(y)
        return nn.relu(y + shortcut) if self.skip else nn.relu(y)


class ResNet(nn.Module):
    """ResNet v1 of ``depth`` (one of ``DEPTHS``) with channel multiplier ``width``."""

    depth: int
    num_classes: int
    width: float = 1.0
    dropout: float = 0.0
    dtype: Any = jnp.float32
    skip: bool = True
    bn_momentum: float = BN_MOMENTUM

    @nn.compact
    def __call__(self, x, train: bool = False, taps: bool = False):
        kind, stages = LAYOUTS[self.depth]
        ch = partial(scaled_channels, width=self.width)
        x = jnp.asarray(x, self.dtype)
        x = nn.Conv(
            ch(64),
            (7, 7),
            (2, 2),
            padding=_pad(7),
            use_bias=False,
            dtype=self.dtype,
            name="stem_conv",
        )(x)
        x = nn.BatchNorm(
            use_running_average=not train,
            momentum=self.bn_momentum,
            epsilon=BN_EPSILON,
            dtype=self.dtype,
            name="stem_bn",
        )(x)
        x = nn.max_pool(nn.relu(x), (3, 3), strides=(2, 2), padding="SAME")

        features = {} if stages else {"stem": x}
        for i, num_blocks in enumerate(stages):
            base = 64 * 2**i
            out = base * 4 if kind == "bottleneck" else base
            for j in range(num_blocks):
                x = ResidualBlock(
                    kind=kind,
                    channels=ch(base),
                    out_channels=ch(out),
                    strides=2 if (i > 0 and j == 0) else 1,
                    projection=j == 0,
                    dtype=self.dtype,
                    skip=self.skip,
                    bn_momentum=self.bn_momentum,
                    name=f"stage{i + 1}_block{j + 1}",
                )(x, train)
            features[f"stage{i + 1}"] = x

        return classifier_head(
            jnp.mean(x, axis=(1, 2)),
            features,
            num_classes=self.num_classes,
            dropout=self.dropout,
            train=train,
            dtype=self.dtype,
            kernel_init=nn.initializers.normal(stddev=0.01),
            taps=taps,
        )
