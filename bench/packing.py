"""``python -m bench.packing``: aggregate images/s of K trials sharing one accelerator
(``--trials-per-device K``, launch/packing.py), for each K of ``--ks`` (default 1,2,4).

For each K, K worker processes start at once, each with the memory share a packed trial gets
(``launch.packing.memory_env``) and the trainer's own jitted train step on one batch already on
the device (``bench.training.bare_runner``, what row 1 of ``python -m bench`` times). Each
compiles and warms up, waits until all K are ready (a file per worker), then runs steps for
``--seconds`` and reports its images/s; the aggregate is their sum, and the speed-up its ratio
to K = 1. The windows start together and last as long, so they overlap but for the last step.

Takes every flag of ``python -m bench`` (model, batch, size, width, dtype, data, ...); writes
one JSON (``--out``) and prints one line per K. Used by bench/gpu_check.sh on an H200; on a CPU
the workers share the cores, which says nothing about an accelerator (a smoke test only).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import cli
from launch.packing import MAX_TRIALS_PER_DEVICE, memory_env
from trainer.files import atomic_write_json

READY_TIMEOUT_S = 900.0


def worker(spec_file: str, result_file: str, ready_dir: str, k: int, index: int) -> int:
    """One of K packed processes: warm up, signal ready, wait for the others, time."""
    from bench.training import bare_runner

    spec = json.loads(Path(spec_file).read_text())
    run, batch = bare_runner(cli.spec_config(spec))
    t0 = time.perf_counter()
    run(2)  # compile and warm up
    warmup = time.perf_counter() - t0
    Path(ready_dir, f"{index}.ready").touch()
    deadline = time.time() + READY_TIMEOUT_S
    while len(list(Path(ready_dir).glob("*.ready"))) < k:
        if time.time() > deadline:
            raise RuntimeError(f"the other packed workers were not ready in {READY_TIMEOUT_S} s")
        time.sleep(0.01)
    seconds = float(spec["seconds"])
    chunk, steps = max(1, int(spec["args"]["steps"])), 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        run(chunk)
        steps += chunk
    took = time.perf_counter() - t0
    result = {"steps": steps, "seconds": round(took, 3), "warmup_seconds": round(warmup, 2)}
    result["images_per_sec"] = round(steps * batch / took, 1)
    atomic_write_json(result_file, result)
    return 0


def measure(spec: dict[str, Any], k: int, accelerator: bool, timeout: float) -> dict[str, Any]:
    """Run K workers at once; their per-process and aggregate images/s."""
    with tempfile.TemporaryDirectory(prefix=f"bench-packing-{k}-") as tmp:
        spec_file = Path(tmp) / "spec.json"
        spec_file.write_text(json.dumps(spec))
        ready = Path(tmp) / "ready"
        ready.mkdir()
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **memory_env(k, accelerator)}
        procs = []
        for i in range(k):
            argv = [sys.executable, "-m", "bench.packing", "--worker", str(spec_file)]
            argv += [str(Path(tmp) / f"{i}.json"), str(ready), str(k), str(i)]
            log = open(Path(spec["bench_dir"]) / "logs" / f"packing-{k}-{i}.log", "w")
            procs.append(
                (subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env), log)
            )
        for p, log in procs:
            try:
                p.wait(timeout=timeout)
            finally:
                log.close()
        bad = [i for i, (p, _) in enumerate(procs) if p.returncode != 0]
        if bad:
            raise cli.SpeedBenchError(f"packed worker(s) {bad} of K={k} failed; see their logs")
        each = [json.loads((Path(tmp) / f"{i}.json").read_text()) for i in range(k)]
    return {
        "k": k,
        "memory_env": memory_env(k, accelerator),
        "per_process": each,
        "aggregate_images_per_sec": round(sum(r["images_per_sec"] for r in each), 1),
    }


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--worker"]:
        return worker(argv[1], argv[2], argv[3], int(argv[4]), int(argv[5]))
    p = argparse.ArgumentParser(prog="python -m bench.packing", add_help=False)
    p.add_argument("--ks", default="1,2,4", help="comma list of trials per device")
    p.add_argument("--seconds", type=float, default=20.0, help="timed window per K")
    own, rest = p.parse_known_args(argv)
    args = cli.parse_args([*rest, "--parts=bare"])
    try:
        cli.check_args(args)
        ks = [int(x) for x in own.ks.split(",") if x.strip()]
        if not ks or any(not 1 <= k <= MAX_TRIALS_PER_DEVICE for k in ks):
            raise ValueError
    except ValueError as e:
        msg = str(e) or f"--ks={own.ks!r} is not allowed; a comma list of integers 1..8"
        print(f"bench.packing: {msg}", file=sys.stderr)
        return 2
    bench_dir = Path(args.bench_dir).resolve()
    (bench_dir / "logs").mkdir(parents=True, exist_ok=True)
    base = {"args": vars(args), "bench_dir": str(bench_dir)}
    prep = cli.run_part("prepare", base, in_process=False, timeout=args.timeout)
    config = cli.build_config(args, prep["data"])
    spec = {**base, "config": config.to_dict(), "data": prep["data"], "seconds": own.seconds}
    accelerator = prep["device"]["platform"] != "cpu"
    rows = [measure(spec, k, accelerator, args.timeout) for k in ks]
    one = next((r["aggregate_images_per_sec"] for r in rows if r["k"] == 1), None)
    for r in rows:
        r["speedup_vs_one"] = round(r["aggregate_images_per_sec"] / one, 3) if one else None
        each = ", ".join(f"{e['images_per_sec']:,.0f}" for e in r["per_process"])
        vs = f", {r['speedup_vs_one']:.2f}x K=1" if r["speedup_vs_one"] else ""
        print(
            f"packing {args.model} K={r['k']}: {r['aggregate_images_per_sec']:,.0f} images/s "
            f"aggregate ({each}){vs}"
        )
    doc = {"device": prep["device"], "model": args.model, "batch": args.batch, "size": args.size}
    doc |= {"dtype": config.model.dtype, "seconds": own.seconds, "rows": rows}
    out = Path(args.out) if args.out else cli.default_out().with_suffix(".packing.json")
    atomic_write_json(out, doc)
    print(f"bench.packing: wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
