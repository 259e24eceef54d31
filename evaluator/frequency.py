"""The spatial-frequency probe (Kumar et al. 2022, Fig. 17; the filter of Yin et al. 2019, "A
Fourier perspective on model robustness"): top-1 on eval images low-pass or high-pass
filtered in the Fourier domain, divided by clean top-1.

Filter: per image and channel, the 2-D FFT of the uint8 pixels (0..255, before the trainer's
normalisation, as the study filters), ``fftshift``-ed so the zero frequency sits at index
S // 2; the low-pass keeps a centred square of edge r (indices ``S // 2 - r // 2`` up to
``+ r``), the high-pass everything else; inverse FFT, real part. The filtered image is used as
it is (not rounded or clipped), so the filter stays linear: the low-pass and high-pass of one r
add up to the image, and r = S is the identity up to float rounding. Radii: the fractions
``R_FRACTIONS`` of the image edge S (at 64: 4, 8, 16, 32, 40, 48, 56, 64). The trial's own eval split
at its training resolution, a class-balanced subset of ``perceptual.frequency_examples``
images (``trainer.data.stratified_subset``), each checkpoint's variables as trained.

Readout (``low_slope``): the least-squares slope of the low-pass curve (normalised accuracy)
against r / S over the radii with r / S in [5/8, 7/8] (r = 40, 48, 56 at 64: the study's
"slope at high r", 40-50): positive when the network still gains from the highest frequencies.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

R_FRACTIONS = (1 / 16, 1 / 8, 1 / 4, 1 / 2, 5 / 8, 3 / 4, 7 / 8, 1.0)
SLOPE_RANGE = (5 / 8, 7 / 8)
BATCH = 256  # images per jitted call (padded, one compile per model)


def radii(size: int) -> list[int]:
    """The filter edges r for images of edge ``size``: ``R_FRACTIONS`` of it, at least 1."""
    return sorted({max(1, int(round(f * size))) for f in R_FRACTIONS})


def lowpass_mask(size: int, r: int) -> np.ndarray:
    """(size, size) float32: 1 on the centred r x r square of the fftshifted spectrum."""
    if not 1 <= r <= size:
        raise ValueError(f"filter edge r={r} must be in [1, {size}]")
    m = np.zeros((size, size), np.float32)
    lo = size // 2 - r // 2
    m[lo : lo + r, lo : lo + r] = 1.0
    return m


def apply_mask(images, mask):
    """Images (N, S, S, C) on the 0..255 scale, filtered by ``mask`` (S, S) on the fftshifted
    spectrum of each channel; float32, real part. Jittable."""
    import jax.numpy as jnp

    x = jnp.asarray(images, jnp.float32)
    spec = jnp.fft.fftshift(jnp.fft.fft2(x, axes=(1, 2)), axes=(1, 2))
    spec = spec * jnp.asarray(mask, jnp.float32)[None, :, :, None]
    out = jnp.fft.ifft2(jnp.fft.ifftshift(spec, axes=(1, 2)), axes=(1, 2))
    return jnp.real(out).astype(jnp.float32)


_COMPILED: dict[Any, Any] = {}


def _counts_fn(model: Any):
    """Jitted ``f(variables, images, labels, valid, masks, clean) -> correct per mask``:
    correct predictions on each filtered version of the batch, or on the batch itself where
    ``clean`` is set (the unfiltered pixels, exactly). One ``lax.map`` over the masks: the
    model is traced and compiled once, and one filtered batch is in memory at a time."""
    key = repr(model)
    if key not in _COMPILED:
        import jax
        import jax.numpy as jnp

        from trainer.data import normalize

        def counts(variables, images, labels, valid, masks, clean):
            x = images.astype(jnp.float32)

            def one(args):
                mask, raw = args
                y = jnp.where(raw, x, apply_mask(x, mask))
                logits = model.apply(variables, normalize(y), train=False)
                return jnp.sum((jnp.argmax(logits, axis=-1) == labels) * valid)

            return jax.lax.map(one, (masks, clean))

        _COMPILED[key] = jax.jit(counts)
    return _COMPILED[key]


def low_slope(r_frac: list[float], low: list[float | None]) -> float | None:
    """Least-squares slope of ``low`` against ``r_frac`` over ``SLOPE_RANGE`` (None when fewer
    than two points there)."""
    pts = [
        (x, y)
        for x, y in zip(r_frac, low, strict=True)
        if y is not None and SLOPE_RANGE[0] - 1e-9 <= x <= SLOPE_RANGE[1] + 1e-9
    ]
    if len(pts) < 2:
        return None
    xs, ys = np.array([p[0] for p in pts]), np.array([p[1] for p in pts])
    return float(np.polyfit(xs, ys, 1)[0])


def subset(split: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
    """A class-balanced, deterministic ``n``-image subset of a ``trainer.data`` split."""
    from trainer.data.load import stratified_subset

    labels = np.asarray(split.labels)
    idx = stratified_subset(labels, min(n, len(labels)))
    return np.ascontiguousarray(split.images[idx]), labels[idx].astype(np.int32)


def frequency_probe(
    sm: Any, images: np.ndarray, labels: np.ndarray, split_info: dict[str, Any]
) -> dict[str, Any]:
    """The probe's block of ``perceptual/<step>.json`` (docs/file-contracts.md) for the
    ``ScoringModel`` ``sm`` on uint8 ``images`` (N, S, S, 3) with ``labels``."""
    import jax
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    from trainer.pipeline import DATA_AXIS

    t0 = time.time()
    size = int(images.shape[1])
    rs = radii(size)
    low_masks = [lowpass_mask(size, r) for r in rs]
    masks = np.stack([np.ones((size, size), np.float32), *low_masks, *(1.0 - m for m in low_masks)])
    clean_flags = np.arange(len(masks)) == 0  # the first "mask": the clean images
    fn = _counts_fn(sm.model)
    variables = sm.trained_variables_on_device()
    mesh = sm.mesh
    data = NamedSharding(mesh, P(DATA_AXIS))
    batch = -(-BATCH // mesh.size) * mesh.size
    consts = jax.device_put((masks, clean_flags), NamedSharding(mesh, P()))
    counts = np.zeros(len(masks), np.int64)
    for start in range(0, len(images), batch):
        x, y = images[start : start + batch], labels[start : start + batch]
        valid = np.zeros(batch, np.int32)
        valid[: len(x)] = 1
        pad = batch - len(x)
        x = np.concatenate([x, np.zeros((pad, *x.shape[1:]), x.dtype)])
        y = np.concatenate([y, np.zeros(pad, y.dtype)])
        counts += np.asarray(fn(variables, *jax.device_put((x, y, valid), data), *consts))
    n, clean, filtered = len(images), int(counts[0]), counts[1:]
    ratio = lambda k: round(float(k) / clean, 6) if clean else None
    low = [ratio(k) for k in filtered[: len(rs)]]
    high = [ratio(k) for k in filtered[len(rs) :]]
    slope = low_slope([r / size for r in rs], low)
    return {
        **split_info,
        "examples": n,
        "image_size": size,
        "clean_top1": round(100.0 * clean / n, 4) if n else None,
        "r": rs,
        "lowpass": low,
        "highpass": high,
        "low_slope": None if slope is None else round(slope, 6),
        "slope_range": list(SLOPE_RANGE),
        "wall_time_s": round(time.time() - t0, 2),
    }
