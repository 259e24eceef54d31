"""The report on several processes (evaluator/report/parallel.py) writes what it writes on one:
the same results.csv, report.md and figures; a figure that fails in a worker is named, not
fatal; results.csv that cannot be written is an error, as on one process."""

from __future__ import annotations

import re
import shutil

import pytest

from evaluator import report
from evaluator.report import draw_scale, parallel
from evaluator.report.synth import write_trial
from trainer.files import atomic_write_json

# Another test file of this worker may have loaded JAX, which warns on any fork; the report's
# workers never touch JAX (and `python -m evaluator.report` does not load it).
pytestmark = pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning")


def _sweep(d):
    """48 trials (the fewest that use workers): 4 depths x 6 widths x 2 seeds, 3 checkpoints."""
    for depth in (6, 10, 18, 34):
        for w in (0.0625, 0.125, 0.25, 0.5, 1.0, 2.0):
            for seed in (0, 1):
                ps = 60.0 + 2 * w - 0.2 * depth + 0.3 * seed
                pts = [(100 * k, float(k), 0.3 + 0.05 * k + 0.01 * w, ps + k) for k in (1, 2, 3)]
                ov = {"model.depth": depth, "model.width": w, "seed": seed}
                write_trial(d, f"d{depth}_w{w}_s{seed}", ov, pts, probes=seed == 0)
    atomic_write_json(d / "sweep.json", {"axis": ["model.width", "seed"]})
    assert len([p for p in d.iterdir() if p.is_dir()]) == parallel.MIN_TRIALS


def _outputs(d):
    return {p.relative_to(d).as_posix(): p.read_bytes() for p in sorted(d.rglob("*"))
            if p.is_file() and p.suffix in (".md", ".csv", ".png")}  # fmt: skip


def _undated(text: bytes) -> bytes:
    """report.md without its "- Generated <minute> UTC." line (the two reports may straddle a
    minute)."""
    return re.sub(rb"\n- Generated [^\n]*", b"", text)


def test_two_workers_write_what_one_writes(tmp_path):
    one, two = tmp_path / "one" / "width", tmp_path / "two" / "width"
    _sweep(one)
    shutil.copytree(one, two)
    report.write_report(one, workers=1)
    report.write_report(two, workers=2)
    a, b = _outputs(one), _outputs(two)
    assert sorted(a) == sorted(b)
    assert {"results.csv", "report.md", "ps_vs_epoch.png", "width.png"} <= set(a)
    assert a["results.csv"] == b["results.csv"]
    assert _undated(a["report.md"]).replace(b"/one/", b"/two/") == _undated(b["report.md"])
    for name in a:
        if name.endswith(".png"):
            assert a[name] == b[name], name  # the same figure, drawn by a worker


def test_results_csv_formatted_in_chunks_on_workers_is_the_same_file(tmp_path, monkeypatch):
    from evaluator.report import collect, results_csv

    d = tmp_path / "width"
    _sweep(d)
    sweeps = collect.load_sweeps(d, False)
    rows = collect.build_rows(sweeps)
    columns = collect.csv_columns(rows, sweeps[0].swept)
    collect.write_csv(tmp_path / "one.csv", rows, columns, workers=1)
    monkeypatch.setattr(results_csv, "CHUNK_ROWS", 10)  # 15 chunks, a fresh process each
    collect.write_csv(tmp_path / "two.csv", rows, columns, workers=2)
    one = (tmp_path / "one.csv").read_bytes()
    assert one == (tmp_path / "two.csv").read_bytes()
    assert one.count(b"\n") == len(rows) + 1 == 145


def test_a_figure_failing_in_a_worker_is_named_and_the_rest_written(tmp_path, monkeypatch):
    d = tmp_path / "width"
    _sweep(d)

    def broken(*args, **kwargs):
        raise RuntimeError("no room for the legend")

    monkeypatch.setattr(draw_scale, "facet_lines", broken)  # the workers inherit it
    text = report.write_report(d, workers=2).read_text()
    assert "ps_vs_epoch.png: RuntimeError: no room for the legend" in text
    assert "](ps_vs_epoch.png)" not in text
    assert "](top1_vs_ps.png)" in text and (d / "top1_vs_ps.png").is_file()
    assert (d / "results.csv").is_file()


@pytest.mark.parametrize("workers", [1, 2])
def test_training_lines_that_cannot_be_averaged_cost_their_figure_alone(
    tmp_path, monkeypatch, workers
):
    # ps_vs_epoch's lines are averaged before the workers fork; a failure there is the figure's
    from evaluator.report import plots

    d = tmp_path / "width"
    _sweep(d)

    def broken(a):
        raise KeyError("epoch")

    monkeypatch.setattr(plots, "epoch_facets", broken)
    text = report.write_report(d, workers=workers).read_text()
    assert "ps_vs_epoch.png: KeyError: 'epoch'" in text
    assert not (d / "ps_vs_epoch.png").exists()
    assert "](width.png)" in text and (d / "width.png").is_file()


def test_results_csv_that_cannot_be_written_is_an_error_with_workers(tmp_path):
    d = tmp_path / "width"
    _sweep(d)
    (d / "results.csv").mkdir()  # a directory where the file goes: the write fails
    with pytest.raises(OSError):  # written before the figures are drawn
        report.write_report(d, workers=2)
