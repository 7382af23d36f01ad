"""One schema for results.json: the writer's output, old files and bad input."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from simulations.results import RoundLog, finish_run, method_results
from simulations.scenario import Scenario, compose
from simulations.schema import SCHEMA_VERSION, MethodResult, RunResult

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = sorted(ROOT.glob("results/*/results.json"))
SCHEMA_2_METHOD_KEYS = {"p_min", "p_max", "gamma", "similarity_measure"}


def test_there_are_committed_results_to_check() -> None:
    assert len(COMMITTED) >= 10


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: p.parent.name)
def test_committed_results_load_unchanged(path: Path) -> None:
    raw = json.loads(path.read_text())
    run = RunResult.load(path)
    data = run.to_dict()
    if "schema" in raw:  # written by the schema's writer: round-trips as is
        assert run.schema == raw["schema"]
        assert data == raw
        assert list(data) == list(raw)
        return
    assert run.schema == 1  # written before the schema existed
    assert data.pop("schema") == 1
    for name, method in data["methods"].items():
        # Keys added later are explicitly "not recorded" in old files.
        assert {k: method.pop(k) for k in SCHEMA_2_METHOD_KEYS} == dict.fromkeys(
            SCHEMA_2_METHOD_KEYS
        ), name
    assert data == raw
    assert list(data) == list(raw)  # the file's key order is the schema's


def _committed() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(COMMITTED[0].read_text())
    return data


def test_a_missing_required_key_is_an_error_naming_it() -> None:
    data = _committed()
    del data["baseline_mal_acc"]
    with pytest.raises(ValueError, match="missing required key 'baseline_mal_acc'"):
        RunResult.from_dict(data)
    data = _committed()
    del next(iter(data["methods"].values()))["rounds_run"]
    with pytest.raises(ValueError, match=r"methods.*missing required key 'rounds_run'"):
        RunResult.from_dict(data)


def test_an_unknown_key_is_an_error_pointing_to_the_schema() -> None:
    data = _committed()
    data["recovery_round"] = 3  # a typo of a writer
    with pytest.raises(ValueError, match=r"unknown keys \['recovery_round'\].*schema"):
        RunResult.from_dict(data)


@pytest.mark.parametrize(
    ("key", "value"),
    [("num_clients", "10"), ("num_clients", True), ("test_acc_before", None),
     ("name", 3), ("methods", []), ("seed", 4.5)],
)  # fmt: skip
def test_a_wrong_type_is_an_error_naming_the_key(key: str, value: Any) -> None:
    data = _committed()
    data[key] = value
    with pytest.raises(ValueError, match=key):
        RunResult.from_dict(data)


def test_a_newer_schema_is_refused() -> None:
    data = _committed()
    data["schema"] = SCHEMA_VERSION + 1
    with pytest.raises(ValueError, match="schema"):
        RunResult.from_dict(data)


def test_integers_are_read_as_floats_where_the_schema_says_float() -> None:
    data = _committed()
    data["storage_mb"] = 0
    assert isinstance(RunResult.from_dict(data).storage_mb, float)


def _rows(accs: list[tuple[float, float]]) -> list[dict[str, Any]]:
    return [{"test_acc": t, "mal_acc": m, "forget_acc": 0.5} for t, m in accs]


@dataclasses.dataclass
class _Event:
    rate: float = 0.07
    state_bytes: int = 2**20
    seconds: float = 0.5
    similarity: float | None = 0.97
    status: str = "unlearned"  # an UnlearningEvent that did unlearn


def test_method_results_records_the_adaptive_rate_parameters() -> None:
    rows = _rows([(0.5, 0.6), (0.7, 0.2), (0.8, 0.1)])
    before, baseline = {"test_acc": 0.8}, {"mal_acc": 0.1}
    adaptive = {"p_min": 0.02, "p_max": 0.3, "gamma": 2.0,
                "similarity_measure": "weights"}  # fmt: skip
    res = method_results(rows, before, baseline, 0.01, [_Event()], adaptive=adaptive)
    assert (res.recovery_rounds, res.rounds_run) == (2, 2)
    assert res.mal_rounds_to_baseline == 2
    assert (res.pruning_rate, res.similarity, res.storage_mb) == (0.07, 0.97, 1.0)
    assert (res.p_min, res.p_max, res.gamma) == (0.02, 0.3, 2.0)
    assert res.similarity_measure == "weights"
    plain = method_results(rows, before, None, 0.01, [])
    assert plain.pruning_rate is None and plain.p_min is None
    assert plain.mal_rounds_to_baseline is None


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    cfg = compose(["+experiment=smoke", "compare=[natural]", "unlearning.gamma=3.0"])
    return Scenario(cfg)


def _log(folder: Path) -> RoundLog:
    log = RoundLog(folder / "rounds.csv")
    metrics = {"mal_acc": 0.1, "attack_success": 0.0}
    log.add_initial({"test_acc": 0.1, **metrics})
    for r in (1, 2):
        log.add("train", "all", r, test_acc=0.8, seconds=1.0, **metrics)
    for method in ("fedup", "natural"):
        for r, acc in ((2, 0.5), (3, 0.8)):
            log.add("unlearn", method, r, test_acc=acc, seconds=1.0, **metrics)
    for r, acc in ((1, 0.4), (2, 0.8)):
        log.add("retrain", "retrain", r, test_acc=acc, seconds=1.0, **metrics)
    return log


def test_finish_run_writes_what_the_schema_reads(
    scenario: Scenario, tmp_path: Path
) -> None:
    detection = {
        "unlearning_rounds": [2], "unlearned_partitions": [[0, 1]],
        "refused": [{"round": 1, "partitions": [3]}], "first_unlearning_round": 2,
        "precision": 1.0, "recall": 1.0,
    }  # fmt: skip
    returned = finish_run(
        scenario, tmp_path, _log(tmp_path), {"fedup": [_Event()]},
        unlearning_round=2, wall_seconds=3.0, extra={"detection": detection},
    )  # fmt: skip
    run = RunResult.load(tmp_path / "results.json")
    assert run.to_dict() == returned and run.schema == SCHEMA_VERSION
    fedup, natural = run.methods["fedup"], run.methods["natural"]
    assert (fedup.p_min, fedup.p_max, fedup.gamma) == (0.01, 0.15, 3.0)
    assert fedup.similarity_measure == "weights" and fedup.similarity == 0.97
    assert natural.p_min is None  # exclusion only: no pruning rate to adapt
    assert run.rounds_from_scratch == 2 and run.recovery_rounds == 1
    assert run.detection is not None and run.detection.refused[0].partitions == [3]
    assert (tmp_path / "curves.png").stat().st_size > 0


def test_finish_run_refuses_a_key_outside_the_schema(
    scenario: Scenario, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match="unknown keys"):
        finish_run(
            scenario, tmp_path, _log(tmp_path), {}, unlearning_round=2,
            wall_seconds=1.0, extra={"detections": {}},
        )  # fmt: skip
    assert not (tmp_path / "results.json").exists()


def test_a_schema_2_record_round_trips(tmp_path: Path) -> None:
    run = RunResult.from_dict(_committed())
    method = dataclasses.replace(
        next(iter(run.methods.values())),
        p_min=0.01, p_max=0.15, gamma=5.0, similarity_measure="weights",
    )  # fmt: skip
    run = dataclasses.replace(run, methods={"fedup": method}, schema=SCHEMA_VERSION)
    run.save(tmp_path / "results.json")
    assert RunResult.load(tmp_path / "results.json") == run
    assert isinstance(run.methods["fedup"], MethodResult)


def test_a_schema_4_record_keeps_how_the_rate_was_chosen(tmp_path: Path) -> None:
    rows = _rows([(0.5, 0.6), (0.8, 0.1)])
    settings = {"p_min": 0.01, "p_max": 0.15, "gamma": 5.0,
                "similarity_measure": "kernel_updates", "sim_min": 0.0,
                "sim_max": 1.0, "adaptive": True}  # fmt: skip

    class FellBack(_Event):  # the step fell back to a fixed P: the event wins
        adaptive = False

    res = method_results(rows, {"test_acc": 0.8}, None, 0.01, [FellBack()],
                         adaptive=settings)  # fmt: skip
    assert (res.sim_min, res.sim_max, res.adaptive) == (0.0, 1.0, False)
    assert res.similarity_measure == "kernel_updates"
    run = RunResult.from_dict(_committed())
    run = dataclasses.replace(run, methods={"fedup": res}, schema=SCHEMA_VERSION)
    run.save(tmp_path / "results.json")
    assert RunResult.load(tmp_path / "results.json") == run
    data = run.to_dict()
    data["methods"]["fedup"]["adaptive"] = "yes"
    with pytest.raises(ValueError, match="adaptive: expected bool"):
        RunResult.from_dict(data)
