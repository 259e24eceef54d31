"""The exact pixel preprocessing shared by training, evaluation and the perceptual benchmarks."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

# ImageNet channel statistics (RGB, on [0, 1] pixels), as in the field's reference trainers.
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)


def normalize(images):
    """``(x / 255 - mean) / std`` per RGB channel, as float32.

    ``images``: (..., 3) uint8 pixels (or floats on the same 0..255 scale), numpy or jax.
    Jittable; returns a jax array.
    """
    x = jnp.asarray(images).astype(jnp.float32) / 255.0
    return (x - IMAGENET_MEAN) / IMAGENET_STD
