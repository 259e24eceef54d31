"""Tiny NIGHTS, TID2013 and KADID-10k fixtures in their released layouts, with known answers.

    python -m tests.perceptual_fixtures DIR      # writes DIR/nights, DIR/tid2013, DIR/kadid10k

Every image is a textured reference (values 60..190, seeded) or that reference plus a uniform
grey shift ``s`` (|s| <= 50, so nothing clips): its RGB PSNR against the reference is exactly
``20 log10(255 / |s|)``, so the ``psnr`` distance orders images exactly by |s|. NIGHTS triplets
copy BAPPS's test cases (shift of left, shift of right, fraction for right -> per-triplet score);
TID2013 / KADID-10k shifts grow as the quality score falls, so psnr's SROCC is exactly 1.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np
from PIL import Image

# (shift of left, shift of right, right_vote) -> BAPPS's per-triplet 2AFC score
TRIPLETS = [((5, 20, 0.0), 1.0), ((5, 20, 0.6), 0.4), ((20, 5, 1.0), 1.0), ((10, 10, 0.8), 0.5)]
NIGHTS_SIZE = 48  # released NIGHTS images are larger; the reader resizes
IQA_SIZE = (40, 30)  # width, height: TID2013 / KADID-10k's 4:3 (512x384)
# (reference, distortion type, level) -> quality score; higher = better. The k-th best image is
# its reference shifted by 8 + 3k grey levels.
TID_SCORES = {(r, t, lv): 7.0 - 1.5 * lv - 0.25 * t - 0.1 * r
              for r in (1, 2) for t in (1, 8) for lv in (1, 2, 3)}  # fmt: skip
KADID_SCORES = {(r, t, lv): 4.8 - 0.7 * lv - 0.13 * t - 0.05 * r
                for r in (1, 2) for t in (1, 10) for lv in (1, 2, 3)}  # fmt: skip


def texture(seed: int, size: tuple[int, int]) -> np.ndarray:
    """A seeded RGB texture (height, width, 3) with values in 60..190."""
    w, h = size
    rng = np.random.default_rng(seed)
    small = rng.integers(60, 191, (max(h // 4, 2), max(w // 4, 2), 3)).astype(np.uint8)
    big = Image.fromarray(small).resize((w, h), Image.Resampling.NEAREST)
    return np.asarray(big, np.uint8)


def shifted(ref: np.ndarray, s: int) -> np.ndarray:
    return (ref.astype(np.int16) + s).astype(np.uint8)


def save(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def write_nights(root: Path, triplets=TRIPLETS, size: int = NIGHTS_SIZE) -> Path:
    """NIGHTS's layout (data.csv, ref/, distort/): ``triplets`` as the test split, alternating
    is_imagenet, plus one train and one val triplet and a test one with too few votes."""
    rows = []
    extra = [((3, 30, 0.0), "train", 7), ((30, 3, 1.0), "val", 6), ((3, 30, 1.0), "test", 5)]
    cases = [(t, "test", 6) for t, _ in triplets] + extra
    for i, ((s0, s1, p), split, votes) in enumerate(cases):
        ref = texture(i, (size, size))
        d, f = f"{i // 2:03d}", f"{i:03d}"
        save(root / "ref" / d / f"{f}.png", ref)
        save(root / "distort" / d / f"{f}_0.png", shifted(ref, s0))
        save(root / "distort" / d / f"{f}_1.png", shifted(ref, s1))
        rows.append({"id": i, "left_vote": 1.0 - p, "right_vote": p, "votes": votes,
                     "ref_path": f"ref/{d}/{f}.png", "left_path": f"distort/{d}/{f}_0.png",
                     "right_path": f"distort/{d}/{f}_1.png", "prompt": "an image of a fixture",
                     "split": split, "is_imagenet": i % 2 == 0})  # fmt: skip
    with (root / "data.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return root


def _shifts(scores: dict) -> dict:
    """Each image's shift: 8 + 3k for the k-th best score (distinct, so PSNR never ties)."""
    order = sorted(scores, key=lambda k: -scores[k])
    return {k: 8 + 3 * i for i, k in enumerate(order)}


def write_tid2013(root: Path, scores=TID_SCORES) -> Path:
    """TID2013's layout; reference names in both cases (I01.BMP, i02.bmp) as released."""
    lines, shift = [], _shifts(scores)
    for r in sorted({k[0] for k in scores}):
        ref = texture(100 + r, IQA_SIZE)
        save(root / "reference_images" / (f"I{r:02d}.BMP" if r % 2 else f"i{r:02d}.bmp"), ref)
        for (rr, t, lv), q in sorted(scores.items()):
            if rr == r:
                name = f"i{r:02d}_{t:02d}_{lv}.bmp"
                save(root / "distorted_images" / name, shifted(ref, shift[(rr, t, lv)]))
                lines.append(f"{q:.5f} {name}")
    (root / "mos_with_names.txt").write_text("\n".join(lines) + "\n")
    return root


def write_kadid10k(root: Path, scores=KADID_SCORES) -> Path:
    """KADID-10k's layout: dmos.csv (dist_img, ref_img, dmos, var) and images/."""
    rows, shift = [], _shifts(scores)
    for r in sorted({k[0] for k in scores}):
        ref = texture(200 + r, IQA_SIZE)
        save(root / "images" / f"I{r:02d}.png", ref)
        for (rr, t, lv), q in sorted(scores.items()):
            if rr == r:
                name = f"I{r:02d}_{t:02d}_{lv:02d}.png"
                save(root / "images" / name, shifted(ref, shift[(rr, t, lv)]))
                rows.append([name, f"I{r:02d}.png", f"{q:.3f}", "0.5"])
    with (root / "dmos.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["dist_img", "ref_img", "dmos", "var"])
        w.writerows(rows)
    return root


def write_all(dest: Path) -> dict[str, Path]:
    dest = Path(dest)
    return {
        "nights": write_nights(dest / "nights"),
        "tid2013": write_tid2013(dest / "tid2013"),
        "kadid10k": write_kadid10k(dest / "kadid10k"),
    }


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: python -m tests.perceptual_fixtures DIR", file=sys.stderr)
        sys.exit(2)
    for name, path in write_all(Path(sys.argv[1])).items():
        print(f"{name}: {path}")
