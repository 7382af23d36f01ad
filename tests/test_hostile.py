"""Property-based hostile inputs: random corrupt replies and abusive detectors.

Each example is a round (or a run of rounds) on real Flower Messages; FedUP
must never raise, never put NaN/Inf in the global model, aggregate exactly the
valid replies, never unlearn twice inside a rate-limit window, and never let
the flagged nodes reach half of the nodes seen.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

import numpy as np
from conftest import make_reply
from flwr.app import ArrayRecord, ConfigRecord, RecordDict
from flwr.serverapp.strategy import FedAvg
from flwr.supercore.task_identity import TaskIdentity
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_strategy import FakeGrid, client_model, fedavg, global_model

from fedup_flwr import FedUP

TaskIdentity.run_id = 1
TaskIdentity.node_id = 0
TaskIdentity.task_id = 0

CORRUPTIONS = [
    "nan", "inf", "huge", "shape", "dtype", "missing", "extra", "zero_examples",
    "negative_examples", "fractional_examples", "too_many_examples", "nan_examples",
    "bad_metric", "error", "no_arrays", "two_array_records",
]  # fmt: skip
SENT = {kind: 0 for kind in CORRUPTIONS}


def corrupt(node: int, kind: str) -> Any:
    good = client_model(node)
    SENT[kind] += 1
    match kind:
        case "nan" | "inf":
            good[0].flat[node % good[0].size] = np.nan if kind == "nan" else -np.inf
        case "huge":
            good[1] = good[1] * 1e30
        case "shape":
            good[0] = good[0].reshape(-1)
        case "dtype":
            good[1] = good[1].astype(np.float16)
        case "missing":
            good = good[:1]
        case "extra":
            good = [*good, np.zeros(3, np.float32)]
        case "zero_examples":
            return make_reply(node, good, 0)
        case "negative_examples":
            return make_reply(node, good, -5)
        case "fractional_examples":
            return make_reply(node, good, 3.5)
        case "too_many_examples":
            return make_reply(node, good, 10**15)
        case "nan_examples":
            return make_reply(node, good, float("nan"))
        case "bad_metric":
            return make_reply(
                node, good, metrics={"num-examples": 10, "loss": float("inf")}
            )
        case "error":
            return make_reply(node, error="ClientApp raised")
        case "no_arrays":
            return make_reply(node, None, 10)
        case "two_array_records":
            from flwr.app import MetricRecord

            metrics = MetricRecord({"num-examples": 10})
            record = RecordDict(
                {"a": ArrayRecord(good), "b": ArrayRecord(good), "metrics": metrics}
            )
            return make_reply(node, record=record)
    return make_reply(node, good, 10 * node)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    good=st.integers(1, 4),
    hostile=st.lists(st.sampled_from(CORRUPTIONS), min_size=0, max_size=6),
    extra_metrics=st.lists(st.booleans(), min_size=4, max_size=4),
)
def test_random_hostile_rounds(
    good: int, hostile: list[str], extra_metrics: list[bool]
) -> None:
    nodes = list(range(1, good + len(hostile) + 1))
    kinds = dict(zip(nodes[good:], hostile))

    def reply(node: int, rnd: int, msg: Any) -> Any:
        if node in kinds:
            return corrupt(node, kinds[node])
        # Valid replies that add a metric of their own are kept, trimmed.
        metrics = {"num-examples": 10 * node}
        if extra_metrics[node - 1]:
            metrics[f"own-{node}"] = 1.0
        return make_reply(node, client_model(node), metrics=metrics)

    strategy = FedUP(FedAvg(min_available_nodes=1, min_train_nodes=1))
    grid = FakeGrid(nodes, reply)
    msgs = list(
        strategy.configure_train(1, ArrayRecord(global_model()), ConfigRecord(), grid)
    )
    arrays, metrics = strategy.aggregate_train(1, grid.send_and_receive(msgs))
    assert metrics["fedup-rejected-replies"] == len(hostile)
    got = arrays.to_numpy_ndarrays()
    for g, want in zip(got, fedavg(nodes[:good])):
        assert np.all(np.isfinite(g))
        np.testing.assert_allclose(g, want, rtol=1e-5)


class RandomDetector:
    """Returns random, often invalid, detections."""

    def __init__(self, data: Any) -> None:
        self.data = data

    def detect(self, server_round: int, replies: Mapping[int, Any], g: Any) -> Any:
        choice = self.data.draw(st.integers(0, 5))
        nodes = sorted(replies)
        if choice == 0:
            return set()
        if choice == 1:
            return set(
                self.data.draw(st.lists(st.sampled_from(nodes), max_size=len(nodes)))
            )
        if choice == 2:
            return {max(nodes) + 1000}  # a node that did not reply
        if choice == 3:
            return list(nodes[:1])  # not a set
        if choice == 4:
            raise RuntimeError("detector crashed")
        return {nodes[0]}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), rate_limit=st.integers(1, 4))
def test_abusive_detectors_never_break_the_invariants(
    data: Any, rate_limit: int
) -> None:
    strategy = FedUP(
        detector=RandomDetector(data), rate_limit=rate_limit, pruning_rate=0.1
    )
    grid = FakeGrid(list(range(1, 11)))
    arrays = ArrayRecord(global_model())
    for rnd in range(1, 13):
        msgs = list(strategy.configure_train(rnd, arrays, ConfigRecord(), grid))
        new, _ = strategy.aggregate_train(rnd, grid.send_and_receive(msgs))
        if new is not None:
            arrays = new
        assert all(np.all(np.isfinite(a)) for a in arrays.to_numpy_ndarrays())
        assert 2 * len(strategy.excluded) < 10
    done = [e.server_round for e in strategy.events if e.status == "unlearned"]
    assert all(b - a >= rate_limit for a, b in itertools.pairwise(done))
    trained_after = {n for r, n in grid.trained if r > 1}
    for event in strategy.events:
        if event.status == "unlearned":
            late = [
                r
                for r, n in grid.trained
                if n in event.node_ids and r > event.server_round
            ]
            assert late == []
    assert trained_after  # training went on


def test_every_hostile_kind_in_one_round() -> None:
    nodes = list(range(1, 3 + len(CORRUPTIONS)))
    kinds = dict(zip(nodes[2:], CORRUPTIONS))

    def reply(node: int, rnd: int, msg: Any) -> Any:
        if node in kinds:
            return corrupt(node, kinds[node])
        return make_reply(node, client_model(node), 10 * node)

    strategy = FedUP(FedAvg(min_available_nodes=1, min_train_nodes=1))
    grid = FakeGrid(nodes, reply)
    msgs = list(
        strategy.configure_train(1, ArrayRecord(global_model()), ConfigRecord(), grid)
    )
    arrays, metrics = strategy.aggregate_train(1, grid.send_and_receive(msgs))
    assert metrics["fedup-rejected-replies"] == len(CORRUPTIONS)
    for got, want in zip(arrays.to_numpy_ndarrays(), fedavg([1, 2])):
        np.testing.assert_allclose(got, want, rtol=1e-5)
