"""The H200 throughput table (launch/cost.py): the docs' copy equals the code's, measured rows
equal the bench JSON they cite, the stored FLOPs are jax's, and every paper study trial is priced."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from launch import cost
from launch.trials import load_trials
from sweeps import base
from trainer.data import imagenet64

REPO = Path(__file__).resolve().parent.parent


def _docs_table() -> str:
    lines = (REPO / "docs" / "performance.md").read_text().splitlines()
    start = lines.index(cost.markdown().splitlines()[0])
    table = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        table.append(line)
    return "\n".join(table)


def test_docs_table_equals_the_code():
    assert _docs_table() == cost.markdown()


def test_measured_rows_are_the_bench_runs_and_the_rest_say_scaled():
    for model, (rate, bench) in cost.MEASURED.items():
        run = json.loads((REPO / bench).read_text())
        assert rate == round(run["end_to_end"]["images_per_sec"])
        assert run["run"]["model"].replace("resnet", "resnet-") == model
        assert (run["run"]["size"], run["run"]["dtype"]) == (cost.SIZE, "bfloat16")
        assert cost.ROWS[model].source.startswith("measured")
    for row in cost.ROWS.values():
        if row.model not in cost.MEASURED:
            ref = row.source.removeprefix("scaled by FLOPs from ").split(",")[0]
            assert ref in cost.MEASURED
            fastest = max(r for r, _ in cost.MEASURED.values())
            rate = cost.MEASURED[ref][0] * cost.GFLOPS[ref] / row.gflops
            assert row.images_per_s == round(min(rate, fastest))


def test_stored_flops_are_jax_cost_analysis():
    model = base.config_from("paper", {"model.depth": 6}).model.to_dict()
    assert cost.flops(model) == pytest.approx(cost.GFLOPS["resnet-6"], rel=1e-3)


def test_every_paper_study_trial_is_priced():
    for t in load_trials("study", "paper"):
        assert cost.trial_hours(t.config) is not None, t.name


def test_hours_are_epochs_times_images_over_rate():
    c = base.get_config("paper")  # ResNet-50, 90 epochs
    want = 90 * imagenet64.TRAIN_EXAMPLES / cost.MEASURED["resnet-50"][0] / 3600
    assert cost.trial_hours(c) == pytest.approx(want)
    base.apply_overrides(c, {"data.classes": 100, "data.num_classes": 100})
    assert cost.trial_hours(c) == pytest.approx(want / 10, rel=1e-5)
    assert cost.trial_hours(base.get_config("embedded")) is None  # 32x32 Fashion-MNIST
