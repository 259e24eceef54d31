"""The report on synthetic run directories: statistics, rows, CSV and report.md text."""

from __future__ import annotations

import csv

import pytest

from evaluator import report
from evaluator.report.analyse import analyse
from evaluator.report.collect import ReportError, build_rows, load_sweeps
from evaluator.report.stats import aggregate_over_seeds, pareto_front, spearman, x_scale
from evaluator.report.synth import perceptual_record, write_trial
from trainer.files import append_jsonl, atomic_write_json


def _sweep(tmp_path, name, points, key="model.depth", values=None, bench="proxy", seeds=None):
    """A sweep with one done trial per (top1, ps) point, swept over ``key``; 100 classes, so
    that the made-up top-1s from 10 % are not at chance (on 10 classes they would not count)."""
    d = tmp_path / name
    values = values or [6, 10, 14, 18, 26, 34, 50, 101][: len(points)]
    trials = []
    for i, ((top1, ps), v) in enumerate(zip(points, values, strict=True)):
        seed = seeds[i] if seeds else 0
        ov = {key: v, "seed": seed, "data.num_classes": 100}
        tname = f"t{i}-{v}-s{seed}"
        write_trial(d, tname, ov, [(100, 1.0, top1 / 2, ps - 5), (200, 2.0, top1, ps)], bench=bench)
        trials.append({"name": tname, "overrides": ov})
    atomic_write_json(
        d / "sweep.json",
        {"sweep": name, "preset": "embedded", "axis": [key, "seed"], "trials": trials},
    )
    return d


def _analysis(d, **kw):
    sweeps = load_sweeps(d, False)
    return analyse(sweeps, build_rows(sweeps), **kw)


def _corr(a, name):
    return dict(a.correlations)[name]


# ----------------------------------------------------------------------------- statistics


def test_spearman_monotone_is_one_and_antimonotone_above_the_peak_is_minus_one(tmp_path):
    up = _sweep(tmp_path, "up", [(0.1 * k, 60.0 + k) for k in range(1, 9)])
    a = _analysis(up)
    assert _corr(a, "final checkpoints, all").rho == pytest.approx(1.0)
    assert _corr(a, "final checkpoints, all").n == 8
    assert _corr(a, "final checkpoints, all").p < 0.01
    # meanpool and style are the local PS shifted down: the same ranks
    assert [(d, c.rho) for d, c in a.per_distance] == [("meanpool", 1.0), ("style", 1.0)]

    # PS rises with top-1 up to 40 % and falls beyond: the upper half by top-1 (>= median 45 %)
    # is exactly anti-monotone, the whole set is not.
    ps = [60.0, 62.0, 64.0, 66.0, 65.0, 63.0, 61.0, 59.0]
    peak = _sweep(tmp_path, "peak", [(0.1 * k, p) for k, p in zip(range(1, 9), ps, strict=True)])
    a = _analysis(peak)
    above = _corr(a, "final checkpoints, above the peak")
    assert above.rho == pytest.approx(-1.0) and above.n == 4
    assert a.peak_thresholds["final"] == pytest.approx(45.0)
    assert -1.0 < _corr(a, "final checkpoints, all").rho < 1.0
    text = report.write_report(peak, plots=False).read_text()
    assert "-1.000" in text and "median top-1" in text and "top-1 >= 45.0%" in text


def test_spearman_needs_three_varying_points():
    assert spearman([1.0, 2.0], [3.0, 4.0]).rho is None
    c = spearman([1.0, 2.0, 3.0], [5.0, 5.0, 5.0])
    assert c.rho is None and "constant" in c.note
    c = spearman([1.0, 2.0, 3.0], [3.0, 2.0, 1.0])
    assert c.rho == pytest.approx(-1.0)
    assert c.p == pytest.approx(1 / 3)  # exact: 2 of the 3! pairings are perfectly ranked
    c = spearman([float(i) for i in range(10)], [float(i) for i in range(10)])
    assert c.rho == pytest.approx(1.0) and 0.0 < c.p < 1e-5


