"""The report's pruning-rate sections (issue 11) on tiny fake runs."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from test_report import _method, _run, _save, _table

from fedup_flwr import adaptive_pruning_rate
from simulations import report
from simulations.report import pruning
from simulations.report.runs import RESULTS_DIR
from simulations.schema import RunResult

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


def _table_iv_run() -> RunResult:
    return _run(
        name="t4-iid-10-4", dataset="cifar10", model="lenet5", attack="backdoor",
        num_malicious=4, test_acc_before=0.6, mal_acc_before=0.95,
        rounds_from_scratch=3, baseline_mal_acc=0.09,
    )  # fmt: skip


def test_is_adaptive_reads_the_record_then_the_numbers() -> None:
    old = _method(**_curves(pruning_rate=OLD_ADAPTIVE_P))
    assert pruning.is_adaptive(old) is True
    assert pruning.is_adaptive(_method(**_curves(pruning_rate=0.05))) is False
    assert pruning.is_adaptive(_method(pruning_rate=0.05, similarity=None)) is None
    recorded = _method(**_curves(pruning_rate=OLD_ADAPTIVE_P, adaptive=False))
    assert pruning.is_adaptive(recorded) is False  # the record wins


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
