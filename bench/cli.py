"""``python -m bench`` (``make bench``): the arguments, the bench trial's config, and the run:
``prepare`` first, then every part asked for, each in a fresh Python process (``python -m
bench.parts``) unless ``--in-process``; a bad argument or config fails in one line (exit 2)
before any work, a failed part is named and the others' numbers kept (exit 1).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import ml_collections

from bench.results import assemble, format_table
from sweeps.base import ConfigError, config_from, validate
from trainer.files import atomic_write_json

PARTS = ("bare", "e2e", "forward", "evaluator", "memory")
DATA_CHOICES = ("auto", "fashion_mnist", "synthetic")
MODEL_PATTERNS = (
    (re.compile(r"resnet-?(\d+)"), lambda m: {"model.name": "resnet", "model.depth": int(m[1])}),
    (
        re.compile(r"vit-?((?:Ti|S|B|L|H)/\d+)", re.IGNORECASE),
        lambda m: {"model.name": "vit", "model.variant": _vit_variant(m[1]), "model.depth": 0},
    ),
    (
        re.compile(r"efficientnet-?(b\d)", re.IGNORECASE),
        lambda m: {"model.name": "efficientnet", "model.variant": m[1].lower()},
    ),
)
MODEL_HELP = (
    "resnet<depth> (resnet6, resnet18, resnet50), vit-<variant> (vit-B/8), efficientnet-b<k>"
)


PLACEHOLDER_DATA = {
    "preset": "embedded",
    "dataset": "fashion_mnist",
    "num_classes": 10,
    "prepared_dir": "",
}


class SpeedBenchError(ValueError):
    """A bad argument of the speed bench or a part that failed; the message is one line."""


def _vit_variant(text: str) -> str:
    base, patch = text.split("/")
    return {"ti": "Ti"}.get(base.lower(), base.upper()) + "/" + patch


def model_overrides(name: str) -> dict[str, Any]:
    """``resnet18`` -> ``{"model.name": "resnet", "model.depth": 18}`` (one-line error if not)."""
    for pattern, build in MODEL_PATTERNS:
        m = pattern.fullmatch(name.strip())
        if m:
            return build(m)
    raise SpeedBenchError(f"--model {name!r} is not understood; allowed: {MODEL_HELP}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark the train step, the trainer's loop and the evaluator.",
    )
    p.add_argument("--model", default="resnet18", help=MODEL_HELP)
    p.add_argument("--batch", type=int, default=256, help="global batch size")
    p.add_argument("--size", type=int, default=32, help="image side in pixels")
    p.add_argument("--width", type=float, default=1.0, help="channel multiplier (model.width)")
    p.add_argument(
        "--dtype", default="", help="compute dtype; '' = bfloat16 on GPU/TPU, else float32"
    )
    p.add_argument("--data", default="auto", help="auto | fashion_mnist | synthetic")
    p.add_argument(
        "--examples",
        type=int,
        default=0,
        help="images in the synthetic split (0 = 131072, ImageNet-64's scale for a bench)",
    )
    p.add_argument("--data-dir", default="", help="prepared data; '' = the config's default")
    p.add_argument(
        "--bench-dir", default="data/bench", help="synthetic splits and scratch runs (git-ignored)"
    )
    p.add_argument("--steps", type=int, default=20, help="timed steps per round (bare parts)")
    p.add_argument("--rounds", type=int, default=3, help="timed rounds (the median is kept)")
    p.add_argument(
        "--e2e-windows",
        type=int,
        default=2,
        help="log intervals timed in the trainer's loop, after the first (compile) one",
    )
    p.add_argument(
        "--memory-input",
        default="host",
        help="input mode of the memory part: host (memory-mapped split, device_resident=no) "
        "or config (as the config decides; a device-resident split grows device memory)",
    )
    p.add_argument(
        "--memory-examples",
        type=int,
        default=0,
        help="N of the memory part's synthetic splits (N and 2N); 0 = the bench split's size",
    )
    p.add_argument("--parts", default=",".join(PARTS), help="comma list of " + ", ".join(PARTS))
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="config override for every part, e.g. --set train.log_every_steps=20",
    )
    p.add_argument("--out", default="", help="JSON path; '' = bench-results/<UTC time>.json")
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds per part")
    p.add_argument(
        "--in-process",
        action="store_true",
        help="run every part in this process (faster; peak memory is then cumulative)",
    )
    return p.parse_args(argv)


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def check_args(args: argparse.Namespace) -> list[str]:
    """Reject bad arguments with one line before anything starts; returns the parts to run."""
    model_overrides(args.model)
    for name, lo in (("batch", 1), ("steps", 1), ("rounds", 1), ("e2e_windows", 1)):
        if getattr(args, name) < lo:
            raise SpeedBenchError(
                f"--{name.replace('_', '-')}={getattr(args, name)} must be >= {lo}"
            )
    if not 8 <= args.size <= 1024:
        raise SpeedBenchError(f"--size={args.size} must be in [8, 1024]")
    from trainer.models import DTYPES  # the model zoo owns the dtypes (imports jax: lazily)

    if args.dtype and args.dtype not in DTYPES:
        raise SpeedBenchError(f"--dtype={args.dtype!r} is unknown; allowed: {', '.join(DTYPES)}")
    if args.data not in DATA_CHOICES:
        raise SpeedBenchError(
            f"--data={args.data!r} is unknown; allowed: {', '.join(DATA_CHOICES)}"
        )
    if args.memory_input not in ("host", "config"):
        raise SpeedBenchError(
            f"--memory-input={args.memory_input!r} is unknown; allowed: host, config"
        )
    for name in ("examples", "memory_examples"):
        if getattr(args, name) < 0:
            flag = "--" + name.replace("_", "-")
            raise SpeedBenchError(f"{flag}={getattr(args, name)} must be >= 0")
    parts = [x.strip() for x in args.parts.split(",") if x.strip()]
    bad = [x for x in parts if x not in PARTS]
    if bad or not parts:
        raise SpeedBenchError(
            f"--parts={args.parts!r} is not allowed; a comma list of {', '.join(PARTS)}"
        )
    for item in args.set:
        if "=" not in item:
            raise SpeedBenchError(
                f"--set {item!r} is not KEY=VALUE (e.g. train.log_every_steps=20)"
            )
    return [p for p in PARTS if p in parts]


def overrides_for(args: argparse.Namespace, data: dict[str, Any]) -> dict[str, Any]:
    """The bench trial's config overrides, given what the ``prepare`` part found."""
    o: dict[str, Any] = {
        **model_overrides(args.model),
        "model.width": args.width,
        "model.dtype": data["dtype"],
        "data.name": data["dataset"],
        "data.image_size": args.size,
        "data.num_classes": data["num_classes"],
        "data.prepared_dir": data["prepared_dir"],
        "train.batch_size": args.batch,
    }
    for item in args.set:
        key, _, value = item.partition("=")
        o[key.strip()] = _value(value.strip())
    return o


