"""The TPU launcher for real (not dry) against a fake gcloud that simulates slices and workers
(tests/tpu/fake_gcloud.py) and a fake trainer (tests/tpu/fake_python.py): multi-host slices,
one trial per host, N slices fed from one queue, a slice lost mid-trial, and a launcher that
stops and is run again while its trainers keep running."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from launch import tpu, tpu_sched
from launch.__main__ import parser as launch_parser
from launch.trials import LaunchOptions, load_trials, prepare

REPO = Path(__file__).resolve().parent.parent
FAKES = Path(__file__).resolve().parent / "tpu"


@pytest.fixture()
def cloud(tmp_path, monkeypatch):
    """The fake gcloud on PATH; yields its state folder; kills what the fake workers left."""
    bin_dir, state = tmp_path / "bin", tmp_path / "gcloud"
    bin_dir.mkdir()
    (bin_dir / "gcloud").write_text(
        f'#!/bin/sh\nexec {sys.executable} {FAKES / "fake_gcloud.py"} "$@"\n'
    )
    (bin_dir / "gcloud").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_GCLOUD_DIR", str(state))
    monkeypatch.setenv("TARBALL", str(tmp_path / "project.tar.gz"))
    monkeypatch.setenv("FAKE_STEPS", "6")
    monkeypatch.setenv("FAKE_STEP_S", "0.1")
    monkeypatch.chdir(REPO)
    yield state
    for pid_file in state.glob("hosts/*/w*/.psweeps/trainers/*.json"):
        try:
            os.killpg(json.loads(pid_file.read_text())["pid"], signal.SIGKILL)
        except (OSError, ValueError):
            pass


def launch_args(sweep: str, *flags: str):
    argv = [sweep, "--launcher=tpu", "--tpu-runs=gs://bkt/runs", "--tpu-poll=0.2", *flags]
    args, rest = launch_parser().parse_known_args(argv)
    assert not rest
    return args


def run_launch(tmp_path, sweep, preset, *flags, no_eval=True):
    trials = load_trials(sweep, preset, runs_dir=tmp_path / "runs")
    prepare(trials)
    rc = tpu.launch(trials, LaunchOptions(no_eval=no_eval), launch_args(sweep, *flags))
    return rc, trials


def calls(state: Path) -> list[list[str]]:
    return [json.loads(x) for x in (state / "calls.jsonl").read_text().splitlines()]


def verbs(state: Path) -> list[str]:
    return [" ".join(w for w in c if not w.startswith("-"))[:60] for c in calls(state)]


def runs_of(state: Path, sweep: str, trial: str) -> list[dict]:
    path = state / "gcs" / "bkt" / "runs" / sweep / trial / "argv.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()]


def starts(records: list[dict]) -> list[dict]:
    return [r for r in records if "argv" in r]


def test_multi_host_slice_runs_each_trial_on_every_worker(cloud, tmp_path, capsys):
    """v4-32 is 4 workers: each trial starts on all of them, detached, with
    jax.distributed.initialize=yes; the records come back; the slice is deleted at the end."""
    rc, trials = run_launch(tmp_path, "smoke", "embedded", "--tpu-type=v4-32", no_eval=False)
    assert rc == 0, capsys.readouterr().out
    seq = verbs(cloud)
    assert seq[0].startswith("storage rsync")
    first = [" ".join(v.split()[:4]) for v in seq if "tpu-vm" in v and " list" not in v][:4]
    assert first == [
        "compute tpus tpu-vm describe",
        "compute tpus tpu-vm create",
        "compute tpus tpu-vm scp",
        "compute tpus tpu-vm ssh",
    ]
    create = next(c for c in calls(cloud) if c[3:5] == ["create", "psweeps-smoke"])
    assert "--version=tpu-ubuntu2204-base" in create and "--zone=us-central2-b" in create
    assert any(" -m evaluator --runs=/gcs/bkt/runs/smoke --watch" in c[-1] for c in calls(cloud))
    assert any(" -m evaluator.report " in c[-1] for c in calls(cloud))
    assert seq[-2:] == [
        "compute tpus tpu-vm delete psweeps-smoke",
        "compute instances delete psweeps-smoke-eval",
    ]
    for t in trials:
        assert t.status()["state"] == "done"  # synced back from the bucket
        assert t.status()["tpu"]["slice"] == "psweeps-smoke"
        runs = starts(runs_of(cloud, "smoke", t.name))
        assert sorted(r["worker"] for r in runs) == [0, 1, 2, 3]
        assert all("--config.distributed.initialize=yes" in r["argv"] for r in runs)
        assert not any("TPU_HOST_BOUNDS" in r["tpu_env"] for r in runs)  # the slice's topology
        assert "fake trainer done" in t.log_path.read_text()  # worker 0's log, synced back
        assert (t.workdir / "train.worker3.log").exists()
    tree = next((cloud / "trees").iterdir())
    info = json.loads((tree / "BUILD_INFO.json").read_text())
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    assert info["git_commit"] == head.strip()


def test_four_slices_take_the_queue_at_once(cloud, tmp_path, monkeypatch, capsys):
    """--tpu-slices 4: four slices, created at once; eight trials, four running side by side
    (each of the first four waits until four run); every slice takes the next trial."""
    monkeypatch.setenv("FAKE_BARRIER", "4")
    rc, trials = run_launch(
        tmp_path, "depth", "embedded,seeds=2", "--tpu-type=v6e-8", "--tpu-slices=4"
    )
    out = capsys.readouterr().out
    assert rc == 0, out
    assert len(trials) == 8
    created = [c[4] for c in calls(cloud) if c[2:4] == ["tpu-vm", "create"]]
    assert sorted(created) == [f"psweeps-depth-{i}" for i in range(4)]
    assert all("--version=v2-alpha-tpuv6e" in c for c in calls(cloud) if "create" in c)
    seen, slices = [], set()
    for t in trials:
        records = runs_of(cloud, "depth", t.name)
        (run,) = starts(records)
        slices.add(run["slice"])
        seen += [r["barrier"] for r in records if "barrier" in r]
        assert t.status()["state"] == "done"
    assert slices == set(created)
    assert sorted(seen)[:4] == [4, 4, 4, 4]  # the first four saw each other running
    assert "at most 4 trials ran at once" in out


def test_one_trial_per_host(cloud, tmp_path, monkeypatch, capsys):
    """--tpu-per-host on v5litepod-16 (4 workers of 4 chips): four trials at once, each alone
    on one worker with distributed.initialize=no."""
    monkeypatch.setenv("FAKE_BARRIER", "4")
    rc, trials = run_launch(
        tmp_path, "depth", "embedded", "--tpu-type=v5litepod-16", "--tpu-per-host"
    )
    assert rc == 0, capsys.readouterr().out
    create = next(c for c in calls(cloud) if c[2:4] == ["tpu-vm", "create"])
    assert "--version=v2-alpha-tpuv5-lite" in create and "--zone=us-west4-a" in create
    workers = []
    for t in trials:
        (run,) = starts(runs_of(cloud, "depth", t.name))
        assert "--config.distributed.initialize=no" in run["argv"]
        # this VM's 4 chips as the whole TPU, so libtpu waits for no other worker
        assert run["tpu_env"]["TPU_HOST_BOUNDS"] == "1,1,1"
        assert run["tpu_env"]["TPU_CHIPS_PER_PROCESS_BOUNDS"] == "2,2,1"
        workers.append(run["worker"])
        assert t.status()["tpu"]["worker"] == str(run["worker"])
    assert sorted(workers) == [0, 1, 2, 3]


def test_a_lost_slice_is_recreated_and_its_trial_resumes_elsewhere(cloud, tmp_path, monkeypatch):
    """A spot slice preempted mid-trial: its trial goes back to the queue and resumes from its
    checkpoint on the other slice (the lost one is slow to come back); the lost slice is
    deleted and created again."""
    monkeypatch.setenv("FAKE_STEPS", "12")
    monkeypatch.setenv("FAKE_RECREATE_S", "4")
    sweep_dir = cloud / "gcs" / "bkt" / "runs" / "depth"
    lost: list[str] = []

    def preempt_slice_1() -> None:
        deadline = time.time() + 60
        while time.time() < deadline and not lost:
            for st_file in sweep_dir.glob("*/status.json"):
                try:
                    st = json.loads(st_file.read_text())
                except ValueError:
                    continue
                if st.get("tpu", {}).get("slice") == "psweeps-depth-1" and st.get("step", 0) >= 3:
                    subprocess.run(["gcloud", "__preempt", "psweeps-depth-1"], check=True)
                    lost.append(st_file.parent.name)
                    return
            time.sleep(0.05)

    watcher = threading.Thread(target=preempt_slice_1)
    watcher.start()
    rc, trials = run_launch(
        tmp_path, "depth", "embedded", "--tpu-type=v4-8", "--tpu-slices=2", "--tpu-spot"
    )
    watcher.join()
    assert lost, "slice 1 never ran a trial"
    assert rc == 0
    assert all(t.status()["state"] == "done" for t in trials)
    first, second = starts(runs_of(cloud, "depth", lost[0]))
    assert first["slice"] == "psweeps-depth-1" and second["slice"] == "psweeps-depth-0"
    assert second["resumed_from"] >= 3  # from its checkpoint in the bucket
    seq = verbs(cloud)
    assert "compute tpus tpu-vm delete psweeps-depth-1" in seq
    recreated = [v for v in seq if v.startswith("compute tpus tpu-vm create psweeps-depth-1")]
    assert len(recreated) == 2


def test_a_slice_that_never_comes_up_is_given_up(cloud, tmp_path, monkeypatch, capsys):
    """No capacity for one slice: it is tried MAX_UP_FAILURES times and given up; the other
    slice runs the whole sweep."""
    monkeypatch.setenv("FAKE_CREATE_FAILS", "psweeps-smoke-1")
    monkeypatch.setattr(tpu_sched, "UP_RETRY_S", 0.0)
    rc, trials = run_launch(tmp_path, "smoke", "embedded", "--tpu-slices=2")
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "psweeps-smoke-1: up.sh failed 3 times (ERROR: RESOURCE_EXHAUSTED" in out
    tries = [v for v in verbs(cloud) if v.startswith("compute tpus tpu-vm create psweeps-smoke-1")]
    assert len(tries) == tpu_sched.MAX_UP_FAILURES
    for t in trials:
        (run,) = starts(runs_of(cloud, "smoke", t.name))
        assert run["slice"] == "psweeps-smoke-0" and t.status()["state"] == "done"


def test_queued_spot_slices_come_back_through_queued_resources(cloud, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_STEPS", "12")
    done: list[str] = []

    def preempt() -> None:
        deadline = time.time() + 60
        while time.time() < deadline:
            st_file = cloud / "gcs/bkt/runs/smoke/depth-2/status.json"
            if st_file.exists() and json.loads(st_file.read_text()).get("step", 0) >= 2:
                subprocess.run(["gcloud", "__preempt", "psweeps-smoke"], check=True)
                done.append("yes")
                return
            time.sleep(0.05)

    watcher = threading.Thread(target=preempt)
    watcher.start()
    rc, trials = run_launch(tmp_path, "smoke", "embedded", "--tpu-queued", "--tpu-spot")
    watcher.join()
    assert done and rc == 0
    seq = verbs(cloud)
    qr = [v for v in seq if "queued-resources" in v]
    assert qr.count("compute tpus queued-resources create psweeps-smoke") == 2
    assert "compute tpus queued-resources delete psweeps-smoke" in qr
    assert not any("tpu-vm create" in v for v in seq)
    runs = starts(runs_of(cloud, "smoke", "depth-2"))
    assert len(runs) == 2 and runs[1]["resumed_from"] >= 2


def test_a_stopped_launcher_is_run_again_and_attaches(cloud, tmp_path, monkeypatch):
    """The launcher is killed (a dropped connection) while its trainers run: they keep going,
    detached, and the launcher run again attaches to them instead of starting them again."""
    monkeypatch.setenv("FAKE_STEPS", "50")
    argv = [sys.executable, "-m", "launch", "smoke", "--launcher=tpu", "--no-eval"]
    argv += [f"--runs-dir={tmp_path / 'runs'}", "--tpu-runs=gs://bkt/runs", "--tpu-poll=0.2"]
    argv += ["--tpu-type=v5litepod-16", "--tpu-per-host"]
    first = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    sweep_dir = cloud / "gcs" / "bkt" / "runs" / "smoke"
    deadline = time.time() + 90
    while time.time() < deadline:
        states = []
        for name in ("depth-2", "depth-6"):
            try:
                states.append(json.loads((sweep_dir / name / "status.json").read_text()))
            except (OSError, ValueError):
                states.append({})
        if all(s.get("state") == "running" and s.get("step", 0) >= 1 for s in states):
            break
        time.sleep(0.05)
    else:
        pytest.fail("the two trials never ran at once")
    first.kill()
    first.wait()
    step_then = json.loads((sweep_dir / "depth-2" / "status.json").read_text())["step"]
    time.sleep(0.5)
    assert json.loads((sweep_dir / "depth-2" / "status.json").read_text())["step"] > step_then
    trials = load_trials("smoke", runs_dir=tmp_path / "runs")
    rc = tpu.launch(
        trials,
        LaunchOptions(no_eval=True),
        launch_args("smoke", "--tpu-type=v5litepod-16", "--tpu-per-host"),
    )
    assert rc == 0
    for t in trials:
        (run,) = starts(runs_of(cloud, "smoke", t.name))  # one start: attached, not restarted
        assert run["resumed_from"] == 0
        assert t.status()["state"] == "done"
    creates = [v for v in verbs(cloud) if "tpu-vm create" in v]
    assert len(creates) == 1  # the second launcher reused the ready slice
