"""The embedded proxy benchmark: deterministic, BAPPS layout, labelled as a proxy, L2 imperfect."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from evaluator import proxy
from evaluator.bapps import BenchmarkError
from evaluator.benchmarks import load_benchmark, score_pixel


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    return proxy.build_proxy(tmp_path_factory.mktemp("p") / "proxy", seed=0, per_category=24)


def test_layout_readme_and_judgements(built: Path):
    bench = load_benchmark("proxy", built)
    assert bench.kind == "proxy" and "not BAPPS" in bench.note
    assert list(bench.twoafc) == sorted(proxy.CATEGORIES)
    for t in bench.twoafc.values():
        assert len(t) == 24 and t.ref.shape == (24, 64, 64, 3)
        assert {round(float(v), 3) for v in t.judge} <= {0.0, 0.2, 0.8, 1.0}
        assert not np.array_equal(t.p0, t.ref) and not np.array_equal(t.p1, t.ref)
    readme = (built / "README.txt").read_text()
    assert "NOT BAPPS" in readme and "seed 0" in readme
    manifest = json.loads((built / "proxy.json").read_text())
    assert manifest["per_category"] == 24 and manifest["kind"] == "proxy"


def test_deterministic_for_a_seed(built: Path, tmp_path: Path):
    again = proxy.build_proxy(tmp_path / "again", seed=0, per_category=24)
    assert _digest(again) == _digest(built)
    other = proxy.build_proxy(tmp_path / "other", seed=1, per_category=24)
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
