"""The evaluator job on real tiny checkpoints saved with the trainer's checkpoint code.

One pass, idempotence, the record format, an unreadable checkpoint, a step deleted before it is
scored, the watcher picking up a checkpoint saved while it runs, and SIGKILL + restart.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from eval_support import Trial

from evaluator import job, proxy, records
from evaluator.__main__ import main
from trainer import checkpoint
from trainer.files import atomic_write_json

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def proxy_dir(tmp_path_factory) -> Path:
    return proxy.build_proxy(tmp_path_factory.mktemp("bench") / "proxy", per_category=6)


def _records(trial: Path) -> dict[int, dict]:
    return {int(p.stem): json.loads(p.read_text()) for p in (trial / "perceptual").glob("*.json")}


def _check_complete(rec: dict, step: int) -> None:
    assert rec["step"] == step and rec["error"] is None
    assert rec["resolution"] == {
        "trained": 16,
        "scored": 64,
        "how": "fully convolutional, applied as is",
    }
    b = rec["benchmarks"]["proxy"]
    assert b["kind"] == "proxy" and "not BAPPS" in b["note"] and b["version"] == proxy.VERSION
    for kind in ("local", "meanpool", "style"):
        block = b["distances"][kind]
        assert set(block["2afc"]) == set(proxy.CATEGORIES)
        assert block["ps"] == pytest.approx(np.mean(list(block["2afc"].values())), abs=1e-3)
        assert block["jnd"] is None
        assert list(block["taps"]) == ["stem"]  # ResNet-2 taps its stem
        assert all(0.0 <= v <= 100.0 for v in block["2afc"].values())
    for metric in ("l2", "ssim"):
        assert set(b["reference"][metric]["2afc"]) == set(proxy.CATEGORIES)
    # the hypothesis probes (perceptual.probes, on by default) beside the scores
    assert set(b["probes"]) == {"margin", "entropy", "best_tap"}
    assert set(b["probes"]["margin"]["distances"]) >= {"local", "meanpool", "style"}
    assert 0.0 < b["probes"]["entropy"]["mean"] <= 1.0
    assert b["probes"]["best_tap"]["local"] == {
        "tap": "stem",
        "ps": b["distances"]["local"]["taps"]["stem"],
    }
    assert 50.0 <= b["dynamic_range"]["ceiling"] <= 100.0
    f = rec["frequency"]
    assert f["image_size"] == 16 and f["r"][-1] == 16 and len(f["lowpass"]) == len(f["r"])
    assert f["examples"] == 256 and f["split"] == "eval" and 0.0 <= f["clean_top1"] <= 100.0


def test_one_pass_is_complete_and_idempotent(tmp_path: Path, proxy_dir: Path, capsys):
    runs = tmp_path / "runs" / "sw"
    t = Trial(runs, "depth-2", proxy_dir)
    t.save(10, 20)
    (t.dir / "metrics.jsonl").write_text(
        json.dumps({"kind": "eval", "step": 40, "epoch": 1.0}) + "\n"
    )
    assert main([f"--runs={runs}"]) == 0
    out = capsys.readouterr().out
    assert "depth-2 step 10: proxy PS local" in out and "depth-2 step 20:" in out
    assert "[1/2] depth-2 step 10: " in out and "[2/2] depth-2 step 20: " in out  # k/N
    recs = _records(t.dir)
    assert sorted(recs) == [10, 20]
    for s, rec in recs.items():
        _check_complete(rec, s)
        assert rec["trial"] == "depth-2" and rec["model"]["depth"] == 2
        assert rec["epoch"] == pytest.approx(s / 40)
    # distinct checkpoints give distinct distances; the pixel references do not depend on them
    b10, b20 = (recs[s]["benchmarks"]["proxy"] for s in (10, 20))
    assert b10["reference"] == b20["reference"]
    mtimes = {p: p.stat().st_mtime_ns for p in (t.dir / "perceptual").iterdir()}
    assert not (t.dir / "checkpoints" / checkpoint.SNAPSHOTS / "10").exists()  # snapshot released
    assert main([f"--runs={runs}"]) == 0
    assert "0 step(s) scored" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in (t.dir / "perceptual").iterdir()} == mtimes


def test_unreadable_checkpoint_is_recorded_and_deleted_step_skipped(
    tmp_path: Path, proxy_dir: Path, capsys
):
    runs = tmp_path / "runs" / "sw"
    t = Trial(runs, "depth-2", proxy_dir)
    t.save(10, 20, 30)
    # step 20: the array data is gone (orbax still lists the step)
    for p in (t.dir / "checkpoints" / "20").rglob("*"):
        if p.is_file() and "ocdbt" in str(p.relative_to(t.dir / "checkpoints" / "20")):
            p.unlink()
    ev = job.Evaluator(job.JobOptions(runs=runs, log=lambda s: None))
    # step 30 vanishes between listing and scoring (the trainer's retention deleted it)
    shutil.rmtree(t.dir / "checkpoints" / "30")
    assert ev.score_step(t.dir, 30) is None
    assert not records.result_path(t.dir, 30).exists()
    assert main([f"--runs={runs}"]) == 3  # a step is an error record: not a success
    out = capsys.readouterr().out
    assert "depth-2 step 20: ERROR checkpoint 20 is damaged: " in out
    assert "1 step(s) scored, 1 error(s), 0 skipped" in out.splitlines()[-1]
    assert main([f"--runs={runs}", "--allow-errors"]) == 0
    assert "0 step(s) scored, 1 error(s)" in capsys.readouterr().out
    recs = _records(t.dir)
    assert sorted(recs) == [10, 20]
    _check_complete(recs[10], 10)
    assert recs[20]["error"] and "\n" not in recs[20]["error"] and "benchmarks" not in recs[20]


def test_bad_job_arguments(tmp_path: Path, proxy_dir: Path, capsys):
    assert main([f"--runs={tmp_path / 'nope'}"]) == 2
    assert "is not a directory" in capsys.readouterr().err
    runs = tmp_path / "runs"
    Trial(runs, "t", proxy_dir)
    assert main([f"--runs={runs}", "--benchmarks=proxy,lpips"]) == 2
    assert "'lpips'" in capsys.readouterr().err
    assert main([f"--runs={runs}", "--benchmarks=bapps"]) == 2
    err = capsys.readouterr().err
    assert "--bapps-dir" in err and err.count("\n") == 1
    assert main([f"--runs={runs}", "--benchmarks=bapps", f"--bapps-dir={tmp_path}"]) == 2
    assert "2afc/val" in capsys.readouterr().err


def _job(runs: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "evaluator", f"--runs={runs}", *extra],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait_for(cond, timeout: float, proc: subprocess.Popen | None = None) -> None:
    end = time.time() + timeout
    while time.time() < end:
        if cond():
            return
        if proc is not None and proc.poll() is not None and not cond():
            raise AssertionError(f"job exited early:\n{proc.stdout.read()}")
        time.sleep(0.1)
    raise AssertionError("timed out")


@pytest.mark.slow
def test_watch_picks_up_a_checkpoint_saved_while_it_runs(tmp_path: Path, proxy_dir: Path):
    runs = tmp_path / "runs" / "sw"
    t = Trial(runs, "depth-2", proxy_dir)
    t.save(10)
    proc = _job(runs, "--watch", "--poll-seconds=0.2")
    try:
        _wait_for(lambda: records.result_path(t.dir, 10).exists(), 120, proc)
        assert proc.poll() is None  # the trial still runs: the watcher keeps polling
        t.save(20)
        t.status("done")
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    assert "depth-2 step 20: proxy PS local" in out
    recs = _records(t.dir)
    assert sorted(recs) == [10, 20]
    _check_complete(recs[20], 20)


@pytest.mark.slow
def test_sigkill_mid_pass_then_restart_loses_and_redoes_nothing(tmp_path: Path, proxy_dir: Path):
    runs = tmp_path / "runs" / "sw"
    t = Trial(runs, "depth-2", proxy_dir)
    steps = [10, 20, 30, 40, 50, 60]
    t.save(*steps)
    t.status("done")
    proc = _job(runs)
    try:
        _wait_for(lambda: len(list((t.dir / "perceptual").glob("*.json"))) >= 1, 120, proc)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate()
    before = {p.name: p.stat().st_mtime_ns for p in (t.dir / "perceptual").glob("*.json")}
    assert 1 <= len(before) < len(steps), "the kill should land mid-pass"
    for p in (t.dir / "perceptual").glob("*.json"):  # whatever is there is whole
        _check_complete(json.loads(p.read_text()), int(p.stem))
    proc = _job(runs)
    out, _ = proc.communicate(timeout=180)
    assert proc.returncode == 0, out
    recs = _records(t.dir)
    assert sorted(recs) == steps
    for s in steps:
        _check_complete(recs[s], s)
    after = {p.name: p.stat().st_mtime_ns for p in (t.dir / "perceptual").glob("*.json")}
    assert {k: after[k] for k in before} == before  # finished steps were not redone
    assert f"{len(steps) - len(before)} step(s) scored" in out


def test_score_cli_on_a_checkpoint(tmp_path: Path, proxy_dir: Path, capsys):
    t = Trial(tmp_path / "runs", "depth-2", proxy_dir)
    t.save(10, 20)
    argv = ["score", "--benchmark=proxy", f"--data-dir={proxy_dir}", "--json"]
    assert main([*argv, f"--metric=checkpoint:{t.dir / 'checkpoints' / '10'}"]) == 0
    at10 = json.loads(capsys.readouterr().out)
    assert at10["step"] == 10 and set(at10["2afc"]) == set(proxy.CATEGORIES)
    assert at10["ps"] == pytest.approx(np.mean(list(at10["2afc"].values())), abs=1e-3)
    assert at10["jnd"] is None and at10["ps"] == at10["distances"]["local"]["ps"]
    assert main([*argv, f"--metric=checkpoint:{t.dir}"]) == 0  # a trial dir: its latest step
    assert json.loads(capsys.readouterr().out)["step"] == 20
    assert main([*argv, f"--metric=checkpoint:{tmp_path}"]) == 2
    assert "neither a trial directory" in capsys.readouterr().err


def test_a_benchmark_asked_for_later_is_scored_and_merged(tmp_path: Path, proxy_dir: Path):
    # A result holding another benchmark only (say BAPPS, scored on a cluster): a job asked
    # for the proxy too scores the proxy alone and keeps what the result held.
    runs = tmp_path / "runs" / "sw"
    t = Trial(runs, "depth-2", proxy_dir)
    t.save(10)
    other = {"kind": "bapps", "distances": {"local": {"ps": 61.5}}}
    atomic_write_json(
        records.result_path(t.dir, 10),
        {"step": 10, "trial": "depth-2", "error": None, "benchmarks": {"bapps": other}},
    )
    ev = job.Evaluator(job.JobOptions(runs=runs, log=lambda s: None))
    assert ev.pending(t.dir) == [10]
    assert main([f"--runs={runs}"]) == 0
    rec = _records(t.dir)[10]
    _check_complete(rec, 10)
    assert rec["benchmarks"]["bapps"] == other
    rec = records.read_result(t.dir, 10)
    assert records.missing_benchmarks(rec, ["proxy", "bapps"]) == []
    assert records.missing_benchmarks(rec, ["proxy", "bapps", "more"]) == ["more"]
    assert ev.pending(t.dir) == []
    # a proxy block scored on an older proxy version (or before versions were recorded) is
    # scored again, alone, and replaced; the BAPPS block stays
    for old_version in (proxy.VERSION - 1, None):
        rec["benchmarks"]["proxy"]["version"] = old_version
        if old_version is None:
            del rec["benchmarks"]["proxy"]["version"]
        atomic_write_json(records.result_path(t.dir, 10), rec)
        assert records.missing_benchmarks(rec, ["proxy", "bapps"]) == ["proxy"]
        assert job.Evaluator(job.JobOptions(runs=runs, log=lambda s: None)).pending(t.dir) == [10]
    assert main([f"--runs={runs}"]) == 0
    rec = _records(t.dir)[10]
    _check_complete(rec, 10)
    assert rec["benchmarks"]["bapps"] == other


def test_retry_errors_rescores_error_records_once_per_job(tmp_path: Path, proxy_dir: Path, capsys):
    runs = tmp_path / "runs" / "sw"
    t = Trial(runs, "depth-2", proxy_dir)
    t.save(10, 20)
    for p in (t.dir / "checkpoints" / "20").rglob("*"):  # step 20 stays unreadable
        if p.is_file() and "ocdbt" in str(p.relative_to(t.dir / "checkpoints" / "20")):
            p.unlink()
    for s in (10, 20):  # both failed once (step 10: a transient read error)
        atomic_write_json(records.result_path(t.dir, s), {"step": s, "error": "OSError: gone"})
    assert main([f"--runs={runs}"]) == 3
    # error records are final by default
    assert "0 step(s) scored, 2 error(s)" in capsys.readouterr().out
    t.status("done")
    # --watch with --retry-errors ends: step 20 fails again and is not retried in this job
    assert main([f"--runs={runs}", "--retry-errors", "--watch", "--poll-seconds=0.05"]) == 3
    assert "1 step(s) scored, 1 error(s)" in capsys.readouterr().out
    recs = _records(t.dir)
    _check_complete(recs[10], 10)
    assert recs[20]["error"] and recs[20]["error"] != "OSError: gone"


def test_watch_stops_waiting_for_a_running_trial_whose_files_went_stale(
    tmp_path: Path, proxy_dir: Path, capsys
):
    # A trainer killed without a status update leaves "running" behind; --watch must still end.
    runs = tmp_path / "runs" / "sw"
    t = Trial(runs, "depth-2", proxy_dir)
    t.save(10)
    two_hours_ago = time.time() - 7200
    for path in (t.dir / "status.json", *(t.dir / "checkpoints").iterdir()):
        os.utime(path, (two_hours_ago, two_hours_ago))
    ev = job.Evaluator(job.JobOptions(runs=runs, log=lambda s: None))
    assert ev._ended(t.dir, "running")  # unchanged for 2 h > the default hour
    assert not ev._ended(t.dir, "pending") and not ev._ended(t.dir, "preempted")  # may start later
    never = job.Evaluator(job.JobOptions(runs=runs, stale_after=0, log=lambda s: None))
    assert not never._ended(t.dir, "running")
    assert records.last_activity(t.dir) == pytest.approx(two_hours_ago, abs=1)
    # the job's own snapshot (checkpoints/_SNAPSHOTS) does not count as the trainer's activity
    proc = _job(runs, "--watch", "--poll-seconds=0.05")
    try:
        out, _ = proc.communicate(timeout=300)  # a watcher that never ends fails here
    finally:
        proc.kill()
    assert proc.returncode == 0, out
    assert records.last_activity(t.dir) == pytest.approx(two_hours_ago, abs=1)
    assert "depth-2: says running but nothing changed for 120 min" in out
    assert "1 step(s) scored" in out
    t.status("running")  # fresh again: a live trial is waited for
    assert not ev._ended(t.dir, "running")
    assert main([f"--runs={runs}", "--stale-after=-1"]) == 2
    assert "--stale-after=-1.0 must be >= 0" in capsys.readouterr().err
