"""docs/results.md is generated from the committed results, and stays so."""

from __future__ import annotations

import json
from pathlib import Path

from simulations import report


def test_committed_results_md_matches_the_report_command() -> None:
    expected = report.build_report(report.load_results(), figures=False)
    assert report.DOC.read_text() == expected, (
        "docs/results.md is stale: run `python -m simulations.report`"
    )


def _fake_run(folder: Path, name: str, **overrides: object) -> None:
    method = {
        "test_acc_after_unlearning": 0.5, "mal_acc_after_unlearning": 0.1,
        "forget_acc_after_unlearning": 0.5, "forget_acc_after": 0.6,
        "forget_acc_curve": [0.5, 0.6], "test_acc_after": 0.8, "mal_acc_after": 0.05,
        "recovery_rounds": 1, "rounds_run": 1, "test_acc_curve": [0.5, 0.8],
        "mal_acc_curve": [0.1, 0.05], "mal_rounds_to_baseline": 0,
        "pruning_rate": 0.1, "storage_mb": 1.0, "unlearn_seconds": 0.01,
        "similarity": 0.99,
    }  # fmt: skip
    res = {
        "partition": "iid", "num_clients": 10, "num_malicious": 3,
        "test_acc_before": 0.81, "mal_acc_before": 0.4, "forget_acc_before": 0.9,
        "baseline_mal_acc": 0.04, "rounds_from_scratch": 7, "hardware": "hw",
        "commit": "abc", "methods": {"fedup": method, "natural": dict(method)},
    }  # fmt: skip
    res.update(overrides)
    (folder / name).mkdir()
    (folder / name / "results.json").write_text(json.dumps(res))


def test_report_puts_measured_rows_next_to_the_paper(tmp_path: Path) -> None:
    _fake_run(tmp_path, "t3-iid-10-3-s42")
    _fake_run(tmp_path, "t3-iid-10-3-s1", test_acc_before=0.83)
    text = report.build_report(report.load_results(tmp_path), figures=False)
    table3 = text.split("## Table III")[1].split("##")[0]
    assert "| IID | 10 (3) | paper | 85 | 87 | 4 | 65 | 3 | 34 | 1 | 10 |" in table3
    # Two seeds: mean ± standard deviation of the test accuracy before.
    assert "| IID | 10 (3) | measured ×2 | 82.0 ± 1.4 | 80.0 ± 0.0 |" in table3
    assert "`t3-iid-10-3-s1`, `t3-iid-10-3-s42`" in table3


def test_readme_detector_table_is_the_generated_one() -> None:
    readme = (report.ROOT / "README.md").read_text()
    assert "\n".join(report.detector_summary()) in readme
