"""docs/results.md is generated from the committed results, and stays so; the
report's tables and figures read runs through the results schema."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from fedup_flwr import pruning_rate
from simulations import report
from simulations.report import figures, sections, sweep
from simulations.schema import MethodResult, RunResult


def test_committed_results_md_matches_the_report_command() -> None:
    expected = report.build_report(report.load_results(), figures=False)
    assert report.DOC.read_text() == expected, (
        "docs/results.md is stale: run `python -m simulations.report`"
    )


def _method(**overrides: Any) -> MethodResult:
    values: dict[str, Any] = {
        "test_acc_after_unlearning": 0.5, "mal_acc_after_unlearning": 0.1,
        "forget_acc_after_unlearning": 0.5, "forget_acc_after": 0.6,
        "forget_acc_curve": [0.5, 0.6], "test_acc_after": 0.8, "mal_acc_after": 0.05,
        "recovery_rounds": 1, "rounds_run": 1, "test_acc_curve": [0.5, 0.8],
        "mal_acc_curve": [0.1, 0.05], "mal_rounds_to_baseline": 0,
        "pruning_rate": 0.1, "storage_mb": 1.0, "unlearn_seconds": 0.01,
        "similarity": 0.99,
    }  # fmt: skip
    values.update(overrides)
    return MethodResult(**values)


def _run(**overrides: Any) -> RunResult:
    values: dict[str, Any] = {
        "name": "fake", "dataset": "fashion_mnist", "model": "fmnist_cnn",
        "partition": "iid", "alpha": None, "attack": "label_flip",
        "num_clients": 10, "num_malicious": 3, "method": "fedup",
        "pruning_rate": 0.1, "test_acc_before": 0.81, "mal_acc_before": 0.4,
        "forget_acc_before": 0.9, "detector": "oracle", "test_acc_after": 0.8,
        "mal_acc_after": 0.05, "baseline_test_acc": 0.8, "baseline_mal_acc": 0.04,
        "recovery_rounds": 1, "rounds_from_scratch": 7, "recovery_bound": 1,
        "storage_mb": 1.0, "unlearn_seconds": 0.01, "seed": 42,
        "unlearning_round": 5, "tolerance": 0.01, "fraction": 0.1,
        "local_epochs": 1, "wall_seconds": 1.0, "commit": "abc", "hardware": "hw",
        "methods": {"fedup": _method(), "natural": _method()},
    }  # fmt: skip
    values.update(overrides)
    return RunResult(**values)


def _save(folder: Path, name: str, run: RunResult) -> None:
    (folder / name).mkdir()
    run.save(folder / name / "results.json")


def test_report_puts_measured_rows_next_to_the_paper(tmp_path: Path) -> None:
    _save(tmp_path, "t3-iid-10-3-s42", _run())
    _save(tmp_path, "t3-iid-10-3-s1", _run(test_acc_before=0.83))
    text = report.build_report(report.load_results(tmp_path), figures=False)
    table3 = text.split("## Table III")[1].split("##")[0]
    assert "| IID | 10 (3) | paper | 85 | 87 | 4 | 65 | 3 | 34 | 1 | 10 |" in table3
    # Two seeds: mean ± standard deviation of the test accuracy before.
    assert "| IID | 10 (3) | measured, 2 seeds | 82.0 ± 1.4 | 80.0 ± 0.0 |" in table3
    assert "`t3-iid-10-3-s1`, `t3-iid-10-3-s42`" in table3


def _not_reached(rounds_run: int) -> MethodResult:
    """A method that never recovered (R_rec, rounds to B: none) in its rounds."""
    curve = [0.1] * (rounds_run + 1)
    return _method(recovery_rounds=None, rounds_run=rounds_run,
                   test_acc_curve=curve, mal_acc_curve=[0.9] * len(curve),
                   forget_acc_curve=curve)  # fmt: skip


def test_each_seed_reads_its_own_round_cap(tmp_path: Path) -> None:
    # Issue 12: the first seed (by name) ran 1 recovery round, the second 2;
    # the cap of the group was the first seed's, so the second read ">1".
    for name, rounds_run in (("t3-iid-10-3-s1", 1), ("t3-iid-10-3-s2", 2)):
        method = _not_reached(rounds_run)
        _save(tmp_path, name, _run(methods={"fedup": method, "natural": method}))
    text = report.build_report(report.load_results(tmp_path), figures=False)
    row = next(
        line
        for line in text.split("## Table III")[1].splitlines()
        if "measured, 2 seeds" in line
    )
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[9] == ">1 / >2"  # R_rec
    assert cells[12] == ">1 / >2"  # natural: R_rec
    assert cells[13] == ">1 / >2 ; >1 / >2"  # rounds to B (FedUP ; natural)


def test_a_method_that_stopped_early_reads_its_own_cap(tmp_path: Path) -> None:
    # natural recovered at once and was not run further: "rounds to B" is
    # unknown beyond 0 rounds, not beyond the 3 rounds FedUP ran.
    stopped = _method(recovery_rounds=0, rounds_run=0, test_acc_curve=[0.9],
                      mal_acc_curve=[0.5], forget_acc_curve=[0.5])  # fmt: skip
    run = _run(methods={"fedup": _not_reached(3), "natural": stopped})
    _save(tmp_path, "t3-iid-10-3-s1", run)
    text = report.build_report(report.load_results(tmp_path), figures=False)
    assert "| >3 ; >0 |" in text.split("## Table III")[1].split("##")[0]


def test_load_results_rejects_a_malformed_run(tmp_path: Path) -> None:
    (tmp_path / "t3-bad").mkdir()
    data = _run().to_dict()
    del data["seed"]
    (tmp_path / "t3-bad" / "results.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"t3-bad.*missing required key 'seed'"):
        report.load_results(tmp_path)


def test_the_hydra_callback_keeps_its_configured_path() -> None:
    from hydra.utils import get_class

    config = (report.ROOT / "conf" / "config.yaml").read_text()
    assert "_target_: simulations.report.SweepSummary" in config
    assert get_class("simulations.report.SweepSummary") is report.SweepSummary


def _sweep_runs(folder: Path, **adaptive: Any) -> None:
    for rate in (0.05, 0.1, 0.2):
        method = _method(pruning_rate=rate, similarity=0.9, **adaptive)
        _save(folder, f"p{rate}", _run(pruning_rate=rate, methods={"fedup": method}))


def test_sweep_summary_writes_every_run_and_the_plot(tmp_path: Path) -> None:
    _sweep_runs(tmp_path)
    out = report.write_summary(tmp_path)
    rows = list(csv.DictReader(out.open()))
    assert [r["run"] for r in rows] == ["p0.05", "p0.1", "p0.2"]
    assert [float(r["pruning_rate"]) for r in rows] == [0.05, 0.1, 0.2]
    assert set(rows[0]) == {"run", *RunResult.summary_fields()}
    assert (tmp_path / "sweep_p.png").stat().st_size > 0


def test_sweep_marks_the_adaptive_rate_of_the_recorded_parameters(
    tmp_path: Path,
) -> None:
    params = {"p_min": 0.05, "p_max": 0.5, "gamma": 1.0}
    _sweep_runs(tmp_path, similarity_measure="last_layer_updates", **params)
    runs = list(report.load_results(tmp_path).values())
    rate, label = sweep.adaptive_rate(runs) or (None, "")
    assert rate == pytest.approx(pruning_rate(0.9, **params))
    assert rate != pytest.approx(pruning_rate(0.9))  # not the library defaults
    assert "last_layer_updates" in label


def test_sweep_falls_back_to_library_defaults_for_old_results(tmp_path: Path) -> None:
    _sweep_runs(tmp_path)  # schema 1 fields only: no parameters recorded
    runs = list(report.load_results(tmp_path).values())
    rate, label = sweep.adaptive_rate(runs) or (None, "")
    assert rate == pytest.approx(pruning_rate(0.9))
    assert "library defaults" in label


def test_sweep_refuses_runs_with_different_parameters(tmp_path: Path) -> None:
    _sweep_runs(tmp_path, p_min=0.01, p_max=0.15, gamma=5.0)
    runs = list(report.load_results(tmp_path).values())
    other = dataclasses.replace(runs[0].methods["fedup"], gamma=2.0)
    runs[0] = dataclasses.replace(runs[0], methods={"fedup": other})
    with pytest.raises(ValueError, match="different adaptive-rate parameters"):
        sweep.adaptive_rate(runs)


@pytest.fixture
def drawn(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The figures the report would save, kept open for inspection."""
    kept: list[Any] = []
    for module in (figures, sweep):
        monkeypatch.setattr(module, "save", lambda fig, path, **_: kept.append(fig))
    return kept


