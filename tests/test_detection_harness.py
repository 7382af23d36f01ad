"""The measuring strategy and the registry-driven detector set, without Ray."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, cast

import numpy as np
import pytest
from conftest import make_reply
from flwr.app import ArrayRecord, ConfigRecord, Message
from flwr.serverapp import Grid
from flwr.supercore.task_identity import TaskIdentity
from omegaconf import DictConfig, OmegaConf

from fedup_flwr.detectors import available_detectors, registry
from simulations.detection.harness import (
    DetectingFedAvg,
    DetectionLog,
    call_detector,
)
from simulations.detection.runner import build_detectors, detector_names


@pytest.fixture(autouse=True)
def _task_identity() -> None:
    # Messages built outside a running app need these (as in test_baselines).
    TaskIdentity.run_id = 1
    TaskIdentity.node_id = 0
    TaskIdentity.task_id = 0


class FakeGrid:
    """The part of Flower's Grid that FedAvg's ``configure_train`` uses."""

    def __init__(self, nodes: Iterable[int]) -> None:
        self.nodes = list(nodes)

    def get_node_ids(self) -> list[int]:
        return list(self.nodes)


class Flags:
    """A detector that flags fixed nodes and remembers what it was shown."""

    def __init__(self, flagged: Iterable[int], seed: int = 0) -> None:
        self.flagged = set(flagged)
        self.seed = seed
        self.seen: list[set[int]] = []
        self.scores: dict[int, float] = {}

    def detect(
        self, server_round: int, replies: Mapping[int, Any], global_arrays: Any
    ) -> set[int]:
        self.seen.append(set(replies))
        self.scores = {n: float(n in self.flagged) for n in replies}
        return self.flagged & set(replies)


class Raises:
    def detect(self, server_round: int, replies: Any, global_arrays: Any) -> set[int]:
        raise RuntimeError("boom")


class Answers:
    def __init__(self, answer: Any) -> None:
        self.answer = answer

    def detect(self, server_round: int, replies: Any, global_arrays: Any) -> Any:
        return self.answer


GLOBAL: list[np.ndarray] = [
    np.zeros((2, 2), dtype=np.float32),
    np.array([4], dtype=np.int64),
]


def arrays(value: float, count: int) -> list[np.ndarray]:
    return [np.full((2, 2), value, dtype=np.float32), np.array([count], dtype=np.int64)]


def start_round(strategy: DetectingFedAvg, nodes: list[int]) -> None:
    grid = cast(Grid, FakeGrid(nodes))
    strategy.configure_train(1, ArrayRecord(GLOBAL), ConfigRecord(), grid)


def test_every_detector_sees_the_valid_replies_and_nothing_is_excluded() -> None:
    record = DetectionLog()
    flags, other = Flags({1}), Flags(set())
    strategy = DetectingFedAvg({"a": flags, "b": other}, record)
    start_round(strategy, [1, 2, 3])
    replies: list[Message] = [
        make_reply(1, arrays(3.0, 5)),
        make_reply(2, arrays(1.0, 6)),
        make_reply(3, [np.zeros((3, 3), np.float32), GLOBAL[1]]),  # wrong shape
        make_reply(9, arrays(1.0, 6)),  # no message was sent to node 9
    ]
    aggregate, _ = strategy.aggregate_train(1, replies)
    assert flags.seen == [{1, 2}] and other.seen == [{1, 2}]
    assert [(c.detector, c.replies, set(c.flagged)) for c in record.calls] == [
        ("a", (1, 2), {1}),
        ("b", (1, 2), set()),
    ]
    assert record.calls[0].scores == {1: 1.0, 2: 0.0}
    assert aggregate is not None
    values = aggregate.to_numpy_ndarrays()
    # The flagged node is still aggregated (equal weights): mean of 3 and 1.
    np.testing.assert_allclose(values[0], np.full((2, 2), 2.0))
    # FedAvg averages the int64 buffer into floats; it is cast back.
    assert values[1].dtype == np.int64 and values[1].tolist() == [6]


def test_a_faulty_detector_does_not_stop_the_round() -> None:
    record = DetectionLog()
    good = Flags({2})
    strategy = DetectingFedAvg(
        {"bad": Raises(), "list": Answers([1]), "ghost": Answers({7}), "good": good},
        record,
    )
    start_round(strategy, [1, 2])
    aggregate, _ = strategy.aggregate_train(
        1, [make_reply(1, arrays(1.0, 4)), make_reply(2, arrays(1.0, 4))]
    )
    assert aggregate is not None
    calls = {c.detector: c for c in record.calls}
    assert calls["bad"].error == "RuntimeError: boom" and not calls["bad"].flagged
    assert "not a set of node ids" in calls["list"].error
    assert "did not reply" in calls["ghost"].error and not calls["ghost"].flagged
    assert calls["good"].flagged == {2} and calls["good"].error == ""


def test_call_detector_times_and_records() -> None:
    call = call_detector("x", Flags({5}), 3, {5: [], 6: []}, [])
    assert (call.server_round, call.detector, call.replies) == (3, "x", (5, 6))
    assert call.flagged == {5} and call.seconds >= 0.0


def cfg(detectors: Any = None, params: Any = None) -> DictConfig:
    return OmegaConf.create(
        {"seed": 7, "detection": {"detectors": detectors, "params": params or {}}}
    )


def test_every_registered_detector_is_measured_by_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(registry._REGISTRY, "test_only_flags", Flags)
    names = detector_names(cfg())
    assert "test_only_flags" in names and "oracle" not in names
    assert names == [n for n in available_detectors() if n != "oracle"]
    built = build_detectors(cfg(params={"test_only_flags": {"flagged": [1]}}))
    assert set(built) == set(names)
    mine = built["test_only_flags"]
    assert isinstance(mine, Flags) and mine.flagged == {1} and mine.seed == 7


def test_a_detector_without_a_seed_is_built_without_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(registry._REGISTRY, "test_only_raises", Raises)
    built = build_detectors(cfg(["test_only_raises"]))
    assert isinstance(built["test_only_raises"], Raises)


def test_bad_detector_config_fails_early() -> None:
    with pytest.raises(ValueError, match="oracle needs ground truth"):
        detector_names(cfg(["oracle"]))
    with pytest.raises(ValueError, match=r"unknown .*'nope'.*registered"):
        detector_names(cfg(["nope"]))
    with pytest.raises(ValueError, match="not measured"):
        build_detectors(cfg(["krum_score"], {"cosine_outlier": {"k": 2.0}}))
    with pytest.raises(ValueError, match="rejected"):
        build_detectors(cfg(["krum_score"], {"krum_score": {"no_such_arg": 1}}))


def test_gram_recorded_only_when_asked() -> None:
    replies = [make_reply(1, arrays(3.0, 5)), make_reply(2, arrays(-1.0, 6))]
    quiet, loud = DetectionLog(), DetectionLog()
    for record, asked in ((quiet, False), (loud, True)):
        strategy = DetectingFedAvg({"a": Flags(set())}, record, record_gram=asked)
        start_round(strategy, [1, 2])
        strategy.aggregate_train(1, replies)
    assert quiet.grams == {}
    gram = loud.grams[1]
    assert gram.nodes == (1, 2)
    # Updates are the float arrays only: 4 entries of 3.0 and of -1.0.
    np.testing.assert_allclose(gram.model, [[36, -12], [-12, 4]])
    np.testing.assert_allclose(gram.last_layer, gram.model)
