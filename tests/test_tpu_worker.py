"""What the TPU launcher puts on and runs on a worker: the tarball's BUILD_INFO.json
(launch/tpu_build.py), the detached trainer (launch/tpu_worker.py: start, attach, the record of a
trainer that died, stop) and TPU VM detection for ``distributed.initialize=auto``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from launch import tpu_build, tpu_worker
from sweeps import base
from trainer import distributed

# ----------------------------------------------------------------------------- BUILD_INFO.json


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t"}
    env |= {"GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    return subprocess.run(
        ["git", *args], cwd=repo, env=env, check=True, capture_output=True, text=True
    ).stdout.strip()


def test_tarball_carries_the_git_commit(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / ".gitignore").write_text("runs/\n")
    (repo / "a.py").write_text("x = 1\n")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "one")
    (repo / "runs").mkdir()
    (repo / "runs" / "big.npy").write_text("ignored")
    tar = tmp_path / "t.tar.gz"
    info = tpu_build.pack(tar, repo)
    assert info["git_commit"] == git(repo, "rev-parse", "HEAD") and info["git_dirty"] is False
    with tarfile.open(tar) as t:
        assert sorted(t.getnames()) == [".gitignore", "BUILD_INFO.json", "a.py"]
        packed = json.loads(t.extractfile("BUILD_INFO.json").read())
    assert packed["git_commit"] == info["git_commit"] and packed["files"] == 2
    (repo / "a.py").write_text("x = 2\n")
    (repo / "new.py").write_text("")
    info = tpu_build.pack(tar, repo)
    assert info["git_dirty"] is True and info["git_changes"] == [" M a.py", "?? new.py"]
    with tarfile.open(tar) as t:
        assert "new.py" in t.getnames()


# ----------------------------------------------------------------------------- tpu_worker

TRAINER = """\
import json, os, signal, sys, time
wd = [a.split("=", 1)[1] for a in sys.argv if a.startswith("--workdir=")][0]
def status(**kw):
    p = os.path.join(wd, "status.json")
    st = json.load(open(p)) if os.path.exists(p) else {}
    st.update(kw)
    json.dump(st, open(p + ".tmp", "w")); os.replace(p + ".tmp", p)
print("trainer up", flush=True)
status(state="running", step=1)
if "--crash" in sys.argv:
    print("Traceback: boom", flush=True); sys.exit(7)
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))  # dies without recording, like a kill
time.sleep(float(os.environ.get("SLEEP", "30")))
status(state="done", step=2)
"""


@pytest.fixture()
def worker(tmp_path, monkeypatch):
    """A worker's home and a stand-in trainer; kills what is left at the end."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TPU_WORKER_ID", "0")
    monkeypatch.setattr(tpu_worker, "LOG_COPY_S", 0.2)
    script = tmp_path / "trainer.py"
    script.write_text(TRAINER)
    yield [sys.executable, str(script)]
    for rec in tpu_worker.records():
        if rec["alive"]:
            os.killpg(rec["pid"], signal.SIGKILL)


