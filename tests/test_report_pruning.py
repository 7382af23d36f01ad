"""The report's pruning-rate sections (issue 11) on tiny fake runs."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from test_report import _method, _row_of, _run, _save, _save_with_rounds, _table

from fedup_flwr import adaptive_pruning_rate
from simulations import report
from simulations.report import pruning
from simulations.report.runs import RESULTS_DIR
from simulations.schema import RunResult

BD = "Backdoor pruning-rate sweeps (issue 11)"
SIM = "Similarity and the adaptive pruning rate (issue 11)"
# Eleven points: the pruned model (round 0), then ten recovery rounds.
TEST = [0.2, 0.5, 0.55, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.61]
MAL = [0.1, 0.3, 0.2, 0.12, 0.11, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1]
OLD_ADAPTIVE_P = adaptive_pruning_rate(0.99)  # paper's parameters, `weights`


def _curves(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "test_acc_curve": TEST, "mal_acc_curve": MAL, "rounds_run": 10,
        "forget_acc_curve": TEST, "similarity": 0.99, "p_min": 0.01,
        "p_max": 0.15, "gamma": 5.0, "similarity_measure": "weights",
    }  # fmt: skip
    values.update(overrides)
    return values


def _sweep_run(seed: int = 42) -> RunResult:
    methods = {
        "natural": _method(**_curves(pruning_rate=0.0, mal_acc_curve=[0.9] * 11)),
        "fedup-0.05": _method(**_curves(pruning_rate=0.05)),
        # Written before schema 4: no `adaptive`, P is Eq. 4-5's for 0.99.
        "fedup": _method(**_curves(pruning_rate=OLD_ADAPTIVE_P)),
    }
    return _run(
        name="sweep-bd-iid-10-4", dataset="cifar10", model="lenet5",
        attack="backdoor", num_malicious=4, test_acc_before=0.6,
        mal_acc_before=0.95, baseline_test_acc=None, baseline_mal_acc=None,
        rounds_from_scratch=None, recovery_bound=None, seed=seed, methods=methods,
    )  # fmt: skip


def _table_iv_run() -> RunResult:
    return _run(
        name="t4-iid-10-4", dataset="cifar10", model="lenet5", attack="backdoor",
        num_malicious=4, test_acc_before=0.6, mal_acc_before=0.95,
        rounds_from_scratch=3, baseline_mal_acc=0.09,
    )  # fmt: skip


def _folder(tmp_path: Path, sweep_seed: int = 42) -> Path:
    # B's retrain: R* = 3, window rounds 2-4, malicious (0.08 + 0.09 + 0.10) / 3.
    retrain = [(0.3, 0.5), (0.5, 0.08), (0.6, 0.09), (0.6, 0.10), (0.6, 0.1)]
    _save_with_rounds(tmp_path, "t4-iid-10-4", _table_iv_run(), retrain)
    _save(tmp_path, "sweep-bd-iid-10-4", _sweep_run(sweep_seed))
    return tmp_path


def test_backdoor_sweep_table_takes_b_from_the_table_iv_run(tmp_path: Path) -> None:
    runs = report.load_results(_folder(tmp_path))
    table = _table(report.build_report(runs, figures=False), BD)
    assert "B from `t4-iid-10-4` (same setting and seed" in table
    assert "malicious accuracy 9.0%" in table
    fixed = _row_of(table, "fedup-0.05 (fixed P)")
    assert fixed[1] == "0.050"
    assert fixed[2] == "20.0 / 50.0 / 60.0 / 61.0"  # rounds 0 (pruned), 1, 3, 10
    assert fixed[3] == "10.0 / 30.0 / 12.0 / 10.0"
    assert fixed[4].startswith("3 / 3")  # test back within 1 point from round 3
    # Malicious within 2 points of B (<= 11%): round 0, then from round 4 on.
    assert fixed[5] == "0 / 4"
    old = _row_of(table, "fedup (adaptive, `weights`: the default before issue 11)")
    assert old[1] == f"{OLD_ADAPTIVE_P:.3f}"
    natural = _row_of(table, "natural (exclusion only)")
    assert natural[1] == "0.000" and natural[5] == ">10 / >10"
    # Rows by P: exclusion first, the adaptive rate last.
    rows = [ln.split("|")[1].strip() for ln in table.splitlines()
            if ln.startswith("| ") and "(" in ln]  # fmt: skip
    assert [r.split(" ")[0] for r in rows[1:]] == ["natural", "fedup-0.05", "fedup"]


def test_backdoor_sweep_without_a_matching_b_says_so(tmp_path: Path) -> None:
    runs = report.load_results(_folder(tmp_path, sweep_seed=1))
    table = _table(report.build_report(runs, figures=False), BD)
    assert "no B: `t4-iid-10-4` is not the same setting and seed" in table
    assert _row_of(table, "fedup-0.05 (fixed P)")[5] == "–"


def test_no_backdoor_sweep_reads_not_run(tmp_path: Path) -> None:
    _save(tmp_path, "t3-iid-10-3-s42", _run())
    text = report.build_report(report.load_results(tmp_path), figures=False)
    assert _table(text, BD).split("\n\n")[1].strip().startswith("Not run.")
    assert _table(text, SIM).strip().startswith("Not run.")


def test_is_adaptive_reads_the_record_then_the_numbers() -> None:
    old = _method(**_curves(pruning_rate=OLD_ADAPTIVE_P))
    assert pruning.is_adaptive(old) is True
    assert pruning.is_adaptive(_method(**_curves(pruning_rate=0.05))) is False
    assert pruning.is_adaptive(_method(pruning_rate=0.05, similarity=None)) is None
    recorded = _method(**_curves(pruning_rate=OLD_ADAPTIVE_P, adaptive=False))
    assert pruning.is_adaptive(recorded) is False  # the record wins
    new_default = _method(**_curves(pruning_rate=0.05, adaptive=False))
    assert pruning.method_label("fedup", new_default) == "fedup (fixed P)"
    adaptive = _method(**_curves(pruning_rate=0.02, adaptive=True,
                                 similarity_measure="kernel_updates"))  # fmt: skip
    assert (
        pruning.method_label("fedup-adaptive", adaptive)
        == "fedup-adaptive (adaptive, `kernel_updates`)"
    )


def test_similarity_section_from_the_raw_files(tmp_path: Path) -> None:
    shutil.copytree(RESULTS_DIR / "similarity", tmp_path / "similarity")
    _save(tmp_path, "t3-iid-10-3-s42", _run())
    section = _table(
        report.build_report(report.load_results(tmp_path), figures=False), SIM
    )
    assert "one seed (42) per setting" in section
    assert "| fashion_mnist (fmnist_cnn) | Dir(0.5) | 15 |" in section
    assert "| `weights` | T |" in section and "| `weights` | 1 |" in section
    assert "![similarity against alpha](figures/similarity.png)" in section
    assert "**Result: at the unlearning round, no measure separates" in section


def test_similarity_findings_need_both_parts(tmp_path: Path) -> None:
    note = tmp_path / "similarity.md"
    note.write_text("# Title\n\n**Result: x.**\n\nno reading section\n")
    with pytest.raises(ValueError, match="## Reading"):
        pruning.similarity_findings(note)
    note.write_text("**Result: x.** more\n\ntext\n\n## Reading\n\n- a\n\n## Next\nz\n")
    assert pruning.similarity_findings(note) == ["**Result: x.** more", "", "- a"]
