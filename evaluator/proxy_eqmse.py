"""The embedded proxy's equal-MSE categories: a benign change against a visible distortion.

Why these triplets and what the judge says is in ``evaluator.proxy``'s docstring. Here: how a
pair at equal error is made. Both images are solved for, on their final uint8 pixels, against
the project's own ``l2`` (``evaluator.distances.lab_l2`` of ``lpips_lab``: LPIPS's Lab L2, the
``l2`` reference row), so that reference is at chance by construction:

1. The benign change's one parameter (luminance offset, contrast gain, gamma exponent, shift
   length) is solved until its ``l2`` is within 10 % of the level. A patch where it cannot get
   there inside its allowed range (a smooth patch needs more than a 2 px shift) is replaced.
2. The visible distortion (blur, JPEG, Gaussian or impulse noise, drawn at random) is made at
   the first rung of its ladder (from the level's) whose error reaches the benign one's, then
   its error field is scaled by a in (0, 1] (``ref + a (distorted - ref)``) until its ``l2`` is
   the benign one's times ``1 -/+ 0.5 %``, within 0.45 %. The two differ by 0.05-0.95 %, and
   which one is larger follows a balanced schedule (half the triplets each way at every
   level), so pixel L2 picks the benign image half the time.

The visible distortions are achromatic where they can be (grey noise, black or white
impulses, JPEG on the lightness channel; blur is blur): the papers' demonstrations are on
greyscale images, and at equal Lab error colour noise would put most of its error into a* and
b*. Measured on the first build, which had per-channel noise and RGB JPEG: at equal ``l2`` the
benign image then had 6-7x the RGB MSE of the noisy one (2-3x of the JPEG one), so the "visible"
image was the fainter one in lightness. Now the median ratio of the two RGB MSEs is 1.0 +/- 0.2
for every pair of kinds (docs/proxy.md).
"""

from __future__ import annotations

import io
import math

import numpy as np

from evaluator.proxy_distortions import (
    CENTRE,
    MARGIN,
    PATCH,
    crop,
    gaussian_blur,
    pick_patch,
    to_uint8,
)

BENIGN = ("luminance", "contrast", "gamma", "shift")
VISIBLE = ("blur", "jpeg", "noise", "impulse")
PREFIX = "eqmse_"
EQMSE_CATEGORIES = tuple(PREFIX + b for b in BENIGN)

LEVELS = (1.5, 2.5, 4.0)  # RMS Lab difference per channel; l2 = 0.5 (rms / 100)^2
UNSURE_JUDGE = 0.9  # share preferring the benign image at LEVELS[0]; 1.0 above
LEVEL_TOL = 0.1  # the benign change's l2 is within 10 % of the level...
GAP = 0.005  # ...the visible one's is the benign one's times 1 -/+ 0.5 %...
PAIR_TOL = 0.0045  # ...within 0.45 %: the two differ by 0.05-0.95 %

LUMINANCE_MAX = 0.10  # offset, of the 0..1 range
CONTRAST_MAX = 0.6  # gain 1 -> 1.6 around each channel's mean
GAMMA_MAX = math.log(1.35)  # exponent 1/1.35 -> 1.35
SHIFT_MAX = 1.9  # px, in a random direction
BLUR_RUNGS = (1.0, 2.0, 4.0)  # Gaussian sigma, px
JPEG_RUNGS = (50, 20, 8, 3)  # quality, of the lightness (Y) channel
NOISE_RUNGS = (0.03, 0.06, 0.12)  # sigma, the same on R, G and B
IMPULSE_RUNGS = (0.01, 0.03, 0.08)  # share of pixels set to black or white
# Where the solve for a benign change starts, as a share of its range, per level: about the
# median solution on the val photos (only the number of steps depends on it).
START = {
    "luminance": (0.25, 0.42, 0.67),
    "contrast": (0.34, 0.59, 0.7),
    "gamma": (0.24, 0.42, 0.66),
    "shift": (0.19, 0.32, 0.45),
}
MAX_STEPS = 12
HOPELESS = 1.2  # give up when the next step would be this far beyond t_max
MAX_PATCHES = 500


def level_l2(level: int) -> float:
    """The ``l2`` value of ``LEVELS[level]``."""
    return 0.5 * (LEVELS[level] / 100.0) ** 2


