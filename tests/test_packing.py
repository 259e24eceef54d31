"""Several trials on one accelerator (``--trials-per-device``, launch/packing.py): the option, the
``auto`` rule, the memory shares, the slots of the local launcher, the packed Slurm tasks, and
(slow) that packed trials on the CPU end with the same parameters as each trial alone."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from launch import local, packing, slurm
from launch.__main__ import parser as launch_parser
from launch.trials import LaunchOptions, load_trials
from sweeps.base import ConfigError
from tests.trainer_support import assert_trees_equal, final_variables, trainer_env

REPO = Path(__file__).resolve().parent.parent
H200 = 143_771 * 2**20


@pytest.mark.parametrize("text,k", [("1", 1), ("2", 2), (" 4 ", 4), ("8", 8), ("auto", "auto")])
def test_parse_allowed_values(text, k):
    assert packing.parse(text) == k


@pytest.mark.parametrize("text", ["0", "9", "-1", "two", "", "1.5", "2x"])
def test_parse_rejects_in_one_line(text):
    with pytest.raises(
        ConfigError, match=r"--trials-per-device .* expected an integer 1..8 or auto"
    ):
        packing.parse(text)


def test_cli_rejects_bad_value_before_work(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "launch", "smoke", "--runs-dir", str(tmp_path / "runs")]
        + ["--trials-per-device", "0", "--dry-run"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2 and not (tmp_path / "runs").exists()
    assert r.stderr.strip().splitlines() == [
        "launch: error: --trials-per-device '0' is not allowed; expected an integer 1..8 or auto"
    ]


def test_memory_share_per_process():
    assert packing.memory_env(1) == {} and packing.memory_env(4, accelerator=False) == {}
    assert packing.memory_env(2) == {
        "XLA_PYTHON_CLIENT_MEM_FRACTION": "0.450",
        "XLA_PYTHON_CLIENT_PREALLOCATE": "true",
    }
    assert packing.memory_env(4)["XLA_PYTHON_CLIENT_MEM_FRACTION"] == "0.225"


def test_auto_rule():
    assert packing.auto_trials([500_000], None) == 1  # CPU
    assert packing.auto_trials([500_000], H200) == 4  # a small ResNet on an H200
    assert packing.auto_trials([2_290_000], H200) == 4  # ResNet-6 at width 1
    assert packing.auto_trials([11_200_000], H200) == 2  # ResNet-18
    assert packing.auto_trials([25_600_000], H200) == 1  # ResNet-50
    assert packing.auto_trials([500_000, 25_600_000], H200) == 1  # the largest model decides
    assert packing.auto_trials([500_000], 0) == 4  # memory unknown: the size rule alone
    # memory caps it: 0.9 * 5 GiB over (2 GiB + 160 B x 0.5M) -> 2
    assert packing.auto_trials([500_000], 5 * 2**30) == 2
    assert packing.auto_trials([500_000], 2 * 2**30) == 1


def test_resolve_auto_on_a_cpu_is_one_and_counts_parameters():
    trials = load_trials("smoke", "embedded", None, "runs-unused")
    assert packing.resolve("auto", [t.config for t in trials], None) == 1
    assert packing.resolve(3, [], None) == 3
    n2, n6 = (packing.parameter_count(t.config) for t in trials)  # ResNet-2, ResNet-6 x0.25
    assert 0 < n2 < n6 < 3_000_000
    assert packing.resolve("auto", [t.config for t in trials], H200) == 4


def test_local_slots_share_each_device(monkeypatch):
    monkeypatch.setattr(local, "detect_gpus", lambda: ["0", "1"])
    slots = local.make_slots(2, 2)
    assert [s.gpu for s in slots] == ["0", "1", "0", "1"]  # spread over the GPUs first
    env = slots[0].env()
    assert env["CUDA_VISIBLE_DEVICES"] == "0" and env["XLA_PYTHON_CLIENT_MEM_FRACTION"] == "0.450"
    assert [s.gpu for s in local.make_slots(1, 3)] == ["0", "0", "0"]  # one GPU, 3 trials
    assert local.make_slots(1, 1)[0].gpu is None  # as before: one trial sees every GPU
    monkeypatch.setattr(local, "detect_gpus", lambda: [])
    monkeypatch.setattr(local, "cpu_cores", lambda: [0, 1, 2, 3])
    slots = local.make_slots(2, 2)
    assert [s.cores for s in slots] == [[0, 1], [2, 3], [0, 1], [2, 3]]
    assert "XLA_PYTHON_CLIENT_MEM_FRACTION" not in slots[0].env()  # CPU: nothing to share out
    assert len(local.make_slots(1, 2)) == 2 and local.make_slots(1, 2)[0].env() == {}


def _slurm_args(*argv: str):
    args, rest = launch_parser().parse_known_args(["smoke", "--launcher", "slurm", *argv])
    assert not rest
    return args


def test_slurm_packs_k_trials_per_task(tmp_path):
    trials = load_trials("smoke", "embedded", None, tmp_path)
    args = _slurm_args("--slurm-gpus=1")
    args.trials_per_device = 2
    opts = slurm.options_from_args(args)
    jobs = slurm.plan(trials, LaunchOptions(trials_per_device=2, no_eval=True), opts)
    (job,) = jobs
    (task,) = job.payloads  # two trials, one array task
    assert isinstance(task, slurm.PackedTrials) and job.names == ["depth-2+depth-6"]
    assert [m.name for m in task.members] == ["depth-2", "depth-6"]
    assert all(m.env["XLA_PYTHON_CLIENT_MEM_FRACTION"] == "0.450" for m in task.members)
    text = slurm.render(jobs, slurm.job_folder(trials, opts))
    lines = [ln for ln in text.splitlines() if ln.startswith("# task (depth-2+depth-6)")]
    assert len(lines) == 2 and all("XLA_PYTHON_CLIENT_PREALLOCATE=true" in ln for ln in lines)
    args = _slurm_args("--nodes=2")
    args.trials_per_device = 2
    with pytest.raises(slurm.SlurmError, match="--nodes 1 --ntasks-per-node 1"):
        slurm.options_from_args(args)


def test_packed_slurm_task_runs_its_trials_at_once_and_stops_them_together(tmp_path, monkeypatch):
    """PackedTrials (tests/slurm/fake_python.py as the trainers): both run at once with their
    memory share; a time limit (checkpoint) stops both cleanly and resubmits the pair; the
    resubmitted task skips a trial already done and finishes the other."""
    import threading

    import submitit

    fake = REPO / "tests" / "slurm" / "fake_python.py"
    monkeypatch.setenv("FAKE_STEPS", "400")
    monkeypatch.setenv("FAKE_STEP_S", "0.05")
    env = packing.memory_env(2)
    members = []
    for name in ("a", "b"):
        argv = [sys.executable, str(fake), "-m", "trainer", f"--workdir={tmp_path / name}"]
        members.append(
            slurm.TrialJob(argv, str(tmp_path), str(tmp_path / name / "status.json"), name, env=env)
        )
    task = slurm.PackedTrials(members)
    result: dict = {}
    th = threading.Thread(target=lambda: result.setdefault("codes", _call(task, result)))
    th.start()
    status = lambda n: json.loads((tmp_path / n / "status.json").read_text())  # noqa: E731
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if min(status(n)["step"] for n in "ab") >= 3:  # both running at once
                break
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.05)
    delayed = task.checkpoint()
    th.join(60)
    assert isinstance(delayed, submitit.helpers.DelayedSubmission)
    again = delayed.function
    assert isinstance(again, slurm.PackedTrials) and [m.name for m in again.members] == ["a", "b"]
    assert all(m.env == env for m in again.members)
    assert {status(n)["state"] for n in "ab"} == {"preempted"}
    assert "packed trials ended: a preempted" in str(result.get("error"))  # no Slurm to requeue
    # The requeued task: "a" already finished elsewhere is skipped, "b" resumes and finishes.
    (tmp_path / "a" / "status.json").write_text(json.dumps({"state": "done"}))
    monkeypatch.setenv("FAKE_STEPS", "6")
    assert again() == [0, 0]
    assert status("b")["state"] == "done" and status("a") == {"state": "done"}


def _call(task, result):
    try:
        return task()
    except BaseException as e:  # noqa: BLE001 (the thread reports whatever ended it)
        result["error"] = e


@pytest.mark.slow
def test_packed_trials_on_the_cpu_end_as_each_alone(tmp_path):
    """K=2 packed trials (both trainers at once on the CPU) end with bitwise the parameters of
    each trial run alone: same seed, same steps, same platform."""
    # 12 steps of ResNet-2 and ResNet-6 x0.25 at 16x16 (smoke), a checkpoint at the end.
    common = ["--no-eval", "--config.train.epochs=0.3", "--config.checkpoint.every_steps=100"]
    # One compilation cache for both runs: the trials alone load what the packed ones compiled
    # (as a rerun of a sweep would), which must not change a bit either.
    env = trainer_env(PSWEEPS_JAX_CACHE=str(tmp_path / "cache"))
    runs = {}
    for how, flags in (("packed", ["--trials-per-device", "2"]), ("alone", [])):
        runs[how] = tmp_path / how
        argv = [sys.executable, "-m", "launch", "smoke", "--runs-dir", str(runs[how])]
        r = subprocess.run(
            [*argv, *common, *flags], cwd=REPO, env=env, capture_output=True, text=True, timeout=600
        )
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
        if how == "packed":
            assert "2 trials per device" in r.stdout and "shared by 2 trials" in r.stdout
    for name in ("depth-2", "depth-6"):
        packed, alone = (runs[h] / "smoke" / name for h in ("packed", "alone"))
        status = json.loads((packed / "status.json").read_text())
        assert status["state"] == "done" and status["step"] == 12
        assert_trees_equal(final_variables(packed), final_variables(alone))
