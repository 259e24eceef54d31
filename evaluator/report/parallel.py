"""The report's independent work on several processes: the trials' files, read side by side,
and the figures, drawn side by side once this process has written results.csv.

At the study's scale these take most of a report's time (docs/performance.md). Forked
processes (not spawned ones): a worker inherits the rows and the analysis instead of pickling
them. Where fork is unavailable, for a gs:// sweep (its client is not fork-safe), with one core,
or for a small sweep, everything runs in this process, in order.
"""

from __future__ import annotations

import contextlib
import gc
import multiprocessing
import os
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any

MAX_WORKERS = 8
MIN_TRIALS = 48  # fewer trials than this: working here is quicker than starting workers

_TASKS: list[Any] = []  # what forked workers run, by index: set before the fork, inherited


def workers() -> int:
    """The processes the report may use: the cores this process may run on (at most 8); one
    where fork is missing or unsafe (a process that loaded JAX runs threads of its own)."""
    if "fork" not in multiprocessing.get_all_start_methods() or "jax" in sys.modules:
        return 1
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        cores = os.cpu_count() or 1
    return max(1, min(MAX_WORKERS, cores))


def for_trials(n: int, trials: int) -> int:
    """The processes to use for a sweep of ``trials`` trials: ``n``, or 1 for a small one."""
    return n if trials >= MIN_TRIALS else 1


@contextlib.contextmanager
def _inherited(tasks: list[Any]) -> Iterator[None]:
    """``tasks`` where processes forked inside see them (``_run_task`` with an index)."""
    _TASKS[:] = tasks
    gc.freeze()  # the children would otherwise copy every page the collector touches
    try:
        yield
    finally:
        gc.unfreeze()
        _TASKS.clear()  # the workers had their copies


@contextlib.contextmanager
def _forked(n: int, tasks: list[Any]) -> Iterator[ProcessPoolExecutor]:
    """A pool of ``n`` forked workers that see ``tasks`` (submit ``_run_task`` with an index)."""
    with _inherited(tasks):
        with ProcessPoolExecutor(n, mp_context=multiprocessing.get_context("fork")) as pool:
            yield pool


def _run_task(i: int) -> Any:
    fn, args = _TASKS[i]
    return fn(*args)


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic garbage collection while reading a sweep: its 74,000 rows hold no cycles, and
    the collector would scan the growing heap again and again (7% of the reading time)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def map_trials(fn: Callable[..., Any], args: list[tuple], n: int) -> list[Any]:
    """``[fn(*a) for a in args]``, on ``n`` processes when there are enough trials to gain
    (``fn`` and its results are pickled: a module-level function and plain data)."""
    if for_trials(n, len(args)) <= 1:
        return [fn(*a) for a in args]
    with _forked(n, []) as pool:
        chunk = max(1, len(args) // (4 * n))
        return list(pool.map(fn, *zip(*args, strict=True), chunksize=chunk))


def map_fresh(fn: Callable[..., Any], args: list[tuple], n: int) -> list[Any]:
    """``[fn(*a) for a in args]``; with ``n`` > 1, each call in a forked process of its own
    that exits afterwards, so the memory pages a call touches are copied for that call only
    (a long-lived worker would keep a copy of every page it read); ``args`` are inherited, not
    pickled, and the results come back pickled."""
    if n <= 1 or len(args) <= 1:
        return [fn(*a) for a in args]
    fork = multiprocessing.get_context("fork")
    with _inherited([(fn, a) for a in args]):
        with fork.Pool(min(n, len(args)), maxtasksperchild=1) as pool:
            return pool.map(_run_task, range(len(args)), chunksize=1)


def _failure(path: Path, e: BaseException) -> str:
    first = str(e).splitlines()[0] if str(e) else ""
    return f"{path.name}: {type(e).__name__}: {first}"


def _draw(path: Path, fn: Callable[..., Any], args: tuple) -> str | None:
    try:
        fn(path, *args)
        return None
    except Exception as e:  # a figure that cannot be drawn must not cost the report
        return _failure(path, e)
    finally:
        gc.collect()  # a closed figure is a web of cycles: free it before the next one


class Figures:
    """Every figure of one report, queued with ``add`` and drawn by ``draw``; afterwards
    ``drawn(path)`` says whether a file was written and ``failed`` lists the others, one line
    each (the report names them instead of stopping)."""

    def __init__(self, n_workers: int = 1) -> None:
        self.n_workers = n_workers
        self.queued: list[tuple[Path, Callable[..., Any], tuple]] = []
        self.failures: dict[Path, str] = {}

    def add(self, path: Path, fn: Callable[..., Any], *args: Any, cost: float = 1.0) -> None:
        """Queue ``fn(path, *args)``, a function that writes the figure at ``path``; the
        costliest (``cost``: a guess, such as the panels) are drawn first."""
        self.queued.append((path, fn, args, cost))

    def draw(self) -> None:
        """Draw every queued figure, on the workers when there are several."""
        jobs = sorted(self.queued, key=lambda j: -j[3])
        self.queued = []
        n = min(self.n_workers, len(jobs))
        if n <= 1:
            results = [_draw(path, fn, args) for path, fn, args, _ in jobs]
        else:
            tasks = [(_draw, (path, fn, args)) for path, fn, args, _ in jobs]
            with _forked(n, tasks) as pool:
                futures = [pool.submit(_run_task, i) for i in range(len(jobs))]
                results = [self._result(f, j[0]) for f, j in zip(futures, jobs, strict=True)]
        for (path, *_), line in zip(jobs, results, strict=True):
            if line:
                self.failures[path] = line
                print(f"report: {line}", file=sys.stderr)

    @staticmethod
    def _result(future: Future, path: Path) -> str | None:
        try:
            return future.result()
        except Exception as e:  # a worker that died (killed for memory): this figure failed
            return _failure(path, e)

    def drawn(self, path: Path) -> bool:
        return path not in self.failures

    def failed(self, out_dir: Path) -> list[str]:
        """The failure lines of the figures in ``out_dir``."""
        return [line for p, line in self.failures.items() if p.parent == out_dir]

    def kept(self, out_dir: Path, made: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """``(file name, caption)`` pairs of ``out_dir`` whose figure was written."""
        return [m for m in made if self.drawn(out_dir / m[0])]