def assert_rounds_and_legend_outside(fig: Any, round_axes: list[Any]) -> None:
    """Whole-number ticks on every round axis; every legend clear of every plot."""
    fig.canvas.draw()
    for axis in round_axes:
        ticks = axis.get_majorticklocs()
        assert len(ticks) > 0 and all(float(t).is_integer() for t in ticks), ticks
    renderer = fig.canvas.get_renderer()
    legends = fig.legends + [ax.get_legend() for ax in fig.axes if ax.get_legend()]
    assert legends, "no legend"
    for legend in legends:
        box = legend.get_window_extent(renderer)
        for ax in fig.axes:
            if ax.get_visible():
                assert not box.overlaps(ax.get_window_extent(renderer)), ax.get_title()


def test_ablation_figure_has_round_ticks_and_an_outside_legend(
    drawn: list[Any],
) -> None:
    curve = [0.1, 0.5, 0.6]  # 2 recovery rounds: default ticks would show halves
    method = _method(test_acc_curve=curve, mal_acc_curve=curve, rounds_run=2)
    runs = {"a": _run(methods=dict.fromkeys(figures.ABLATION_METHODS, method))}
    figures.fig_ablation(runs, ["a"], Path("unused.png"))
    (fig,) = drawn
    assert_rounds_and_legend_outside(fig, [ax.xaxis for ax in fig.axes])


