"""BAPPS reader and scoring on generated BAPPS-layout fixtures with known answers.

Fixture images are flat grey patches: p0/p1 are the reference brightened by d0/d1 grey levels,
so LPIPS's Lab L2 and SSIM order them exactly like d0/d1 (equal shifts are exact ties).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from evaluator import scoring
from evaluator.__main__ import main
from evaluator.bapps import (
    BAPPS_2AFC_TRAIN,
    BAPPS_2AFC_VAL,
    BenchmarkError,
    load_bapps,
    print_download_instructions,
)
from evaluator.benchmarks import score_pixel

# (shift of p0, shift of p1, judge = fraction who chose p1) -> expected per-triplet score
TRIPLETS = [
    ((5, 20, 0.0), 1.0),  # d0 < d1, everyone chose p0
    ((5, 20, 0.6), 0.4),  # d0 < d1, 60 % chose p1
    ((20, 5, 1.0), 1.0),  # d1 < d0, everyone chose p1
    ((10, 10, 0.8), 0.5),  # tie
]
# JND: (shift between p0 and p1, fraction who said "same"), listed in ascending distance
PAIRS = [(0, 1.0), (4, 0.0), (12, 1.0), (30, 0.0)]
JND_AP = 100 * (0.5 * 1.0 + 0.5 * (2 / 3))  # precision envelope at recall 0.5 and 1.0


def _grey(v: int, size: int = 64) -> np.ndarray:
    return np.full((size, size, 3), v, np.uint8)


def _png(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def write_2afc(folder: Path, triplets, base: int = 100) -> None:
    for i, (s0, s1, p) in enumerate(triplets):
        name = f"{i:06d}"
        _png(folder / "ref" / f"{name}.png", _grey(base))
        _png(folder / "p0" / f"{name}.png", _grey(base + s0))
        _png(folder / "p1" / f"{name}.png", _grey(base + s1))
        (folder / "judge").mkdir(parents=True, exist_ok=True)
        np.save(folder / "judge" / f"{name}.npy", np.array([p], np.float32))


def write_jnd(folder: Path, pairs, base: int = 100) -> None:
    for i, (s, same) in enumerate(pairs):
        name = f"{i:06d}"
        _png(folder / "p0" / f"{name}.png", _grey(base))
        _png(folder / "p1" / f"{name}.png", _grey(base + s))
        (folder / "same").mkdir(parents=True, exist_ok=True)
        np.save(folder / "same" / f"{name}.npy", np.array([same], np.float32))


def category_triplets(k: int):
    """Category k keeps the first k+1 triplets, so categories score differently."""
    return [t for t, _ in TRIPLETS[: 1 + k % len(TRIPLETS)]]


def expected_2afc(k: int) -> float:
    return 100 * float(np.mean([s for _, s in TRIPLETS[: 1 + k % len(TRIPLETS)]]))


@pytest.fixture
def bapps_root(tmp_path: Path) -> Path:
    root = tmp_path / "bapps"
    for k, c in enumerate(BAPPS_2AFC_VAL):
        write_2afc(root / "2afc" / "val" / c, category_triplets(k))
    for c in ("traditional", "cnn"):
        write_jnd(root / "jnd" / "val" / c, PAIRS)
    return root


def test_known_answers_2afc_jnd_ps():
    d0 = [1.0, 1.0, 2.0, 3.0]
    d1 = [2.0, 2.0, 1.0, 3.0]
    judge = [0.0, 0.6, 1.0, 0.8]
    assert scoring.score_2afc(d0, d1, judge) == pytest.approx(100 * (1 + 0.4 + 1 + 0.5) / 4)
    assert scoring.score_jnd([0.0, 4.0, 12.0, 30.0], [1, 0, 1, 0]) == pytest.approx(JND_AP)
    # JND sorts by distance, not by file order
    assert scoring.score_jnd([12.0, 30.0, 0.0, 4.0], [1, 0, 1, 0]) == pytest.approx(JND_AP)
    assert scoring.score_jnd([1, 2, 3], [1, 1, 0]) == pytest.approx(100.0)
    assert scoring.perceptual_score({"a": 70.0, "b": 80.0, "c": 60.0}) == pytest.approx(70.0)


def test_reader_and_pixel_scores_on_fixture(bapps_root: Path, capsys):
    bench = load_bapps(bapps_root)
    assert list(bench.twoafc) == list(BAPPS_2AFC_VAL)
    assert sorted(bench.jnd) == ["cnn", "traditional"]
    assert bench.twoafc["cnn"].ref.shape == (2, 64, 64, 3)
    assert bench.twoafc["cnn"].ref.dtype == np.uint8
    np.testing.assert_allclose(bench.twoafc["traditional"].judge, [0.0])
    for metric in ("l2", "ssim"):
        assert (
            main(
                [
                    "score",
                    "--benchmark=bapps",
                    f"--data-dir={bapps_root}",
                    f"--metric={metric}",
                    "--json",
                ]
            )
            == 0
        )
        out = json.loads(capsys.readouterr().out)
        want = {c: expected_2afc(k) for k, c in enumerate(BAPPS_2AFC_VAL)}
        assert out["2afc"] == pytest.approx(want)
        # PS is the unweighted mean of the six categories (they have 1..4 triplets each)
        assert out["ps"] == pytest.approx(np.mean(list(want.values())), abs=1e-3)
        assert out["jnd"] == pytest.approx(JND_AP, abs=1e-3)
        assert out["jnd_categories"] == pytest.approx(
            {"traditional": JND_AP, "cnn": JND_AP}, abs=1e-3
        )
    assert main(["score", "--benchmark=bapps", f"--data-dir={bapps_root}", "--metric=l2"]) == 0
    text = capsys.readouterr().out
    assert "2AFC mean (PS)" in text and "superres" in text


def test_train_split(bapps_root: Path):
    # BAPPS's 2afc/train holds traditional, cnn, mix (LPIPS's train.py reads these three), in
    # the same layout as val; a full download has val and jnd beside it
    for k, c in enumerate(BAPPS_2AFC_TRAIN):
        write_2afc(bapps_root / "2afc" / "train" / c, category_triplets(k + 1))
    assert BAPPS_2AFC_TRAIN == ("traditional", "cnn", "mix")
    train = load_bapps(bapps_root, split="train")
    assert train.split == "train" and "train" in train.note
    assert list(train.twoafc) == list(BAPPS_2AFC_TRAIN) and train.jnd == {}
    assert train.twoafc["mix"].ref.shape == (3 % len(TRIPLETS) + 1, 64, 64, 3)
    l2 = score_pixel(train, "l2")
    assert l2["2afc"] == pytest.approx(
        {c: expected_2afc(k + 1) for k, c in enumerate(train.twoafc)}
    )
    assert l2["jnd"] is None
    val = load_bapps(bapps_root)  # val is read as before, with its JND part
    assert val.split == "val" and list(val.twoafc) == list(BAPPS_2AFC_VAL) and len(val.jnd) == 2
    import shutil

    shutil.rmtree(bapps_root / "2afc" / "train" / "mix")
    with pytest.raises(
        BenchmarkError, match="missing category folder .*mix.*traditional, cnn, mix"
    ):
        load_bapps(bapps_root, split="train")
    with pytest.raises(BenchmarkError, match="split 'test' is unknown; allowed: val, train"):
        load_bapps(bapps_root, split="test")


def _error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err
    return err


def _score_argv(root: Path) -> list[str]:
    return ["score", "--benchmark=bapps", f"--data-dir={root}", "--metric=l2"]


def test_missing_category_folder(bapps_root: Path, capsys):
    import shutil

    shutil.rmtree(bapps_root / "2afc" / "val" / "deblur")
    err = _error(capsys, _score_argv(bapps_root))
    assert "deblur" in err and "missing category folder" in err
    with pytest.raises(BenchmarkError):
        load_bapps(bapps_root)


def test_mismatched_file_counts(bapps_root: Path, capsys):
    (bapps_root / "2afc" / "val" / "cnn" / "p1" / "000000.png").unlink()
    err = _error(capsys, _score_argv(bapps_root))
    assert str(bapps_root / "2afc" / "val" / "cnn" / "p1") in err and "has 1 files but" in err


def test_judge_of_wrong_shape(bapps_root: Path, capsys):
    bad = bapps_root / "2afc" / "val" / "cnn" / "judge" / "000001.npy"
    np.save(bad, np.array([0.5, 0.5], np.float32))
    err = _error(capsys, _score_argv(bapps_root))
    assert str(bad) in err and "shape (2,)" in err


def test_image_not_64x64(bapps_root: Path, capsys):
    bad = bapps_root / "2afc" / "val" / "frameinterp" / "ref" / "000000.png"
    _png(bad, _grey(100, size=32))
    err = _error(capsys, _score_argv(bapps_root))
    assert str(bad) in err and "32x32" in err and "64x64" in err


def test_jnd_same_file_mismatch_and_bad_args(bapps_root: Path, capsys):
    (bapps_root / "jnd" / "val" / "cnn" / "same" / "000003.npy").rename(
        bapps_root / "jnd" / "val" / "cnn" / "same" / "000009.npy"
    )
    err = _error(capsys, _score_argv(bapps_root))
    assert "do not pair up" in err and "000009.npy" in err
    # (tid2013 and psnr were the unknown names here before they were added)
    err = _error(capsys, ["score", "--benchmark=live", "--data-dir=x", "--metric=l2"])
    assert "live" in err and "proxy" in err and "tid2013" in err
    err = _error(
        capsys, ["score", "--benchmark=bapps", f"--data-dir={bapps_root}", "--metric=lpips"]
    )
    assert "lpips" in err and "checkpoint:" in err
    err = _error(capsys, ["score", "--benchmark=bapps", "--data-dir=/nonexistent/x", "--metric=l2"])
    assert "/nonexistent/x" in err


def test_download_instructions(capsys):
    print_download_instructions("/data/bapps")
    out = capsys.readouterr().out
    for tar in ("jnd.tar.gz", "twoafc_val.tar.gz", "twoafc_train.tar.gz"):
        assert f"https://perceptual-similarity.s3.us-west-2.amazonaws.com/dataset/{tar}" in out
    assert "tar -xf /data/bapps/twoafc_val.tar.gz -C /data/bapps/2afc" in out
