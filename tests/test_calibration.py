"""The ``lin`` calibration (evaluator.calibration): LPIPS's recipe on frozen features."""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np
import pytest
from test_bapps import category_triplets, write_2afc

from evaluator import benchmarks as bm
from evaluator import calibration, proxy
from evaluator.bapps import BAPPS_2AFC_TRAIN, load_bapps
from evaluator.features import ScoringModel
from sweeps.base import get_config

STEPS = 300  # one compile of the fit for most tests here


@pytest.fixture(scope="module")
def sm() -> ScoringModel:
    from trainer.models import build_model

    cfg = get_config().to_dict()
    cfg["model"].update(depth=6, width=0.25)
    cfg["data"]["image_size"] = 16
    model = build_model(cfg["model"], cfg["data"]["num_classes"])
    x = np.zeros((1, 16, 16, 3), np.float32)
    variables = jax.jit(lambda k, x: model.init({"params": k}, x, train=False))(
        jax.random.key(0), x
    )
    return ScoringModel.from_variables(cfg, dict(variables), batch_size=8)


@pytest.fixture(scope="module")
def proxy_dir(tmp_path_factory) -> Path:
    return proxy.build_proxy(tmp_path_factory.mktemp("cal") / "proxy", per_category=4)


def test_fit_learns_informative_channels_and_keeps_weights_non_negative():
    rng = np.random.default_rng(0)
    n, sizes = 400, [4, 12]
    near = rng.uniform(0.0, 1.0, (n, 16)).astype(np.float32)
    far = rng.uniform(0.0, 1.0, (n, 16)).astype(np.float32)
    far[:, :3] += 2.0  # only channels 0-2 tell far from near
    judge = rng.choice([0.0, 1.0], n).astype(np.float32)  # 1: p1 is the near one
    x0 = np.where(judge[:, None] == 1.0, far, near)
    x1 = np.where(judge[:, None] == 1.0, near, far)
    w, rank, info = calibration.fit(x0, x1, judge, sizes, 3000)
    assert w.shape == (16,) and (w >= 0).all() and (w > 0).any()
    assert w[:3].mean() > 2 * w[3:].mean()
    assert info["train_2afc"] > 95.0 and info["steps"] == 3000
    assert info["passes"] == pytest.approx(3000 * 50 / n)
    assert set(rank) == {"w1", "b1", "w2", "b2", "w3", "b3"} and rank["w1"].shape == (5, 32)
    with pytest.raises(ValueError, match="at least one"):
        calibration.fit(x0[:0], x1[:0], judge[:0], sizes, STEPS)


def test_lr_schedule_and_batches_follow_lpips():
    s = 1000  # 10 "epochs" of 100 steps: 6 at the base rate, then 0.8 .. 0.2
    scale = [float(calibration.lr_scale(k * 100, s)) for k in range(10)]
    assert scale == pytest.approx([1, 1, 1, 1, 1, 1, 0.8, 0.6, 0.4, 0.2])
    idx = calibration.batch_indices(7, 5, 3, 0)
    assert idx.shape == (5, 3)
    flat = idx.reshape(-1)
    assert sorted(flat[:7]) == list(range(7))  # each pass is a permutation of the rows


def test_lin_with_unit_weights_is_local_and_features_sum_to_it(sm):
    rng = np.random.default_rng(1)
    ref, p0, p1 = (rng.integers(0, 256, (5, 64, 64, 3), dtype=np.uint8) for _ in range(3))
    sizes = calibration.tap_channels(sm)
    assert sizes == {"stage1": 16, "stage2": 32, "stage3": 64, "stage4": 128}
    ones = {t: np.ones(c, np.float32) for t, c in sizes.items()}
    dists, _ = sm.triplet_scores(ref, p0, p1, lin=ones)
    x0, x1 = calibration.lin_features(sm, ref, p0, p1)
    assert x0.shape == (5, sum(sizes.values())) and (x0 >= 0).all()
    bounds = np.cumsum([0, *sizes.values()])
    for i, t in enumerate(sizes):
        for k, x in ((0, x0), (1, x1)):
            np.testing.assert_allclose(dists["lin"][t][k], dists["local"][t][k], rtol=1e-5)
            part = x[:, bounds[i] : bounds[i + 1]].sum(axis=1)
            np.testing.assert_allclose(part, dists["local"][t][k], rtol=1e-4, atol=1e-7)
    pairs = sm.pair_distances(ref, p0, lin=ones)
    np.testing.assert_allclose(pairs["lin"]["stage3"], pairs["local"]["stage3"], rtol=1e-5)


def test_calibrate_saves_the_fit_and_reuses_it(sm, proxy_dir, tmp_path):
    train = proxy.load_proxy(proxy_dir, per_category=4, split="train")
    path = tmp_path / "perceptual" / "10.lin-proxy.npz"
    weights, info = calibration.calibrate(sm, train, path, STEPS)
    assert path.exists() and not info["reused"] and info["file"] == path.name
    assert info["split"] == "train" and info["triplets"] == sum(map(len, train.twoafc.values()))
    assert set(weights) == set(sm.tap_names) and all((w >= 0).all() for w in weights.values())
    mtime = path.stat().st_mtime_ns
    again, info2 = calibration.calibrate(sm, train, path, STEPS)
    assert info2["reused"] and path.stat().st_mtime_ns == mtime
    assert info2["train_2afc"] == info["train_2afc"]
    for t in weights:
        np.testing.assert_array_equal(again[t], weights[t])
    # another recipe (more steps) is fitted anew and replaces the file
    _, info3 = calibration.calibrate(sm, train, path, STEPS + 1)
    assert not info3["reused"] and calibration.load(path)[1]["steps"] == STEPS + 1
    # lin scored on val beside the other distances, in the same pass as the probes
    val = proxy.load_proxy(proxy_dir, per_category=4)
    dists, block = bm.score_model_probes(val, sm, probes=True, lin=weights)
    assert list(dists) == ["local", "meanpool", "style", "lin"]
    assert set(block["margin"]["distances"]) == set(dists) and "lin" in block["best_tap"]


def test_lin_fits_on_the_bapps_train_split(sm, tmp_path):
    root = tmp_path / "bapps"
    for k, c in enumerate(BAPPS_2AFC_TRAIN):  # BAPPS's own layout: 2afc/train/<category>/...
        write_2afc(root / "2afc" / "train" / c, category_triplets(k + 1))
    train = load_bapps(root, split="train")
    path = tmp_path / "20.lin-bapps.npz"
    weights, info = calibration.calibrate(sm, train, path, STEPS)
    assert info["categories"] == list(BAPPS_2AFC_TRAIN) and info["split"] == "train"
    assert info["triplets"] == sum(len(category_triplets(k + 1)) for k in range(3))
    assert all((w >= 0).all() for w in weights.values())
    assert calibration.load(path)[1]["benchmark"] == "bapps"