def test_sweep_figures_have_round_ticks_and_an_outside_legend(
    drawn: list[Any], tmp_path: Path
) -> None:
    fixed = {f"fedup-{p}": _method(pruning_rate=p, recovery_rounds=r)
             for p, r in ((0.05, 1), (0.1, 2), (0.3, 3))}  # fmt: skip
    runs = {"r": _run(methods={"fedup": _method(), **fixed})}
    figures.fig_sweep(runs, ["r"], Path("x.png"))
    _sweep_runs(tmp_path)
    sweep.plot_sweep(list(report.load_results(tmp_path).values()), Path("y.png"))
    for fig in drawn:
        # The second (twin) axes carries R_rec, in rounds.
        assert_rounds_and_legend_outside(fig, [fig.axes[1].yaxis])
    assert len(drawn) == 2


def test_run_curves_have_round_ticks_and_an_outside_legend(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from simulations import results

    kept: list[Any] = []
    monkeypatch.setattr(results, "save", lambda fig, path, **_: kept.append(fig))
    log = results.RoundLog(tmp_path / "rounds.csv")
    metrics = {"mal_acc": 0.1, "attack_success": 0.0, "seconds": 1.0}
    log.add_initial({"test_acc": 0.1, "mal_acc": 0.1, "attack_success": 0.0})
    log.add("train", "all", 1, test_acc=0.8, **metrics)
    for r, acc in ((2, 0.5), (3, 0.8)):
        log.add("unlearn", "fedup", r, test_acc=acc, **metrics)
    run = _run(unlearning_round=2, methods={"fedup": _method()})
    results.plot_curves(log, run, tmp_path / "curves.png")
    (fig,) = kept
    assert_rounds_and_legend_outside(fig, [ax.xaxis for ax in fig.axes])


# Issue 12: robust figures from rounds.csv and config.yaml, seeds, attack check.


def _save_with_rounds(
    folder: Path,
    name: str,
    run: RunResult,
    retrain: list[tuple[float, float]],
    window: tuple[int, int] = (10, 10),
) -> None:
    """A run folder as the harness writes it: results.json, the retrain rows
    of rounds.csv ((test, malicious) per retrain round) and config.yaml."""
    _save(folder, name, run)
    with (folder / name / "rounds.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["phase", "method", "round", "test_acc", "mal_acc",
                         "attack_success", "forget_acc", "seconds"])  # fmt: skip
        writer.writerow(["init", "all", 0, 0.1, 0.0, 0.0, 0.1, 0.0])
        for r, (test, mal) in enumerate(retrain, start=1):
            writer.writerow(["retrain", "retrain", r, test, mal, mal, test, 1.0])
    low, high = window
    (folder / name / "config.yaml").write_text(
        f"rounds:\n  min_recovery: {low}\n  max_recovery: {high}\n"
        "  max_retrain: 25\nunlearning:\n  rate_limit: 10\n"
    )


