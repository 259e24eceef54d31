"""Readers for the image-quality sets TID2013 and KADID-10k in their released layouts.

TID2013 (Ponomarenko et al. 2015; 25 references x 24 distortion types x 5 levels = 3,000):
```
<root>/mos_with_names.txt    "<MOS> <file name>" per line, e.g. "5.51429 i01_01_1.bmp"
<root>/reference_images/     I01.BMP ... I25.BMP (the case varies: i25.bmp)
<root>/distorted_images/     iXX_YY_Z.bmp: reference XX, distortion type YY, level Z
```
KADID-10k (Lin, Hosu & Saupe 2019; 81 references x 25 types x 5 levels = 10,125):
```
<root>/dmos.csv              columns dist_img, ref_img, dmos, var
<root>/images/               I01.png ... I81.png and IXX_YY_ZZ.png (type YY, level ZZ)
```
Both scores are **higher = better quality**: TID2013's MOS (0..9) and KADID-10k's ``dmos``,
which despite its name is the mean of degradation-category ratings on a 5-point scale
(5 = imperceptible, 1 = very annoying; KADID-10k paper, and pyiqa's dataset_info lists it as
``mos_type: mos``). A good distance therefore correlates *negatively* with both; ``evaluator.mos``
flips the sign so that 1 is perfect agreement.

File names are matched case-insensitively. Every listed file must exist and be readable, and the
number of listed distorted images must equal the number in the folder (a partial download
otherwise scores silently on a subset). Errors are one-line ``BenchmarkError``s, raised before
any scoring starts. Images are read at ``size`` (``evaluator.imagesets``).
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import numpy as np

from evaluator.bapps import MOS, Benchmark, BenchmarkError
from evaluator.imagesets import case_index, csv_rows, find, read_images, resolution_record

TID2013_TYPES = (
    "gaussian_noise",
    "color_noise",
    "correlated_noise",
    "masked_noise",
    "high_freq_noise",
    "impulse_noise",
    "quantization_noise",
    "gaussian_blur",
    "denoising",
    "jpeg",
    "jpeg2000",
    "jpeg_errors",
    "jpeg2000_errors",
    "pattern_noise",
    "block_distortion",
    "mean_shift",
    "contrast",
    "saturation",
    "multiplicative_noise",
    "comfort_noise",
    "noisy_compression",
    "color_quantization",
    "chromatic_aberration",
    "sparse_sampling",
)  # fmt: skip  (the TID2013 readme's 24 types, in its order)
KADID_TYPES = (
    "gaussian_blur",
    "lens_blur",
    "motion_blur",
    "color_diffusion",
    "color_shift",
    "color_quantization",
    "color_saturation_1",
    "color_saturation_2",
    "jpeg2000",
    "jpeg",
    "white_noise",
    "white_noise_color",
    "impulse_noise",
    "multiplicative_noise",
    "denoise",
    "brighten",
    "darken",
    "mean_shift",
    "jitter",
    "non_eccentricity_patch",
    "pixelate",
    "quantization",
    "color_block",
    "high_sharpen",
    "contrast_change",
)  # fmt: skip  (the KADID-10k paper's 25 types, in its order)
TID_NAME = re.compile(r"^i(\d\d)_(\d\d)_(\d)\.bmp$", re.IGNORECASE)
KADID_NAME = re.compile(r"^i(\d\d)_(\d\d)_(\d\d)\.png$", re.IGNORECASE)
KADID_COLUMNS = ("dist_img", "ref_img", "dmos")
TID_NOTE = "TID2013 (Ponomarenko et al. 2015), MOS of 3,000 distorted images"
KADID_NOTE = "KADID-10k (Lin et al. 2019), DMOS (higher = better) of 10,125 distorted images"
DOWNLOADS = {
    "tid2013": "https://www.ponomarenko.info/tid2013.htm",
    "kadid10k": "https://database.mmsp-kn.de/kadid-10k-database.html",
}


def _type_name(types: tuple[str, ...], number: int, where: str) -> str:
    if not 1 <= number <= len(types):
        raise BenchmarkError(f"{where}: distortion type {number:02d} is not in 1..{len(types)}")
    return types[number - 1]


def _score(text: str, where: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise BenchmarkError(f"{where}: score {text!r} is not a number") from None
    if not math.isfinite(v):
        raise BenchmarkError(f"{where}: score {text!r} is not a finite number")
    return v


def _check_count(listed: int, folder: Path, pattern: re.Pattern, listing: Path) -> None:
    held = sum(1 for p in folder.iterdir() if pattern.match(p.name))
    if held != listed:
        raise BenchmarkError(
            f"{listing} lists {listed} distorted images but {folder} holds {held}; "
            "a partial download or another version"
        )


def _bench(name: str, root: Path, note: str, entries: list[tuple], size: int | None) -> Benchmark:
    """``entries`` = (distorted path, reference path, score, type) -> a MOS benchmark."""
    refs = sorted({e[1] for e in entries})
    where = {r: i for i, r in enumerate(refs)}
    mos = MOS(
        refs=read_images(refs, size),
        ref_index=np.array([where[e[1]] for e in entries], np.int32),
        images=read_images([e[0] for e in entries], size),
        score=np.array([e[2] for e in entries], np.float64),
        types=np.array([e[3] for e in entries]),
    )
    if mos.refs.shape[1:] != mos.images.shape[1:]:
        raise BenchmarkError(
            f"{name} references are {mos.refs.shape[2]}x{mos.refs.shape[1]} but its distorted "
            f"images {mos.images.shape[2]}x{mos.images.shape[1]}; they must match"
        )
    bench = Benchmark(name=name, kind=name, root=str(root), note=note, split="all", mos=mos)
    bench.resolution = resolution_record(size, mos.images)
    return bench


def _root(root: str | os.PathLike, what: str) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise BenchmarkError(f"{what} directory {root} does not exist")
    return root


def load_tid2013(root: str | os.PathLike, size: int | None = 64) -> Benchmark:
    """TID2013 at ``size`` (None: native 512x384)."""
    root = _root(root, "TID2013")
    listing = root / "mos_with_names.txt"
    if not listing.is_file():
        raise BenchmarkError(
            f"missing file {listing}; TID2013's root holds mos_with_names.txt, "
            "reference_images/, distorted_images/"
        )
    refs = case_index(root / "reference_images")
    dists = case_index(root / "distorted_images")
    entries, seen = [], set()
    for n, line in enumerate(listing.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{listing} line {n}"
        parts = line.split()
        if len(parts) != 2 or not TID_NAME.match(parts[1]):
            raise BenchmarkError(f"{where}: {line.strip()!r} is not '<MOS> iXX_YY_Z.bmp'")
        m = TID_NAME.match(parts[1])
        if parts[1].lower() in seen:
            raise BenchmarkError(f"{where}: {parts[1]} is listed twice")
        seen.add(parts[1].lower())
        kind = _type_name(TID2013_TYPES, int(m.group(2)), where)
        dist = find(dists, parts[1], root / "distorted_images", listing)
        ref = find(refs, f"i{m.group(1)}.bmp", root / "reference_images", listing)
        entries.append((dist, ref, _score(parts[0], where), kind))
    if not entries:
        raise BenchmarkError(f"{listing} lists no images")
    _check_count(len(entries), root / "distorted_images", TID_NAME, listing)
    return _bench("tid2013", root, TID_NOTE, entries, size)


def load_kadid10k(root: str | os.PathLike, size: int | None = 64) -> Benchmark:
    """KADID-10k at ``size`` (None: native 512x384)."""
    root = _root(root, "KADID-10k")
    listing = root / "dmos.csv"
    if not listing.is_file():
        raise BenchmarkError(f"missing file {listing}; KADID-10k's root holds dmos.csv, images/")
    images = case_index(root / "images")
    entries, seen = [], set()
    layout = "KADID-10k's dmos.csv has dist_img, ref_img, dmos, var"
    for where, row in csv_rows(listing, KADID_COLUMNS, layout):
        m = KADID_NAME.match(row["dist_img"] or "")
        if not m:
            raise BenchmarkError(f"{where}: dist_img {row['dist_img']!r} is not IXX_YY_ZZ.png")
        if row["dist_img"].lower() in seen:
            raise BenchmarkError(f"{where}: {row['dist_img']} is listed twice")
        seen.add(row["dist_img"].lower())
        kind = _type_name(KADID_TYPES, int(m.group(2)), where)
        dist = find(images, row["dist_img"], root / "images", listing)
        ref = find(images, row["ref_img"] or "", root / "images", listing)
        entries.append((dist, ref, _score(row["dmos"], where), kind))
    if not entries:
        raise BenchmarkError(f"{listing} lists no images")
    _check_count(len(entries), root / "images", KADID_NAME, listing)
    return _bench("kadid10k", root, KADID_NOTE, entries, size)
