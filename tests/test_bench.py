"""``python -m bench``: arguments, the steady-state window, synthetic data, and one real
run end to end on a tiny config (no timing assertions: the numbers are only checked to exist)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from bench import cli, measure, results, training
from bench.data import SYNTHETIC_SOURCE, synthetic_images, write_synthetic_split
from trainer.data.prepared import read_split

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "name, expected",
    [
        ("resnet18", {"model.name": "resnet", "model.depth": 18}),
        ("resnet-50", {"model.name": "resnet", "model.depth": 50}),
        ("vit-B/8", {"model.name": "vit", "model.variant": "B/8", "model.depth": 0}),
        ("vit-ti/16", {"model.name": "vit", "model.variant": "Ti/16", "model.depth": 0}),
        ("efficientnet-B0", {"model.name": "efficientnet", "model.variant": "b0"}),
    ],
)
def test_model_names(name, expected):
    assert cli.model_overrides(name) == expected


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--model", "alexnet"], ["--model", "alexnet", "resnet<depth>"]),
        (["--batch", "0"], ["--batch=0", ">= 1"]),
        (["--size", "4"], ["--size=4", "[8, 1024]"]),
        (["--dtype", "float16"], ["--dtype", "float16", "bfloat16"]),
        (["--data", "cifar"], ["--data", "cifar", "synthetic"]),
        (["--parts", "bare,nap"], ["--parts", "nap", "evaluator"]),
        (["--set", "train.epochs"], ["--set", "KEY=VALUE"]),
    ],
)
def test_bad_arguments_fail_in_one_line(argv, words):
    with pytest.raises(cli.SpeedBenchError) as e:
        cli.check_args(cli.parse_args(argv))
    msg = str(e.value)
    assert "\n" not in msg
    for w in words:
        assert w in msg


def test_cli_rejects_bad_config_before_work(tmp_path, capsys):
    # A bad --set key fails (exit 2, one line) once the config is built, and nothing is written.
    out = tmp_path / "r.json"
    code = cli.main(["--model", "resnet7", "--out", str(out)])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "model.depth=7" in err
    assert not out.exists()


def test_interleaved_rounds_alternate():
    calls = []
    runners = {name: (lambda n, name=name: calls.append((name, n))) for name in ("a", "b")}
    t = measure.time_interleaved(runners, steps=3, rounds=2, warmup=1)
    assert calls == [("a", 1), ("b", 1), ("a", 3), ("b", 3), ("a", 3), ("b", 3)]
    assert set(t) == {"a", "b"} and len(t["a"]["round_seconds"]) == 2


def test_log_cpu_clock_stamps_each_train_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    with measure.LogCpuClock(path, interval=0.001) as clock:
        for step in (10, 20, 30):
            with open(path, "a") as f:
                f.write(json.dumps({"kind": "train", "step": step}) + "\n")
                f.write(json.dumps({"kind": "eval", "step": step}) + "\n")
                f.write('{"kind": "train", "st')  # a torn line is completed by the next write
            with open(path, "a") as f:
                f.write(f'ep": {step + 1}}}\n')
            sum(i * i for i in range(200_000))  # spend CPU between lines
            deadline = time.time() + 5
            while step + 1 not in clock.cpu_at_step and time.time() < deadline:
                time.sleep(0.001)
    assert sorted(clock.cpu_at_step) == [10, 11, 20, 21, 30, 31]
    assert clock.cpu_at_step[10] < clock.cpu_at_step[20] < clock.cpu_at_step[30]


def test_verdict_uses_cpu_time_only_when_the_host_is_busy():
    quiet = results._verdict_fields(0.5, 0.97, 0.9, busy=False)
    assert quiet == {"meets_target": False, "verdict_basis": "wall and CPU time"}
    busy = results._verdict_fields(0.5, 0.97, 0.9, busy=True)
    assert busy == {"meets_target": True, "verdict_basis": "CPU time (host busy)"}
    assert results._verdict_fields(0.95, 0.8, 0.9, busy=False)["meets_target"] is False
    assert results._verdict_fields(0.95, None, 0.9, busy=True)["verdict_basis"] == "wall time"
    prep = {"device": {"host_cpus": 2}}
    assert results._busy(prep, {"load_avg_1m": 2.5}) and not results._busy(
        prep, {"load_avg_1m": 1.0}
    )


def test_parts_keep_canonical_order():
    args = cli.parse_args(["--parts", "evaluator,bare"])
    assert cli.check_args(args) == ["bare", "evaluator"]


def _train(step, wall, rate=None):
    return {"kind": "train", "step": step, "wall_time": wall, "images_per_sec": rate}


def test_steady_rate_skips_the_compile_interval_and_dedups_resumed_lines():
    records = [
        _train(10, 50.0),  # includes compile
        {"kind": "eval", "step": 30, "wall_time": 71.0},  # the final eval
        _train(20, 60.0),
        _train(20, 60.5),  # a line written twice after a resume: the last one counts
        _train(30, 70.5),
    ]
    r = training.steady_rate(records, batch=8)
    assert r["window"] == [10, 30]
    assert r["window_steps"] == 20
    assert r["seconds"] == pytest.approx(20.5)
    assert r["images_per_sec"] == pytest.approx(20 * 8 / 20.5, rel=1e-3)


def test_steady_rate_needs_enough_lines():
    with pytest.raises(RuntimeError, match="train lines"):
        training.steady_rate([_train(10, 1.0), _train(20, 2.0)], batch=8)


@pytest.mark.parametrize(
    "log_every, ckpt_every, windows, first_eval",
    [(50, 100, 2, 234), (100, 1000, 2, 128), (7, 5, 1, None), (10, 30, 3, 20), (2, 3, 2, 16)],
)
def test_e2e_window_holds_a_checkpoint_and_no_eval_compile(
    log_every, ckpt_every, windows, first_eval
):
    steps = training.e2e_steps(log_every, ckpt_every, windows, first_eval)
    assert steps % log_every == 0  # the last step is a log line
    # where steady_rate starts: after the compile interval, and after the first mid-run eval
    start = log_every
    if first_eval is not None and first_eval < steps:
        start = (first_eval // log_every + 1) * log_every
    assert steps - start >= windows * log_every
    assert any(start < s < steps for s in range(ckpt_every, steps, ckpt_every))


def test_steady_rate_starts_after_the_first_mid_run_eval():
    records = [_train(s, float(s)) for s in (10, 20, 30, 40, 50)]
    records.insert(2, {"kind": "eval", "step": 20, "wall_time": 20.5})  # compiles the eval
    records.append({"kind": "eval", "step": 50, "wall_time": 60.0})  # final: after the window
    r = training.steady_rate(records, batch=4)
    assert r["window"] == [30, 50]
    with pytest.raises(RuntimeError, match="first eval"):
        late = [_train(s, float(s)) for s in (10, 20, 30, 40, 50)]
        training.steady_rate([*late, {"kind": "eval", "step": 45}], batch=4)


def test_synthetic_images_look_like_photos():
    rng = np.random.default_rng(0)
    labels = np.arange(64) % 10
    x = synthetic_images(rng, labels, 32)
    assert x.shape == (64, 32, 32, 3) and x.dtype == np.uint8
    assert x.min() < 40 and x.max() > 215  # full value range
    # smooth: neighbouring pixels are much closer than random pairs
    near = np.abs(np.diff(x.astype(int), axis=2)).mean()
    far = np.abs(x[:, :, :16].astype(int) - x[::-1, :, 16:].astype(int)).mean()
    assert near < far / 3


def test_synthetic_split_is_a_prepared_split(tmp_path):
    path = write_synthetic_split(
        tmp_path, dataset="imagenet64", split="train", count=5000, size=16, num_classes=1000
    )
    s = read_split(path)
    assert s.images.shape == (5000, 16, 16, 3)
    assert isinstance(s.images, np.memmap)
    assert s.meta["source"] == SYNTHETIC_SOURCE and s.num_classes == 1000
    assert s.labels.min() >= 0 and s.labels.max() < 1000
    # written once: a second call keeps it; another count is refused in one line
    assert (
        write_synthetic_split(
            tmp_path, dataset="imagenet64", split="train", count=5000, size=16, num_classes=1000
        )
        == path
    )
    with pytest.raises(ValueError, match="delete it"):
        write_synthetic_split(
            tmp_path, dataset="imagenet64", split="train", count=10, size=16, num_classes=1000
        )


@pytest.mark.slow
def test_bench_end_to_end_writes_four_sections(tmp_path):
    out = tmp_path / "bench.json"
    cmd = [
        sys.executable,
        "-m",
        "bench",
        "--model=resnet2",
        "--width=0.0625",
        "--batch=16",
        "--size=16",
        "--data=synthetic",
        "--examples=256",
        # 96 images at batch 16: 6 steps an epoch, inside the memory part's 8-step runs
        "--memory-examples=96",
        f"--bench-dir={tmp_path / 'bench'}",
        "--steps=2",
        "--rounds=1",
        "--e2e-windows=2",
        "--set=train.log_every_steps=2",
        "--set=checkpoint.every_steps=3",
        "--set=eval.batch_size=200",
        "--set=perceptual.batch_size=4",
        "--set=perceptual.frequency_examples=8",
        "--in-process",  # the memory part still runs its two loops in their own processes
        f"--out={out}",
    ]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    assert doc["schema"] == results.SCHEMA
    assert doc["isolated"] is False
    assert doc["run"]["data"]["source"] == SYNTHETIC_SOURCE
    bare, e2e, ev, mem = doc["bare_step"], doc["end_to_end"], doc["evaluator"], doc["memory"]
    assert bare["images_per_sec"] > 0 and bare["peak_rss_mb"] > 0
    assert e2e["images_per_sec"] > 0 and e2e["peak_rss_mb"] > 0
    # the ratio pairs the loop with the bare step timed again right after it, in its process
    assert e2e["bare_same_process_images_per_sec"] > 0
    assert e2e["cpu_seconds"] > 0 and e2e["cpu_time_ratio_to_bare"] > 0
    assert ev["cpu_time_ratio_to_forward"] > 0
    assert e2e["ratio_to_bare"] == pytest.approx(
        e2e["images_per_sec"] / e2e["bare_same_process_images_per_sec"], abs=1e-4
    )
    assert e2e["imagenet_epoch_s"] == pytest.approx(1281167 / e2e["images_per_sec"], rel=1e-3)
    # and the plain Flax loop (bench/plain.py), timed in alternating rounds with the bare step
    plain = e2e["plain_same_process_images_per_sec"]
    assert plain > 0 and e2e["ratio_to_plain"] == pytest.approx(
        e2e["images_per_sec"] / plain, abs=1e-4
    )
    assert e2e["bare_ratio_to_plain"] == pytest.approx(
        e2e["bare_same_process_images_per_sec"] / plain, abs=1e-4
    )
    assert e2e["cpu_time_ratio_to_plain"] > 0
    lo, hi = e2e["window"]
    assert lo == 2 and hi == e2e["steps"] and hi - lo >= 3  # a checkpoint (every 3) inside
    assert ev["forward"]["images_per_sec"] > 0 and ev["evaluator"]["images_per_sec"] > 0
    # the ratio pairs the evaluator with the forward pass timed in alternating rounds beside it
    assert ev["evaluator"]["forward_images_per_sec"] > 0
    assert ev["ratio_to_forward"] == pytest.approx(
        ev["evaluator"]["images_per_sec"] / ev["evaluator"]["forward_images_per_sec"], abs=1e-4
    )
    assert ev["evaluator"]["taps"] == ["stem"]
    freq = ev["evaluator"]["frequency_probe"]  # and the probes' pass beside it; one probe
    assert ev["evaluator"]["probes_ratio_to_plain"] > 0 and freq["image_size"] == 16
    assert freq["seconds"] > 0 and freq["forward_images"] == 8 * (1 + 2 * 8)
    assert [s["examples"] for s in mem["splits"]] == [96, 192]
    assert all(s["peak_rss_mb"] > 0 and s["peak_anon_mb"] > 0 for s in mem["splits"])
    assert mem["growth"] == pytest.approx(
        mem["splits"][1]["peak_rss_mb"] / mem["splits"][0]["peak_rss_mb"], rel=1e-2
    )
    assert set(mem["peak_rss_mb"]) == {"bare_step", "end_to_end", "forward", "evaluator"}
    # the trainer's own run directory was a real one: checkpoints and metrics
    run = tmp_path / "bench" / "runs" / "e2e"
    assert (run / "metrics.jsonl").exists() and (run / "checkpoints").is_dir()
    # the table names every section
    for word in (
        "bare train step",
        "plain Flax loop",
        "trainer/plain",
        "end-to-end",
        "bare forward",
        "evaluator",
        "evaluator + probes",
        "frequency probe",
        "split x2",
        "ImageNet epoch",
    ):
        assert word in proc.stdout


def test_a_part_runs_in_its_own_process(tmp_path):
    # The default mode: each part in a fresh interpreter, its own peak memory reported.
    args = cli.parse_args(
        ["--model=resnet2", "--width=0.0625", "--steps=1", "--rounds=1", "--data=synthetic"]
    )
    data = {**cli.PLACEHOLDER_DATA, "dtype": "float32"}
    config = cli.build_config(args, data)
    config.perceptual.batch_size = 2
    spec = {"args": vars(args), "bench_dir": str(tmp_path), "config": config.to_dict()}
    r = cli.run_part("forward", spec, in_process=False, timeout=300)
    assert r["images_per_sec"] > 0 and r["batch"] == 6 and r["size"] == 64
    assert r["peak_rss_mb"] > r["peak_anon_mb"] > 0
    with pytest.raises(cli.SpeedBenchError, match="part 'nope' failed"):
        cli.run_part("nope", spec, in_process=False, timeout=300)


def test_a_failed_part_keeps_the_others_numbers(tmp_path, monkeypatch, capsys):
    real = cli.run_part

    def run_part(part, spec, **kw):
        if part == "forward":
            raise cli.SpeedBenchError("part 'forward' failed: RuntimeError: out of memory")
        return real(part, spec, **kw)

    monkeypatch.setattr(cli, "run_part", run_part)
    out = tmp_path / "bench.json"
    argv = ["--model=resnet2", "--width=0.0625", "--batch=8", "--size=16", "--data=synthetic"]
    argv += ["--examples=64", f"--bench-dir={tmp_path / 'b'}", "--steps=1", "--rounds=1"]
    argv += ["--parts=bare,forward", "--in-process", f"--out={out}"]
    assert cli.main(argv) == 1
    doc = json.loads(out.read_text())
    assert doc["bare_step"]["images_per_sec"] > 0
    assert doc["failed_parts"] == {"forward": "part 'forward' failed: RuntimeError: out of memory"}
    assert "FAILED forward: part 'forward' failed" in capsys.readouterr().out


def test_eval_probe_runs_and_the_new_style_form_is_accurate(tmp_path):
    # python -m bench.probe (GPU_CHECK_PROBE) on a tiny model: every row timed, and on this CPU
    # the style distance (difference identity) within 1e-4 of float64 on similar images.
    out = tmp_path / "probe.json"
    cmd = [sys.executable, "-m", "bench.probe", "--model=resnet2", "--triplets=4", "--steps=1"]
    proc = subprocess.run(
        [*cmd, f"--out={out}"], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    assert set(doc["seconds"]) == {
        "forward",
        "forward+taps",
        "distances",
        "old-style",
        "scorer",
        "scorer, host",
    }
    assert all(s > 0 for s in doc["seconds"].values())
    assert doc["style"] and all(v["new_max_rel"] < 1e-4 for v in doc["style"].values())
