"""Pieces every model of the zoo shares: reading ``config.model``, dtypes, channel rounding."""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax.numpy as jnp
import ml_collections

from sweeps.base import ConfigError, check_values, schema

DTYPES = ("float32", "bfloat16")  # compute dtypes; parameters stay float32
_JNP_DTYPES = {name: getattr(jnp, name) for name in DTYPES}


def model_fields(model_cfg: Mapping[str, Any] | ml_collections.ConfigDict) -> dict[str, Any]:
    """``config.model`` as a plain dict, missing keys filled from the schema's own defaults
    (before any preset: width 1.0, float32, no dropout), each value checked by the schema.

    Accepts the ``ConfigDict`` section or the ``model`` dict of a saved ``config.json`` (the
    evaluator rebuilds models from that), so older or partial dicts still build.
    """
    if isinstance(model_cfg, ml_collections.ConfigDict):
        model_cfg = model_cfg.to_dict()
    if not isinstance(model_cfg, Mapping):
        raise ConfigError(f"model config must be a mapping, got {type(model_cfg).__name__}")
    fields = schema().model.to_dict()  # the schema itself, not a preset's values
    unknown = sorted(set(model_cfg) - set(fields))
    if unknown:
        raise ConfigError(
            f"unknown model config key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(fields))}"
        )
    fields.update(model_cfg)
    # Numbers read back from JSON or numpy are plain Python numbers from here on.
    fields = {k: (v.item() if hasattr(v, "item") else v) for k, v in fields.items()}
    check_values({f"model.{k}": v for k, v in fields.items()})
    return fields


def compute_dtype(name: str) -> Any:
    """The jnp dtype for ``config.model.dtype`` (activations; parameters stay float32)."""
    return _JNP_DTYPES[name]


def scaled_channels(channels: int, width: float) -> int:
    """``channels * width`` rounded to an int, at least 1."""
    return max(1, int(round(channels * width)))


def float32_taps(taps: Mapping[str, Any]) -> dict[str, Any]:
    """Taps are handed out in float32 whatever the compute dtype."""
    return {k: v.astype(jnp.float32) for k, v in taps.items()}


def classifier_head(
    x: Any,
    features: Mapping[str, Any],
    *,
    num_classes: int,
    dropout: float,
    train: bool,
    dtype: Any,
    kernel_init: Any,
    taps: bool,
) -> Any:
    """Dropout, the dense layer ``head`` and float32 logits, with the float32 taps where
    ``taps`` asks for them. Call it inside a model's compact ``__call__``: the layers become
    that model's submodules."""
    x = nn.Dropout(dropout, deterministic=not train)(x)
    logits = nn.Dense(num_classes, dtype=dtype, kernel_init=kernel_init, name="head")(x)
    logits = logits.astype(jnp.float32)
    if taps:
        return logits, float32_taps(features)
    return logits


def check_num_classes(num_classes: Any) -> int:
    if (
        isinstance(num_classes, bool)
        or not isinstance(num_classes, numbers.Integral)
        or num_classes < 1
    ):
        raise ConfigError(f"num_classes={num_classes!r} is not allowed; expected an integer >= 1")
    return int(num_classes)
