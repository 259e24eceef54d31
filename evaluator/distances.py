"""Perceptual distances between two images' feature taps, and the pixel reference metrics.

Feature distances (jax, jitted, batched over the leading axis). A tap is an array (N, H, W, C)
or, for a ViT's CLS vector, (N, C), treated as a 1x1 spatial map. For each tap l with C_l
channels, ``unit(f)`` divides every spatial position's channel vector by its L2 norm + 1e-10:

* ``local`` (the study's Eq. 1, LPIPS without learned weights):
  ``mean_hw sum_c (unit(f0) - unit(f1))^2``.
* ``meanpool``: spatial mean first, then unit-normalise over channels,
  ``1/C_l sum_c (m0 - m1)^2``.
* ``style``: Gram matrices ``G = 1/(HW) sum_hw unit(f) unit(f)^T`` (C_l x C_l),
  ``1/C_l^2 ||G0 - G1||_F^2`` (computed without forming either Gram: see ``style_tap``).

A distance over several taps is the sum over taps of the per-tap distances.

``lin`` (LPIPS's learned calibration, ``evaluator.calibration``) is a distance only for a
checkpoint that was calibrated (``perceptual.calibrate``): ``mean_hw sum_c w_c (unit(f0) -
unit(f1))^2`` with fitted non-negative weights ``w`` per tap (``lin_tap``); with every ``w_c = 1``
it is ``local``. ``perceptual.distances`` lists the unlearned ones (``FEATURE_DISTANCES``) only.

Pixel reference metrics (numpy / scikit-image), computed the way LPIPS's ``test_dataset_model.py``
does for its published BAPPS rows (``--colorspace Lab``, the default there): the uint8 image goes
through torchvision's float32 ``ToTensor`` + ``Normalize(0.5, 0.5)`` and back through
``tensor2im`` (which truncates, so values 1..63 come back one lower), then
``skimage.color.rgb2lab`` and a float32 cast; ``l2`` is ``0.5 * mean((a/100 - b/100)^2)`` and
``ssim`` is ``(1 - SSIM(a, b, data_range=100, channels last)) / 2`` with scikit-image's defaults
(7x7 uniform window, sample covariance). ``psnr`` is minus the PSNR in dB of the uint8 RGB
values (peak 255; the MSE floored at 1e-10 so identical images give 148 dB, not infinity): not
one of LPIPS's rows, the classic baseline of TID2013 and KADID-10k.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from evaluator.names import (  # noqa: F401  (their owner; imported from here too)
    ALL_DISTANCES,
    FEATURE_DISTANCES,
    LEARNED_DISTANCES,
    PIXEL_METRICS,
)

EPS = 1e-10


def _spatial(f: jax.Array) -> jax.Array:
    """(N, C) -> (N, 1, 1, C); (N, H, W, C) unchanged."""
    if f.ndim == 2:
        return f[:, None, None, :]
    if f.ndim != 4:
        raise ValueError(f"a tap must be (N, C) or (N, H, W, C); got shape {f.shape}")
    return f


def unit_normalize(f: jax.Array, eps: float = EPS) -> jax.Array:
    """Divide each channel vector (last axis) by its L2 norm + eps, as LPIPS does."""
    return f / (jnp.sqrt(jnp.sum(f * f, axis=-1, keepdims=True)) + eps)


def local_tap(f0: jax.Array, f1: jax.Array) -> jax.Array:
    """Eq. 1 on one tap: (N,) of mean over space of the summed squared unit-feature difference."""
    n0 = unit_normalize(_spatial(f0).astype(jnp.float32))
    n1 = unit_normalize(_spatial(f1).astype(jnp.float32))
    return jnp.mean(jnp.sum((n0 - n1) ** 2, axis=-1), axis=(1, 2))


def channel_sq_diff(f0: jax.Array, f1: jax.Array) -> jax.Array:
    """(N, C): per channel, the mean over space of the squared unit-feature difference; its
    sum over channels is ``local_tap`` and its weighted sum ``lin_tap``."""
    n0 = unit_normalize(_spatial(f0).astype(jnp.float32))
    n1 = unit_normalize(_spatial(f1).astype(jnp.float32))
    return jnp.mean((n0 - n1) ** 2, axis=(1, 2))


def lin_tap(f0: jax.Array, f1: jax.Array, w: jax.Array) -> jax.Array:
    """LPIPS's calibrated distance on one tap, (N,): ``channel_sq_diff`` weighted by ``w`` (C,)
    (LPIPS applies its 1x1 weights per position, then averages over space: the same sum)."""
    return channel_sq_diff(f0, f1) @ w.astype(jnp.float32)


def meanpool_tap(f0: jax.Array, f1: jax.Array) -> jax.Array:
    """Spatial mean, unit-normalise over channels, 1/C-weighted squared distance: (N,)."""
    m0 = unit_normalize(jnp.mean(_spatial(f0).astype(jnp.float32), axis=(1, 2)))
    m1 = unit_normalize(jnp.mean(_spatial(f1).astype(jnp.float32), axis=(1, 2)))
    return jnp.sum((m0 - m1) ** 2, axis=-1) / m0.shape[-1]


def style_tap(f0: jax.Array, f1: jax.Array) -> jax.Array:
    """1/C^2 ||G0 - G1||_F^2 of the unit-feature Gram matrices: (N,).

    With P = H*W positions, A and B the (P x C) unit features, S = A + B and D = A - B:
    ``A^T A - B^T B = (X + X^T) / 2`` with ``X = S^T D``, so
    ``||A^T A - B^T B||_F^2 = (||X||_F^2 + tr(X X)) / 2``. Two things follow. The difference of
    the Grams is never formed by subtracting two nearly equal matrices (similar images have
    nearly equal Grams), so its rounding error is relative to the distance itself, not to the
    Grams; that lets the products run at the backend's default matmul precision (tensor cores
    on GPU/TPU) instead of full float32. And where C <= P it takes one C x C product instead of
    two Grams; where C > P the same identity in P x P kernels (``K_SS = S S^T`` etc.):
    ``||X||^2 = sum(K_SS * K_DD)`` and ``tr(X X) = sum(K_DS * K_DS^T)``, so deep taps with many
    channels and few positions stay cheap. Its accuracy at the default precision is in
    docs/performance.md; for float32 products on every backend run with
    ``JAX_DEFAULT_MATMUL_PRECISION=highest``.
    """
    a = unit_normalize(_spatial(f0).astype(jnp.float32))
    b = unit_normalize(_spatial(f1).astype(jnp.float32))
    n, h, w, c = a.shape
    p = h * w
    s = (a + b).reshape(n, p, c)
    d = (a - b).reshape(n, p, c)
    if c <= p:
        x = jnp.einsum("npc,npd->ncd", s, d, preferred_element_type=jnp.float32)
        sq = jnp.sum(x * x, axis=(1, 2)) + jnp.sum(x * jnp.swapaxes(x, 1, 2), axis=(1, 2))
    else:
        kss = jnp.einsum("npc,nqc->npq", s, s, preferred_element_type=jnp.float32)
        kdd = jnp.einsum("npc,nqc->npq", d, d, preferred_element_type=jnp.float32)
        kds = jnp.einsum("npc,nqc->npq", d, s, preferred_element_type=jnp.float32)
        sq = jnp.sum(kss * kdd, axis=(1, 2)) + jnp.sum(kds * jnp.swapaxes(kds, 1, 2), axis=(1, 2))
    # 1/2 from the identity, 1/P^2 from G = F^T F / P; >= 0 exactly, rounding aside.
    return jnp.maximum(sq, 0.0) / (2.0 * p * p * c * c)


TAP_FUNCTIONS = {"local": local_tap, "meanpool": meanpool_tap, "style": style_tap}


def total_distance(per_tap: Mapping[str, jax.Array]) -> jax.Array:
    """Sum over taps of per-tap distances."""
    return sum(per_tap[name] for name in sorted(per_tap))


# ----------------------------------------------------------------------------- pixel metrics


def _lpips_roundtrip_table() -> np.ndarray:
    # The exact float32 path of torchvision ToTensor + Normalize(0.5, 0.5) and LPIPS tensor2im.
    v = np.arange(256, dtype=np.float32) / np.float32(255.0)
    t = (v - np.float32(0.5)) / np.float32(0.5)
    return ((t + np.float32(1.0)) * np.float32(255.0 / 2.0)).astype(np.uint8)


_ROUNDTRIP = _lpips_roundtrip_table()


@functools.cache
def _linear_table() -> np.ndarray:
    # scikit-image's rgb2xyz first step (img_as_float64, then the sRGB curve) on the 256 values
    # after the round trip: by table it gives rgb2xyz's exact float64 values, 2x faster.
    from skimage.util import img_as_float64

    v = img_as_float64(_ROUNDTRIP)
    lin = v / 12.92
    high = v > 0.04045
    lin[high] = np.power((v[high] + 0.055) / 1.055, 2.4)
    return lin


def lpips_lab(images: np.ndarray) -> np.ndarray:
    """uint8 RGB (..., H, W, 3) -> CIE Lab float32, through LPIPS's tensor round trip: the
    values of ``skimage.color.rgb2lab`` on the round-tripped image, bit for bit (its float64
    operations in its order; the sRGB curve by table and both branches of the Lab curve by
    ``np.where`` make it 2.5x faster on small batches)."""
    from skimage import color
    from skimage.color.colorconv import xyz_from_rgb

    images = np.asarray(images)
    if images.dtype != np.uint8 or images.shape[-1] != 3:
        raise ValueError(
            f"pixel metrics need uint8 RGB images (..., H, W, 3); got {images.dtype} {images.shape}"
        )
    xyz = _linear_table()[images] @ xyz_from_rgb.T.astype(np.float64)
    arr = xyz / color.xyz_tristimulus_values(illuminant="D65", observer="2", dtype=np.float64)
    arr = np.where(arr > 0.008856, np.cbrt(arr), 7.787 * arr + 16.0 / 116.0)
    x, y, z = arr[..., 0], arr[..., 1], arr[..., 2]
    lab = np.stack([(116.0 * y) - 16.0, 500.0 * (x - y), 200.0 * (y - z)], axis=-1)
    return lab.astype(np.float32)


_CHUNK = 512  # images converted to Lab at a time (float64 Lab of all of BAPPS would be ~10 GB)


def lab_l2(la: np.ndarray, lb: np.ndarray) -> np.ndarray:
    """``l2`` between Lab batches (N, H, W, 3) from ``lpips_lab``: (N,) float64."""
    la = la.astype(np.float64) / 100.0
    lb = lb.astype(np.float64) / 100.0
    return 0.5 * np.mean((la - lb) ** 2, axis=(1, 2, 3))


def lab_dssim(la: np.ndarray, lb: np.ndarray) -> np.ndarray:
    """``(1 - SSIM) / 2`` between Lab batches (N, H, W, 3) from ``lpips_lab``: (N,) float64
    (scikit-image's SSIM one pair at a time: a batched rewrite was no quicker, it is memory-bound)."""
    from skimage.metrics import structural_similarity

    la, lb = la.astype(np.float64), lb.astype(np.float64)
    out = np.empty(len(la), dtype=np.float64)
    for i in range(len(la)):
        s = structural_similarity(la[i], lb[i], data_range=100.0, channel_axis=-1)
        out[i] = (1.0 - s) / 2.0
    return out


def rgb_neg_psnr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Minus the PSNR (dB, peak 255) between uint8 RGB batches: (N,) float64."""
    diff = a.astype(np.float64) - b.astype(np.float64)
    mse = np.maximum(np.mean(diff * diff, axis=(1, 2, 3)), 1e-10)
    return -10.0 * np.log10(255.0**2 / mse)


LAB_METRICS = {"l2": lab_l2, "ssim": lab_dssim}  # the pixel metrics computed on Lab images
RGB_METRICS = {"psnr": rgb_neg_psnr}  # ... and on the uint8 RGB values


def check_pixel_metrics(metrics: Sequence[str]) -> None:
    """A ValueError naming the first metric that is not a pixel metric, and the allowed ones."""
    unknown = [m for m in metrics if m not in PIXEL_FUNCTIONS]
    if unknown:
        raise ValueError(f"metric {unknown[0]!r} is unknown; allowed: {', '.join(PIXEL_FUNCTIONS)}")


def pixel_distances(
    metrics: Sequence[str], ref: np.ndarray, others: Sequence[np.ndarray]
) -> dict[str, list[np.ndarray]]:
    """``{metric: [d(ref, o) for o in others]}`` for pixel metrics on uint8 RGB batches
    (N, H, W, 3), each (N,) float64; ``_CHUNK`` images at a time, every image converted to Lab
    once for all the Lab metrics (a triplet: a third of the conversions of pairwise calls)."""
    check_pixel_metrics(metrics)
    if any(len(o) != len(ref) for o in others):
        sizes = ", ".join(str(len(x)) for x in (ref, *others))
        raise ValueError(f"pixel metrics need equal batches; got {sizes} images")
    lab = bool(set(metrics) & set(LAB_METRICS))
    parts: dict[str, list[list[np.ndarray]]] = {m: [[] for _ in others] for m in metrics}
    for i in range(0, len(ref), _CHUNK):
        r, os_ = ref[i : i + _CHUNK], [o[i : i + _CHUNK] for o in others]
        lr, lo = (lpips_lab(r), [lpips_lab(o) for o in os_]) if lab else (None, [])
        for m in metrics:
            for k, o in enumerate(os_):
                d = LAB_METRICS[m](lr, lo[k]) if m in LAB_METRICS else RGB_METRICS[m](r, o)
                parts[m][k].append(d)
    empty = np.zeros(0, np.float64)
    return {m: [np.concatenate(p) if p else empty for p in ps] for m, ps in parts.items()}


def pixel_pairs(metrics: Sequence[str], a: np.ndarray, b: np.ndarray) -> dict[str, np.ndarray]:
    """``{metric: d(a, b)}`` (``pixel_distances``)."""
    return {m: d for m, (d,) in pixel_distances(metrics, a, [b]).items()}


def pixel_triplets(
    metrics: Sequence[str], ref: np.ndarray, p0: np.ndarray, p1: np.ndarray
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{metric: (d(ref, p0), d(ref, p1))}`` (``pixel_distances``)."""
    return {m: (d0, d1) for m, (d0, d1) in pixel_distances(metrics, ref, [p0, p1]).items()}


def pixel_l2(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """LPIPS's Lab L2 between uint8 RGB image batches (N, H, W, 3): (N,) float64."""
    return pixel_pairs(("l2",), a, b)["l2"]


def pixel_ssim(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """LPIPS's Lab DSSIM ``(1 - SSIM) / 2`` between uint8 RGB batches (N, H, W, 3): (N,)."""
    return pixel_pairs(("ssim",), a, b)["ssim"]


def pixel_psnr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Minus the RGB PSNR (dB, peak 255) between uint8 batches (N, H, W, 3): (N,) float64."""
    return pixel_pairs(("psnr",), a, b)["psnr"]


PIXEL_FUNCTIONS = {"l2": pixel_l2, "ssim": pixel_ssim, "psnr": pixel_psnr}