def build_config(args: argparse.Namespace, data: dict[str, Any]):
    try:
        return config_from(data["preset"], overrides_for(args, data))
    except ConfigError as e:
        raise SpeedBenchError(f"bench config: {e}") from None


def spec_config(spec: dict[str, Any]) -> ml_collections.ConfigDict:
    """The bench trial's config as ``main`` put it in a part's spec, validated again."""
    cfg = ml_collections.ConfigDict(spec["config"])
    validate(cfg)
    return cfg


# ----------------------------------------------------------------------------- running parts


def run_part(
    part: str, spec: dict[str, Any], *, in_process: bool, timeout: float
) -> dict[str, Any]:
    """Run one part in a fresh Python process (or here) and return its result dict."""
    t0 = time.perf_counter()
    if in_process:
        from bench import parts

        result = parts.run(part, spec)
    else:
        with tempfile.TemporaryDirectory(prefix=f"bench-{part}-") as tmp:
            spec_file, result_file = Path(tmp) / "spec.json", Path(tmp) / "result.json"
            spec_file.write_text(json.dumps(spec))
            cmd = [sys.executable, "-m", "bench.parts", part, str(spec_file)]
            try:
                proc = subprocess.run(
                    [*cmd, str(result_file)],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                    timeout=timeout,
                    env={**os.environ, "PYTHONUNBUFFERED": "1"},
                )
            except subprocess.TimeoutExpired:
                raise SpeedBenchError(f"part {part!r} ran past --timeout={timeout:g} s") from None
            log = Path(spec["bench_dir"]) / "logs" / f"{part}.log"  # the part's own output
            log.parent.mkdir(parents=True, exist_ok=True)
            log.write_text(proc.stdout)
            if proc.returncode != 0 or not result_file.exists():
                tail = proc.stdout.strip().splitlines()[-15:]
                sys.stderr.write("\n".join(tail) + "\n")
                last = tail[-1] if tail else f"exit code {proc.returncode}"
                raise SpeedBenchError(f"part {part!r} failed: {last}")
            result = json.loads(result_file.read_text())
            result["log"] = str(log)
    result["part_wall_s"] = round(time.perf_counter() - t0, 2)
    return result


# ----------------------------------------------------------------------------- main


def default_out() -> Path:
    return Path("bench-results") / (time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + ".json")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        parts = check_args(args)
        out = Path(args.out) if args.out else default_out()
        base_spec = {
            "args": vars(args),
            "bench_dir": str(Path(args.bench_dir).resolve()),
        }
        # The whole config is checked once before any data is prepared (the data keys are
        # filled in from what ``prepare`` finds; they cannot make a valid config invalid).
        build_config(args, {**PLACEHOLDER_DATA, "dtype": args.dtype or "float32"})
        prep = run_part("prepare", base_spec, in_process=args.in_process, timeout=args.timeout)
        config = build_config(args, prep["data"])
        spec = {**base_spec, "config": config.to_dict(), "data": prep["data"]}
        results: dict[str, dict] = {}
        failed: dict[str, str] = {}
        for part in parts:
            print(f"bench: {part} ...", file=sys.stderr, flush=True)
            try:
                results[part] = run_part(
                    part, spec, in_process=args.in_process, timeout=args.timeout
                )
            except SpeedBenchError as e:  # the other parts' numbers still count: go on, exit 1
                print(f"bench: {e}", file=sys.stderr)
                failed[part] = str(e)
        overrides = overrides_for(args, prep["data"])
        doc = assemble(args, parts, prep, config, overrides, results)
        doc["failed_parts"] = failed
    except (SpeedBenchError, ConfigError) as e:
        print(f"bench: {e}", file=sys.stderr)
        return 2
    atomic_write_json(out, doc)
    print(format_table(doc))
    print(f"bench: wrote {out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
