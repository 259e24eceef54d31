"""Config overrides with spaces and quotes reach the trainer intact through every launcher:
local (the argv the trainer process gets), Slurm (each array task's command as rendered for the
job) and TPU (the trainer argv inside gcloud's --command string), each parsed back with shlex."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from launch import local, slurm, tpu
from launch.__main__ import parser as launch_parser
from launch.trials import LaunchOptions, load_trials, prepare
from sweeps.command import parse_overrides

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
FAKE = HERE / "slurm" / "fake_python.py"

VALUES = {
    "data.source_dir": "/data/my imagenet",
    "perceptual.bapps_dir": '/data/it\'s a "quoted" $HOME `dir` \\ & ; |',
}
FLAGS = [f"--config.{k}={v}" for k, v in VALUES.items()]


@pytest.fixture()
def trials(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    extra = parse_overrides(FLAGS)
    assert extra == VALUES
    return load_trials("smoke", "embedded", extra, tmp_path / "runs")


def expect_intact(argv: list[str]) -> None:
    for flag in FLAGS:
        assert flag in argv, (flag, argv)


def test_local(trials, tmp_path):
    exe = tmp_path / "fake-python"
    exe.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} {shlex.quote(str(FAKE))} "$@"\n')
    exe.chmod(0o755)
    prepare(trials, str(exe))
    assert local.launch(trials, LaunchOptions(python=str(exe), no_eval=True)) == 0
    for t in trials:
        (got,) = [
            json.loads(x)["argv"] for x in (t.workdir / "argv.jsonl").read_text().splitlines()
        ]
        assert got == t.command(str(exe))[1:]
        expect_intact(got)


def test_slurm(trials, tmp_path):
    args, _ = launch_parser().parse_known_args(["smoke", "--launcher=slurm"])
    opts = slurm.options_from_args(args)
    jobs = slurm.plan(trials, LaunchOptions(python="/opt/my python/bin/python"), opts)
    text = slurm.render(jobs, slurm.job_folder(trials, opts))
    tasks = [ln.split(": ", 1)[1] for ln in text.splitlines() if ln.startswith("# array task")]
    assert len(tasks) == len(trials)
    for task, t in zip(tasks, trials, strict=True):
        argv = shlex.split(task)
        assert argv == t.command("/opt/my python/bin/python")
        expect_intact(argv)
    # and what the job really runs: the pickled TrialJob's argv
    for payload, t in zip(jobs[0].payloads, trials, strict=True):
        assert payload.argvs == [t.command("/opt/my python/bin/python")]


def test_tpu(trials, tmp_path):
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "launch",
            "smoke",
            "--launcher=tpu",
            "--dry-run",
            f"--runs-dir={tmp_path / 'runs'}",
            "--tpu-runs=gs://my-bucket/runs",
            *FLAGS,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    commands = []
    for line in r.stdout.splitlines():
        if line.startswith("gcloud ") and "tpu-vm ssh" in line and "trainer" in line:
            (cmd,) = [a for a in shlex.split(line) if a.startswith("--command=")]
            remote = shlex.split(cmd[len("--command=") :])
            commands.append(remote[remote.index("&&") + 2 :])  # after `cd DIR && VAR=...`
    assert len(commands) == len(trials)
    args, _ = launch_parser().parse_known_args(
        ["smoke", "--launcher=tpu", "--tpu-runs=gs://my-bucket/runs"]
    )
    opts = tpu.options_from_args(args, "smoke")
    for argv, t in zip(commands, trials, strict=True):
        assert argv == tpu.remote_command(t, opts)
        expect_intact(argv)