def _table(text: str, title: str) -> str:
    return text.split(f"## {title}")[1].split("\n## ")[0]


def _row_of(table: str, first_cell: str) -> list[str]:
    line = next(ln for ln in table.splitlines() if ln.startswith(f"| {first_cell} |"))
    return [c.strip() for c in line.strip().strip("|").split("|")]


def test_rows_with_one_seed_say_so(tmp_path: Path) -> None:
    _save(tmp_path, "t3-iid-10-3-s42", _run())
    text = report.build_report(report.load_results(tmp_path), figures=False)
    assert "| IID | 10 (3) | measured, 1 seed |" in _table(text, "Table III")


def test_b_is_the_window_mean_around_its_best_round(tmp_path: Path) -> None:
    # R* not reached; B peaked at round 3 and declined: the recorded B (last
    # round, malicious 30%) is replaced by the mean of rounds 2-4.
    retrain = [(0.5, 0.20), (0.7, 0.05), (0.75, 0.04), (0.7, 0.06), (0.4, 0.30)]
    run = _run(rounds_from_scratch=None, baseline_mal_acc=0.30, mal_acc_before=0.4)
    _save_with_rounds(tmp_path, "t3-iid-10-3-s1", run, retrain)
    text = report.build_report(report.load_results(tmp_path), figures=False)
    table = _table(text, "Table III")
    assert _row_of(table, "IID")[5] != "paper"
    measured = next(ln for ln in table.splitlines() if "measured, 1 seed" in ln)
    assert measured.split("|")[6].strip() == "5.0"  # (5 + 4 + 6) / 3
    robust = _row_of(table, "`t3-iid-10-3-s1`")
    assert robust[3] == (
        "71.7 / 5.0 (spread 2.0; rounds 2-4 around best round 3, R* not reached)"
    )
    assert robust[1] == "fixed 10"


