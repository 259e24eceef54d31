"""The evaluator job and the report with NIGHTS, TID2013 and KADID-10k passed by directory:
real tiny checkpoints (tests/eval_support.py) on fixtures in the released layouts
(tests/perceptual_fixtures.py)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from eval_support import Trial
from perceptual_fixtures import write_all

from evaluator import proxy
from evaluator.__main__ import main
from evaluator.report import write_report
from trainer.files import atomic_write_json

HUMAN = ("nights", "tid2013", "kadid10k")


@pytest.fixture(scope="module")
def dirs(tmp_path_factory) -> dict[str, Path]:
    return write_all(tmp_path_factory.mktemp("human"))


@pytest.fixture(scope="module")
def proxy_dir(tmp_path_factory) -> Path:
    return proxy.build_proxy(tmp_path_factory.mktemp("bench") / "proxy", per_category=6)


def _trial(runs: Path, name: str, proxy_dir: Path, perceptual: dict) -> Trial:
    t = Trial(runs, name, proxy_dir)
    cfg = json.loads((t.dir / "config.json").read_text())
    cfg["perceptual"].update({"frequency_examples": 0, **perceptual})
    atomic_write_json(t.dir / "config.json", cfg)
    return t


def _check_mos_block(b: dict, name: str) -> None:
    assert b["kind"] == name and b["resolution"]["mode"] == "resize"
    for kind in ("local", "meanpool", "style"):
        block = b["distances"][kind]
        assert set(block) >= {"srocc", "krocc", "plcc", "srocc_types", "taps", "n"}
        assert block["n"] == 12 and list(block["taps"]) == ["stem"]
        assert block["srocc"] is None or -1.0 <= block["srocc"] <= 1.0
    assert set(b["reference"]) == {"l2", "ssim", "psnr"}
    assert b["reference"]["psnr"]["srocc"] == 1.0  # the fixture's exact order survives 16x16
    assert "probes" not in b  # the probes are 2AFC analyses


@pytest.mark.slow
def test_job_scores_each_benchmark_by_directory_and_reports_it(
    tmp_path: Path, proxy_dir: Path, dirs: dict[str, Path], capsys
):
    runs = tmp_path / "runs" / "sw"
    keys = {f"{n}_dir": str(dirs[n]) for n in HUMAN}
    t = _trial(runs, "depth-2", proxy_dir, {"benchmarks": "proxy,nights,tid2013,kadid10k", **keys})
    t.save(10)
    assert main([f"--runs={runs}"]) == 0
    out = capsys.readouterr().out
    assert "nights PS local" in out and "tid2013 SROCC local" in out and "kadid10k SROCC" in out
    rec = json.loads((t.dir / "perceptual" / "10.json").read_text())
    b = rec["benchmarks"]
    assert set(b) == {"proxy", *HUMAN}
    nights = b["nights"]
    assert nights["split"] == "test" and set(nights["distances"]["local"]["2afc"]) == {
        "imagenet",
        "no_imagenet",
    }
    assert nights["resolution"] == {
        "mode": "resize",
        "height": 16,  # the trial's data.image_size (perceptual.image_size = 0)
        "width": 16,
        "resample": "bicubic",
        "model": "fully convolutional, applied as is",
    }
    assert nights["reference"]["psnr"]["ps"] == 72.5  # the exact 2AFC case
    assert set(nights["probes"]) == {"margin", "entropy", "best_tap"}
    for name in ("tid2013", "kadid10k"):
        _check_mos_block(b[name], name)
    assert main([f"--runs={runs}"]) == 0  # complete: nothing scored again
    assert "0 step(s) scored" in capsys.readouterr().out

    # the report: one column and one plot per benchmark, and each one's Spearman vs top-1
    (t.dir / "metrics.jsonl").write_text(
        json.dumps({"kind": "eval", "step": 10, "epoch": 1.0, "eval_top1": 0.42}) + "\n"
    )
    atomic_write_json(t.dir / "status.json", {"state": "done", "step": 10})
    text = write_report(runs).read_text()
    section = text.split("## Benchmarks", 1)[1]
    head = "| trial | top-1 (%) | proxy PS (% 2AFC) | NIGHTS PS (% 2AFC) | TID2013 SROCC | KADID-10k SROCC |"
    assert head in section
    for n in HUMAN:
        assert (runs / f"bench_{n}.png").stat().st_size > 0
        assert f"](bench_{n}.png)" in section
    assert "| TID2013 | SROCC | 1 | – | – | fewer than 3 points |" in section
    assert "NIGHTS resize 16x16" in section
    with (runs / "results.csv").open() as f:
        row = next(csv.DictReader(f))
    assert row["resolution_tid2013"] == "resize 16x16"
    assert float(row["srocc_tid2013_psnr"]) == 1.0 and row["ps_nights_psnr"] == "72.5"
    assert "srocc_kadid10k_local_gaussian_blur" in row and "tap_tid2013_local_stem" in row


@pytest.mark.slow
def test_native_resolution_and_directories_from_the_command_line(
    tmp_path: Path, proxy_dir: Path, dirs: dict[str, Path], capsys
):
    runs = tmp_path / "runs" / "sw"
    t = _trial(runs, "t", proxy_dir, {"benchmarks": "tid2013", "resolution": "native"})
    t.save(10)
    assert main([f"--runs={runs}"]) == 2  # no directory given anywhere: before any work
    err = capsys.readouterr().err
    assert "tid2013 needs a directory: pass --tid2013-dir=DIR or set perceptual.tid2013_dir" in err
    assert not (t.dir / "perceptual").exists()
    args = [f"--runs={runs}", f"--tid2013-dir={dirs['tid2013']}", f"--nights-dir={dirs['nights']}"]
    assert main([*args, "--benchmarks=tid2013,nights"]) == 0
    b = json.loads((t.dir / "perceptual" / "10.json").read_text())["benchmarks"]
    assert b["tid2013"]["resolution"]["mode"] == "native"
    assert (b["tid2013"]["resolution"]["width"], b["tid2013"]["resolution"]["height"]) == (40, 30)
    assert b["nights"]["resolution"]["height"] == 48


def test_native_resolution_refuses_a_vit_trial(tmp_path: Path, proxy_dir: Path, dirs, capsys):
    runs = tmp_path / "runs" / "sw"
    t = _trial(runs, "t", proxy_dir, {"benchmarks": "kadid10k", "resolution": "native"})
    cfg = json.loads((t.dir / "config.json").read_text())
    cfg["model"].update({"name": "vit", "variant": "Ti/4"})
    atomic_write_json(t.dir / "config.json", cfg)
    assert main([f"--runs={runs}", f"--kadid10k-dir={dirs['kadid10k']}"]) == 2
    assert "native needs a fully convolutional model" in capsys.readouterr().err