def test_pareto_front_known_members_and_ties():
    #        A       B       C       D (< B)  E (< A)  F (= C)
    x = [60.0, 70.0, 80.0, 65.0, 50.0, 80.0]
    y = [70.0, 68.0, 60.0, 65.0, 69.0, 60.0]
    assert sorted(pareto_front(x, y)) == [0, 1, 2, 5]
    assert pareto_front(x, y)[0] == 0  # in increasing top-1
    assert pareto_front([1.0], [1.0]) == [0]


def test_report_marks_the_pareto_frontier(tmp_path):
    pts = [(0.60, 70.0), (0.70, 68.0), (0.80, 60.0), (0.65, 65.0), (0.50, 69.0)]
    d = _sweep(tmp_path, "front", pts)
    a = _analysis(d)
    assert {r["trial"] for r in a.frontier} == {"t0-6-s0", "t1-10-s0", "t2-14-s0"}
    text = report.write_report(d, plots=False).read_text()
    front = text.split("## Pareto frontier")[1].split("##")[0]
    assert "`t0-6-s0`" in front and "`t2-14-s0`" in front and "`t3-18-s0`" not in front
    table = text.split("## Trials")[1].split("##")[0]
    starred = [line for line in table.splitlines() if line.rstrip().endswith("★ |")]
    assert len(starred) == 3


def test_seeds_collapse_into_one_point_with_error_bars():
    pts = [
        {"x": 1e-4, "seed": 0, "ps": 60.0, "top1": 70.0},
        {"x": 1e-4, "seed": 1, "ps": 62.0, "top1": 74.0},
        {"x": 1e-3, "seed": 0, "ps": 65.0, "top1": 80.0},
        {"x": 1e-5, "seed": 0, "ps": 58.0, "top1": None},
    ]
    agg = aggregate_over_seeds(pts, "x", ["ps", "top1"])
    assert [g["x"] for g in agg] == [1e-5, 1e-4, 1e-3]
    two = agg[1]
    assert two["n"] == 2 and two["seeds"] == [0, 1]
    assert two["ps_mean"] == pytest.approx(61.0) and two["top1_mean"] == pytest.approx(72.0)
    assert two["ps_std"] == pytest.approx(2**0.5) and two["top1_std"] == pytest.approx(8**0.5)
    assert agg[2]["ps_std"] == 0.0
    assert agg[0]["top1_mean"] is None


def test_x_scale_follows_the_grid():
    assert x_scale([1e-5, 1e-4, 1e-3]) == "log"
    assert x_scale([0.0, 1e-5, 1e-3]) == "symlog"
    assert x_scale([6, 10, 18]) == "linear"
    assert x_scale([0.0, 0.1, 0.2, 0.3]) == "linear"
    assert x_scale(["B/8", "S/16"]) == "categorical"


# ----------------------------------------------------------------------------- rows and CSV


