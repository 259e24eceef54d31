"""How the bench measures: peak host memory (``VmHWM``, sampled ``RssAnon``), device peak bytes,
the host's load, CPU seconds stamped on the trainer's log lines, and rounds of timed steps.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Self


def peak_rss_mb() -> float:
    """This process's peak resident set size so far: ``VmHWM`` of /proc/self/status, else
    ``ru_maxrss`` (which Linux carries over fork and exec, so a child started by a large
    process would report its parent's peak)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024.0, 1)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)


class _Sampler:
    """Calls ``sample()`` every ``interval`` seconds from a daemon thread while its ``with``
    block runs."""

    def __init__(self, interval: float, name: str):
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def sample(self) -> None:
        raise NotImplementedError

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


class AnonPeak(_Sampler):
    """Samples this process's anonymous resident memory (``RssAnon`` in /proc/self/status)
    every ``interval`` seconds in a daemon thread and keeps the peak; ``AnonPeak.active`` is
    the sampler whose ``with`` block is running.

    ``ru_maxrss`` also counts the file-backed pages of a memory-mapped split that were touched
    (page cache, which the kernel can drop at any time), so a loop that reads a whole split
    shows a peak that grows with the split although it allocates nothing for it; the
    anonymous peak is the memory the process itself holds. (Linux has no peak counter for it,
    hence the sampling; a spike shorter than ``interval`` can be missed.)
    """

    active: ClassVar[AnonPeak | None] = None

    def __init__(self, interval: float = 0.02):
        super().__init__(interval, "bench-anon-peak")
        self.peak_kb = 0

    @staticmethod
    def read_kb() -> int:
        try:
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("RssAnon:"):
                    return int(line.split()[1])
        except OSError:
            pass
        return 0

    def sample(self) -> None:
        self.peak_kb = max(self.peak_kb, self.read_kb())

    def __enter__(self) -> Self:
        AnonPeak.active = self
        return super().__enter__()

    def __exit__(self, *exc) -> None:
        super().__exit__(*exc)
        self.sample()
        AnonPeak.active = None

    @property
    def peak_mb(self) -> float | None:
        return round(self.peak_kb / 1024.0, 1) if self.peak_kb else None


def process_peaks() -> dict[str, float | None]:
    """This process's peaks so far: RSS, and anonymous RSS where an ``AnonPeak`` is running."""
    anon = AnonPeak.active
    return {"peak_rss_mb": peak_rss_mb(), "peak_anon_mb": anon.peak_mb if anon else None}


class LogCpuClock(_Sampler):
    """Notes this process's CPU seconds (all threads) when each train line of the trainer's
    metrics.jsonl appears (polled every ``interval`` s from a daemon thread), so the steady
    window's CPU time can be set beside its wall time: on a shared machine other processes'
    load stretches wall time but hardly this process's CPU time."""

    def __init__(self, path: Path, interval: float = 0.005):
        super().__init__(interval, "bench-log-cpu")
        self.path = path
        self.cpu_at_step: dict[int, float] = {}
        self._offset = 0
        self._buf = b""

    def sample(self) -> None:
        try:
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                chunk = f.read()
        except OSError:
            return
        cpu = time.process_time()
        self._offset += len(chunk)
        self._buf += chunk
        *lines, self._buf = self._buf.split(b"\n")
        for line in lines:
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if rec.get("kind") == "train":
                self.cpu_at_step[int(rec["step"])] = cpu


def load_avg() -> float:
    """The host's 1-minute load average (others' work skews CPU timings)."""
    return round(os.getloadavg()[0], 2)


def device_peak_mb() -> float | None:
    """Peak bytes in use on the first local device, where the backend reports it (GPU/TPU)."""
    import jax

    try:
        stats = jax.local_devices()[0].memory_stats() or {}
    except Exception:  # CPU backends raise or return None: no device memory to report
        return None
    peak = stats.get("peak_bytes_in_use")
    return None if peak is None else round(peak / 2**20, 1)


def device_info() -> dict[str, Any]:
    import jax

    devices = jax.devices()
    return {
        "platform": jax.default_backend(),
        "kind": devices[0].device_kind,
        "count": len(devices),
        "processes": jax.process_count(),
        "host_cpus": os.cpu_count(),
        "load_avg_1m": load_avg(),
        "host": platform.node(),
    }


def time_interleaved(
    runners: dict[str, Callable[[int], None]], steps: int, rounds: int, warmup: int = 2
) -> dict[str, dict[str, Any]]:
    """For each runner, the median seconds of ``rounds`` calls of ``run(steps)`` (each must
    block at its end), after ``warmup`` steps that include compilation (timed separately).

    With several runners the rounds alternate (A B A B ...), so a slow drift in what else the
    machine is doing hits all of them alike and their ratio stays fair.
    """
    first: dict[str, float] = {}
    for name, run_steps in runners.items():
        t0 = time.perf_counter()
        run_steps(warmup)
        first[name] = time.perf_counter() - t0
    times: dict[str, list[float]] = {name: [] for name in runners}
    cpu: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(rounds):
        for name, run_steps in runners.items():
            t0, c0 = time.perf_counter(), time.process_time()
            run_steps(steps)
            times[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
    return {
        name: {
            "seconds": round(statistics.median(times[name]), 4),
            "cpu_seconds": round(statistics.median(cpu[name]), 4),
            "round_seconds": [round(t, 4) for t in times[name]],
            "warmup_seconds": round(first[name], 3),
            "steps": steps,
            "rounds": rounds,
        }
        for name in runners
    }


def time_rounds(
    run_steps: Callable[[int], None], steps: int, rounds: int, warmup: int = 2
) -> dict[str, Any]:
    """``time_interleaved`` of one runner."""
    return time_interleaved({"one": run_steps}, steps, rounds, warmup)["one"]