def test_r_rec_first_hit_and_stays_and_the_eq6_bound(tmp_path: Path) -> None:
    # before 0.81, tolerance 0.01. FedUP: back at round 2 and stays; natural:
    # back at once (R_rec 0) but below the mark again from round 2 on.
    fed = _method(test_acc_curve=[0.1, 0.7, 0.805, 0.81, 0.82, 0.82],
                  mal_acc_curve=[0.0, 0.1, 0.05, 0.05, 0.05, 0.05],
                  recovery_rounds=2, rounds_run=5, pruning_rate=0.14)  # fmt: skip
    nat = _method(test_acc_curve=[0.81, 0.80, 0.75, 0.75, 0.75, 0.75],
                  mal_acc_curve=[0.3] * 6, recovery_rounds=0, rounds_run=5,
                  pruning_rate=0.0)  # fmt: skip
    run = _run(rounds_from_scratch=4, methods={"fedup": fed, "natural": nat})
    retrain = [(0.6, 0.06), (0.7, 0.05), (0.75, 0.04), (0.81, 0.03)]
    _save_with_rounds(tmp_path, "t3-iid-10-3-s1", run, retrain, window=(5, 5))
    text = report.build_report(report.load_results(tmp_path), figures=False)
    robust = _row_of(_table(text, "Table III"), "`t3-iid-10-3-s1`")
    assert robust[4] == "1 (**not held**)"  # ceil(4 x 0.14) = 1 < R_rec 2
    assert robust[5] == "2 / 2"  # FedUP R_rec: first hit / stays
    assert robust[7] == "0 / >5"  # natural: back at once, not at the end
    # B: rounds 3-4 around R* = 4 (malicious 3.5%); FedUP's 5% is within 2.
    assert robust[6] == "2 / 2"
    assert robust[8] == ">5 / >5"


def test_an_attack_that_did_not_take_hold_is_marked(
    tmp_path: Path, drawn: list[Any]
) -> None:
    weak = _run(mal_acc_before=0.06, baseline_mal_acc=0.04)  # within 5 points
    _save(tmp_path, "t4-iid-10-4-s1", weak)
    _save(tmp_path, "t4-iid-10-4-s2", _run(mal_acc_before=0.4))
    runs = report.load_results(tmp_path)
    text = report.build_report(runs, figures=False)
    table4 = _table(text, "Table IV")
    assert "**attack did not take hold in 1 of 2 seeds**" in table4
    assert _row_of(table4, "`t4-iid-10-4-s1`")[2] == "**did not take hold**"
    assert _row_of(table4, "`t4-iid-10-4-s2`")[2] == "took hold"
    strength = _table(text, "Attack strength")
    line = "- `t4-iid-10-4-s1`: malicious accuracy before unlearning 6.0%, B's 4.0%"
    assert line in strength
    assert "t4-iid-10-4-s2" not in strength.split("left out of every claim:")[1]
    methods = dict.fromkeys(figures.ABLATION_METHODS, _method())
    plotted = {"a": dataclasses.replace(weak, methods=methods)}
    figures.fig_ablation(plotted, ["a"], Path("unused.png"))
    (fig,) = drawn
    assert all("attack did not take hold" in ax.get_title() for ax in fig.axes)


def test_tables_v_to_vii_pool_seeds(tmp_path: Path) -> None:
    for seed, acc in (("s1", 0.80), ("s2", 0.82)):
        run = _run(test_acc_before=acc, attack="backdoor", num_malicious=4)
        _save(tmp_path, f"t5-iid-10-4-fp-{seed}", run)
    benign = _run(attack="none", rounds_from_scratch=2, forget_acc_before=0.9)
    # B: rounds 1-3 around R* = 2; forgetting data 40, 50, 60 -> 50.
    retrain = [(0.6, 0.0), (0.8, 0.0), (0.82, 0.0)]
    _save_with_rounds(tmp_path, "t7-benign-iid-10", benign, retrain)
    path = tmp_path / "t7-benign-iid-10" / "rounds.csv"
    lines = path.read_text().splitlines()
    for i, forget in zip(range(2, 5), ("0.4", "0.5", "0.6")):
        cells = lines[i].split(",")
        cells[6] = forget
        lines[i] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")
    text = report.build_report(report.load_results(tmp_path), figures=False)
    table5 = _table(text, "Table V")
    measured = [ln for ln in table5.splitlines() if "| fedup | measured" in ln]
    assert len(measured) == 1  # the two seeds in one row
    assert "| natural | measured, 2 seeds" in table5
    assert (
        "measured, 2 seeds (`t5-iid-10-4-fp-s1`, `t5-iid-10-4-fp-s2`)" in (measured[0])
    )
    assert "| 81.0 ± 1.4 / 80.0 ± 0.0 |" in measured[0]
    table7 = _table(text, "Table VII")
    b = _row_of(table7, "B (retrain, 3-round mean)")
    assert b[1:5] == [
        "measured, 1 seed (`t7-benign-iid-10`)", "81.0 / 74.0", "90.0 / 50.0",
        "R* 2",
    ]  # fmt: skip