def schedule(n: int, rng) -> list[tuple[int, bool]]:
    """(level, benign_has_larger_l2) per triplet: levels in turn, each way equally often."""
    plan = [(i % len(LEVELS), (i // len(LEVELS)) % 2 == 1) for i in range(n)]
    return [plan[int(i)] for i in rng.permutation(n)]


# ----------------------------------------------------------------------------- benign changes


def _luminance(win, patch, rng):
    sign = float(rng.choice((-1.0, 1.0)))
    return (lambda t: patch + sign * t), LUMINANCE_MAX


def _contrast(win, patch, rng):
    mean = patch.mean(axis=(0, 1), keepdims=True)
    return (lambda t: mean + (1.0 + t) * (patch - mean)), CONTRAST_MAX


def _gamma(win, patch, rng):
    sign = float(rng.choice((-1.0, 1.0)))
    base = np.clip(patch, 0.0, 1.0)
    return (lambda t: base ** math.exp(sign * t)), GAMMA_MAX


def _cubic_sample(coef: np.ndarray, s: float, axis: int) -> np.ndarray:
    """The patch's rows (axis 0) or columns (axis 1) of the cubic B-spline with coefficients
    ``coef`` (the window), sampled ``s`` px further along that axis."""
    n = math.floor(s)
    f = s - n
    weights = (
        (1 - f) ** 3 / 6,
        (3 * f**3 - 6 * f**2 + 4) / 6,
        (-3 * f**3 + 3 * f**2 + 3 * f + 1) / 6,
        f**3 / 6,
    )
    out = 0.0
    for k, w in zip(range(-1, 3), weights, strict=True):
        lo = MARGIN + n + k
        out = out + w * (coef[lo : lo + PATCH] if axis == 0 else coef[:, lo : lo + PATCH])
    return out


def _shift(win, patch, rng):
    # Cubic-spline interpolation (coefficients once per window, then a separable 4-tap filter
    # per shift): a sub-pixel shift that does not blur the way a linear one would.
    from scipy import ndimage

    angle = float(rng.uniform(0.0, 2.0 * math.pi))
    dy, dx = math.sin(angle), math.cos(angle)
    coef = ndimage.spline_filter1d(win, order=3, axis=0, mode="mirror")
    coef = ndimage.spline_filter1d(coef, order=3, axis=1, mode="mirror")

    def render(t):  # the scene moved by t px along (dy, dx): out(y, x) = in(y - t dy, x - t dx)
        return _cubic_sample(_cubic_sample(coef, -t * dy, 0), -t * dx, 1)

    return render, SHIFT_MAX


BENIGN_FAMILIES = {"luminance": _luminance, "contrast": _contrast, "gamma": _gamma, "shift": _shift}


# ----------------------------------------------------------------------------- visible ones


def _impulse_rungs(win, patch, rng, densities):
    u = rng.random(patch.shape[:2])
    white = rng.random(patch.shape[:2]) < 0.5
    for density in densities:
        out = patch.copy()
        hit = u < density
        out[hit] = np.where(white[hit], 1.0, 0.0)[:, None]
        yield out


def _jpeg_luma(x: np.ndarray, quality: int) -> np.ndarray:
    """JPEG blocking in lightness only: Y of YCbCr compressed as a grey JPEG, Cb and Cr kept."""
    from PIL import Image

    y, cb, cr = Image.fromarray(to_uint8(x)).convert("YCbCr").split()
    buf = io.BytesIO()
    y.save(buf, format="JPEG", quality=quality)
    buf.seek(0)
    with Image.open(buf) as im:
        y = im.convert("L")
    return np.asarray(Image.merge("YCbCr", (y, cb, cr)).convert("RGB"), np.float32) / 255.0


def _rungs(visible, win, patch, rng, first):
    """The visible distortion of the patch at each rung of its ladder from ``first`` up. All
    achromatic where the distortion allows (noise and impulses grey, JPEG on lightness): the
    papers' demonstrations are greyscale, and colour noise would spend most of its Lab error on
    a* and b*, leaving its lightness error a fraction of the benign change's at equal l2."""
    if visible == "blur":
        return (gaussian_blur(win, s)[CENTRE] for s in BLUR_RUNGS[first:])
    if visible == "jpeg":
        return (_jpeg_luma(win, q)[CENTRE] for q in JPEG_RUNGS[first:])
    if visible == "noise":
        field = rng.normal(0.0, 1.0, size=patch.shape[:2] + (1,)).astype(np.float32)
        return (patch + s * field for s in NOISE_RUNGS[first:])
    return _impulse_rungs(win, patch, rng, IMPULSE_RUNGS[first:])


# ----------------------------------------------------------------------------- solving


class _Error:
    """``l2`` of rendered float patches to a reference, on their uint8 pixels."""

    def __init__(self, ref_u8: np.ndarray):
        from evaluator.distances import lpips_lab

        self._lab = lpips_lab
        self.ref_lab = lpips_lab(ref_u8[None])

    def __call__(self, patch: np.ndarray) -> tuple[np.ndarray, float]:
        from evaluator.distances import lab_l2

        img = to_uint8(patch)
        return img, float(lab_l2(self._lab(img[None]), self.ref_lab)[0])


def solve(render, err: _Error, target: float, tol: float, t0: float, t_max: float):
    """``(uint8 image, l2)`` of ``render(t)`` with l2 within ``tol`` (relative) of ``target``
    for some 0 < t <= t_max, or None. l2 grows about as t^2 for small t, so each step tries
    ``t sqrt(target / l2)``, falling back to bisection inside the bracket found so far."""
    lo, hi, t = 0.0, None, min(t0, t_max)
    for _ in range(MAX_STEPS):
        img, m = err(render(t))
        if abs(m / target - 1.0) <= tol:
            return img, m
        nxt = t * math.sqrt(target / m) if m > 0 else 2.0 * t
        if m < target:
            if t >= t_max or nxt > HOPELESS * t_max:
                return None
            lo = t
        else:
            hi = t
        if hi is not None and not lo < nxt < hi:
            nxt = 0.5 * (lo + hi)
        t = min(nxt, t_max)
    return None


def _visible(visible, win, patch, err, target, rng, level):
    # The ladder starts at the level's rung: a milder one rarely reaches it.
    for dist in _rungs(visible, win, patch, rng, level):
        img, m = err(dist)
        if abs(m / target - 1.0) <= PAIR_TOL:
            return img, m
        if m > target:
            blend = lambda a, d=dist: patch + a * (d - patch)  # noqa: E731
            return solve(blend, err, target, PAIR_TOL, math.sqrt(target / m), 1.0)
    return None


def eqmse_triplet(category, sources, rng, level, benign_larger):
    """(ref, p0, p1, judge, facts): the benign change named by ``category`` and a visible
    distortion at equal ``l2`` (level ``level``); the judge prefers the benign one. ``facts``:
    the level, the visible kind, which image is the benign one."""
    family = BENIGN_FAMILIES[category.removeprefix(PREFIX)]
    target = level_l2(level)
    for _ in range(MAX_PATCHES):
        img, y, x = pick_patch(sources, rng)
        win = crop(img, y, x, MARGIN)
        patch = win[CENTRE]
        ref = to_uint8(patch)
        err = _Error(ref)
        render, t_max = family(win, patch, rng)
        t0 = START[category.removeprefix(PREFIX)][level] * t_max
        ben = solve(render, err, target, LEVEL_TOL, t0, t_max)
        if ben is None:
            continue
        aim = ben[1] * (1.0 - GAP if benign_larger else 1.0 + GAP)
        kind = VISIBLE[rng.integers(len(VISIBLE))]
        vis = _visible(kind, win, patch, err, aim, rng, level)
        if vis is None:
            continue
        benign_is_p1 = bool(rng.random() < 0.5)
        p = UNSURE_JUDGE if level == 0 else 1.0
        judge = p if benign_is_p1 else 1.0 - p
        p0, p1 = (vis[0], ben[0]) if benign_is_p1 else (ben[0], vis[0])
        facts = {"level": level, "visible": kind, "benign_is_p1": benign_is_p1}
        return ref, p0, p1, judge, facts
    raise RuntimeError(f"{category}: no patch out of {MAX_PATCHES} reaches level {level}")
