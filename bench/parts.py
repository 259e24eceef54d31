"""One part of ``python -m bench`` in this process, each meant to run in its own:
``python -m bench.parts <part> <spec.json> <result.json>``.

Parts: ``prepare`` (device, versions, data: ``bench.data``), ``bare``, ``e2e``, ``memory`` and
``memory_one`` (the train step and the trainer's loop: ``bench.training``), ``forward`` and
``evaluator`` (``bench.scoring``). Every result but ``prepare``'s and ``memory``'s (whose runs
are processes of their own) carries the process's peak host memory (``VmHWM``), its sampled
anonymous peak, the host's load and, where the backend reports it, the device's peak bytes in
use.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import Any

from bench.measure import AnonPeak, device_peak_mb, load_avg, peak_rss_mb
from trainer.files import atomic_write_json

# part -> (module, function); a part imports only its own module, so what one part imports
# (the evaluator, say) is not in another's peak memory.
RUNNERS: dict[str, tuple[str, str]] = {
    "prepare": ("bench.data", "prepare"),
    "bare": ("bench.training", "bare_step"),
    "e2e": ("bench.training", "end_to_end"),
    "forward": ("bench.scoring", "forward"),
    "evaluator": ("bench.scoring", "evaluator"),
    "memory": ("bench.training", "memory"),
    "memory_one": ("bench.training", "memory_one"),
}


def _finish(result: dict[str, Any]) -> dict[str, Any]:
    result.setdefault("peak_rss_mb", peak_rss_mb())
    result["load_avg_1m"] = load_avg()
    if "device_peak_mb" not in result:
        result["device_peak_mb"] = device_peak_mb()
    return result


def run(part: str, spec: dict[str, Any]) -> dict[str, Any]:
    if part not in RUNNERS:
        raise ValueError(f"bench part {part!r} is unknown; allowed: {', '.join(RUNNERS)}")
    module, name = RUNNERS[part]
    fn = getattr(importlib.import_module(module), name)
    if part in ("prepare", "memory"):
        return fn(spec)
    with AnonPeak() as anon:
        result = fn(spec)
    result.setdefault("peak_anon_mb", anon.peak_mb)
    return _finish(result)


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: python -m bench.parts <part> <spec.json> <result.json>")
        return 2
    part, spec_file, result_file = argv
    spec = json.loads(Path(spec_file).read_text())
    atomic_write_json(result_file, run(part, spec))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
