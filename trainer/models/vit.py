"""Vision Transformer in the google-research/vision_transformer and big_vision layout.

Patch embedding (a ``patch x patch`` conv with stride ``patch``), a learned CLS token (zero
init), learned position embeddings (normal(0.02)), pre-LayerNorm encoder blocks (LayerNorm eps
1e-6, multi-head self-attention, GELU MLP; xavier-uniform kernels), a final LayerNorm and a
zero-initialised linear head on the CLS token. ViT-B/16 at 224 with 1000 classes has exactly
86,567,656 parameters.

Dropout: ``encoder_dropout`` after the position embeddings, after attention and inside the MLP
(as ``dropout_rate`` in vision_transformer); ``dropout`` before the head.

Taps: ``block1``..``blockN``, the CLS token after each encoder block, shape ``[hidden]`` (the
last one before the final LayerNorm).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from sweeps.base import ConfigError
from trainer.models.common import classifier_head

# name -> (hidden size, depth, MLP size, heads), as in vision_transformer / big_vision.
VARIANTS: dict[str, tuple[int, int, int, int]] = {
    "Ti": (192, 12, 768, 3),
    "S": (384, 12, 1536, 6),
    "B": (768, 12, 3072, 12),
    "L": (1024, 24, 4096, 16),
    "H": (1280, 32, 5120, 16),
}
LN_EPSILON = 1e-6


def vit_shape(fields: dict[str, Any]) -> dict[str, int]:
    """Resolve ``config.model`` for a ViT into patch, hidden, depth, mlp_dim and heads.

    ``variant`` ('B/16', 'L/4', ...) gives the defaults; ``patch_size``, ``depth``,
    ``hidden_size``, ``mlp_dim`` and ``num_heads`` > 0 override them. Without an explicit
    ``hidden_size``, ``width`` scales the hidden size (rounded to a multiple of the head count)
    and, without an explicit ``mlp_dim``, the MLP size.
    """
    variant = fields["variant"]
    base, _, patch = str(variant).partition("/")
    if base not in VARIANTS or not patch.isdigit() or int(patch) < 1:
        raise ConfigError(
            f"model.variant={variant!r} is not a supported ViT; allowed: "
            f"<{'|'.join(VARIANTS)}>/<patch>, e.g. B/16, B/8, L/4"
        )
    hidden, depth, mlp_dim, heads = VARIANTS[base]
    width = float(fields["width"])
    heads = int(fields["num_heads"]) or heads
    if fields["hidden_size"]:
        hidden = int(fields["hidden_size"])
        if hidden % heads:
            raise ConfigError(
                f"model.hidden_size={hidden} is not supported with {heads} heads; allowed: a "
                "multiple of model.num_heads"
            )
    else:
        hidden = max(1, int(round(hidden * width / heads))) * heads
    return {
        "patch_size": int(fields["patch_size"]) or int(patch),
        "hidden_size": hidden,
        "depth": int(fields["depth"]) or depth,
        "mlp_dim": int(fields["mlp_dim"]) or max(1, int(round(mlp_dim * width))),
        "num_heads": heads,
    }


def check(fields: dict[str, Any], image_size: int | None = None) -> None:
    """One-line ``ConfigError`` for a variant, head count or patch that does not work."""
    shape = vit_shape(fields)
    patch = shape["patch_size"]
    if image_size is not None and image_size < patch:
        raise ConfigError(
            f"data.image_size={image_size} is smaller than the ViT patch size "
            f"{patch}; allowed: image_size >= patch size"
        )
    if image_size is not None and image_size % patch:
        # The patch conv would silently drop the last image_size % patch rows and columns.
        raise ConfigError(
            f"data.image_size={image_size} is not a multiple of the ViT patch size {patch}; "
            f"allowed: a multiple of {patch} (e.g. {image_size - image_size % patch})"
        )


def build(fields: dict[str, Any], num_classes: int, dtype: Any) -> ViT:
    return ViT(
        num_classes=num_classes,
        dropout=float(fields["dropout"]),
        encoder_dropout=float(fields["encoder_dropout"]),
        dtype=dtype,
        **vit_shape(fields),
    )


def tap_names(fields: dict[str, Any]) -> list[str]:
    return [f"block{i + 1}" for i in range(vit_shape(fields)["depth"])]


class MlpBlock(nn.Module):
    mlp_dim: int
    dropout: float
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool):
        dense = lambda n, name: nn.Dense(
            n,
            dtype=self.dtype,
            kernel_init=nn.initializers.xavier_uniform(),
            bias_init=nn.initializers.normal(stddev=1e-6),
            name=name,
        )
        y = nn.gelu(dense(self.mlp_dim, "fc1")(x))
        y = nn.Dropout(self.dropout, deterministic=not train)(y)
        y = dense(x.shape[-1], "fc2")(y)
        return nn.Dropout(self.dropout, deterministic=not train)(y)


class EncoderBlock(nn.Module):
    num_heads: int
    mlp_dim: int
    dropout: float
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool):
        y = nn.LayerNorm(epsilon=LN_EPSILON, dtype=self.dtype, name="ln1")(x)
        y = nn.MultiHeadDotProductAttention(
            num_heads=self.num_heads,
            dtype=self.dtype,
            kernel_init=nn.initializers.xavier_uniform(),
            deterministic=True,  # no dropout on attention weights (vision_transformer default)
            name="attention",
        )(y, y)
        y = nn.Dropout(self.dropout, deterministic=not train)(y)
        x = x + y
        y = nn.LayerNorm(epsilon=LN_EPSILON, dtype=self.dtype, name="ln2")(x)
        y = MlpBlock(self.mlp_dim, self.dropout, dtype=self.dtype, name="mlp")(y, train)
        return x + y


class ViT(nn.Module):
    num_classes: int
    patch_size: int
    hidden_size: int
    depth: int
    mlp_dim: int
    num_heads: int
    dropout: float = 0.0
    encoder_dropout: float = 0.0
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = False, taps: bool = False):
        p = self.patch_size
        if x.shape[1] < p or x.shape[2] < p:
            raise ValueError(
                f"image of {x.shape[1]}x{x.shape[2]} pixels is smaller than the ViT patch size {p}"
            )
        x = jnp.asarray(x, self.dtype)
        x = nn.Conv(
            self.hidden_size,
            (p, p),
            strides=(p, p),
            padding="VALID",
            dtype=self.dtype,
            name="embedding",
        )(x)
        n, h, w, c = x.shape
        x = x.reshape(n, h * w, c)
        cls = self.param("cls", nn.initializers.zeros, (1, 1, c))
        x = jnp.concatenate([jnp.tile(cls.astype(x.dtype), (n, 1, 1)), x], axis=1)
        pos = self.param("pos_embedding", nn.initializers.normal(stddev=0.02), (1, h * w + 1, c))
        x = x + pos.astype(x.dtype)
        x = nn.Dropout(self.encoder_dropout, deterministic=not train)(x)

        features = {}
        for i in range(self.depth):
            x = EncoderBlock(
                self.num_heads,
                self.mlp_dim,
                self.encoder_dropout,
                dtype=self.dtype,
                name=f"block{i + 1}",
            )(x, train)
            features[f"block{i + 1}"] = x[:, 0]
        x = nn.LayerNorm(epsilon=LN_EPSILON, dtype=self.dtype, name="encoder_norm")(x)
        return classifier_head(
            x[:, 0],
            features,
            num_classes=self.num_classes,
            dropout=self.dropout,
            train=train,
            dtype=self.dtype,
            kernel_init=nn.initializers.zeros,
            taps=taps,
        )
