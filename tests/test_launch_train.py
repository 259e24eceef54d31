"""The local launcher with the real trainer on the tiny smoke sweep (slow: each trial trains)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from launch import trials as tr

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def launcher(*args: str) -> list[str]:
    return [sys.executable, "-m", "launch", *args, "--no-eval"]


def header_count(trial: tr.Trial) -> int:
    """How many times the launcher started this trial (one '===' line each in train.log)."""
    return sum(ln.startswith("=== ") for ln in trial.log_path.read_text().splitlines())


def test_a_trial_whose_model_raises_is_isolated(tmp_path):
    sweep = tmp_path / "mixed.py"
    sweep.write_text(
        "from sweeps import smoke\n"
        "get_config = smoke.get_config\n"
        "def get_sweep(arg=None):\n"
        "    # ViT patches of 64 pixels cannot cut 16x16 images: valid config, fails at run time\n"
        "    return [{'model.depth': 2}, {'model.name': 'vit', 'model.variant': 'Ti/64', 'model.depth': 1}]\n"
    )
    runs = tmp_path / "runs"
    r = subprocess.run(
        launcher(str(sweep), "--runs-dir", str(runs)),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 1, r.stdout + r.stderr
    trials = {t.name: t for t in tr.load_trials(str(sweep), runs_dir=runs)}
    assert set(trials) == {"depth-2", "name-vit_variant-Ti64_depth-1"}
    good, bad = trials["depth-2"].status(), trials["name-vit_variant-Ti64_depth-1"].status()
    assert good["state"] == "done" and good["step"] == good["total_steps"]
    assert bad["state"] == "failed" and bad["error"]
    assert "FAILED" in r.stdout and "1 done, 1 failed" in r.stdout


def test_interrupted_sweep_resumes_without_retraining_done_trials(tmp_path):
    runs = tmp_path / "runs"
    args = launcher("smoke", "--runs-dir", str(runs))
    first, second = tr.load_trials("smoke", runs_dir=runs)
    proc = subprocess.Popen(
        args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    deadline = time.time() + 240
    while time.time() < deadline:  # stop mid-way through the second trial
        st = second.status()
        if st.get("state") == "running" and (st.get("step") or 0) >= 1:
            break
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    assert first.status()["state"] == "done"
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out
    assert second.status()["state"] in ("preempted", "running", "pending")
    assert second.status()["state"] != "done"
    r = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "1 done, 1 to run" in r.stdout
    for t in (first, second):
        st = t.status()
        assert st["state"] == "done" and st["step"] == st["total_steps"]
    assert header_count(first) == 1  # not retrained
    assert header_count(second) == 2
    # and a third run trains nothing
    r = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "2 done, 0 to run" in r.stdout
    assert header_count(first) == 1 and header_count(second) == 2
