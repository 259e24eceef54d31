"""The embedded proxy benchmark: deterministic, BAPPS layout, labelled as a proxy, L2 imperfect;
equal-MSE categories at equal LPIPS Lab L2; a train split from other photos; versioned rebuilds."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from evaluator import proxy
from evaluator.bapps import BenchmarkError
from evaluator.benchmarks import benchmark_header, load_benchmark, score_pixel
from evaluator.distances import pixel_l2
from evaluator.proxy_distortions import PATCH, to_uint8
from evaluator.proxy_eqmse import EQMSE_CATEGORIES, UNSURE_JUDGE

N = 24  # per category in val: 8 triplets per level, 4 each way
SEVERITY = [c for c in proxy.CATEGORIES if c not in EQMSE_CATEGORIES]


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    return proxy.build_proxy(tmp_path_factory.mktemp("p") / "proxy", seed=0, per_category=N)


def test_layout_readme_and_judgements(built: Path):
    bench = load_benchmark("proxy", built)
    assert bench.kind == "proxy" and "not BAPPS" in bench.note
    assert bench.split == "val" and bench.version == proxy.VERSION
    assert benchmark_header(bench)["version"] == proxy.VERSION
    assert list(bench.twoafc) == sorted(proxy.CATEGORIES)
    for c, t in bench.twoafc.items():
        assert len(t) == N and t.ref.shape == (N, 64, 64, 3)
        allowed = {0.0, 0.1, 0.9, 1.0} if c in EQMSE_CATEGORIES else {0.0, 0.2, 0.8, 1.0}
        assert {round(float(v), 3) for v in t.judge} <= allowed
        assert not np.array_equal(t.p0, t.ref) and not np.array_equal(t.p1, t.ref)
    readme = (built / "README.txt").read_text()
    assert "NOT BAPPS" in readme and "seed 0" in readme and "Wang & Bovik" in readme
    manifest = json.loads((built / "proxy.json").read_text())
    assert manifest["per_category"] == N and manifest["kind"] == "proxy"
    assert manifest["version"] == proxy.VERSION
    assert manifest["train_per_category"] == proxy.train_size(N) == N // 4


def test_deterministic_for_a_seed(built: Path, tmp_path: Path):
    again = proxy.build_proxy(tmp_path / "again", seed=0, per_category=N)
    assert _digest(again) == _digest(built)
    other = proxy.build_proxy(tmp_path / "other", seed=1, per_category=N)
    assert _digest(other) != _digest(built)


def test_pixel_l2_is_imperfect_and_judgements_follow_severity(built: Path):
    bench = load_benchmark("proxy", built)
    l2 = score_pixel(bench, "l2")
    assert 50.0 < l2["ps"] < 95.0
    assert min(l2["2afc"].values()) < 90.0
    assert l2["jnd"] is None
    # noise: the milder image is the one with the smaller noise energy around a blurred ref,
    # so a distance that knows what noise is (residual high-frequency energy) agrees with judge
    t = bench.twoafc["noise"]
    from scipy import ndimage

    def hf(x):
        x = x.astype(np.float32)
        return np.abs(x - ndimage.uniform_filter(x, size=(1, 3, 3, 1))).mean(axis=(1, 2, 3))

    chose_p1 = hf(t.p1) < hf(t.p0)
    agree = np.where(chose_p1, t.judge, 1.0 - t.judge)
    assert agree.mean() > 0.75
    # meta.json says how each triplet was made; the judge follows it
    for c in SEVERITY:
        for f, p in zip(
            json.loads((built / "2afc/val" / c / "meta.json").read_text()),
            bench.twoafc[c].judge,
            strict=True,
        ):
            sure = 1.0 if f["strong"] - f["mild"] >= 2 else 0.8
            assert p == pytest.approx(sure if f["mild_is_p1"] else 1.0 - sure)
            assert 1 <= f["mild"] < f["strong"] <= 5


def test_equal_mse_categories(built: Path):
    bench = load_benchmark("proxy", built)
    l2, ssim = score_pixel(bench, "l2"), score_pixel(bench, "ssim")
    for c in EQMSE_CATEGORIES:
        t = bench.twoafc[c]
        d0, d1 = pixel_l2(t.ref, t.p0), pixel_l2(t.ref, t.p1)
        # equal LPIPS Lab L2 within 1 %, measured on the written files, but never tied
        assert np.all(np.maximum(d0, d1) / np.minimum(d0, d1) - 1.0 < 0.01)
        assert np.all(d0 != d1)
        # the hard-to-see level (judge 0.9/0.1) is the lowest error level
        unsure = np.isclose(np.minimum(t.judge, 1 - t.judge), 1 - UNSURE_JUDGE)
        assert unsure.sum() == N // 3
        assert d0[unsure].max() < d0[~unsure].min()
        # pixel L2 cannot tell a benign change from a visible one: chance, by construction
        assert l2["2afc"][c] == pytest.approx(50.0, abs=5.0)
        # how each triplet was made (meta.json) agrees with the judge, and the visible image is
        # not the fainter one: their RGB MSEs are about equal too (achromatic distortions)
        facts = json.loads((built / "2afc" / "val" / c / "meta.json").read_text())
        assert [f["name"] for f in facts] == [f"{i:06d}" for i in range(N)]
        benign_p1 = np.array([f["benign_is_p1"] for f in facts])
        assert np.array_equal(benign_p1, t.judge > 0.5)
        assert np.array_equal(np.array([f["level"] for f in facts]) == 0, unsure)
        assert {f["visible"] for f in facts} <= {"blur", "jpeg", "noise", "impulse"}
        ben = np.where(benign_p1[:, None, None, None], t.p1, t.p0).astype(np.float64)
        vis = np.where(benign_p1[:, None, None, None], t.p0, t.p1).astype(np.float64)
        ref = t.ref.astype(np.float64)
        ratio = ((ben - ref) ** 2).mean(axis=(1, 2, 3)) / ((vis - ref) ** 2).mean(axis=(1, 2, 3))
        assert 0.75 < np.median(ratio) < 1.33
    # SSIM ignores most luminance, contrast and gamma changes: it sides with the judge
    assert np.mean([ssim["2afc"][c] for c in EQMSE_CATEGORIES]) > 75.0
    for c in ("eqmse_luminance", "eqmse_gamma"):
        assert ssim["2afc"][c] > 80.0


def _positions(ref: np.ndarray, images: list[np.ndarray]) -> int:
    """How many places in ``images`` (uint8) hold the patch ``ref`` exactly."""
    hits = 0
    for img in images:
        h, w = img.shape[0] - PATCH + 1, img.shape[1] - PATCH + 1
        ys, xs = np.nonzero(np.all(img[:h, :w] == ref[0, 0], axis=-1))
        keep = np.all(img[ys + PATCH - 1, xs + PATCH - 1] == ref[-1, -1], axis=-1)
        for y, x in zip(ys[keep], xs[keep], strict=True):
            hits += np.array_equal(img[y : y + PATCH, x : x + PATCH], ref)
    return hits


def test_train_split_uses_other_photos(built: Path):
    manifest = json.loads((built / "proxy.json").read_text())
    assert not set(manifest["sources"]["train"]) & set(manifest["sources"]["val"])
    train = proxy.load_proxy(built, split="train")
    assert train.split == "train" and list(train.twoafc) == sorted(proxy.CATEGORIES)
    assert all(len(t) == N // 4 for t in train.twoafc.values())
    val_photos = [to_uint8(img) for _, img in proxy._sources("val")]
    train_photos = [to_uint8(img) for _, img in proxy._sources("train")]
    for c in ("noise", "color", "eqmse_shift"):  # a severity, a colour-only, an equal-MSE one
        for ref in train.twoafc[c].ref:
            assert _positions(ref, train_photos) >= 1 and _positions(ref, val_photos) == 0
    with pytest.raises(BenchmarkError, match="split 'test' is unknown"):
        proxy.load_proxy(built, split="test")


def test_ensure_proxy_builds_once_and_rejects_foreign_dirs(tmp_path: Path):
    root = tmp_path / "proxy"
    proxy.ensure_proxy(root, per_category=2)
    stamp = (root / "proxy.json").stat().st_mtime_ns
    proxy.ensure_proxy(root, per_category=2)
    assert (root / "proxy.json").stat().st_mtime_ns == stamp
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp dir left
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    with pytest.raises(BenchmarkError, match="no proxy.json"):
        proxy.ensure_proxy(foreign)


def _set_version(root: Path, version: int) -> None:
    path = root / "proxy.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "version": version}))


def test_an_older_version_is_rebuilt_and_swapped_in(tmp_path: Path, monkeypatch):
    root = tmp_path / "proxy"
    proxy.build_proxy(root, per_category=2)
    want = _digest(root)
    _set_version(root, proxy.VERSION - 1)
    (root / "stale.txt").write_text("from the old build")
    # a build that fails leaves the old proxy as it was, and no temporary folder
    monkeypatch.setattr(proxy, "_write_category", lambda *a: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        proxy.ensure_proxy(root, per_category=2)
    assert (root / "stale.txt").exists()
    assert json.loads((root / "proxy.json").read_text())["version"] == proxy.VERSION - 1
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    monkeypatch.undo()
    proxy.ensure_proxy(root, per_category=2)
    assert _digest(root) == want  # the whole of a fresh build, nothing of the old one
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    # a proxy from newer code is refused, not rebuilt (two checkouts would take turns)
    _set_version(root, proxy.VERSION + 1)
    with pytest.raises(BenchmarkError, match="newer than this code"):
        proxy.ensure_proxy(root, per_category=2)


def test_concurrent_rebuilders_take_turns(tmp_path: Path, monkeypatch):
    import threading

    root = tmp_path / "proxy"
    proxy.build_proxy(root, per_category=2)
    _set_version(root, proxy.VERSION - 1)
    builds, real = [], proxy._build_beside

    def counted(*args):
        builds.append(threading.get_ident())
        return real(*args)

    monkeypatch.setattr(proxy, "_build_beside", counted)
    errors = []

    def use():
        try:
            proxy.ensure_proxy(root, per_category=2)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=use) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(builds) == 1  # one rebuilt it, the others waited and used it
    assert json.loads((root / "proxy.json").read_text())["version"] == proxy.VERSION
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    (root / "proxy.json").write_text("{not json")
    with pytest.raises(BenchmarkError, match="not readable JSON"):
        proxy.ensure_proxy(root)


def test_default_dir_follows_data_layer(monkeypatch, tmp_path: Path):
    from sweeps.base import get_config

    cfg = get_config().to_dict()
    monkeypatch.setenv("PSWEEPS_DATA_DIR", str(tmp_path / "env"))
    assert proxy.default_dir(cfg) == tmp_path / "env" / "proxy"
    cfg["data"]["prepared_dir"] = str(tmp_path / "prep")
    assert proxy.default_dir(cfg) == tmp_path / "prep" / "proxy"
    cfg["perceptual"]["proxy_dir"] = str(tmp_path / "own")
    assert proxy.default_dir(cfg) == tmp_path / "own"
    monkeypatch.delenv("PSWEEPS_DATA_DIR")
    assert proxy.default_dir(None) == Path("data") / "proxy"
