"""What the evaluator job computes for a checkpoint beyond plain scoring, with what it keeps
between checkpoints: the hypothesis probes (``evaluator.probes``), the benchmark's dynamic
range (from its labels: once per job), the frequency probe (``evaluator.frequency``, on the
trial's eval split: read once per job per data config) and the ``lin`` calibration
(``evaluator.calibration``, fitted per checkpoint on the benchmark's train split).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from evaluator import benchmarks as bm
from evaluator import probes
from evaluator.bapps import Benchmark
from evaluator.probes import Settings


def needs_frequency(rec: dict[str, Any] | None, settings: Settings) -> bool:
    """Whether a step still needs the frequency probe (an error record needs nothing)."""
    if rec is not None and rec.get("error"):
        return False
    return settings.frequency and (rec is None or not settings.record_complete(rec))


class Analyses:
    """One evaluator job's analyses and their caches (``Evaluator.analyses``)."""

    def __init__(self, log: Callable[[str], None]):
        self.log = log
        self._ranges: dict[Any, dict[str, Any]] = {}
        self._eval_subsets: dict[str, tuple[Any, Any, dict[str, Any]]] = {}

    def dynamic_range(self, key: Any, bench: Benchmark) -> dict[str, Any]:
        """The benchmark's dynamic range of PS (its labels only), computed once per key."""
        if key not in self._ranges:
            judges = {c: t.judge for c, t in bench.twoafc.items()}
            self._ranges[key] = probes.dynamic_range(judges)
        return self._ranges[key]

    def frequency(self, cfg: dict[str, Any], sm: Any, n: int) -> dict[str, Any]:
        """The frequency probe's block for ``sm`` on ``n`` class-balanced images of the trial's
        eval split at its training resolution; an eval split that cannot be read here (an
        imported trial's ImageNet not prepared on this machine, say) gives ``{"error": "<one
        line>"}`` and scoring goes on."""
        import ml_collections

        from evaluator.frequency import frequency_probe, subset
        from trainer.data import load_split

        key = json.dumps([cfg["data"], n], sort_keys=True)
        if key not in self._eval_subsets:
            try:
                split = load_split(ml_collections.ConfigDict(cfg["data"]), "eval")
                images, labels = subset(split, n)
                info = {"split": "eval", "dataset": split.meta.get("dataset")}
                self._eval_subsets[key] = (images, labels, info)
            except Exception as e:  # no eval split here must not cost the scores
                from evaluator.records import error_line

                self._eval_subsets[key] = (None, None, {"error": error_line(e)})
                self.log(f"frequency probe: eval split unreadable: {error_line(e)}")
        images, labels, info = self._eval_subsets[key]
        return info if images is None else frequency_probe(sm, images, labels, info)

    def block(
        self,
        result_dir: Path,
        step: int,
        key: Any,
        bench: Benchmark,
        reference: dict[str, Any],
        sm: Any,
        distances: Sequence[str],
        settings: Settings,
        train: Benchmark | None = None,
    ) -> dict[str, Any]:
        """One benchmark's score block of ``step`` (docs/file-contracts.md): the distances
        (``lin`` too when ``settings.calibrate``: fitted on ``train`` and saved in
        ``result_dir``, or the saved fit reused), the pixel ``reference`` and, with
        ``settings.probes``, the probes and the benchmark's dynamic range."""
        from evaluator.calibration import calibrate, weights_path

        if bench.mos is not None:  # TID2013, KADID-10k: correlations only (evaluator.mos)
            dists = bm.score_model_mos(bench, sm, distances)
            return {**bm.benchmark_header(bench), "distances": dists, "reference": reference}
        lin, info = None, None
        if settings.calibrate:
            path = weights_path(result_dir, step, bench.name)
            lin, info = calibrate(sm, train, path, settings.calibrate_steps)
        dists, probe_block = bm.score_model_probes(bench, sm, distances, settings.probes, lin)
        if info is not None:
            dists["lin"]["calibration"] = info
        out = {**bm.benchmark_header(bench), "distances": dists, "reference": reference}
        if probe_block is not None:
            out["probes"] = probe_block
            out["dynamic_range"] = self.dynamic_range(key, bench)
        return out
