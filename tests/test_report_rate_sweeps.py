"""The pruning-rate sweeps across seeds (issue 11) on tiny fake runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from test_report import _method, _row_of, _run, _save, _save_with_rounds, _table
from test_report_pruning import OLD_ADAPTIVE_P, _curves, _table_iv_run

from simulations import report
from simulations.report import rate_sweeps
from simulations.schema import MethodResult

SECTION = "Pruning-rate sweeps across seeds (issue 11)"
DEFAULT_ROW = "P = 0.01 (the default)"
OLD_ROW = "adaptive (`weights`, the default before issue 11)"
TEST = [0.2, 0.5, 0.55, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.61]
MAL = [0.1, 0.3, 0.2, 0.12, 0.11, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1]


def _fixed(rate: float, test: list[float], mal: list[float]) -> MethodResult:
    return _method(**_curves(pruning_rate=rate, adaptive=False,
                             test_acc_curve=test, mal_acc_curve=mal))  # fmt: skip


def _sweep(name: str, seed: int, methods: dict[str, MethodResult], **kw: Any) -> Any:
    values: dict[str, Any] = {
        "name": name, "dataset": "cifar10", "model": "lenet5",
        "attack": "backdoor", "num_malicious": 4, "test_acc_before": 0.6,
        "mal_acc_before": 0.95, "baseline_test_acc": None,
        "baseline_mal_acc": None, "rounds_from_scratch": None,
        "recovery_bound": None, "seed": seed, "methods": methods,
    }  # fmt: skip
    values.update(kw)
    return _run(**values)


def _folder(tmp_path: Path) -> Path:
    """Seed 42 takes B from its Table IV run (9%); seed 1 has its own (5%)."""
    retrain = [(0.3, 0.5), (0.5, 0.08), (0.6, 0.09), (0.6, 0.10), (0.6, 0.1)]
    _save_with_rounds(tmp_path, "t4-iid-10-4", _table_iv_run(), retrain)
    seed42 = {
        "natural": _fixed(0.0, [0.6] * 11, [0.9] * 11),
        "fedup-0.01": _fixed(0.01, [0.5] + [0.6] * 10, [0.05] * 11),
        "fedup-0.05": _fixed(0.05, TEST, MAL),  # R_rec 3
        "fedup": _method(**_curves(pruning_rate=OLD_ADAPTIVE_P)),  # schema < 4
    }
    _save(tmp_path, "sweep-bd-iid-10-4", _sweep("sweep-bd-iid-10-4", 42, seed42))
    slow = _fixed(0.01, [0.4, 0.5, 0.55] + [0.6] * 8, [0.3, 0.06] + [0.05] * 9)
    seed1 = {
        "natural": _fixed(0.0, [0.6] * 11, [0.7] * 11),
        "fedup": slow,  # the default, run twice under two names: one row
        "fedup-0.01": slow,
        "fedup-0.05": _fixed(0.05, [0.3] + [0.6] * 10, [0.05] * 11),  # R_rec 1
    }
    _save(tmp_path, "sweep-bd-iid-10-4-s1",
          _sweep("sweep-bd-iid-10-4-s1", 1, seed1, baseline_mal_acc=0.05))  # fmt: skip
    return tmp_path


def _section(folder: Path) -> str:
    runs = report.load_results(folder)
    return _table(report.build_report(runs, figures=False), SECTION)


def test_one_table_per_setting_with_mean_and_sd_over_seeds(tmp_path: Path) -> None:
    section = _section(_folder(tmp_path))
    assert "`sweep-bd-iid-10-4`: cifar10 lenet5, backdoor, IID 10 (4); seeds 1, 42" in (
        section
    )
    # B: 9% (Table IV window mean) and 5% (own).
    assert "B (malicious): 7.0 ± 2.8%, from 1 run(s)' own retrain and 1 Table IV" in (
        section
    )
    default = _row_of(section, DEFAULT_ROW)
    assert default[1] == "2"  # `fedup` and `fedup-0.01` of seed 1 are one rate
    assert default[2] == "45.0 ± 7.1"  # pruned: 40% and 50%
    assert default[3] == "55.0 ± 7.1"  # after 1 round: 50% and 60%
    assert default[10] == "3, 1"  # R_rec first, seeds 1 and 42
    assert default[11] == "1, 0"  # malicious within 2 points of 5% and 9%
    natural = _row_of(section, "exclusion only (natural)")
    assert natural[6] == "80.0 ± 14.1" and natural[11] == ">10, >10"
    assert _row_of(section, OLD_ROW)[1] == "1"
    rows = [ln.split("|")[1].strip() for ln in section.splitlines()
            if ln.startswith("| ") and ln.count("|") == 13]  # fmt: skip
    assert rows[1:] == [
        "exclusion only (natural)", DEFAULT_ROW, "P = 0.05", OLD_ROW,
    ]  # fmt: skip


def test_verdict_pairs_the_default_with_exclusion_by_seed(tmp_path: Path) -> None:
    verdict = _row_of(_section(_folder(tmp_path)), "`sweep-bd-iid-10-4`")
    assert verdict[1] == "2"
    # Malicious removed beyond exclusion: seed 1 (70 - 6, 70 - 5, 70 - 5),
    # seed 42 (90 - 5 each round), mean.
    assert verdict[2] == "+74.5 / +75.0 / +75.0"
    assert verdict[3] == "-5.0 / +0.0 / +0.0"  # seed 1 at 50% after 1 round
    assert verdict[4] == "45.0 ± 7.1"
    assert verdict[5] == "2 of 2"  # within 2 points of B by round 1 and 0
    # Seed 1: R_rec 3 against P = 0.05's 1, more than one round worse.
    assert verdict[6] == "1 of 2"


def test_an_attack_that_did_not_take_hold_is_marked(tmp_path: Path) -> None:
    name = "sweep-lf-fmnist-iid-10-3-s42"
    weak = {"natural": _fixed(0.0, [0.6] * 11, [0.06] * 11),
            "fedup": _fixed(0.01, [0.6] * 11, [0.05] * 11)}  # fmt: skip
    run = _sweep(name, 42, weak, attack="label_flip", mal_acc_before=0.06,
                 baseline_mal_acc=0.04)  # fmt: skip
    _save(tmp_path, name, run)
    section = _section(tmp_path)
    assert "| `sweep-lf-fmnist-iid-10-3` (attack did not take hold) | 1 |" in section
    assert "**attack did not take hold.**" in section


def test_settings_group_seeds_and_put_backdoor_first() -> None:
    assert rate_sweeps.setting_of("sweep-lf-cifar10-iid-10-3-s42") == (
        "sweep-lf-cifar10-iid-10-3"
    )
    assert rate_sweeps.setting_of("sweep-bd-iid-10-4") == "sweep-bd-iid-10-4"
    runs = {n: _run(seed=s) for n, s in [
        ("sweep-lf-fmnist-iid-10-3-s1", 1), ("sweep-bd-dirichlet-10-4", 42),
        ("sweep-bd-iid-10-4-s2", 2), ("sweep-bd-iid-10-4", 42), ("t4-iid-10-4", 42),
    ]}  # fmt: skip
    assert rate_sweeps.sweep_settings(runs) == {
        "sweep-bd-iid-10-4": ["sweep-bd-iid-10-4-s2", "sweep-bd-iid-10-4"],
        "sweep-bd-dirichlet-10-4": ["sweep-bd-dirichlet-10-4"],
        "sweep-lf-fmnist-iid-10-3": ["sweep-lf-fmnist-iid-10-3-s1"],
    }


def test_no_sweep_reads_not_run(tmp_path: Path) -> None:
    _save(tmp_path, "t3-iid-10-3-s42", _run())
    assert _section(tmp_path).strip().startswith("Not run.")


def test_a_dirichlet_setting_is_described_with_its_alpha(tmp_path: Path) -> None:
    name = "sweep-bd-fmnist-dirichlet0.5-10-4"
    methods = {"natural": _fixed(0.0, [0.6] * 11, [0.9] * 11),
               "fedup-0.01": _fixed(0.01, [0.5] + [0.6] * 10, [0.05] * 11)}  # fmt: skip
    run = _sweep(name, 42, methods, partition="dirichlet", alpha=0.5)
    _save(tmp_path, name, run)
    assert f"`{name}`: cifar10 lenet5, backdoor, Dir(0.5) 10 (4)" in (
        _section(tmp_path)
    )
