"""The bench's issue-19 tools: ``bench.packing`` (K trials on one device), ``bench.first_step``
(time to the first step of a sweep's 2nd trial) and ``bench.study`` (images/s per study model,
measured or scaled by FLOPs). bench/gpu_check.sh runs them on an H200; here they run tiny."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench import study

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--model=resnet2", "--width=0.0625", "--batch=8", "--size=16", "--data=synthetic"]


def test_study_table_scales_by_flops_within_a_family():
    costs = {
        "resnet6": {"params": 1, "forward_flops": 1e9},
        "resnet50": {"params": 2, "forward_flops": 4e9},
        "resnet200": {"params": 3, "forward_flops": 8e9},
        "vit-B/8": {"params": 4, "forward_flops": 2e10},
    }
    rows = study.scaled_table(costs, {"resnet6": 1000.0, "resnet50": 300.0}, list(costs))
    by = {r["model"]: r for r in rows}
    assert by["resnet6"]["source"] == by["resnet50"]["source"] == "measured"
    assert by["resnet200"]["images_per_sec"] == 150.0  # from resnet50, the nearest in FLOPs
    assert by["resnet200"]["source"] == "scaled by FLOPs from resnet50"
    assert by["vit-B/8"]["source"].startswith("scaled by FLOPs from resnet")  # no ViT measured
    assert by["resnet50"]["train_gflops_per_image"] == 12.0
    assert "| resnet200 | 0.00 | 24.000 | 150 | scaled by FLOPs from resnet50 |" in study.markdown(
        rows
    )


def test_study_counts_parameters_and_flops():
    small, big = (study.model_cost(m, 32) for m in ("resnet6", "resnet18"))
    assert 0 < small["params"] < big["params"] and 0 < small["forward_flops"] < big["forward_flops"]


@pytest.mark.slow
def test_packing_bench_runs_k_workers_at_once(tmp_path):
    out = tmp_path / "packing.json"
    cmd = [sys.executable, "-m", "bench.packing", *TINY, "--examples=64", "--steps=1"]
    cmd += ["--ks=2", "--seconds=0.5", f"--bench-dir={tmp_path / 'b'}", f"--out={out}"]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    doc = json.loads(out.read_text())
    (two,) = doc["rows"]
    assert two["k"] == 2 and two["speedup_vs_one"] is None  # no K=1 run to compare with
    assert len(two["per_process"]) == 2 and all(p["steps"] >= 1 for p in two["per_process"])
    assert two["aggregate_images_per_sec"] == pytest.approx(
        sum(p["images_per_sec"] for p in two["per_process"]), abs=0.2
    )
    assert two["memory_env"] == {}  # a CPU: no device memory to share out
    assert "K=2:" in r.stdout


def test_packing_bench_rejects_bad_ks():
    r = subprocess.run(
        [sys.executable, "-m", "bench.packing", "--ks=0,2"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2 and "--ks='0,2' is not allowed" in r.stderr


@pytest.mark.slow
def test_first_step_of_two_trials_is_recorded(tmp_path):
    out = tmp_path / "first.json"
    cmd = [sys.executable, "-m", "bench.first_step", "--model=resnet2", f"--out={out}"]
    cmd += ["--set=model.width=0.0625", "--set=data.image_size=16", "--set=train.epochs=0.01"]
    cmd += [f"--runs-dir={tmp_path / 'runs'}"]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    doc = json.loads(out.read_text())
    assert doc["trials"] == ["wd-5e-05", "wd-0.0005"]
    assert all(s > 0 for s in doc["first_step_s"] + doc["first_step_cpu_s"])
    assert doc["second_over_first"] == pytest.approx(
        doc["first_step_s"][1] / doc["first_step_s"][0], abs=1e-3
    )
    assert list(Path(doc["cache_dir"]).glob("jit_step-*-cache"))  # the shared cache was used
    assert "first step: trial 1" in r.stdout and "first step at" in r.stdout
