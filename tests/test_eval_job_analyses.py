"""The evaluator job's analyses on real tiny checkpoints: the probes and frequency curves in every
result, the lin calibration fitted once and reused, results from older code completed."""

from __future__ import annotations

import json

import pytest
from test_eval_job import Trial, _check_complete, _records

from evaluator import job, proxy, records
from evaluator.__main__ import main
from trainer.files import atomic_write_json


@pytest.fixture(scope="module")
def proxy_dir(tmp_path_factory):
    return proxy.build_proxy(tmp_path_factory.mktemp("bench") / "proxy", per_category=6)


@pytest.mark.slow
def test_calibrated_trial_scores_lin_and_reuses_the_fit_when_rescored(tmp_path, proxy_dir):
    runs = tmp_path / "runs" / "sw"
    t = Trial(runs, "depth-2", proxy_dir)
    t.cfg.perceptual.calibrate = True
    t.cfg.perceptual.calibrate_steps = 200
    atomic_write_json(t.dir / "config.json", t.cfg.to_dict())
    t.save(10)
    assert main([f"--runs={runs}"]) == 0
    rec = _records(t.dir)[10]
    _check_complete(rec, 10)
    lin = rec["benchmarks"]["proxy"]["distances"]["lin"]
    assert set(lin["2afc"]) == set(proxy.CATEGORIES) and list(lin["taps"]) == ["stem"]
    cal = lin["calibration"]
    assert not cal["reused"] and cal["split"] == "train" and cal["steps"] == 200
    npz = t.dir / "perceptual" / cal["file"]
    assert npz.name == "10.lin-proxy.npz" and npz.exists()
    mtime = npz.stat().st_mtime_ns
    records.result_path(t.dir, 10).unlink()  # scored again: the saved fit is reused, not refitted
    assert main([f"--runs={runs}"]) == 0
    again = _records(t.dir)[10]["benchmarks"]["proxy"]["distances"]["lin"]
    assert again["calibration"]["reused"] and npz.stat().st_mtime_ns == mtime
    assert again["2afc"] == lin["2afc"]
    # a result scored before the calibration was asked for lacks lin: scored again
    t.cfg.perceptual.calibrate = False
    atomic_write_json(t.dir / "config.json", t.cfg.to_dict())
    rec = records.read_result(t.dir, 10)
    del rec["benchmarks"]["proxy"]["distances"]["lin"]
    atomic_write_json(records.result_path(t.dir, 10), rec)
    assert job.Evaluator(job.JobOptions(runs=runs, log=lambda s: None)).pending(t.dir) == []
    t.cfg.perceptual.calibrate = True
    atomic_write_json(t.dir / "config.json", t.cfg.to_dict())
    assert job.Evaluator(job.JobOptions(runs=runs, log=lambda s: None)).pending(t.dir) == [10]


def test_results_without_probes_are_completed(tmp_path, proxy_dir):
    runs = tmp_path / "runs" / "sw"
    t = Trial(runs, "depth-2", proxy_dir)
    t.save(10)
    assert main([f"--runs={runs}"]) == 0
    full = records.read_result(t.dir, 10)
    ev = lambda: job.Evaluator(job.JobOptions(runs=runs, log=lambda s: None))
    # without the frequency curves only those are computed; the scores stay as they were
    rec = json.loads(json.dumps(full))
    del rec["frequency"]
    atomic_write_json(records.result_path(t.dir, 10), rec)
    assert ev().pending(t.dir) == [10]
    assert main([f"--runs={runs}"]) == 0
    now = records.read_result(t.dir, 10)
    assert (
        now["benchmarks"] == full["benchmarks"] and now["frequency"]["r"] == full["frequency"]["r"]
    )
    # a benchmark block without probes (scored by older code) is scored again
    del now["benchmarks"]["proxy"]["probes"]
    atomic_write_json(records.result_path(t.dir, 10), now)
    assert records.missing_benchmarks(now, ["proxy"]) == []  # without the trial's settings
    assert ev().pending(t.dir) == [10]
    assert main([f"--runs={runs}"]) == 0
    _check_complete(records.read_result(t.dir, 10), 10)
    # probes off: nothing is missing
    t.cfg.perceptual.probes = False
    atomic_write_json(t.dir / "config.json", t.cfg.to_dict())
    del now["frequency"]
    atomic_write_json(records.result_path(t.dir, 10), now)
    assert ev().pending(t.dir) == []


def test_unreadable_eval_split_gives_a_frequency_error_not_a_failed_step(tmp_path, proxy_dir):
    runs = tmp_path / "runs" / "sw"
    t = Trial(runs, "depth-2", proxy_dir)
    t.save(10)
    cfg = t.cfg.to_dict()
    cfg["data"]["name"] = "no_such_dataset"  # as if its data were not on this machine
    atomic_write_json(t.dir / "config.json", cfg)
    assert main([f"--runs={runs}"]) == 0
    rec = _records(t.dir)[10]
    assert rec["error"] is None and rec["benchmarks"]["proxy"]["probes"]
    assert (
        rec["frequency"]["error"].startswith("DataError")
        and "no_such_dataset" in rec["frequency"]["error"]
    )
    assert job.Evaluator(job.JobOptions(runs=runs, log=lambda s: None)).pending(t.dir) == []


def test_a_calibrated_trial_without_a_train_split_stops_the_job_first(tmp_path, proxy_dir, capsys):
    from test_bapps import category_triplets, write_2afc

    from evaluator.bapps import BAPPS_2AFC_VAL

    root = tmp_path / "bapps"  # val only, as most downloads are
    for k, c in enumerate(BAPPS_2AFC_VAL):
        write_2afc(root / "2afc" / "val" / c, category_triplets(k))
    runs = tmp_path / "runs" / "sw"
    t = Trial(runs, "depth-2", proxy_dir)
    t.cfg.perceptual.calibrate = True
    atomic_write_json(t.dir / "config.json", t.cfg.to_dict())
    t.save(10)
    assert main([f"--runs={runs}", "--benchmarks=bapps", f"--bapps-dir={root}"]) == 2
    err = capsys.readouterr().err
    assert "2afc/train" in err and err.count("\n") == 1
    assert not (t.dir / "perceptual").exists()  # nothing scored
