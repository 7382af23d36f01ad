"""Detector quality harness: metrics, report builder, and a smoke-scale run."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fedup_flwr.detectors import available_detectors
from simulations.detection import (
    TABLE_END,
    TABLE_START,
    DetectorCall,
    RoundMetrics,
    build_report,
    load_results,
    score_calls,
    summarize,
    write_report,
)

ROOT = Path(__file__).resolve().parents[1]
DETECTORS = [n for n in available_detectors() if n != "oracle"]


def rm(rnd: int, flagged: set[int], mal: set[int], ben: set[int]) -> RoundMetrics:
    return RoundMetrics(rnd, frozenset(flagged), frozenset(mal), frozenset(ben))


# ------------------------------------------------------------------- metrics
def test_round_metrics_mixed_decision() -> None:
    m = rm(1, {1, 2, 7}, {1, 2, 3}, {6, 7, 8, 9})
    assert (m.tp, m.fp, m.fn) == (2, 1, 1)
    assert m.precision == pytest.approx(2 / 3)
    assert m.recall == pytest.approx(2 / 3)
    assert m.f1 == pytest.approx(2 / 3)
    assert m.fp_rate == pytest.approx(1 / 4)
    assert not m.correct and not m.exact


def test_round_metrics_edge_cases() -> None:
    nothing = rm(1, set(), {1, 2}, {3, 4})
    assert math.isnan(nothing.precision)
    assert nothing.recall == 0.0 and nothing.f1 == 0.0 and nothing.fp_rate == 0.0
    assert not nothing.correct

    subset = rm(2, {1}, {1, 2}, {3, 4})
    assert subset.correct and not subset.exact
    assert (subset.precision, subset.recall) == (1.0, 0.5)
    assert subset.f1 == pytest.approx(2 / 3)

    exact = rm(3, {1, 2}, {1, 2}, {3, 4})
    assert exact.correct and exact.exact and exact.f1 == 1.0

    # No attack: recall undefined; F1 undefined unless something is flagged.
    quiet = rm(4, set(), set(), {3, 4})
    assert math.isnan(quiet.recall) and math.isnan(quiet.f1)
    assert quiet.fp_rate == 0.0 and not quiet.correct
    false_alarm = rm(5, {3}, set(), {3, 4})
    assert false_alarm.precision == 0.0 and false_alarm.f1 == 0.0
    assert false_alarm.fp_rate == 0.5 and not false_alarm.correct


def test_summarize_means_and_first_rounds() -> None:
    mal, ben = {1, 2}, {3, 4, 5, 6}
    rounds = [
        rm(3, {1, 2}, mal, ben),  # exact
        rm(1, set(), mal, ben),  # nothing: precision undefined
        rm(2, {1, 3}, mal, ben),  # first flag, not correct
        rm(4, {1}, mal, ben),
    ]
    s = summarize(rounds)
    assert s["first_flag_round"] == 2 and s["first_flag_correct"] is False
    assert s["first_correct_round"] == 3 and s["first_exact_round"] == 3
    assert s["precision"] == pytest.approx((0.5 + 1.0 + 1.0) / 3)
    assert s["recall"] == pytest.approx((0 + 0.5 + 1.0 + 0.5) / 4)
    assert s["f1"] == pytest.approx((0 + 0.5 + 1.0 + 2 / 3) / 4)
    assert s["fp_rate"] == pytest.approx((0 + 0.25 + 0 + 0) / 4)
    assert (s["flag_rounds"], s["correct_rounds"], s["rounds_measured"]) == (3, 2, 4)

    # from_round restricts means and counts, not the first-* rounds.
    late = summarize(rounds, from_round=3)
    assert late["precision"] == 1.0 and late["fp_rate"] == 0.0
    assert late["recall"] == pytest.approx(0.75)
    assert late["first_flag_round"] == 2 and late["first_correct_round"] == 3
    assert late["rounds_measured"] == 2


def test_summarize_never_correct_and_no_attack() -> None:
    s = summarize([rm(1, set(), set(), {1, 2}), rm(2, {1}, set(), {1, 2})])
    assert s["first_correct_round"] is None and s["first_exact_round"] is None
    assert s["recall"] is None  # undefined in every round
    assert s["precision"] == 0.0 and s["fp_rate"] == pytest.approx(0.25)
    assert s["first_flag_round"] == 2 and s["first_flag_correct"] is False
    empty = summarize([])
    assert empty["precision"] is None and empty["first_flag_correct"] is None


def test_score_calls_maps_nodes_to_partitions() -> None:
    part_of = {101: 0, 102: 1, 103: 2, 104: 3}
    call = DetectorCall(1, "x", (101, 102, 103), frozenset({102, 103}), {}, 0.0)
    ((_, m),) = score_calls([call], part_of, malicious={0, 1, 3})
    # Node 104 (partition 3) did not reply: it counts neither way.
    assert m.malicious == {101, 102} and m.benign == {103}
    assert (m.tp, m.fp, m.fn) == (1, 1, 1)


# -------------------------------------------------------------------- report
def fake_result(name: str, attack: str, mal: int, command: str) -> dict[str, object]:
    det = {
        "precision": 0.75 if attack != "none" else None,
        "recall": 0.5 if attack != "none" else None,
        "f1": 0.6 if attack != "none" else None,
        "fp_rate": 0.125,
        "first_correct_round": 2 if attack != "none" else None,
        "first_exact_round": None,
        "first_flag_round": 1,
        "first_flag_correct": False,
        "flag_rounds": 3,
        "correct_rounds": 2,
        "rounds_measured": 4,
        "errors": 0,
        "mean_seconds": 0.01,
    }
    never = dict(det, first_correct_round=None, f1=0.0, precision=None, recall=0.0)
    return {
        "name": name,
        "settings": {
            "dataset": "fashion_mnist",
            "model": "fmnist_cnn",
            "partition": "dirichlet",
            "alpha": 1.0,
            "attack": attack,
            "num_clients": 10,
            "num_malicious": mal,
            "fraction": 0.1,
            "local_epochs": 1,
            "rounds": 4,
            "seed": 42,
        },
        "command": command,
        "from_round": 1,
        "detectors": {"det_a": det, "det_b": never},
        "final": {"test_acc": 0.8, "attack_success": 0.3},
    }


def test_report_builder_on_fake_results(tmp_path: Path) -> None:
    results_dir = tmp_path / "results"
    for name, attack, mal in (("lf", "label_flip", 3), ("clean", "none", 0)):
        (results_dir / name).mkdir(parents=True)
        command = f"python -m simulations.detection x={name}"
        data = fake_result(name, attack, mal, command)
        (results_dir / name / "detection.json").write_text(json.dumps(data))
    results = load_results(results_dir)
    assert [r["name"] for r in results] == ["lf", "clean"]  # attacks first

    text = build_report(results)
    row = (
        "| Dir(1), 3/10 | 0.75 / 0.50 / 0.60 / 2 / 0.12 "
        "| – / 0.00 / 0.00 / never / 0.12 | 0.80 / 0.30 |"
    )
    assert row in text
    assert "| Dir(1), 0/10 | 0.12 / 3 of 4 | 0.12 / 3 of 4 | 0.80 |" in text
    assert "python -m simulations.detection x=lf" in text
    assert "python -m simulations.detection x=clean" in text
    assert "- `det_b`:" in text and "never a correct detection (1)" in text
    assert "mean FP rate > 0.1 (2)" in text

    # write_report keeps the hand-written text around the markers.
    doc = tmp_path / "docs" / "detectors.md"
    doc.parent.mkdir()
    doc.write_text(f"# Title\n\nintro\n\n{TABLE_START}\nold\n{TABLE_END}\n\noutro\n")
    write_report(results_dir, doc)
    out = doc.read_text()
    assert out.startswith("# Title\n\nintro\n") and out.rstrip().endswith("outro")
    assert "old" not in out and "0.75 / 0.50 / 0.60 / 2 / 0.12" in out
    write_report(results_dir, doc)  # idempotent
    assert doc.read_text() == out

    # A missing doc is created with the markers.
    fresh = tmp_path / "new.md"
    write_report(results_dir, fresh)
    assert TABLE_START in fresh.read_text() and TABLE_END in fresh.read_text()


# ------------------------------------------------------------ end to end
@pytest.mark.slow
def test_detection_entry_point_smoke(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = subprocess.run(
        [
            sys.executable, "-m", "simulations.detection",
            "num_clients=5", "num_malicious=2", "fraction=0.03", "rounds.train=2",
            "test_fraction=0.05", f"hydra.run.dir={out}",
        ],
        cwd=ROOT, env=dict(os.environ), capture_output=True, text=True,
        timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    rows = list(csv.DictReader((out / "detection.csv").open()))
    assert {(r["detector"], int(r["round"])) for r in rows} == {
        (d, r) for d in DETECTORS for r in (1, 2)
    }
    assert len(rows) == 2 * len(DETECTORS)
    for row in rows:
        assert int(row["num_replies"]) == 5  # every reply passed validation
        assert row["malicious_partitions"] == "0 1"
        assert set(json.loads(row["scores"])) == {"0", "1", "2", "3", "4"}
        assert row["error"] == ""

    result = json.loads((out / "detection.json").read_text())
    assert set(result["detectors"]) == set(DETECTORS)
    assert result["malicious_partitions"] == [0, 1]
    for summary in result["detectors"].values():
        assert summary["rounds_measured"] == 2
        assert summary["errors"] == 0
    assert result["command"].startswith("python -m simulations.detection")
    assert (out / "config.yaml").exists()


def test_a_boosted_setting_is_labelled_apart() -> None:
    from simulations.detection.tables import setting_label

    s = {"partition": "iid", "alpha": None, "num_malicious": 4, "num_clients": 10,
         "seed": 42}  # fmt: skip
    assert setting_label({"settings": s}) == "IID, 4/10"
    assert setting_label({"settings": {**s, "boost": 1.0}}) == "IID, 4/10"
    assert setting_label({"settings": {**s, "boost": 2.5}}, seed=True) == (
        "IID, 4/10, boost 2.5, seed 42"
    )


def test_boost_of_reads_a_missing_or_null_boost_as_no_boost() -> None:
    from simulations.detection.tables import boost_of

    assert boost_of({}) == 1.0  # runs recorded before attack.boost existed
    assert boost_of({"boost": None}) == 1.0
    assert boost_of({"boost": 2.5}) == 2.5
