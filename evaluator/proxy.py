"""The embedded proxy benchmark: BAPPS-style 2AFC triplets built offline from public photos.

This is a PROXY, not BAPPS: its "judgements" come from a rule written below, not from people.
It exists so the whole pipeline (train -> score -> report) runs offline and quickly on a CPU;
real conclusions need BAPPS (``evaluator.bapps``).

Sources: the public-domain / CC0 photos bundled with scikit-image (``skimage.data``), each
resampled to a short side of 192 and of 320 pixels (a reference is a random 64x64 patch whose
pixel std is at least 12 of 255), split by name so that no photo is in both splits:

* val (scored): astronaut, chelsea, rocket, hubble_deep_field, stereo_motorcycle,
  immunohistochemistry, and the greyscale camera, coins, moon, text, page, brick, grass;
* train (the ``lin`` calibration fits on it; nothing scores it): coffee, retina, and the greyscale
  clock, gravel, cell. (``skimage.data.cat`` is chelsea under another name: in neither list.)

Severity categories (version 1's six: noise, blur, jpeg, color, contrast, warp; the table of
severities is in ``evaluator.proxy_distortions``): two severities (1..5) of one distortion, the
milder one "closer" (judge 1.0/0.0 when two or more levels apart, 0.8/0.2 when adjacent); in
half of them the milder image is also shifted by 1-2 px or has its brightness moved by 2-4 %.
Pixel error orders two severities of one distortion almost perfectly, so these alone make pixel
L2 look better than deep features (76.0 in version 1, above three of the embedded depth sweep's
four networks), the opposite of what BAPPS shows.

Equal-MSE categories (version 2): one image is a benign change of the reference, the other a
visible distortion, at equal pixel error (``evaluator.proxy_eqmse`` says how):

=================  ====================================================================
category           benign change (its range); the other image is blur, JPEG (of the
                   lightness), grey Gaussian noise or black-and-white impulse noise
=================  ====================================================================
eqmse_luminance    global luminance offset (up to 0.10 of the range, up or down)
eqmse_contrast     contrast stretch around each channel's mean (gain up to 1.6)
eqmse_gamma        gamma change (exponent 1/1.35 -> 1.35)
eqmse_shift        translation by under 2 px in a random direction (cubic interpolation)
=================  ====================================================================

They rest on a documented fact of human vision: at equal mean squared error, people barely
notice a change of mean luminance, of contrast, a mild gamma (point-wise tone) change or a small
translation, but clearly see blur, JPEG blocking and additive or impulse noise (Wang and Bovik,
"Mean squared error: love it or leave it?", IEEE Signal Processing Magazine 26(1), 2009, Fig. 2
and its non-structural / structural distinction; Wang, Bovik, Sheikh and Simoncelli, "Image
quality assessment: from error visibility to structural similarity", IEEE TIP 13(4), 2004, the
SSIM paper, Fig. 2). Judge: the benign image is preferred, 1.0 (or 0.0) at the two higher
levels and 0.9 (or 0.1) at the lowest, where both changes are hard to see. Nobody was asked:
the judge is that rule applied to every triplet. Levels: an RMS Lab difference of 1.5, 2.5 or
4 per channel (about 6, 10.5 and 17 of 255 in RGB; the papers' examples are at RMS 14.5 and
17.6), a third of the triplets each.

Which MSE is equal: the project's own ``l2`` reference (``evaluator.distances``: LPIPS's Lab
L2 after its tensor round trip, on the written uint8 pixels), not RGB MSE. That is the metric
the report sets beside the networks, and with it equal the row reads "at chance" exactly: the
two ``l2`` differ by 0.05-0.95 % and which one is larger is balanced over each category, so
``--metric=l2`` scores 50 there (give or take one triplet). RGB MSE would not do that: Lab
weights dark pixels and colour changes differently, so equal RGB error leaves the Lab ``l2``
systematically apart, by distortion type. Lab is a per-pixel transform, so the papers' point
(structure, not the size of the error, decides what people see) carries over; and with the
visible distortions kept achromatic, the two images' RGB MSEs come out about equal as well (the
median ratio is 0.95-1.04 per category, 0.6-1.4 for 80 % of the triplets).

Layout (BAPPS's, read by ``evaluator.bapps.load_2afc_tree``): ``2afc/{val,train}/<category>/``
``{ref,p0,p1}/NNNNNN.png``, ``judge/NNNNNN.npy`` (shape (1,)) and ``meta.json`` (how each
triplet was made; readers skip it), ``per_category`` (200) triplets per category in val and a
quarter as many in train; then ``README.txt`` and, last, ``proxy.json`` (the parameters: its
presence means complete). The build is deterministic for a seed (same bytes), written to a
temporary folder and renamed into place, so a killed build leaves nothing half-written. A proxy
of an older ``VERSION`` is rebuilt beside the old one and swapped in (builders of one data
folder take turns on a lock); one from newer code is refused. Benchmarks read from it carry
the version.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from evaluator.bapps import Benchmark, BenchmarkError, load_2afc_tree
from evaluator.proxy_distortions import SEVERITY_CATEGORIES, severity_triplet
from evaluator.proxy_eqmse import EQMSE_CATEGORIES, eqmse_triplet, schedule
from trainer import files
from trainer.data.load import resolve_prepared_dir

VERSION = 2
CATEGORIES = SEVERITY_CATEGORIES + EQMSE_CATEGORIES
SPLITS = ("val", "train")
DEFAULT_PER_CATEGORY = 200
DEFAULT_SEED = 0
NOTE = "embedded proxy built from scikit-image photos, not BAPPS"
PNG_LEVEL = 1  # zlib level: 6 % larger files than the default 6, half the encoding time

# (colour photos, greyscale photos) per split; no name is in both.
SOURCES = {
    "val": (
        (
            "astronaut",
            "chelsea",
            "rocket",
            "hubble_deep_field",
            "stereo_motorcycle",
            "immunohistochemistry",
        ),
        ("camera", "coins", "moon", "text", "page", "brick", "grass"),
    ),
    "train": (("coffee", "retina"), ("clock", "gravel", "cell")),
}
SHORT_SIDES = (192, 320)


def default_dir(config=None) -> Path:
    """``perceptual.proxy_dir``, else ``<prepared_dir>/proxy`` with the data layer's rule for
    prepared_dir (``data.prepared_dir``, else $PSWEEPS_DATA_DIR, else ./data)."""
    if config is not None:
        proxy_dir = _get(config, "perceptual", "proxy_dir")
        if proxy_dir:
            return files.path(proxy_dir)
    prepared = _get(config, "data", "prepared_dir") if config is not None else None
    return resolve_prepared_dir(prepared) / "proxy"


def _get(config, section: str, key: str):
    try:
        return config[section][key]
    except (KeyError, TypeError):
        return None


def train_size(per_category: int) -> int:
    """Triplets per category in train: a quarter of val's, at least one."""
    return max(1, per_category // 4)


# ----------------------------------------------------------------------------- sources


@functools.cache
def _sources(split: str) -> tuple[tuple[str, np.ndarray], ...]:
    """The split's resampled source photos (cached: read-only, shared by every build)."""
    from skimage import data, transform

    out = []
    colour, grey = SOURCES[split]
    for name in colour + grey:
        img = getattr(data, name)()
        if isinstance(img, tuple):  # stereo_motorcycle -> (left, right, disparity)
            img = img[0]
        img = np.asarray(img)
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=-1)
        img = img[..., :3].astype(np.float32) / 255.0
        for side in SHORT_SIDES:
            scale = side / min(img.shape[:2])
            small = transform.rescale(img, scale, channel_axis=-1, anti_aliasing=True, order=1)
            small = np.clip(small, 0.0, 1.0).astype(np.float32)
            small.setflags(write=False)
            out.append((name, small))
    return tuple(out)