def _detection(folder: Path, name: str, settings: dict[str, Any],
               detectors: dict[str, dict[str, float]]) -> None:  # fmt: skip
    (folder / name).mkdir()
    data = {"settings": settings, "detectors": detectors}
    (folder / name / "detection.json").write_text(json.dumps(data))


def test_detector_summary_groups_by_settings_and_shows_every_detector(
    tmp_path: Path,
) -> None:
    base = {"dataset": "cifar10", "attack": "backdoor", "partition": "iid",
            "alpha": None, "rounds": 15, "num_clients": 10, "num_malicious": 4,
            "seed": 42}  # fmt: skip
    # Two seeds of one setting, each with a detector the other lacks.
    _detection(tmp_path, "a", base, {"x": {"run_f1": 1.0}, "y": {"run_f1": 0.5}})
    _detection(tmp_path, "b", {**base, "seed": 43}, {"x": {"run_f1": 0.5}})
    # Named like a label-flip run but a backdoor under Dirichlet(0.5): the
    # settings decide, not the folder name.
    _detection(tmp_path, "label_flip-iid", {**base, "partition": "dirichlet",
               "alpha": 0.5}, {"x": {"run_f1": 0.2}})  # fmt: skip
    _detection(tmp_path, "c", {**base, "attack": "none", "dataset": "fashion_mnist",
               "num_malicious": 0}, {"x": {"flagged_round_rate": 0.1}})  # fmt: skip
    # A boosting run is its own group, not averaged into the plain backdoor.
    _detection(tmp_path, "boosted", {**base, "boost": 2.5}, {"x": {"run_f1": 0.0}})
    lines = report.detector_summary(tmp_path)
    assert lines[0] == "|  | runs (F-MNIST / CIFAR) | `x` | `y` |"
    assert lines[2:] == [
        "| backdoor, IID, 15 rounds | 0 / 2 | – / 0.75 | – / 0.50 |",
        "| backdoor, Dir(0.5), 15 rounds | 0 / 1 | – / 0.20 | – / – |",
        "| backdoor, boost 2.5, IID, 15 rounds | 0 / 1 | – / 0.00 | – / – |",
        "| no attack, IID, 15 rounds: rounds flagged | 1 / 0 | 0.10 / – | – / – |",
    ]


def test_runs_not_made_lists_todo_and_stale_runs_with_what_differs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from simulations import reproduce
    from simulations.report.runs import LoadedRuns
    from simulations.report.sections import not_run

    planned = [reproduce.Run(f"t9-{p}-10-3", ("rounds.max_recovery=10",))
               for p in ("iid", "dirichlet")]  # fmt: skip
    monkeypatch.setattr(reproduce, "plan", lambda: planned)
    stale = tmp_path / "t9-iid-10-3"
    stale.mkdir()
    (stale / "results.json").write_text("{}")
    (stale / "config.yaml").write_text("rounds:\n  max_recovery: 6\n")
    lines = not_run(LoadedRuns({}, tmp_path))
    assert "1 have no results yet and 1 have results from another config" in lines[0]
    assert lines[2:] == [
        "- `t9-iid-10-3` (stale, no estimate: no committed t9 run): "
        "`stale: rounds.max_recovery: 6 → 10`",
        "- `t9-dirichlet-10-3` (todo, no estimate: no committed t9 run): "
        "`rounds.max_recovery=10`",
    ]
    assert "(2 runs without an estimate)" in lines[0]
    # A committed run of the prefix gives the others its time.
    (stale / "results.json").write_text('{"wall_seconds": 1200}')
    lines = not_run(LoadedRuns({}, tmp_path))
    assert "~40 min of CPU time" in lines[0]
    todo = "- `t9-dirichlet-10-3` (todo, ~20 min: median of 1 t9 runs)"
    assert lines[3].startswith(todo)
    (stale / "config.yaml").write_text("rounds:\n  max_recovery: 10\n")
    (tmp_path / "t9-dirichlet-10-3").mkdir()
    (tmp_path / "t9-dirichlet-10-3" / "results.json").write_text("{}")
    (tmp_path / "t9-dirichlet-10-3" / "config.yaml").write_text(
        "rounds:\n  max_recovery: 10\n"
    )
    assert not_run(LoadedRuns({}, tmp_path)) == [
        "Every run of `python -m simulations.reproduce --list` is done."
    ]