def wait_for(pred, timeout=30.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return False


def state_of(wd: Path) -> dict:
    try:
        return json.loads((wd / "status.json").read_text())
    except (OSError, ValueError):
        return {}


def start(argv: list[str], wd: Path, *extra: str, attempt: str = "a1") -> int:
    """``tpu_worker start`` in this process (the supervisor it spawns is this test's child)."""
    return tpu_worker.main(
        ["start", "--slice=s", f"--attempt={attempt}", *extra, "--", *argv, f"--workdir={wd}"]
    )


def test_worker_start_detaches_and_a_second_start_attaches(worker, tmp_path, capsys):
    wd = tmp_path / "bucket" / "sweep" / "t1"
    assert start(worker, wd) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["action"] == "started"
    tpu = state_of(wd)["tpu"]
    assert (tpu["slice"], tpu["worker"], tpu["attempt"]) == ("s", "all", "a1")
    assert state_of(wd)["state"] in ("pending", "running")
    assert wait_for(lambda: state_of(wd).get("state") == "running")
    assert start(worker, wd, attempt="a2") == 0
    again = json.loads(capsys.readouterr().out)
    assert again["action"] == "attached" and again["pid"] == first["pid"]
    assert again["attempt"] == "a1"
    assert os.getpgid(first["pid"]) == first["pid"]  # its own session and group (setsid)
    assert wait_for(
        lambda: (
            "trainer up" in (wd / "train.log").read_text() if (wd / "train.log").exists() else False
        )
    )
    (rec,) = tpu_worker.records()
    assert rec["alive"] and rec["workdir"] == str(wd)


def test_worker_records_a_trainer_that_dies_without_a_word(worker, tmp_path, capsys):
    wd = tmp_path / "bucket" / "sweep" / "t2"
    start([*worker, "--crash"], wd)
    pid = json.loads(capsys.readouterr().out)["pid"]
    os.waitpid(pid, 0)  # the supervisor (this test's child) records the end, then exits
    st = state_of(wd)
    assert st["error"] == "trainer exited with code 7: Traceback: boom"
    assert "Traceback: boom" in (wd / "train.log").read_text()
    assert not tpu_worker.records()[0]["alive"]


def test_worker_stop_says_preempted(worker, tmp_path, capsys):
    wd = tmp_path / "bucket" / "sweep" / "t3"
    start(worker, wd)
    assert wait_for(lambda: state_of(wd).get("state") == "running")
    tpu_worker.main(["stop", f"--workdir={wd}"])
    assert wait_for(lambda: state_of(wd).get("state") == "preempted")
    assert state_of(wd)["error"].startswith("stopped by signal 15")


def test_worker_other_workers_log_beside_and_record_nothing(worker, tmp_path, monkeypatch):
    wd = tmp_path / "bucket" / "sweep" / "t4"
    monkeypatch.setenv("TPU_WORKER_ID", "2")
    monkeypatch.setenv("SLEEP", "0")
    start(worker, wd, "--worker=all")
    assert wait_for(
        lambda: (
            (wd / "train.worker2.log").exists()
            and "trainer up" in (wd / "train.worker2.log").read_text()
        )
    )
    assert not (wd / "train.log").exists()
    assert "tpu" not in state_of(wd)  # the status is worker 0's to write


def test_worker_does_not_start_a_finished_trial(worker, tmp_path, capsys):
    wd = tmp_path / "bucket" / "sweep" / "t5"
    wd.mkdir(parents=True)
    (wd / "status.json").write_text(json.dumps({"state": "done"}))
    start(worker, wd)
    assert json.loads(capsys.readouterr().out)["action"] == "finished"
    assert not tpu_worker.records()


# ----------------------------------------------------------------------------- TPU VM detection


def pci(root: Path, *devices: tuple[str, str]) -> Path:
    for i, (vendor, device) in enumerate(devices):
        d = root / f"0000:00:0{i}.0"
        d.mkdir(parents=True)
        (d / "vendor").write_text(vendor + "\n")
        (d / "device").write_text(device + "\n")
    return root


def test_auto_initialises_on_a_tpu_vm(tmp_path, monkeypatch):
    """big_vision's rule: on a TPU VM (TPU chips on the PCI bus, libtpu installed, as JAX tells
    one) ``auto`` initialises jax.distributed even with one worker; elsewhere it does not."""
    auto = base.get_config().distributed
    no = base.config_from(None, {"distributed.initialize": "no"}).distributed
    v4 = pci(tmp_path / "v4", ("0x1ae0", "0x005e"), ("0x1ae0", "0x005e"), ("0x8086", "0x1237"))
    gvnic = pci(tmp_path / "gce", ("0x1ae0", "0x0042"))  # Google's NIC: any GCE VM
    assert distributed.tpu_chips(v4) == 2 and distributed.tpu_chips(gvnic) == 0
    monkeypatch.setattr(distributed, "libtpu_installed", lambda env=None: True)
    assert distributed.should_initialize(auto, env={}, pci_devices=v4)
    assert not distributed.should_initialize(auto, env={}, pci_devices=gvnic)
    assert not distributed.should_initialize(no, env={}, pci_devices=v4)
    monkeypatch.setattr(distributed, "libtpu_installed", lambda env=None: False)
    assert not distributed.should_initialize(auto, env={}, pci_devices=v4)  # JAX sees no TPU
    # and the rules for Slurm and TPU pods' environment still hold
    assert distributed.should_initialize(auto, env={"SLURM_NTASKS": "4"}, pci_devices=gvnic)
    assert not distributed.should_initialize(auto, env={"SLURM_NTASKS": "1"}, pci_devices=gvnic)
    assert distributed.should_initialize(auto, env={"TPU_WORKER_HOSTNAMES": "a,b"})


def test_libtpu_found_by_path(tmp_path):
    lib = tmp_path / "libtpu.so"
    lib.write_text("")
    assert distributed.libtpu_installed({"TPU_LIBRARY_PATH": str(lib)})
