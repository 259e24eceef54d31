"""The default install and what a run leaves to trace it: no TensorFlow on the path of training,
scoring and reporting (even where the tf extra is installed, as under ``make test``), TensorBoard
events with consistent tags from the trainer and the evaluator, the run's provenance in
status.json and its log, bounded dependencies, and one command line for the trainer and the
launcher."""

from __future__ import annotations

import json
import shlex
import struct
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest
from trainer_support import trainer_env

from launch.__main__ import main as launch_main
from launch.trials import load_trials, prepare
from sweeps.command import parse_config_args
from trainer import events, provenance
from trainer.status import scalar_tags

REPO = Path(__file__).resolve().parent.parent


def read_events(logdir: Path) -> list:
    """Every Event in ``logdir``'s event files (TFRecord framing read here, checksums checked)."""
    from tensorboard.compat.proto import event_pb2
    from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c

    out = []
    for path in sorted(logdir.glob("events.out.tfevents.*")):
        data, pos = path.read_bytes(), 0
        while pos < len(data):
            head = data[pos : pos + 8]
            (n,) = struct.unpack("<Q", head)
            assert struct.unpack("<I", data[pos + 8 : pos + 12])[0] == masked_crc32c(head)
            body = data[pos + 12 : pos + 12 + n]
            assert struct.unpack("<I", data[pos + 12 + n : pos + 16 + n])[0] == masked_crc32c(body)
            out.append(event_pb2.Event.FromString(body))
            pos += 16 + n
    return out


def scalars(evs: list) -> dict[str, dict[int, float]]:
    out: dict[str, dict[int, float]] = {}
    for e in evs:
        for v in e.summary.value:
            if v.HasField("simple_value"):
                out.setdefault(v.tag, {})[e.step] = v.simple_value
    return out


# ----------------------------------------------------------------------------- fast


def test_dependencies_are_bounded_and_tensorflow_is_an_extra():
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    default = meta["dependencies"]
    names = [d.split("[")[0].split(">")[0].split("<")[0].split("=")[0].strip() for d in default]
    assert "pillow" in names and "tensorboard" in names  # PIL is imported; events need it
    assert not any(n.startswith("tensorflow") or n == "clu" for n in names)
    for group in [default, *meta["optional-dependencies"].values()]:
        for dep in group:
            assert ">=" in dep and "<" in dep, f"{dep!r} needs lower and upper bounds"
    assert any(d.startswith("tensorflow") for d in meta["optional-dependencies"]["tf"])
    assert not any("tensorflow" in d for d in meta["optional-dependencies"]["dev"])


def test_event_files_hold_scalars_and_hparams_without_tensorflow(tmp_path):
    w = events.EventWriter(tmp_path)
    w.scalars(10, {"train/loss": 0.5, "eval/top1": 0.75})
    w.hparams({"model.depth": 6, "train.step_boundaries": (0.3, 0.6), "data.flip": True}, "t")
    w.close()
    evs = read_events(tmp_path)
    assert evs[0].file_version == "brain.Event:2"
    assert scalars(evs) == {"train/loss": {10: 0.5}, "eval/top1": {10: 0.75}}
    (hp,) = [v for e in evs for v in e.summary.value if v.tag == "_hparams_/session_start_info"]
    assert hp.metadata.plugin_data.plugin_name == "hparams"


def test_metric_records_get_one_tag_scheme():
    train = {"step": 5, "epoch": 0.1, "lr": 0.1, "train_loss": 2.0, "train_accuracy": 0.5}
    assert scalar_tags("train", train) == {
        "train/epoch": 0.1,
        "train/lr": 0.1,
        "train/loss": 2.0,
        "train/accuracy": 0.5,
    }
    ev = {"step": 5, "epoch": 0.1, "eval_top1": 0.8, "eval_top5": 0.9, "eval_loss": 0.4}
    assert scalar_tags("eval", ev) == {"eval/top1": 0.8, "eval/top5": 0.9, "eval/loss": 0.4}


