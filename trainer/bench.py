"""``python -m trainer.bench`` (``make bench``): how fast the trainer and the evaluator run
against the ceilings the model sets, and how much host memory each takes.

Four sections, one table, one JSON file (``bench-results/<UTC time>.json`` or ``--out``):

1. ``bare_step``: images/s of the trainer's own jitted train step on a batch already on the
   device: the ceiling for training.
2. ``end_to_end``: images/s of the trainer's real loop (prepared memory-mapped split,
   permutation batching, on-device augmentation, metrics, eval, checkpoints at the configured
   rate) in steady state, from its own ``metrics.jsonl`` (compile and warm-up excluded), and the
   ratio to (1).
3. ``evaluator``: images/s of the evaluator's tap extraction + distances against a bare jitted
   forward pass of the same model, and the ratio.
4. ``memory``: peak host memory (``VmHWM``, and the anonymous part) of each part, and of the end-to-end loop on a
   split N and 2N images large (flat when the split is memory-mapped).

Every part runs in its own Python process (``trainer.bench_parts``), so each peak is that
part's alone and one part's compile caches or buffers do not help or hurt another. Data: the
prepared Fashion-MNIST at ``--size`` on a CPU, a synthetic ImageNet-64-shaped prepared split on
an accelerator (``--data auto``), so nothing is downloaded.
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

from sweeps.base import DTYPES, ConfigError, config_from
from trainer.bench_data import IMAGENET_TRAIN
from trainer.files import atomic_write_json

PARTS = ("bare", "e2e", "forward", "evaluator", "memory")
DATA_CHOICES = ("auto", "fashion_mnist", "synthetic")
TARGETS = {"end_to_end": 0.9, "evaluator": 0.85}
SCHEMA = "perceptual-sweeps/bench/1"
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


class BenchError(ValueError):
    """A bad bench argument or a part that failed; the message is one line."""


def _vit_variant(text: str) -> str:
    base, patch = text.split("/")
    return {"ti": "Ti"}.get(base.lower(), base.upper()) + "/" + patch


def model_overrides(name: str) -> dict[str, Any]:
    """``resnet18`` -> ``{"model.name": "resnet", "model.depth": 18}`` (one-line error if not)."""
    for pattern, build in MODEL_PATTERNS:
        m = pattern.fullmatch(name.strip())
        if m:
            return build(m)
    raise BenchError(f"--model {name!r} is not understood; allowed: {MODEL_HELP}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m trainer.bench",
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
            raise BenchError(f"--{name.replace('_', '-')}={getattr(args, name)} must be >= {lo}")
    if not 8 <= args.size <= 1024:
        raise BenchError(f"--size={args.size} must be in [8, 1024]")
    if args.dtype and args.dtype not in DTYPES:
        raise BenchError(f"--dtype={args.dtype!r} is unknown; allowed: {', '.join(DTYPES)}")
    if args.data not in DATA_CHOICES:
        raise BenchError(f"--data={args.data!r} is unknown; allowed: {', '.join(DATA_CHOICES)}")
    if args.memory_input not in ("host", "config"):
        raise BenchError(f"--memory-input={args.memory_input!r} is unknown; allowed: host, config")
    for name in ("examples", "memory_examples"):
        if getattr(args, name) < 0:
            flag = "--" + name.replace("_", "-")
            raise BenchError(f"{flag}={getattr(args, name)} must be >= 0")
    parts = [x.strip() for x in args.parts.split(",") if x.strip()]
    bad = [x for x in parts if x not in PARTS]
    if bad or not parts:
        raise BenchError(
            f"--parts={args.parts!r} is not allowed; a comma list of {', '.join(PARTS)}"
        )
    for item in args.set:
        if "=" not in item:
            raise BenchError(f"--set {item!r} is not KEY=VALUE (e.g. train.log_every_steps=20)")
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
        raise BenchError(f"bench config: {e}") from None


# ----------------------------------------------------------------------------- running parts


def run_part(
    part: str, spec: dict[str, Any], *, in_process: bool, timeout: float
) -> dict[str, Any]:
    """Run one part in a fresh Python process (or here) and return its result dict."""
    t0 = time.perf_counter()
    if in_process:
        from trainer import bench_parts

        result = bench_parts.run(part, spec)
    else:
        with tempfile.TemporaryDirectory(prefix=f"bench-{part}-") as tmp:
            spec_file, result_file = Path(tmp) / "spec.json", Path(tmp) / "result.json"
            spec_file.write_text(json.dumps(spec))
            cmd = [sys.executable, "-m", "trainer.bench_parts", part, str(spec_file)]
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
                raise BenchError(f"part {part!r} ran past --timeout={timeout:g} s") from None
            log = Path(spec["bench_dir"]) / "logs" / f"{part}.log"  # the part's own output
            log.parent.mkdir(parents=True, exist_ok=True)
            log.write_text(proc.stdout)
            if proc.returncode != 0 or not result_file.exists():
                tail = proc.stdout.strip().splitlines()[-15:]
                sys.stderr.write("\n".join(tail) + "\n")
                last = tail[-1] if tail else f"exit code {proc.returncode}"
                raise BenchError(f"part {part!r} failed: {last}")
            result = json.loads(result_file.read_text())
            result["log"] = str(log)
    result["part_wall_s"] = round(time.perf_counter() - t0, 2)
    return result


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 4) if a and b else None


def _wall_ratio(res: dict | None, same: str, alone: dict | None) -> float | None:
    """``res``'s images/s over its baseline's: the baseline timed in ``res``'s own process
    (``res[same]``) where there is one, else the baseline part run alone (``alone``)."""
    res = res or {}
    return _ratio(res.get("images_per_sec"), res.get(same) or (alone or {}).get("images_per_sec"))


def _cpu_ratio(
    prep: dict[str, Any],
    res: dict | None,
    when: str,
    work: tuple[str, str],
    base: tuple[str, str],
) -> float | None:
    """Work per CPU second of ``res`` over its same-process baseline's, each a
    ``(work key, CPU seconds key)`` of ``res``; only on a CPU backend and where ``res[when]``
    is set, else None."""
    if prep["device"]["platform"] != "cpu" or not (res and res.get(when)):
        return None
    return _ratio(res[work[0]] / res[work[1]], res[base[0]] / res[base[1]])


def _busy(prep: dict[str, Any], *results: dict | None) -> bool:
    """Whether other work shared the cores: a 1-minute load above the CPU count."""
    cpus = prep["device"].get("host_cpus") or 1
    return any((r or {}).get("load_avg_1m", 0.0) > cpus for r in results)


def _verdict_fields(
    wall: float | None, cpu: float | None, target: float, busy: bool
) -> dict[str, Any]:
    """Whether a ratio meets its target, and on what basis.

    On a CPU backend the bench's process does all the work, so CPU seconds per image measure
    throughput whatever other processes do; but they miss time the loop spends idle (waiting
    on I/O, say), which only wall time shows. So with a CPU-time ratio both must meet the
    target, except that on a busy host (load above the CPU count) the wall-time ratio is noise
    and the CPU-time ratio decides alone. Elsewhere the wall-time ratio decides.
    """
    if wall is None:
        return {"meets_target": None, "verdict_basis": None}
    if cpu is None:
        return {"meets_target": wall >= target, "verdict_basis": "wall time"}
    if busy:
        return {"meets_target": cpu >= target, "verdict_basis": "CPU time (host busy)"}
    return {"meets_target": wall >= target and cpu >= target, "verdict_basis": "wall and CPU time"}


def assemble(
    args: argparse.Namespace,
    parts: list[str],
    prep: dict[str, Any],
    config: Any,
    results: dict[str, dict],
) -> dict[str, Any]:
    """The bench JSON: run description + the four sections (absent parts are null)."""
    bare, e2e = results.get("bare"), results.get("e2e")
    fwd, ev, mem = results.get("forward"), results.get("evaluator"), results.get("memory")
    doc: dict[str, Any] = {
        "schema": SCHEMA,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": "python -m trainer.bench " + " ".join(sys.argv[1:]),
        "isolated": not args.in_process,
        "device": prep["device"],
        "versions": prep["versions"],
        "run": {
            "model": args.model,
            "width": args.width,
            "batch": args.batch,
            "size": args.size,
            "dtype": config.model.dtype,
            "preset": prep["data"]["preset"],
            "data": prep["data"],
            "parts": parts,
            "config_overrides": overrides_for(args, prep["data"]),
        },
        "bare_step": bare,
        "end_to_end": None,
        "evaluator": None,
        "memory": None,
    }
    if e2e:
        # The e2e part times the bare step again right after the loop, in the loop's process:
        # that pair gives the ratio; the bare part alone gives the step's own peak memory.
        r = _wall_ratio(e2e, "bare_same_process_images_per_sec", bare)
        cpu_r = _cpu_ratio(
            prep,
            e2e,
            "cpu_seconds",
            ("window_steps", "cpu_seconds"),
            ("bare_same_process_steps", "bare_same_process_cpu_seconds"),
        )
        rate = e2e.get("images_per_sec")
        doc["end_to_end"] = {
            **e2e,
            # One ImageNet-64 epoch (train split, its eval included pro rata) at this rate.
            "imagenet_epoch_s": round(IMAGENET_TRAIN / rate, 2) if rate else None,
            "ratio_to_bare": r,
            "cpu_time_ratio_to_bare": cpu_r,
            "target": TARGETS["end_to_end"],
            **_verdict_fields(r, cpu_r, TARGETS["end_to_end"], _busy(prep, e2e)),
        }
    if ev or fwd:
        # The evaluator part times a bare forward pass in alternating rounds in its own
        # process: that pair gives the ratio; the forward part alone gives its own peak memory.
        r = _wall_ratio(ev, "forward_images_per_sec", fwd)
        cpu_r = _cpu_ratio(
            prep,
            ev,
            "forward_cpu_seconds",
            ("round_images", "cpu_seconds"),
            ("forward_round_images", "forward_cpu_seconds"),
        )
        doc["evaluator"] = {
            "evaluator": ev,
            "forward": fwd,
            "ratio_to_forward": r,
            "cpu_time_ratio_to_forward": cpu_r,
            "target": TARGETS["evaluator"],
            **_verdict_fields(r, cpu_r, TARGETS["evaluator"], _busy(prep, ev)),
        }
    named = [("bare_step", bare), ("end_to_end", e2e), ("forward", fwd), ("evaluator", ev)]
    doc["memory"] = {
        "peak_rss_mb": {name: res.get("peak_rss_mb") for name, res in named if res},
        "peak_anon_mb": {name: res.get("peak_anon_mb") for name, res in named if res},
        "isolated": not args.in_process,
    }
    if mem:
        doc["memory"].update(mem)
    return doc


# ----------------------------------------------------------------------------- table


def _num(x: Any, fmt: str = "{:,.0f}") -> str:
    return "-" if x is None else fmt.format(x)


def _verdict(section: dict | None) -> str:
    if not section or section.get("meets_target") is None:
        return "-"
    ok = section["meets_target"]
    text = (">=" if ok else "< ") + f"{section['target']:.2f} " + ("ok" if ok else "MISSED")
    if str(section.get("verdict_basis", "")).startswith("CPU"):
        text += " (CPU time)"
    return text


def format_table(doc: dict[str, Any]) -> str:
    """One plain-text table of the bench JSON."""
    run, dev = doc["run"], doc["device"]
    data = run["data"]
    head = (
        f"bench {run['model']} width {run['width']:g}  batch {run['batch']}  "
        f"{run['size']}x{run['size']}  {run['dtype']}  on {dev['count']}x {dev['kind']} "
        f"({dev['platform']})  data {data['dataset']} ({data['examples']:,} images)"
    )
    rows = [
        (
            "part",
            "images/s",
            "ratio",
            "target",
            "peak RSS MB",
            "peak anon MB",
            "device peak MB",
            "note",
        )
    ]

    def row(name, res, ratio=None, verdict="-", note=""):
        res = res or {}
        rows.append(
            (
                name,
                _num(res.get("images_per_sec")),
                "-" if ratio is None else f"{ratio:.2f}x",
                verdict,
                _num(res.get("peak_rss_mb")),
                _num(res.get("peak_anon_mb")),
                _num(res.get("device_peak_mb")),
                note,
            )
        )

    bare, e2e, ev = doc["bare_step"], doc["end_to_end"], doc["evaluator"]
    if bare:
        row("1 bare train step", bare, note=f"{bare['steps']} steps x {bare['rounds']} rounds")
    if e2e and e2e.get("bare_same_process_images_per_sec"):
        same = {"images_per_sec": e2e["bare_same_process_images_per_sec"]}
        row("1 bare train step", same, note="again, right after 2 in 2's process")
    if e2e:
        note = f"steps {e2e['window'][0]}-{e2e['window'][1]}, {e2e.get('input_mode', '?')} input"
        if e2e.get("cpu_time_ratio_to_bare"):
            note += f"; CPU-time ratio {e2e['cpu_time_ratio_to_bare']:.2f}x"
        row("2 end-to-end trainer", e2e, e2e["ratio_to_bare"], _verdict(e2e), note)
    if ev:
        if ev["forward"]:
            row("3a bare forward", ev["forward"], note="jitted model.apply, logits, own process")
        if ev["evaluator"] and ev["evaluator"].get("forward_images_per_sec"):
            same = {"images_per_sec": ev["evaluator"]["forward_images_per_sec"]}
            row("3a bare forward", same, note="alternating rounds with 3b, 3b's process")
        if ev["evaluator"]:
            note = ev["evaluator"].get("note", "")
            if ev.get("cpu_time_ratio_to_forward"):
                note += f"; CPU-time ratio {ev['cpu_time_ratio_to_forward']:.2f}x"
            row("3b evaluator", ev["evaluator"], ev["ratio_to_forward"], _verdict(ev), note)
    mem = doc["memory"] or {}
    for item in mem.get("splits", []):
        row(
            f"4 e2e, split {item['examples']:,}",
            item,
            note=f"{item['steps']} steps, {item.get('input_mode', '?')} input",
        )
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    lines = [head]
    for r in rows:
        lines.append("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    loads = [
        r.get("load_avg_1m") or 0.0
        for r in (bare, e2e, *(ev.values() if ev else ()), *mem.get("splits", []))
        if isinstance(r, dict)
    ]
    if loads and max(loads) > dev["host_cpus"]:
        lines.append(
            f"warning: the host was busy (1-minute load up to {max(loads):.1f} on "
            f"{dev['host_cpus']} CPUs): other work shared the cores, so wall-time rates are "
            "unreliable; the CPU-time ratios (this process's CPU seconds per image) hold better"
        )
    for part, message in (doc.get("failed_parts") or {}).items():
        lines.append(f"FAILED {part}: {message}")
    if e2e and e2e.get("imagenet_epoch_s"):
        lines.append(
            f"2 end-to-end: one ImageNet epoch ({IMAGENET_TRAIN:,} images, eval pro rata) "
            f"at this rate takes {e2e['imagenet_epoch_s']:,.1f} s"
        )
    if mem.get("growth") is not None:
        parts = []
        if mem.get("anon_growth") is not None:
            parts.append(f"anonymous (held) x{mem['anon_growth']:.2f}")
        if mem.get("device_growth") is not None:
            parts.append(f"device peak x{mem['device_growth']:.2f}")
        parts.append(f"RSS incl. mapped page cache x{mem['growth']:.2f}")
        lines.append(
            f"4 memory, split x2: {'flat' if mem['flat'] else 'NOT flat'} "
            f"(limit x{mem['flat_limit']:.2f}): " + ", ".join(parts)
        )
    return "\n".join(lines)


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
            except BenchError as e:  # the other parts' numbers still count: go on, exit 1
                print(f"bench: {e}", file=sys.stderr)
                failed[part] = str(e)
        doc = assemble(args, parts, prep, config, results)
        doc["failed_parts"] = failed
    except (BenchError, ConfigError) as e:
        print(f"bench: {e}", file=sys.stderr)
        return 2
    atomic_write_json(out, doc)
    print(format_table(doc))
    print(f"bench: wrote {out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