def test_csv_one_row_per_scored_step_with_the_score_columns(tmp_path):
    d = _sweep(
        tmp_path,
        "wd",
        [(0.7, 66.0), (0.8, 67.0), (0.75, 65.0)],
        key="train.weight_decay",
        values=[1e-5, 1e-4, 1e-3],
    )
    report.write_report(d, plots=False)
    with open(d / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 6  # 3 trials x 2 scored steps
    cols = rows[0].keys()
    for c in (
        "train.weight_decay",
        "model_name",
        "model_depth",
        "model_width",
        "model_variant",
        "seed",
        "epoch",
        "step",
        "top1",
        "top1_step",
        "ps_proxy_local",
        "ps_proxy_meanpool",
        "ps_proxy_style",
        "2afc_proxy_local_blur",
        "tap_proxy_local_stage2",
        "jnd_proxy_local",
        "ps_proxy_l2",
        "ps_proxy_ssim",
        "2afc_proxy_ssim_noise",
    ):
        assert c in cols, c
    final = [r for r in rows if r["final"] == "True"]
    assert [float(r["train.weight_decay"]) for r in final] == [1e-5, 1e-4, 1e-3]
    assert [float(r["top1"]) for r in final] == [70.0, 80.0, 75.0]  # percent
    assert {r["model_name"] for r in rows} == {"resnet"}


def test_top1_comes_from_the_nearest_eval_and_the_last_duplicate(tmp_path):
    d = tmp_path / "s"
    t = write_trial(d, "a", {"model.depth": 6}, [(100, 0.5, 0.5, None), (250, 1.25, 0.6, None)])
    atomic_write_json(t / "perceptual" / "200.json", perceptual_record(200, 1.0, "a", 64.0))
    atomic_write_json(t / "perceptual" / "100.json", perceptual_record(100, 0.5, "a", 60.0))
    # A resumed run rewrites step 100's eval, and a kill tore the last line.
    append_jsonl(
        t / "metrics.jsonl", {"kind": "eval", "step": 100, "epoch": 0.5, "eval_top1": 0.55}
    )
    with open(t / "metrics.jsonl", "a") as f:
        f.write('{"kind": "eval", "step": 300, "eval_')
    rows = build_rows(load_sweeps(d, False))
    by_step = {r["step"]: r for r in rows}
    assert by_step[200]["top1_step"] == 250 and by_step[200]["top1"] == pytest.approx(60.0)
    assert by_step[100]["top1"] == pytest.approx(55.0)
    assert by_step[200]["final"] and not by_step[100]["final"]


def test_swept_keys_without_an_axis_come_from_the_varying_overrides(tmp_path):
    d = tmp_path / "ls"
    for i, ls in enumerate([0.0, 0.1, 0.2]):
        write_trial(
            d,
            f"ls-{ls}",
            {"train.label_smoothing": ls, "model.depth": 6},
            [(100, 1.0, 0.5 + 0.1 * i, 60.0 + i)],
        )
    # The launcher's sweep.json: trial names only, no axis.
    atomic_write_json(
        d / "sweep.json",
        {"sweep": "ls", "preset": "embedded", "trials": ["ls-0.0", "ls-0.1", "ls-0.2", "ls-0.3"]},
    )
    (sw,) = load_sweeps(d, False)
    assert sw.swept == ["train.label_smoothing"]
    assert "derived" in sw.swept_from
    names = [t.name for t in sw.trials]
    assert "ls-0.3" in names and not next(t for t in sw.trials if t.name == "ls-0.3").exists
    text = report.write_report(d, plots=False).read_text()
    assert "`ls-0.3`: not started" in text


def test_trial_table_sorts_numerically(tmp_path):
    d = _sweep(tmp_path, "depth", [(0.5, 60.0), (0.6, 61.0), (0.7, 62.0)], values=[10, 2, 6])
    text = report.write_report(d, plots=False).read_text()
    table = text.split("## Trials")[1].split("##")[0]
    order = [line.split("|")[2].strip() for line in table.splitlines() if line.startswith("| `")]
    assert order == ["2", "6", "10"]


# ----------------------------------------------------------------------------- report text


def test_proxy_warning_and_no_published_rows_for_the_proxy(tmp_path):
    d = _sweep(tmp_path, "p", [(0.5, 60.0), (0.6, 61.0), (0.7, 62.0)])
    text = report.write_report(d, plots=False).read_text()
    head = text.split("##")[0]
    assert (
        "embedded proxy benchmark (synthetic distortions of public-domain photos), not BAPPS"
        in head
    )
    assert "not comparable to the paper's" in head
    refs = text.split("## Reference rows")[1].split("##")[0]
    assert "73.9" not in refs and "69.8" not in refs and "published" not in refs.split("\n\n")[1]
    assert "| L2 (pixels) | 58.0 |" in refs and "| SSIM | 59.0 |" in refs


def test_bapps_lists_the_published_values(tmp_path):
    d = _sweep(tmp_path, "b", [(0.5, 66.0), (0.6, 67.0), (0.7, 68.0)], bench="bapps")
    text = report.write_report(d, plots=False).read_text()
    head = text.split("##")[0]
    assert "BAPPS" in head and "proxy" not in head
    refs = text.split("## Reference rows")[1].split("##")[0]
    for name, v in (
        ("Human", "73.9"),
        ("LPIPS Alex-lin", "69.8"),
        ("AlexNet", "68.9"),
        ("VGG", "67.0"),
    ):
        line = next(x for x in refs.splitlines() if x.startswith(f"| {name}"))
        assert v in line and "published" in line
    assert "measured on this benchmark" in refs
    assert "JND" in text.split("## Trials")[1].split("##")[0]  # BAPPS has JND scores
    with open(d / "results.csv") as f:
        row = next(csv.DictReader(f))
    assert float(row["jnd_bapps_local"]) == float(row["ps_bapps_local"]) - 10.0
    assert float(row["jnd_bapps_local_cnn"]) == float(row["jnd_bapps_local"]) + 1.0
    assert "2afc_bapps_local_frameinterp" in row and "jnd_bapps_l2" in row


def test_best_score_names_trial_epoch_and_tap(tmp_path):
    d = _sweep(tmp_path, "best", [(0.5, 60.0), (0.6, 70.0), (0.7, 65.0)])
    a = _analysis(d)
    assert a.best["value"] == 70.0 and a.best["row"]["trial"] == "t1-10-s0"
    text = report.write_report(d, plots=False).read_text()
    best = text.split("## Best Perceptual Score")[1].split("##")[0]
    assert "**70.00** at trial `t1-10-s0`, epoch 2.00" in best
    assert "`stage3`" in best  # the synthetic taps peak at stage3


def test_a_sweep_with_failed_and_unscored_trials_still_reports(tmp_path):
    d = tmp_path / "mixed"
    write_trial(d, "ok-a", {"model.depth": 6}, [(100, 1.0, 0.6, 61.0), (200, 2.0, 0.7, 63.0)])
    write_trial(
        d,
        "ok-b",
        {"model.depth": 10},
        [(100, 1.0, 0.6, 62.0), (200, 2.0, 0.8, 64.0)],
        checkpoints=[100, 200, 300],
        errors={300: "checkpoint 300 could not be read"},
    )
    write_trial(
        d,
        "bad",
        {"model.depth": 14},
        [(100, 1.0, 0.1, None)],
        state="diverged",
        status_error="loss is NaN at step 120",
    )
    write_trial(
        d,
        "run",
        {"model.depth": 18},
        [(100, 1.0, 0.5, 60.0)],
        state="running",
        checkpoints=[100, 200],
    )
    write_trial(d, "wait", {"model.depth": 26}, [], state="pending")
    write_trial(d, "unscored", {"model.depth": 34}, [(200, 2.0, 0.7, None)], checkpoints=[200])
    path = report.write_report(d, plots=False)
    text = path.read_text()
    missing = text.split("## Missing")[1].split("## Plots")[0]
    assert "`bad`: diverged" in missing and "loss is NaN" in missing
    assert "`run`: running" in missing and "`run`: checkpoint steps not yet scored: 200" in missing
    assert "`wait`: pending" in missing and "`wait`: no checkpoint scored yet" in missing
    assert "`ok-b` step 300: scoring error: checkpoint 300 could not be read" in missing
    assert "`unscored`: checkpoint steps not yet scored: 200" in missing
    assert "`ok-a`" not in missing
    # the statistics use the finished trials only, and say so
    a = _analysis(d)
    assert {r["trial"] for r in a.analysed} == {"ok-a", "ok-b"}
    assert "unfinished trials left out" in text
    with open(d / "results.csv") as f:
        assert len(list(csv.DictReader(f))) == 5  # ok-a 2, ok-b 2, run 1


def test_a_sweep_with_nothing_scored_reports_what_is_missing(tmp_path):
    d = tmp_path / "empty"
    write_trial(d, "a", {"model.depth": 6}, [], state="pending")
    write_trial(
        d,
        "b",
        {"model.depth": 10},
        [(100, 1.0, 0.3, None)],
        state="failed",
        status_error="RuntimeError: out of memory",
    )
    path = report.write_report(d)
    text = path.read_text()
    assert "`a`: pending" in text and "out of memory" in text
    assert "None yet" in text
    assert (d / "results.csv").read_text().startswith("sweep,trial,state,")
    assert not list(d.glob("*.png"))


def test_unreadable_perceptual_file_is_a_scoring_error(tmp_path):
    d = tmp_path / "torn"
    t = write_trial(d, "a", {"model.depth": 6}, [(100, 1.0, 0.5, 60.0)])
    (t / "perceptual" / "200.json").write_text('{"step": 200, "bench')
    text = report.write_report(d, plots=False).read_text()
    assert "`a` step 200: scoring error: perceptual 200.json is unreadable" in text


# ----------------------------------------------------------------------------- command line


def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    assert report.main([str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "no such directory" in err

    _sweep(tmp_path / "runs", "s1", [(0.5, 60.0)])
    assert report.main([str(tmp_path / "runs")]) == 2
    assert "--all" in capsys.readouterr().err

    (tmp_path / "plain").mkdir()
    assert report.main([str(tmp_path / "plain")]) == 2
    assert "no trial directories" in capsys.readouterr().err

    assert report.main([str(tmp_path / "runs" / "s1"), "--distance", "cosine"]) == 2
    assert "--distance 'cosine' is unknown; allowed: local, meanpool, style" in (
        capsys.readouterr().err
    )

    assert report.main([str(tmp_path / "runs" / "s1"), "--benchmark", "bapps"]) == 2
    err = capsys.readouterr().err
    assert "bapps" in err and "scored: proxy" in err


def test_combining_every_sweep(tmp_path):
    runs = tmp_path / "runs"
    _sweep(runs, "depth", [(0.5, 60.0), (0.6, 61.0), (0.7, 62.0)])
    _sweep(runs, "wd", [(0.6, 64.0), (0.65, 63.0)], key="train.weight_decay", values=[1e-4, 1e-3])
    assert report.main([str(runs), "--all", "--no-plots"]) == 0
    with open(runs / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 10
    assert {r["sweep"] for r in rows} == {"depth", "wd"}
    assert "wd/t0-0.0001-s0" in {r["trial"] for r in rows}
    text = (runs / "report.md").read_text()
    assert "sweep `depth`, final checkpoints" in text and "sweep `wd`, final checkpoints" in text
    with pytest.raises(ReportError):
        report.write_report(tmp_path / "runs" / "depth" / "t0-6-s0")


def test_taps_in_network_order():
    from evaluator.report.collect import taps_present

    row = {f"tap_proxy_local_{t}": 60.0 for t in ("stage10", "stage2", "stem", "block1")}
    assert taps_present([row], "proxy", "local") == ["stem", "block1", "stage2", "stage10"]


# ----------------------------------------------------------------------------- per category


def _section(text, title):
    return text.split(f"## {title}")[1].split("\n## ")[0]


def _final_rows(d):
    with open(d / "results.csv") as f:
        return {r["trial"]: r for r in csv.DictReader(f) if r["final"] == "True"}


def test_per_category_table_matches_results_csv_and_counts_networks_above_l2_and_ssim(tmp_path):
    # synth: L2 58, SSIM 59; category offsets -1.5 0.5 | 1.5 -0.5 1.0 -1.0 around a PS, so a
    # network of PS p has distortions mean p - 0.5 and real-algorithms mean p + 0.25
    d = _sweep(tmp_path, "cats", [(0.5, 55.0), (0.6, 58.5), (0.7, 66.0)], bench="bapps")
    text = report.write_report(d, plots=False).read_text()
    sec = _section(text, "Per category")
    head = next(x for x in sec.splitlines() if x.startswith("| method"))
    cats = ["traditional", "cnn", "superres", "deblur", "color", "frameinterp"]
    assert head == (
        "| method | top-1 (%) | " + " | ".join(cats)
        + " | *distortions mean* | *real algorithms mean* | PS |"
    )  # fmt: skip
    finals = _final_rows(d)
    for trial, r in finals.items():
        line = next(x for x in sec.splitlines() if x.startswith(f"| `{trial}` |"))
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[2:8] == [f"{float(r[f'2afc_bapps_local_{c}']):.1f}" for c in cats]
        dist = (float(r["2afc_bapps_local_traditional"]) + float(r["2afc_bapps_local_cnn"])) / 2
        assert cells[8] == f"*{dist:.1f}*" and cells[10] == f"**{float(r['ps_bapps_local']):.1f}**"
    l2 = next(x for x in sec.splitlines() if x.startswith("| L2 (pixels) |"))
    assert "| 56.5 | 58.5 | 59.5 | 57.5 | 59.0 | 57.0 | *57.5* |" in l2 and l2.endswith(
        "**58.0** |"
    )
    assert "| mean of 3 networks |" in sec
    above = {x.split("|")[1].strip(): x for x in sec.splitlines() if x.startswith("| ")}
    t0, t1, t2 = sorted(finals)
    assert (
        f"| 58.0 | 2 of 3: `{t2}` (66.0), `{t1}` (58.5) | 59.0 | 1 of 3: `{t2}` (66.0) |"
        in (above["PS (every category)"])
    )
    # distortions: L2 57.5 (t1's 58.0 is above it), SSIM 58.5 (t1's 58.0 is not)
    assert (
        f"| 57.5 | 2 of 3: `{t2}` (65.5), `{t1}` (58.0) | 58.5 | 1 of 3"
        in above["distortions mean"]
    )


def test_groups_only_when_every_category_of_the_group_was_scored(tmp_path):
    from evaluator.proxy import CATEGORIES
    from evaluator.report.analyse import _categories

    names = {f"2afc_proxy_local_{c}" for c in CATEGORIES} | {"2afc_proxy_l2_blur", "ps_proxy_local"}
    cats, groups = _categories(names, "proxy", "local")
    assert [g for g, _, _ in groups] == ["severity", "equal-MSE"]
    assert cats[:6] == list(groups[0][1]) and all(c.startswith("eqmse_") for c in cats[6:])
    assert sorted(cats) == sorted(CATEGORIES)
    names.discard("2afc_proxy_local_eqmse_shift")
    assert [g for g, _, _ in _categories(names, "proxy", "local")[1]] == ["severity"]
    # synth's four proxy categories make no group: the table has no group column
    d = _sweep(tmp_path, "p", [(0.5, 60.0), (0.6, 61.0), (0.7, 62.0)])
    sec = _section(report.write_report(d, plots=False).read_text(), "Per category")
    assert "mean*" not in sec and "| blur | color | jpeg | noise | PS |" in sec
    assert "PS (every category)" in sec and "severity mean" not in sec


def test_a_large_sweep_shows_best_median_and_worst_by_ps(tmp_path, monkeypatch):
    from evaluator.report import render

    monkeypatch.setattr(render, "MAX_CATEGORY_ROWS", 2)
    d = _sweep(tmp_path, "big", [(0.5, 61.0), (0.6, 64.0), (0.7, 62.0)], bench="bapps")
    sec = _section(report.write_report(d, plots=False).read_text(), "Per category")
    t = sorted(_final_rows(d))
    for trial, why, ps in (
        (t[1], "best", "64.0"),
        (t[2], "median", "62.0"),
        (t[0], "worst", "61.0"),
    ):
        line = next(x for x in sec.splitlines() if x.startswith(f"| `{trial}` ({why} PS) |"))
        assert line.endswith(f"**{ps}** |")
    assert "| mean of 3 networks |" in sec and "3 networks: the best, median and worst" in sec