def test_provenance_from_git_else_build_info(tmp_path):
    src = provenance.source()
    assert src["from"] == "git" and len(src["commit"]) == 40 and src["dirty"] in (True, False)
    (tmp_path / "BUILD_INFO.json").write_text(
        json.dumps({"git_commit": "a" * 40, "git_dirty": True})
    )
    assert provenance.source(tmp_path) == {
        "commit": "a" * 40,
        "dirty": True,
        "from": "BUILD_INFO.json",
    }
    (tmp_path / "BUILD_INFO.json").unlink()
    assert provenance.source(tmp_path)["commit"] is None


def test_config_flags_forms_are_read_as_the_trainer_reads_them():
    a = parse_config_args(
        ["--config", "sweeps/depth.py:paper", "--config.train.epochs", "3", "--jobs", "2",
         "--noconfig.data.flip", "--config.model.width=0.5", "--config.data.source_dir", "a b"]
    )  # fmt: skip
    assert (a.file, a.arg) == ("sweeps/depth.py", "paper")
    assert a.overrides == {
        "train.epochs": 3.0,
        "data.flip": False,
        "model.width": 0.5,
        "data.source_dir": "a b",
    }
    assert a.rest == ["--jobs", "2"]


def test_a_status_json_command_runs_with_the_launcher(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(REPO)
    runs = tmp_path / "runs"
    trials = load_trials("smoke", "embedded", {"train.epochs": 0.5}, runs)
    prepare(trials, "python")
    st = json.loads((trials[1].workdir / "status.json").read_text())
    argv = shlex.split(st["command"])
    assert argv[:3] == ["python", "-m", "trainer"]
    spaced = [x for a in argv[3:] for x in (a.split("=", 1) if a.startswith("--config.") else [a])]
    for args in (argv[3:], spaced):  # --config.k=v and --config.k v
        capsys.readouterr()
        assert launch_main([*args, "--dry-run", "--python", "python"]) == 0
        out = capsys.readouterr().out
        assert f"1 trials of smoke (embedded) in {runs / 'smoke'}" in out
        assert st["command"] in out
    assert json.loads((runs / "smoke" / "sweep.json").read_text())["trials"] == [
        t.name for t in trials
    ]  # running one trial leaves the sweep's record alone
    assert launch_main(["--config=sweeps/smoke.py", "smoke", "--dry-run"]) == 2
    assert "give the sweep once" in capsys.readouterr().err


# ----------------------------------------------------------------------------- a real run

SCRIPT = """
import json, shlex, sys
from evaluator import proxy
from evaluator.job import run_job
from evaluator.report import main as report
from trainer.__main__ import main as train

proxy.build_proxy(sys.argv[2], per_category=6)
argv = shlex.split(sys.argv[1])
runs = sys.argv[3]
sys.argv = ["trainer", *argv[3:]]  # config_flags reads the overrides' names from sys.argv
rc = [train(sys.argv)]
rc.append(len(run_job(runs).error_steps))
rc.append(report([runs]))
tf = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "tensorflow_datasets"))
print("RESULT " + json.dumps({"rc": rc, "tf": tf}))
"""


@pytest.mark.slow
def test_train_score_report_import_no_tensorflow_and_trace_the_run(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    runs = tmp_path / "runs"
    extra = {"train.epochs": 0.5, "perceptual.proxy_dir": str(tmp_path / "proxy")}
    (trial, _) = load_trials("smoke", "embedded", extra, runs)
    prepare([trial], sys.executable)
    command = json.loads((trial.workdir / "status.json").read_text())["command"]
    env = trainer_env(PSWEEPS_TENSORBOARD="1")
    r = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(SCRIPT), command, str(tmp_path / "proxy"), str(runs / "smoke")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    result = json.loads(r.stdout.split("RESULT ", 1)[1])
    assert result == {"rc": [0, 0, 0], "tf": []}, result
    # the log's first lines: where the code comes from, the devices, the resolved config
    lines = r.stdout.splitlines()
    i = next(i for i, ln in enumerate(lines) if ln.startswith("code "))
    assert "| jax cpu: 1 device (cpu), 1 process" in lines[i]
    assert json.loads(lines[i + 1].removeprefix("config: ")) == json.loads(
        (trial.workdir / "config.json").read_text()
    )
    assert lines.index(next(ln for ln in lines if ln.startswith("first step"))) > i + 1
    assert any(ln.startswith("[1/") and "PS local" in ln for ln in lines)  # the evaluator's k/N
    st = json.loads((trial.workdir / "status.json").read_text())
    assert st["state"] == "done" and st["source"] == provenance.source()
    assert st["jax"]["platform"] == "cpu" and st["jax"]["devices"] == 1
    assert st["config"] == json.loads((trial.workdir / "config.json").read_text())
    # trainer and evaluator in one TensorBoard run, one step axis
    tags = scalars(read_events(trial.workdir / "tensorboard"))
    assert {"train/loss", "train/accuracy", "train/lr", "eval/top1", "eval/loss"} <= set(tags)
    assert {"perceptual/proxy/ps_local", "probes/proxy/entropy"} <= set(tags)
    assert "probes/frequency/clean_top1" in tags and "probes/proxy/margin_local" in tags
    final = st["step"]
    assert final in tags["eval/top1"] and final in tags["perceptual/proxy/ps_local"]
    scored = json.loads((trial.workdir / "perceptual" / f"{final}.json").read_text())
    ps = scored["benchmarks"]["proxy"]["distances"]["local"]["ps"]
    assert tags["perceptual/proxy/ps_local"][final] == pytest.approx(ps, rel=1e-6)
    # the same command, copied from status.json, given to the launcher: the trial is done
    args = shlex.split(command)[3:]
    r = subprocess.run(
        [sys.executable, "-m", "launch", *args, "--no-eval"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert "1 trials: 1 done" in r.stdout


@pytest.mark.slow
def test_wandb_offline_logs_a_run(tmp_path):
    pytest.importorskip("wandb")
    env = trainer_env(WANDB_MODE="offline", PSWEEPS_TENSORBOARD="0")
    code = (
        "from trainer import events; w = events.writers(__import__('sys').argv[1]);"
        "w.hparams({'model.depth': 6}); w.scalars(3, {'train/loss': 1.5}); w.close()"
    )
    wd = tmp_path / "sweep" / "trial"
    r = subprocess.run(
        [sys.executable, "-c", code, str(wd)], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    (run,) = (wd / "wandb").glob("offline-run-*")
    (log,) = run.glob("*.wandb")
    assert b"train/loss" in log.read_bytes() and b"model.depth" in log.read_bytes()
    assert r.stdout.strip() == ""  # nothing on stdout: train.log stays clean


def test_without_tensorflow_its_two_uses_name_the_extra(tmp_path):
    code = """
import sys
sys.modules["tensorflow"] = None  # as if not installed: import raises ImportError
from trainer.models.resnet_tf import TFCheckpointError, _tf
from trainer.data.tfds_source import _import_tfds
for use in (_tf, _import_tfds):
    try:
        use()
    except Exception as e:
        print(str(e))
"""
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    lines = r.stdout.splitlines()
    assert len(lines) == 2 and all("tf extra: pip install -e '.[tf]'" in ln for ln in lines), r


def test_status_table_ends_with_the_sweep_eta(tmp_path):
    from launch.table import status_table, sweep_eta

    here = {"host": "another-host", "pid": 1}  # alive as far as this host can tell
    done = {"state": "done", "wall_time_s": 100.0}
    running = {"state": "running", "step": 10, "total_steps": 40, "wall_time_s": 20.0, **here}
    # running: 30 steps at 2 s = 60 s; pending: the mean of the ended trials, 100 s
    assert sweep_eta([done, running, {"state": "pending"}]) == "ETA ~2m40s"
    # two at once share it; nothing known yet: no ETA
    assert sweep_eta([running, running, {"state": "pending"}]) == "ETA ~1m40s"
    assert sweep_eta([{"state": "pending"}]) == "" and sweep_eta([done]) == ""
    trials = load_trials("smoke", "embedded", {}, tmp_path)
    prepare(trials, "python")
    trials[0].write_status(**done)
    trials[1].write_status(**running)
    assert status_table(trials).splitlines()[-1] == "2 trials: 1 done, 1 running; ETA ~1m00s"
