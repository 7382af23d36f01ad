"""A run's files: written, read back, older runs rescored, tables rendered."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from simulations.detection.harness import DetectionLog, DetectorCall
from simulations.detection.outputs import RESULTS_DIR, load_results, write_outputs
from simulations.detection.tables import (
    build_boosting,
    build_persistence,
    build_report,
    build_tables,
)

NODE_OF = {0: 100, 1: 101, 2: 102, 3: 103}  # partitions 0, 1 attack
RUN_KEYS = ("run_precision", "run_recall", "run_f1", "run_fp_rate", "run_tp",
            "run_fp", "run_fn", "flagged_round_rate")  # fmt: skip


def call(rnd: int, flagged: set[int]) -> DetectorCall:
    return DetectorCall(rnd, "det", (100, 101, 102, 103), frozenset(flagged), {}, 0.1)


def header(seed: int = 42, boost: float = 1.0) -> dict[str, Any]:
    settings = {
        "dataset": "cifar10", "model": "lenet5", "partition": "iid",
        "alpha": None, "attack": "backdoor", "num_clients": 4,
        "num_malicious": 2, "boost": boost, "fraction": 0.1, "local_epochs": 1,
        "rounds": 3, "seed": seed,
    }  # fmt: skip
    return {"name": f"run-s{seed}", "settings": settings, "command": f"cmd {seed}"}


def write_run(
    folder: Path, calls: list[DetectorCall], seed: int = 42, boost: float = 1.0
) -> dict[str, Any]:
    folder.mkdir(parents=True)
    record = DetectionLog(calls, {3: {"test_acc": 0.5, "attack_success": 0.25}})
    return write_outputs(
        folder, record, NODE_OF, malicious={0, 1}, detectors={"det": "det()"},
        from_round=1, header=header(seed, boost),
    )  # fmt: skip


def test_written_run_reads_back_with_run_metrics(tmp_path: Path) -> None:
    # Round 1: attacker 100; round 2: attacker 101 and benign 102; round 3: none.
    result = write_run(
        tmp_path / "a", [call(1, {100}), call(2, {101, 102}), call(3, set())]
    )
    det = result["detectors"]["det"]
    assert (det["run_tp"], det["run_fp"], det["run_fn"]) == (2, 1, 0)
    assert det["run_precision"] == 2 / 3 and det["run_recall"] == 1.0
    assert det["run_fp_rate"] == 0.5  # 102 of {102, 103}
    assert det["run_flagged_partitions"] == [0, 1, 2]
    assert det["first_correct_round"] == 1 and det["flagged_round_rate"] == 2 / 3
    rows = list(csv.DictReader((tmp_path / "a" / "detection.csv").open()))
    assert [r["flagged_partitions"] for r in rows] == ["0", "1 2", ""]
    (loaded,) = load_results(tmp_path)
    assert loaded == result


def test_older_runs_get_run_metrics_from_their_csv(tmp_path: Path) -> None:
    result = write_run(tmp_path / "old", [call(1, {100}), call(2, {101, 102})])
    det = result["detectors"]["det"]
    # An older detection.json: no per-run keys.
    stripped = {k: v for k, v in det.items() if k not in RUN_KEYS}
    old = dict(result, detectors={"det": stripped})
    (tmp_path / "old" / "detection.json").write_text(json.dumps(old))
    (loaded,) = load_results(tmp_path)
    for key in RUN_KEYS:
        assert loaded["detectors"]["det"][key] == det[key], key


def test_run_table_means_over_seeds(tmp_path: Path) -> None:
    write_run(tmp_path / "s42", [call(1, {100, 101}), call(2, set()), call(3, set())])
    write_run(tmp_path / "s43", [call(1, {102}), call(2, {102}), call(3, {100})], 43)
    text = build_tables(load_results(tmp_path))
    # Seed 42: P 1, R 1, F1 1, first 1; seed 43: P 0.5, R 0.5, F1 0.5, first 3.
    assert "| IID, 2/4 | 2 | 0.75 / 0.75 / 0.75 / 1,3 |" in text
    assert "| IID, 2/4, seed 43 |" in text  # per-round rows name the seed
    assert "cmd 42" in text and "cmd 43" in text


def test_boosting_table_counts_rounds_with_exactly_the_attackers(
    tmp_path: Path,
) -> None:
    # Seed 42: exact in rounds 1 and 3 (round 2 adds benign 102); seed 43: never.
    write_run(tmp_path / "b42", [call(1, {100, 101}), call(2, {100, 101, 102}),
                                 call(3, {100, 101})], boost=2.0)  # fmt: skip
    write_run(tmp_path / "b43", [call(1, {100}), call(2, set()), call(3, set())],
              seed=43, boost=2.0)  # fmt: skip
    write_run(tmp_path / "plain", [call(1, {100, 101})] * 3, seed=44)  # no boost
    text = build_boosting(load_results(tmp_path))
    # FP per round: seed 42 (0 + 0.5 + 0) / 3, seed 43 0; mean 0.08.
    assert "| CIFAR-10, IID, 2/4, boost 2 | 2 | 2 of 3, 0 of 3 / 0.08 |" in text
    assert "seed 44" not in text and text.count("| CIFAR-10") == 1


def test_boosting_table_says_when_there_is_no_boosting_run(tmp_path: Path) -> None:
    write_run(tmp_path / "plain", [call(1, {100, 101})] * 3)
    assert "No boosting run yet" in build_boosting(load_results(tmp_path))


def test_persistence_rescored_from_each_runs_csv(tmp_path: Path) -> None:
    # Attacker 100 flagged in rounds 1-3, benign 102 once in round 2.
    write_run(tmp_path / "run-s42", [call(1, {100}), call(2, {100, 102}),
                                     call(3, {100})])  # fmt: skip
    text = build_persistence(load_results(tmp_path), tmp_path)
    # Every flag: {100, 102} -> F1 2/(2+1+1) = 0.50; 2 of 3 and 3 of 3 keep
    # 100 alone -> 2/(2+0+1) = 0.67; 3 of 5 likewise.
    assert "| backdoor, IID, 3 rounds | 1 | 0.50 / 0.67 / 0.67 / 0.67 |" in text
    assert "every flag / 2 of 3 / 3 of 3 / 3 of 5" in text


def test_persistence_without_an_attack_is_the_share_of_rounds_flagged(
    tmp_path: Path,
) -> None:
    result = write_run(tmp_path / "run-s42", [call(1, {102}), call(2, {103}),
                                              call(3, {102})])  # fmt: skip
    result["settings"]["attack"] = "none"
    (tmp_path / "run-s42" / "detection.json").write_text(json.dumps(result))
    text = build_persistence(load_results(tmp_path), tmp_path)
    # Every flag: 3 of 3 rounds; 2 of 3: only round 3 (102 twice); 3 of 3: none.
    assert "| none, IID, 3 rounds | 1 | 1.00 / 0.33 / 0.00 / 0.00 |" in text


def test_persistence_skips_runs_without_a_csv(tmp_path: Path) -> None:
    write_run(tmp_path / "run-s42", [call(1, {100})] * 3)
    (tmp_path / "run-s42" / "detection.csv").unlink()
    assert "No run with a `detection.csv`" in build_persistence(
        load_results(tmp_path), tmp_path
    )


def test_committed_results_render() -> None:
    results = load_results(RESULTS_DIR)
    if not results:
        pytest.skip("no committed results in results/detection")
    text = build_report(results)
    for r in results:
        assert r["command"] in text
    rescorable = [
        r for r in results if (RESULTS_DIR / r["name"] / "detection.csv").exists()
    ]
    for r in rescorable:
        for summary in r["detectors"].values():
            assert "run_f1" in summary
