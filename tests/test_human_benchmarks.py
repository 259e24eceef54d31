"""NIGHTS, TID2013 and KADID-10k: readers on fixtures in their released layouts
(tests/perceptual_fixtures.py), scores with known answers, bad input, config keys, ``score``.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from perceptual_fixtures import KADID_SCORES, TID_SCORES, TRIPLETS, write_all

from evaluator import benchmarks as bm
from evaluator import mos
from evaluator.__main__ import main
from evaluator.bapps import BenchmarkError
from evaluator.iqa import KADID_TYPES, TID2013_TYPES, load_kadid10k, load_tid2013
from evaluator.nights import load_nights
from sweeps.base import ConfigError, config_from


@pytest.fixture(scope="module")
def roots(tmp_path_factory) -> dict[str, Path]:
    return write_all(tmp_path_factory.mktemp("human"))


@pytest.fixture
def copy(roots, tmp_path):
    """A fresh copy of one fixture, to break."""

    def make(name: str) -> Path:
        return Path(shutil.copytree(roots[name], tmp_path / name))

    return make


# ----------------------------------------------------------------------------- readers


def test_nights_reads_the_scored_test_split_by_category(roots):
    b = load_nights(roots["nights"], "test", size=16)
    # the test triplet with 5 votes is dropped (DreamSim keeps votes >= 6)
    assert {c: len(t) for c, t in b.twoafc.items()} == {"imagenet": 2, "no_imagenet": 2}
    assert b.twoafc["imagenet"].judge.tolist() == [TRIPLETS[0][0][2], TRIPLETS[2][0][2]]
    assert b.twoafc["imagenet"].ref.shape == (2, 16, 16, 3)
    assert b.resolution == {"mode": "resize", "height": 16, "width": 16, "resample": "bicubic"}
    assert b.jnd == {} and b.mos is None and b.split == "test"
    native = load_nights(roots["nights"], "test", size=None)
    assert native.resolution == {"mode": "native", "height": 48, "width": 48}
    assert [len(t) for t in load_nights(roots["nights"], "train").twoafc.values()] == [1]


def test_load_benchmark_maps_the_scored_split_to_nights_test(roots):
    assert bm.load_benchmark("nights", roots["nights"], 16).split == "test"
    assert bm.load_benchmark("nights", roots["nights"], 16, split="train").split == "train"
    with pytest.raises(BenchmarkError, match="tid2013 has no train split"):
        bm.load_benchmark("tid2013", roots["tid2013"], 16, split="train")


def test_tid2013_reader(roots):
    b = load_tid2013(roots["tid2013"], size=None)
    m = b.mos
    assert len(m) == len(TID_SCORES) and m.refs.shape == (2, 30, 40, 3)
    assert m.images.shape == (12, 30, 40, 3)
    assert sorted(m.score.tolist()) == pytest.approx(sorted(TID_SCORES.values()), abs=1e-5)
    assert set(m.types.tolist()) == {TID2013_TYPES[0], TID2013_TYPES[7]}
    assert set(m.ref_index.tolist()) == {0, 1}  # I01.BMP and i02.bmp, whatever the case
    assert b.resolution["mode"] == "native" and not b.twoafc


def test_kadid10k_reader(roots):
    b = load_kadid10k(roots["kadid10k"], size=24)
    assert len(b.mos) == len(KADID_SCORES) and b.mos.images.shape == (12, 24, 24, 3)
    assert set(b.mos.types.tolist()) == {KADID_TYPES[0], KADID_TYPES[9]}


# ----------------------------------------------------------------------------- scores


def test_rank_correlations_have_known_answers():
    q = np.array([4.1, 1.2, 3.3, 2.0, 4.9, 0.5, 2.7])
    types = np.array(["a", "a", "a", "b", "b", "b", "b"])
    ranks = np.argsort(np.argsort(q)).astype(float)
    good = mos.correlations(-ranks, q, types)  # distance falls as quality rises: agreement
    assert good["srocc"] == 1.0 and good["krocc"] == 1.0
    assert good["srocc_types"] == {"a": 1.0, "b": 1.0}
    assert good["plcc"] == pytest.approx(1.0, abs=0.02)
    bad = mos.correlations(ranks, q, types)  # a distance equal to the MOS ranks: reversed
    assert bad["srocc"] == -1.0 and bad["krocc"] == -1.0
    assert mos.correlations(np.ones(7), q, types)["srocc"] is None  # constant: undefined
    x = np.linspace(-2, 2, 40)
    beta = [3.0, 2.0, 0.3, 0.2, 1.0]
    plcc, fit, note = mos.logistic_pearson(x, mos.logistic5(x, *beta))
    assert plcc == pytest.approx(1.0, abs=1e-4) and note == ""


def test_nights_2afc_is_exact_with_psnr(roots):
    b = bm.load_benchmark("nights", roots["nights"], None)
    block = bm.score_pixel(b, "psnr")
    want = {
        "imagenet": 100 * np.mean([TRIPLETS[0][1], TRIPLETS[2][1]]),
        "no_imagenet": 100 * np.mean([TRIPLETS[1][1], TRIPLETS[3][1]]),
    }
    assert block["2afc"] == pytest.approx(want)
    assert block["ps"] == pytest.approx(np.mean(list(want.values())))
    assert block["jnd"] is None


@pytest.mark.parametrize("name", ["tid2013", "kadid10k"])
def test_psnr_orders_the_fixtures_exactly(roots, name):
    for size in (None, 32):
        block = bm.score_pixel(bm.load_benchmark(name, roots[name], size), "psnr")
        assert block["srocc"] == 1.0 and block["krocc"] == 1.0
        assert set(block["srocc_types"].values()) == {1.0}
        assert 0.95 < block["plcc"] <= 1.0 and block["n"] == 12


# ----------------------------------------------------------------------------- bad input


def _rewrite_csv(path: Path, edit) -> None:
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    rows, fields = edit(rows)
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)


def _drop_column(col):
    return lambda rows: ([{k: v for k, v in r.items() if k != col} for r in rows],
                         [k for k in rows[0] if k != col])  # fmt: skip


def _set(col, value, i=0):
    def edit(rows):
        rows[i][col] = value
        return rows, list(rows[0])

    return edit


NIGHTS_CASES = [
    (lambda r: (r / "data.csv").unlink(), "missing file .*data.csv"),
    (lambda r: _rewrite_csv(r / "data.csv", _drop_column("right_vote")), "lacks column.* right_vote"),
    (lambda r: _rewrite_csv(r / "data.csv", _set("right_vote", "1.5")), "right_vote=1.5 must be"),
    (lambda r: _rewrite_csv(r / "data.csv", _set("votes", "many")), "votes='many' is not a number"),
    (lambda r: (r / "distort/000/000_1.png").unlink(), "000_1.png is missing .*right_path"),
    (lambda r: (r / "ref/000/001.png").write_bytes(b"not a png"), "001.png is not a readable image"),
    (lambda r: _rewrite_csv(r / "data.csv", lambda rows: ([x for x in rows if x["split"] != "test"],
                                                          list(rows[0]))), "no 'test' triplet"),
]  # fmt: skip


@pytest.mark.parametrize("breaks,message", NIGHTS_CASES)
def test_nights_bad_input_is_one_line(copy, breaks, message):
    root = copy("nights")
    breaks(root)
    with pytest.raises(BenchmarkError, match=message) as e:
        load_nights(root, "test", 16)
    assert "\n" not in str(e.value)


def _tid_line(root: Path, i: int, text: str) -> None:
    lines = (root / "mos_with_names.txt").read_text().splitlines()
    lines[i] = text
    (root / "mos_with_names.txt").write_text("\n".join(lines) + "\n")


IQA_CASES = [
    ("tid2013", lambda r: (r / "mos_with_names.txt").unlink(), "missing file .*mos_with_names"),
    ("tid2013", lambda r: shutil.rmtree(r / "reference_images"), "missing folder .*reference_"),
    ("tid2013", lambda r: _tid_line(r, 0, "5.1 image.bmp"), "line 1: '5.1 image.bmp' is not"),
    ("tid2013", lambda r: _tid_line(r, 1, "high i01_01_2.bmp"), "line 2: score 'high' is not"),
    ("tid2013", lambda r: _tid_line(r, 1, "3.6 i01_01_1.bmp"), "i01_01_1.bmp is listed twice"),
    ("tid2013", lambda r: _tid_line(r, 1, "3.6 i01_30_2.bmp"), "type 30 is not in 1..24"),
    ("tid2013", lambda r: (r / "distorted_images/i01_08_2.bmp").unlink(), "i01_08_2.bmp is missing"),
    ("tid2013", lambda r: (r / "reference_images/I01.BMP").unlink(), "i01.bmp is missing"),
    ("tid2013", lambda r: shutil.copy(r / "distorted_images/i01_01_1.bmp",
                                      r / "distorted_images/i01_01_5.bmp"),
     "lists 12 distorted images but .* holds 13"),
    ("tid2013", lambda r: (r / "distorted_images/i02_01_3.bmp").write_bytes(b"x"),
     "i02_01_3.bmp is not a readable image"),
    ("kadid10k", lambda r: (r / "dmos.csv").unlink(), "missing file .*dmos.csv"),
    ("kadid10k", lambda r: _rewrite_csv(r / "dmos.csv", _drop_column("dmos")), "lacks column.* dmos"),
    ("kadid10k", lambda r: _rewrite_csv(r / "dmos.csv", _set("dist_img", "x.png")), "is not IXX_YY"),
    ("kadid10k", lambda r: _rewrite_csv(r / "dmos.csv", _set("ref_img", "I09.png")), "I09.png is"),
    ("kadid10k", lambda r: (r / "images/I02_10_03.png").unlink(), "I02_10_03.png is missing"),
    ("kadid10k", lambda r: _rewrite_csv(r / "dmos.csv", lambda rows: (rows[1:], list(rows[0]))),
     "lists 11 distorted images but .* holds 12"),
]  # fmt: skip


@pytest.mark.parametrize("name,breaks,message", IQA_CASES)
def test_iqa_bad_input_is_one_line(copy, name, breaks, message):
    root = copy(name)
    breaks(root)
    with pytest.raises(BenchmarkError, match=message) as e:
        bm.load_benchmark(name, root, 16)
    assert "\n" not in str(e.value)


def test_native_resolution_needs_one_image_size(copy):
    root = copy("kadid10k")
    from PIL import Image

    Image.new("RGB", (20, 20), (90, 90, 90)).save(root / "images" / "I01_01_02.png")
    with pytest.raises(BenchmarkError, match="native needs one image size"):
        bm.load_benchmark("kadid10k", root, None)
    assert len(bm.load_benchmark("kadid10k", root, 16).mos) == 12  # resized: fine


def test_missing_directory_and_unknown_name():
    with pytest.raises(BenchmarkError, match="nights needs a directory .*perceptual.nights_dir"):
        bm.load_benchmark("nights", "", 16)
    with pytest.raises(BenchmarkError, match="TID2013 directory /nowhere does not exist"):
        bm.load_benchmark("tid2013", "/nowhere", 16)
    with pytest.raises(BenchmarkError, match="unknown; allowed: proxy, bapps, nights"):
        bm.load_benchmark("live", "/x", 16)


# ----------------------------------------------------------------------------- config, CLI


def test_config_keys():
    c = config_from(None, {"perceptual.benchmarks": "proxy,bapps,nights,tid2013,kadid10k",
                           "perceptual.nights_dir": "/d/nights", "perceptual.image_size": 64,
                           "perceptual.resolution": "native"})  # fmt: skip
    assert c.perceptual.kadid10k_dir == "" and c.perceptual.image_size == 64
    for bad, message in [
        ({"perceptual.benchmarks": "proxy,live"}, "comma list of proxy, bapps, nights, tid2013"),
        ({"perceptual.resolution": "full"}, "one of resize, native"),
        ({"perceptual.image_size": 4}, "0 or an integer in"),
        ({"model.name": "vit", "model.variant": "Ti/4", "perceptual.resolution": "native"},
         "native resolution needs a fully convolutional model"),
    ]:  # fmt: skip
        with pytest.raises(ConfigError, match=message):
            config_from(None, bad)


def test_score_cli(roots, capsys):
    tid = f"--data-dir={roots['tid2013']}"
    assert main(["score", "--benchmark=tid2013", tid, "--metric=psnr", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["srocc"] == 1.0 and out["resolution"]["width"] == 64
    assert main(["score", "--benchmark=kadid10k", f"--data-dir={roots['kadid10k']}",
                 "--metric=l2", "--native"]) == 0  # fmt: skip
    text = capsys.readouterr().out
    assert "SROCC all" in text and "+1.000" in text
    nights = f"--data-dir={roots['nights']}"
    assert main(["score", "--benchmark=nights", nights, "--metric=psnr", "--image-size=24"]) == 0
    assert "2AFC mean (PS)         72.50" in capsys.readouterr().out
    assert main(["score", "--benchmark=nights", "--metric=l2"]) == 2
    assert "--data-dir is required for nights" in capsys.readouterr().err
    assert main(["score", "--benchmark=tid2013", tid, "--metric=l1"]) == 2
    assert "allowed: l2, ssim, psnr" in capsys.readouterr().err


def test_model_for_a_resolution():
    """A ViT is rebuilt for the resized grid from its trained variables; a ResNet is itself."""
    import jax

    from evaluator.features import ScoringModel
    from evaluator.imagesets import model_for
    from sweeps.base import get_config
    from trainer.models import build_model

    cfg = get_config().to_dict()
    cfg["model"].update(name="vit", variant="Ti/8", depth=1, hidden_size=16, mlp_dim=32,
                        num_heads=2)  # fmt: skip
    cfg["data"]["image_size"] = 32
    model = build_model(cfg["model"], cfg["data"]["num_classes"])
    x = np.zeros((1, 32, 32, 3), np.float32)
    variables = dict(
        jax.jit(lambda k: model.init({"params": k}, x, train=False))(jax.random.key(0))
    )
    sm = ScoringModel.from_variables(cfg, variables, batch_size=4)  # BAPPS's 64: an 8x8 grid
    at32 = model_for(sm, cfg, 32)
    assert at32.resolution["scored"] == 32 and at32.resolution["how"].startswith("native")
    assert at32.variables["params"]["pos_embedding"].shape == (1, 1 + 4 * 4, 16)
    at16 = model_for(sm, cfg, 16)
    assert "from 4x4 to 2x2" in at16.resolution["how"]
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
    assert np.all(np.isfinite(at16.pair_distances(imgs, imgs[::-1])["local"]["block1"]))
    assert model_for(sm, cfg, 64) is sm
    with pytest.raises(BenchmarkError, match="native needs a fully convolutional model"):
        model_for(sm, cfg, None)
    cfg["model"].update(name="resnet", depth=2, variant="")
    model = build_model(cfg["model"], cfg["data"]["num_classes"])
    variables = dict(
        jax.jit(lambda k: model.init({"params": k}, x, train=False))(jax.random.key(0))
    )
    resnet = ScoringModel.from_variables(cfg, variables, batch_size=4)
    assert model_for(resnet, cfg, None) is resnet and model_for(resnet, cfg, 24) is resnet
