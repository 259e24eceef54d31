"""The local launcher with the real trainer on the tiny smoke config (slow: trials train).

One sweep, three trials run one at a time: ``depth-2`` trains, a trial whose ImageNet-64 source
directory does not exist (a valid config that fails at run time, on the machine that runs it)
fails, and ``depth-2_seed-1``
is interrupted with Ctrl-C part-way. The rerun skips the finished trial, retries the failing one
(which fails again, without stopping the others) and resumes the interrupted one to the end.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fault_support import ctrl_c_able

from launch import procs
from launch import trials as tr

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow

SWEEP = """
from sweeps import smoke

get_config = smoke.get_config


def get_sweep(arg=None):
    return [
        {"model.depth": 2},
        {"data.name": "imagenet64", "data.source_dir": "/nonexistent/imagenet64"},
        {"model.depth": 2, "seed": 1},
    ]
"""


def launches(trial: tr.Trial) -> int:
    """How many times the launcher started this trial (one '===' line each in train.log)."""
    return sum(ln.startswith("=== ") for ln in trial.log_path.read_text().splitlines())


def test_failure_isolation_interrupt_and_resume_with_the_real_trainer(tmp_path):
    sweep = tmp_path / "mixed.py"
    sweep.write_text(SWEEP)
    runs = tmp_path / "runs"
    args = [sys.executable, "-m", "launch", str(sweep), "--runs-dir", str(runs), "--no-eval"]
    done, bad, cut = tr.load_trials(str(sweep), runs_dir=runs)
    assert (done.name, bad.name, cut.name) == (
        "depth-2",
        "name-imagenet64_source_dir-nonexistentimagenet64",
        "depth-2_seed-1",
    )

    proc = subprocess.Popen(
        args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        preexec_fn=ctrl_c_able,
    )  # fmt: skip
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        st = cut.status()
        if st.get("state") == "running" and (st.get("step") or 0) >= 1:
            break
        time.sleep(0.1)
    assert cut.status().get("state") == "running", "the last trial never got going"
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out
    assert done.status()["state"] == "done"
    assert bad.status()["state"] == "failed" and bad.status()["error"]
    assert "FAILED" in out and bad.name in out
    assert cut.status()["state"] in ("preempted", "running")  # saved, or killed mid-step
    assert not procs.pid_alive(cut.status().get("pid"))

    r = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 1, r.stdout + r.stderr  # the bad trial failed again
    assert "1 done, 2 to run" in r.stdout
    for t in (done, cut):
        st = t.status()
        assert st["state"] == "done" and st["step"] == st["total_steps"], t.name
    assert bad.status()["state"] == "failed"
    assert (launches(done), launches(bad), launches(cut)) == (1, 2, 2)
    assert "2 done, 1 failed" in r.stdout