def test_partition_label_is_one_format_for_every_report() -> None:
    from simulations.report.cells import partition_label

    assert partition_label("iid", None) == "IID"
    assert partition_label("dirichlet", 0.5) == "Dir(0.5)"
    assert partition_label("dirichlet", 1.0) == "Dir(1)"
    with pytest.raises(ValueError, match="needs its alpha"):
        partition_label("dirichlet", None)


def test_partition_order_puts_iid_first_then_decreasing_alpha() -> None:
    from simulations.report.cells import partition_order

    keys = [partition_order("dirichlet", 0.5), partition_order("iid", None),
            partition_order("dirichlet", 1.0)]  # fmt: skip
    assert sorted(keys) == [0.0, 1.0, 2.0]
    with pytest.raises(ValueError, match="needs its alpha"):
        partition_order("dirichlet", None)


def test_attack_order_puts_backdoor_first_and_unknown_attacks_last() -> None:
    from simulations.report.cells import attack_order

    attacks = ["none", "other", "label_flip", "backdoor"]
    expected = ["backdoor", "label_flip", "none", "other"]
    assert sorted(attacks, key=attack_order) == expected


def test_sweep_points_leave_out_the_runs_own_fixed_p_that_a_variant_repeats() -> None:
    fixed = {f"fedup-{p}": _method(pruning_rate=p) for p in (0.01, 0.1)}

    def names(own: MethodResult) -> list[str]:
        run = _run(methods={"fedup": own, **fixed})
        return [name for _, name, _ in figures.sweep_points(run)]

    assert names(_method(pruning_rate=0.01, adaptive=False)) == [
        "fedup-0.01", "fedup-0.1"]  # fmt: skip
    # Kept when adaptive (even at a variant's P) or at a P no variant has.
    assert names(_method(pruning_rate=0.1, adaptive=True)) == [
        "fedup-0.01", "fedup", "fedup-0.1"]  # fmt: skip
    assert names(_method(pruning_rate=0.02, adaptive=False)) == [
        "fedup-0.01", "fedup", "fedup-0.1"]  # fmt: skip


@pytest.mark.parametrize(
    ("adaptive", "label"), [(True, "adaptive FedUP"), (False, "FedUP (the run's P)")]
)
def test_the_sweep_table_names_the_runs_own_rate_for_what_it_is(
    adaptive: bool, label: str
) -> None:
    methods = {
        "fedup": _method(pruning_rate=0.02, adaptive=adaptive),
        "fedup-0.05": _method(pruning_rate=0.05),
        "natural": _method(pruning_rate=0.0),
    }
    run = _run(name=sections.SWEEP_RUN, methods=methods)
    text = "\n".join(sections.sweep({sections.SWEEP_RUN: run}, False))
    rows = [
        line.split(" | ")[1] for line in text.splitlines() if line.startswith("| 0.0")
    ]
    assert rows == ["natural", label, "fedup-0.05"]