def _rng(seed: int, split: str, category: str) -> np.random.Generator:
    # One stream per (split, category): a category's triplets do not depend on the others.
    return np.random.default_rng([seed, VERSION, SPLITS.index(split), CATEGORIES.index(category)])


def _triplets(category: str, n: int, split: str, rng):
    sources = _sources(split)
    if category in EQMSE_CATEGORIES:
        for level, benign_larger in schedule(n, rng):
            yield eqmse_triplet(category, sources, rng, level, benign_larger)
    else:
        for _ in range(n):
            yield severity_triplet(category, sources, SOURCES[split][0], rng)


def _write_png(path: Path, arr: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(arr).save(path, format="PNG", compress_level=PNG_LEVEL)


README = """\
EMBEDDED PROXY BENCHMARK -- NOT BAPPS

Built offline by perceptual-sweeps (evaluator/proxy.py, version {version}) from the
public-domain / CC0 photos that ship with scikit-image. It copies BAPPS's 2AFC layout
(2afc/<split>/<category>/{{ref,p0,p1,judge}}) so the same reader scores it, but its "human
judgements" are a rule, not people.

Severity categories noise, blur, jpeg, color, contrast, warp: two severities of one distortion;
the less distorted one is closer (1.0/0.0 when 2+ of 5 levels apart, 0.8/0.2 when adjacent).
About half of the closer images are also shifted by 1-2 px or brightened/darkened by 2-4 %.

Equal-MSE categories eqmse_luminance, eqmse_contrast, eqmse_gamma, eqmse_shift: a benign change
(that category's) against blur, JPEG, grey Gaussian or impulse noise at equal LPIPS Lab L2
(within 1 %); the benign one is closer (1.0/0.0; 0.9/0.1 at the lowest of three error
levels). The rule follows Wang & Bovik, IEEE Signal Processing Magazine 2009 (Fig. 2) and the
SSIM paper (Wang et al., IEEE TIP 2004, Fig. 2): at equal MSE people barely notice luminance,
contrast, gamma or small shifts, but see blur, blocking and noise.

judge/*.npy = fraction "choosing" p1; meta.json = how each triplet was made. Splits: val
({per_category} per category; scored; photos {val}), train ({train_per_category} per category;
photos {train}); seed {seed}.
Scores on this proxy say whether a pipeline works; they are not comparable to BAPPS numbers.
"""


def build_proxy(
    root: str | os.PathLike,
    seed: int = DEFAULT_SEED,
    per_category: int = DEFAULT_PER_CATEGORY,
    categories: tuple[str, ...] = CATEGORIES,
) -> Path:
    """Write the proxy into ``root`` (which must not exist), atomically (temp dir + rename)."""
    root = Path(root)
    tmp = _build_beside(root, seed, per_category, categories)
    try:
        os.rename(tmp, root)  # fails if another process finished first; theirs is kept
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return root


def _build_beside(root: Path, seed: int, per_category: int, categories) -> Path:
    """Build a complete proxy in a new temporary folder beside ``root``; its path."""
    if per_category < 1:
        raise BenchmarkError(f"proxy per_category={per_category} must be >= 1")
    for c in categories:
        if c not in CATEGORIES:
            raise BenchmarkError(
                f"proxy category {c!r} is unknown; allowed: {', '.join(CATEGORIES)}"
            )
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.", suffix=".tmp", dir=root.parent))
    sizes = {"val": per_category, "train": train_size(per_category)}
    try:
        # One writer thread encodes the PNGs (zlib releases the GIL) while this one makes
        # triplets: the bytes are the same, the wall time shorter where a second core is free.
        with ThreadPoolExecutor(max_workers=1) as writer:
            pending = [
                _write_category(writer, tmp / "2afc" / split / c, c, sizes[split], split, seed)
                for split in SPLITS
                for c in categories
            ]
            for f in (f for fs in pending for f in fs):
                f.result()
        photos = {s: ", ".join(SOURCES[s][0] + SOURCES[s][1]) for s in SPLITS}
        text = README.format(
            seed=seed,
            per_category=sizes["val"],
            train_per_category=sizes["train"],
            version=VERSION,
            **photos,
        )
        (tmp / "README.txt").write_text(text)
        manifest = _manifest(seed, sizes, categories)
        (tmp / "proxy.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return tmp


def _write_category(writer, d: Path, category: str, n: int, split: str, seed: int) -> list:
    """Make a category's triplets; their PNGs go to ``writer``: its futures."""
    for sub in ("ref", "p0", "p1", "judge"):
        (d / sub).mkdir(parents=True)
    rng = _rng(seed, split, category)
    futures, facts = [], []
    for i, (ref, p0, p1, judge, known) in enumerate(_triplets(category, n, split, rng)):
        name = f"{i:06d}"
        for sub, arr in (("ref", ref), ("p0", p0), ("p1", p1)):
            futures.append(writer.submit(_write_png, d / sub / f"{name}.png", arr))
        np.save(d / "judge" / f"{name}.npy", np.array([judge], dtype=np.float32))
        facts.append({"name": name, **known})
    (d / "meta.json").write_text(json.dumps(facts, sort_keys=True) + "\n")
    return futures


def _manifest(seed, sizes, categories) -> dict:
    return {
        "kind": "proxy",
        "version": VERSION,
        "seed": int(seed),
        "per_category": int(sizes["val"]),
        "train_per_category": int(sizes["train"]),
        "categories": list(categories),
        "sources": {s: [*SOURCES[s][0], *SOURCES[s][1]] for s in SPLITS},
        "note": NOTE,
    }


# ----------------------------------------------------------------------------- on first use


def _found_version(root: Path) -> int | None:
    """The version of the proxy at ``root``; None when nothing is there. A folder that is not
    a complete proxy is refused (it may be the user's)."""
    if not root.exists():
        return None
    manifest_path = root / "proxy.json"
    if not manifest_path.exists():
        raise BenchmarkError(
            f"{root} exists but has no proxy.json; it is not a complete proxy benchmark "
            "(remove it to rebuild, or point perceptual.proxy_dir elsewhere)"
        )
    try:
        got = json.loads(manifest_path.read_text())
    except ValueError as e:
        raise BenchmarkError(f"{manifest_path} is not readable JSON: {e}") from e
    if (
        not isinstance(got, dict)
        or got.get("kind") != "proxy"
        or not isinstance(got.get("version"), int)
    ):
        raise BenchmarkError(f"{manifest_path} is not a proxy manifest (no kind/version)")
    if got["version"] > VERSION:
        raise BenchmarkError(
            f"{manifest_path} is proxy version {got['version']}, newer than this code's "
            f"{VERSION}; update the code or point perceptual.proxy_dir elsewhere"
        )
    return got["version"]


@contextlib.contextmanager
def _builders_lock(folder: Path):
    """Builders of one data folder take turns (an exclusive flock on the folder itself, released
    by the kernel if the holder dies); where the file system cannot lock, they do not."""
    import fcntl

    fd = os.open(folder, os.O_RDONLY)
    try:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def ensure_proxy(
    root: str | os.PathLike,
    seed: int = DEFAULT_SEED,
    per_category: int = DEFAULT_PER_CATEGORY,
) -> Path:
    """Build the proxy at ``root`` unless one of this ``VERSION`` is there (whatever its seed
    and size: a custom build is kept). An older version is rebuilt beside it and swapped in: a
    reader sees the old proxy, then for an instant none, then the new one, never a part."""
    root = Path(root)
    if _found_version(root) == VERSION:
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    with _builders_lock(root.parent):
        if _found_version(root) == VERSION:  # another builder finished while we waited
            return root
        _swap_in(_build_beside(root, seed, per_category, CATEGORIES), root)
    return root


def _swap_in(tmp: Path, root: Path) -> None:
    """Rename the complete proxy ``tmp`` to ``root``, moving an older one out of the way first."""
    try:
        if root.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{root.name}.", suffix=".old", dir=root.parent))
            os.rename(root, old / root.name)
            os.rename(tmp, root)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, root)
    except OSError:
        # A builder that could not lock may have finished first; then theirs is kept.
        if _found_version(root) != VERSION:
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def load_proxy(
    root: str | os.PathLike,
    seed: int = DEFAULT_SEED,
    per_category: int = DEFAULT_PER_CATEGORY,
    split: str = "val",
) -> Benchmark:
    """The proxy benchmark's ``split`` at ``root`` (val is the one scored), built on first use."""
    if split not in SPLITS:
        raise BenchmarkError(f"proxy split {split!r} is unknown; allowed: {', '.join(SPLITS)}")
    root = ensure_proxy(root, seed=seed, per_category=per_category)
    return load_2afc_tree(root, name="proxy", kind="proxy", note=NOTE, split=split, version=VERSION)
