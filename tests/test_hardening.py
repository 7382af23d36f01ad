"""Hardening II (issue 10): hostile clients, careless detectors, inner strategies.

One test (or a few) per item of the issue, on real Flower Messages without a
SuperLink; the hostile property tests (test_hostile.py) generate items 1, 3,
4, 8, 9 and 12 as well.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pytest
from conftest import (
    FakeGrid,
    client_model,
    fedavg,
    global_model,
    make_reply,
    run_round,
    set_task_identity,
)
from flwr.app import ArrayRecord, Message, MetricRecord, RecordDict
from flwr.serverapp import strategy as flwr_strategies
from flwr.serverapp.strategy import FedAvg, Strategy, strategy_utils

from fedup_flwr import FedUP, OracleDetector
from fedup_flwr.core import model_nbytes
from fedup_flwr.validation import (
    check_flagged,
    validate_train_replies,
)


@pytest.fixture(autouse=True)
def _task_identity() -> None:
    set_task_identity()


def keys() -> list[str]:
    return list(ArrayRecord(global_model()).keys())


def check(replies: list[Message], **kwargs: Any) -> Any:
    return validate_train_replies(
        replies, global_arrays=global_model(), global_keys=keys(), **kwargs
    )


def assert_fedavg(arrays: ArrayRecord | None, nodes: list[int]) -> None:
    assert arrays is not None
    for got, want in zip(arrays.to_numpy_ndarrays(), fedavg(nodes)):
        np.testing.assert_allclose(got, want, rtol=1e-5)


# ------------------------------------------------- 1: one client stalls training
def consistent(node: int, **overrides: Any) -> Message:
    metrics: dict[str, Any] = {
        "num-examples": 10 * node,
        "train_loss": 0.5,
        "curve": [0.1, 0.2],
    }
    metrics.update(overrides)
    return make_reply(node, client_model(node), metrics=metrics)


def inconsistent_replies(node: int, rnd: int, msg: Message) -> Message:
    good = client_model(node)
    metrics = MetricRecord({"num-examples": 10 * node, "train_loss": 0.5})
    metrics["curve"] = [0.1, 0.2]
    match node:
        case 4:  # arrays under another record name
            record = RecordDict({"weights": ArrayRecord(good), "metrics": metrics})
            return make_reply(node, record=record)
        case 5:  # metrics under another record name
            record = RecordDict({"arrays": ArrayRecord(good), "scores": metrics})
            return make_reply(node, record=record)
        case 6:  # a list where the others send a number
            return consistent(node, train_loss=[0.5])
        case 7:  # a list of another length
            return consistent(node, curve=[0.1, 0.2, 0.3])
    return consistent(node)


def test_inconsistent_replies_are_rejected_and_the_round_aggregates_the_rest() -> None:
    strategy = FedUP(FedAvg(min_available_nodes=1, min_train_nodes=1))
    arrays, metrics = run_round(
        strategy, 1, FakeGrid([1, 2, 3, 4, 5, 6, 7], inconsistent_replies)
    )
    assert metrics["fedup-rejected-replies"] == 4
    assert_fedavg(arrays, [1, 2, 3])
    assert metrics["curve"] == pytest.approx([0.1, 0.2])


def test_validation_names_what_is_inconsistent() -> None:
    replies = [inconsistent_replies(n, 1, None) for n in range(1, 8)]  # type: ignore[arg-type]
    checked = check(replies)
    reasons = dict(checked.rejected)
    assert [r.node_id for r in checked.valid] == [1, 2, 3]
    assert "ArrayRecord named 'weights'" in reasons[4]
    assert "MetricRecord named 'scores'" in reasons[5]
    assert "metric 'train_loss' is a list of 1" in reasons[6]
    assert "metric 'curve' is a list of 3" in reasons[7]


def test_a_tie_is_broken_towards_the_names_flower_uses() -> None:
    # One honest reply and one under another name: the honest one is kept.
    good = client_model(1)
    odd = RecordDict(
        {"weights": ArrayRecord(good), "m": MetricRecord({"num-examples": 10})}
    )
    checked = check([make_reply(2, record=odd), make_reply(1, good, 10)])
    assert [r.node_id for r in checked.valid] == [1]


# ------------------------------------ 2: inner strategies with server-side state
def echo(node: int, rnd: int, msg: Message) -> Message:
    """Round 1: the client's model; then the model sent, zeros left as zeros."""
    arrays = msg.content["arrays"].to_numpy_ndarrays()
    if rnd == 1:
        arrays = client_model(node)
    else:  # trains the weights left, not the pruned ones (a zero update there)
        arrays = [a + np.where(a != 0, 0.01, 0).astype(a.dtype) for a in arrays]
    # train_loss for QFedAvg; norm_bit as the client-side DP mods report it.
    metrics = {"num-examples": 10 * node, "train_loss": 1.0, "norm_bit": 0}
    return make_reply(node, arrays, metrics=metrics)


def _inner(name: str) -> Strategy | None:
    cls = getattr(flwr_strategies, name)
    base = {"min_available_nodes": 2, "min_train_nodes": 2}
    match name:
        case "FedAvg" | "FedMedian":
            return cls(**base)  # type: ignore[no-any-return]
        case "FedAvgM":
            return cls(server_learning_rate=0.5, server_momentum=0.9, **base)  # type: ignore[no-any-return]
        case "FedAdam" | "FedYogi" | "FedAdagrad":
            return cls(eta=0.5, **base)  # type: ignore[no-any-return]
        case "FedProx":
            return cls(proximal_mu=0.1, **base)  # type: ignore[no-any-return]
        case "FedTrimmedAvg":
            return cls(beta=0.1, **base)  # type: ignore[no-any-return]
        case "Krum" | "Bulyan":
            return cls(num_malicious_nodes=1, **base)  # type: ignore[no-any-return]
        case "MultiKrum":
            return cls(num_malicious_nodes=1, num_nodes_to_select=3, **base)  # type: ignore[no-any-return]
        case "QFedAvg":
            return cls(client_learning_rate=0.1, **base)  # type: ignore[no-any-return]
        case name if name.startswith("DifferentialPrivacy"):
            inner = flwr_strategies.FedAvgM(
                server_learning_rate=0.5, server_momentum=0.9, **base
            )
            extra = (
                {"clipping_norm": 100.0}
                if "Fixed" in name
                else {"initial_clipping_norm": 100.0}
            )
            return cls(inner, noise_multiplier=0.0, num_sampled_clients=10, **extra)  # type: ignore[no-any-return]
    return None


MESSAGE_API = sorted(
    name
    for name in flwr_strategies.__all__
    if name not in {"Strategy", "Result"} and not name.startswith("FedXgb")
)


@pytest.mark.parametrize("name", MESSAGE_API)
def test_pruning_survives_every_flower_strategy(name: str) -> None:
    inner = _inner(name)
    assert inner is not None, f"no test set-up for Flower's {name}"
    strategy = FedUP(inner, detector=OracleDetector({1: [10]}), pruning_rate=0.25)
    grid = FakeGrid(range(1, 11), echo)
    arrays, _ = run_round(strategy, 1, grid)
    assert arrays is not None
    (event,) = strategy.events
    assert event.status == "unlearned" and event.pruned[0] == 5
    pruned = arrays.to_numpy_ndarrays()[0] == 0
    for rnd in (2, 3):
        new, _ = run_round(strategy, rnd, grid, arrays)
        assert new is not None
        arrays = new
        # The clients sent back what they got: nothing may bring the pruned
        # weights back, neither the inner strategy's own copy of the model
        # nor its momentum.
        kernel = arrays.to_numpy_ndarrays()[0]
        assert np.all(kernel[pruned] == 0), f"{name}: pruned weights came back"


@pytest.mark.parametrize("name", ["FedXgbBagging", "FedXgbCyclic"])
def test_strategies_that_cannot_be_pruned_are_refused(name: str) -> None:
    inner = getattr(flwr_strategies, name)()
    with pytest.raises(TypeError, match=name):
        FedUP(inner)
    wrapped = flwr_strategies.DifferentialPrivacyServerSideFixedClipping(
        inner, noise_multiplier=0.0, clipping_norm=1.0, num_sampled_clients=2
    )
    with pytest.raises(TypeError, match=name):
        FedUP(wrapped)


# ---------------------------------------------------- 3: malformed detector scores
class WithScores:
    def __init__(self, scores: Any, flagged: set[int] | None = None) -> None:
        self.scores = scores
        self.flagged = flagged or set()

    def detect(self, *args: Any) -> set[int]:
        return self.flagged


@pytest.mark.parametrize(
    "scores",
    ["abc", [1, 2], {1: None}, {1: "high"}, 5, {"1": 0.5}, {True: 0.5}, {1: 1j}],
)
def test_malformed_scores_are_a_detector_fault(scores: Any) -> None:
    strategy = FedUP(detector=WithScores(scores, {6}), pruning_rate=0.1)
    arrays, metrics = run_round(strategy, 1)
    assert metrics["fedup-detector-errors"] == 1
    assert strategy.excluded == set() and strategy.events == []
    assert_fedavg(arrays, [1, 2, 3, 4, 5, 6])


def test_no_scores_or_empty_scores_are_fine() -> None:
    for scores in (None, {}):
        _, metrics = run_round(FedUP(detector=WithScores(scores)), 1)
        assert "fedup-detector-errors" not in metrics


# ---------------------------------------- 4: detectors writing into their inputs
class Writer:
    """Flags node 6 after writing NaN into what it was given."""

    def __init__(self, how: str) -> None:
        self.how = how

    def detect(self, rnd: int, replies: Mapping[int, Any], glob: Any) -> set[int]:
        match self.how:
            case "reply":
                replies[1][0][0, 0] = np.nan
            case "global":
                glob[0][0, 0] = np.nan
            case "replace":  # swaps an array of FedUP's lists
                replies[6][0] = np.full((4, 5), np.nan, np.float32)
                glob[0] = np.full((4, 5), np.nan, np.float32)
            case "writeable":  # tries to make the array writeable again
                replies[6][0].flags.writeable = True
                replies[6][0][0, 0] = np.nan
        return {6}


@pytest.mark.parametrize("how", ["reply", "global", "replace", "writeable"])
def test_a_detector_cannot_write_into_fedup_state(how: str) -> None:
    strategy = FedUP(detector=Writer(how), pruning_rate=0.1, rate_limit=2)
    grid = FakeGrid()
    arrays = ArrayRecord(global_model())
    for rnd in (1, 2, 3):
        new, _ = run_round(strategy, rnd, grid, arrays)
        arrays = new if new is not None else arrays
        assert all(np.all(np.isfinite(a)) for a in arrays.to_numpy_ndarrays())
        assert all(np.all(np.isfinite(a)) for a in strategy.global_arrays)
        for held in strategy.policy.pending.values():
            assert all(np.all(np.isfinite(a)) for a in held.arrays)
    if how == "replace":  # the write only touched the detector's own lists
        assert [e.status for e in strategy.events] == ["unlearned"]


# ------------------------------------------------ 5: a model with no kernel array
@pytest.mark.parametrize("rate", [0.1, None])
def test_a_model_without_kernels_excludes_and_refuses_cleanly(rate: Any) -> None:
    glob = [np.zeros(4, np.float32), np.ones(3, np.float32)]

    def reply(node: int, rnd: int, msg: Message) -> Message:
        return make_reply(node, [a + node for a in glob], 10)

    strategy = FedUP(detector=OracleDetector({1: [6]}), pruning_rate=rate)
    arrays, metrics = run_round(strategy, 1, FakeGrid(reply=reply), ArrayRecord(glob))
    assert strategy.excluded == {6} and strategy.policy.pending == {}
    (event,) = strategy.events
    assert event.status == "refused" and "ndim >= 2" in event.reason
    assert arrays is not None and metrics["fedup-refused"] == 1


# ---------------------------------------------------------------------- 6: hangs
class Flags:
    def __init__(self, schedule: dict[int, set[int]]) -> None:
        self.schedule = schedule

    def detect(self, rnd: int, replies: Any, glob: Any) -> set[int]:
        return self.schedule.get(rnd, set()) & set(replies)


def test_guard_counts_the_nodes_present_not_every_node_ever_seen() -> None:
    strategy = FedUP(detector=Flags({2: {8}, 3: {9}}), pruning_rate=0.1)
    grid = FakeGrid(range(1, 11))
    run_round(strategy, 1, grid)
    grid.nodes = [8, 9, 10]  # seven nodes leave
    run_round(strategy, 2, grid)
    assert strategy.excluded == {8}  # 1 of 3
    run_round(strategy, 3, grid)
    # 2 of the 3 nodes present would leave one node to train: refused.
    assert strategy.excluded == {8}
    assert [e.status for e in strategy.events] == ["unlearned", "refused"]
    assert "of 3 nodes present" in strategy.events[1].reason


class WouldWait(Exception):
    pass


def test_unreachable_inner_minimums_are_named(
    caplog: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_sleep(seconds: float) -> None:
        raise WouldWait

    monkeypatch.setattr(strategy_utils, "sleep", no_sleep)
    strategy = FedUP(
        FedAvg(min_train_nodes=10, min_available_nodes=2),
        detector=OracleDetector({1: [10]}),
        pruning_rate=0.1,
    )
    grid = FakeGrid(range(1, 11))
    run_round(strategy, 1, grid)
    with pytest.raises(WouldWait):  # Flower's sampler would wait for a 10th node
        run_round(strategy, 2, grid)
    assert "min_train_nodes=10" in caplog.text
    assert "9 nodes are left" in caplog.text


# ------------------------------------------ 7: pending unlearning at the run's end
def test_start_runs_the_deferred_unlearning_and_its_recovery(caplog: Any) -> None:
    strategy = FedUP(
        detector=OracleDetector({1: [6], 2: [5]}),
        pruning_rate=0.1,
        rate_limit=5,
        recovery_rounds=2,
    )
    grid = FakeGrid()
    result = strategy.start(grid, ArrayRecord(global_model()), num_rounds=3)
    assert [(e.server_round, e.node_ids) for e in strategy.events] == [
        (1, [6]),
        (6, [5]),
    ]
    assert strategy.policy.pending == {} and strategy.last_round == 8
    assert sorted(result.train_metrics_clientapp) == list(range(1, 9))
    assert "deferred unlearning of nodes [5]" in caplog.text
    assert "excluded but not yet unlearned" not in caplog.text


def test_start_gives_up_extending_when_the_unlearning_cannot_happen(
    caplog: Any,
) -> None:
    def reply(node: int, rnd: int, msg: Message) -> Message:
        if rnd >= 3:  # nobody sends a valid reply any more
            return make_reply(node, error="down")
        return make_reply(node, client_model(node), 10 * node)

    strategy = FedUP(
        detector=OracleDetector({1: [6], 2: [5]}), pruning_rate=0.1, rate_limit=3
    )
    strategy.start(FakeGrid(reply=reply), ArrayRecord(global_model()), num_rounds=3)
    assert list(strategy.policy.pending) == [5]
    # One extension: the round the rate limit allows (4), then 3 of recovery.
    assert strategy.last_round == 7
    assert "excluded but not yet unlearned" in caplog.text


# ------------------------------------------------------ 8: integer extremes
@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.int8])
def test_integer_minimum_is_above_max_abs(dtype: Any) -> None:
    glob = [np.ones((2, 2), np.float32), np.array([5], dtype)]
    low = np.iinfo(dtype).min
    replies = [
        make_reply(1, [glob[0], np.array([low], dtype)], 10),
        make_reply(2, glob, 10),
    ]
    checked = validate_train_replies(
        replies,
        global_arrays=glob,
        global_keys=list(ArrayRecord(glob).keys()),
        max_abs=100.0,
    )
    assert [r.node_id for r in checked.valid] == [2]
    assert "above 100 in magnitude" in checked.rejected[0][1]


# ---------------------------------------------------- 9: booleans are not node ids
def test_booleans_are_not_node_ids() -> None:
    assert "not a set of node ids" in str(check_flagged({True}, {1, 2}))
    assert "not a set of node ids" in str(check_flagged({np.bool_(True)}, {1, 2}))
    strategy = FedUP(detector=WithScores(None, {True}), pruning_rate=0.1)  # type: ignore[arg-type]
    _, metrics = run_round(strategy, 1)
    assert metrics["fedup-detector-errors"] == 1 and strategy.excluded == set()


# ------------------------------------------------ 10: tampered state at load time
def saved_state() -> dict[str, Any]:
    strategy = FedUP(detector=OracleDetector({1: [5], 2: [6]}), rate_limit=5)
    grid = FakeGrid(range(1, 11))
    run_round(strategy, 1, grid)
    run_round(strategy, 2, grid)
    state = strategy.state_dict()
    assert list(state["pending"]) == [6]
    return state


def tamper(change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    state = saved_state()
    change(state)
    return state


def _set_pending(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(state: dict[str, Any]) -> None:
        state["pending"][6][key] = value

    return change


def _second_pending_of_another_layout(state: dict[str, Any]) -> None:
    other = {**state["pending"][6], "arrays": [np.zeros((2, 2), np.float32)]}
    state["pending"][7] = other


def _nan_pending(state: dict[str, Any]) -> None:
    state["pending"][6]["arrays"][0] = np.full((4, 5), np.nan, np.float32)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda s: s.update(round_offset="3"), "round_offset"),
        (lambda s: s.update(round_offset=-1), "round_offset"),
        (lambda s: s.update(recovery_until=-2), "recovery_until"),
        (lambda s: s.update(last_unlearning="1"), "last_unlearning"),
        (lambda s: s.update(excluded=["a"]), "excluded"),
        (lambda s: s.update(seen=[True]), "seen"),
        (lambda s: s.update(events=[{"server_round": 1}]), "events"),
        (_set_pending("num_examples", -4), "num_examples"),
        (_set_pending("server_round", "2"), "server_round"),
        (_second_pending_of_another_layout, "layout"),
        (_set_pending("arrays", "abc"), "arrays"),
        (_nan_pending, "NaN"),
    ],
)
def test_load_state_dict_rejects_tampered_state(change: Any, match: str) -> None:
    state = tamper(change)
    strategy = FedUP(detector=OracleDetector({}))
    with pytest.raises(ValueError, match=match):
        strategy.load_state_dict(state)


def test_pending_arrays_unlike_the_global_model_fail_at_the_first_round() -> None:
    state = saved_state()
    strategy = FedUP(detector=OracleDetector({}))
    strategy.load_state_dict(state)
    other = [np.zeros((3, 3), np.float32), np.zeros(4, np.float32)]
    with pytest.raises(ValueError, match="node 6"):
        run_round(strategy, 3, FakeGrid(range(1, 11)), ArrayRecord(other))


def test_a_saved_state_still_loads() -> None:
    strategy = FedUP(detector=OracleDetector({}))
    strategy.load_state_dict(saved_state())
    assert list(strategy.policy.pending) == [6] and strategy.excluded == {5, 6}


# --------------------------------------- 11: inputs only the unlearning exercised
@pytest.mark.parametrize("flagged", [False, True])
def test_nan_in_the_initial_model_fails_fast(flagged: bool) -> None:
    glob = global_model()
    glob[0][1, 1] = np.nan
    detector = OracleDetector({1: [6]} if flagged else {})
    strategy = FedUP(detector=detector, pruning_rate=0.1)
    with pytest.raises(ValueError, match="NaN or Inf"):
        strategy.start(FakeGrid(), ArrayRecord(glob), num_rounds=1)


@pytest.mark.parametrize("flagged", [False, True])
def test_an_empty_model_fails_fast(flagged: bool) -> None:
    detector = OracleDetector({1: [6]} if flagged else {})
    strategy = FedUP(detector=detector, pruning_rate=0.1)
    with pytest.raises(ValueError, match="no arrays"):
        strategy.start(FakeGrid(), ArrayRecord(), num_rounds=1)


@pytest.mark.parametrize("flagged", [False, True])
def test_values_near_the_float32_limit_without_max_abs(flagged: bool) -> None:
    big = np.finfo(np.float32).max

    def reply(node: int, rnd: int, msg: Message) -> Message:
        sign = -1.0 if node % 2 else 1.0
        arrays = [np.full((4, 5), sign * big, np.float32), np.zeros(4, np.float32)]
        arrays[0][0, 0] = node
        return make_reply(node, arrays, 10)  # equal weights: plain sums

    detector = OracleDetector({1: [6]} if flagged else {})
    strategy = FedUP(detector=detector, pruning_rate=0.1, max_abs=None)
    glob = [np.full((4, 5), big / 2, np.float32), np.zeros(4, np.float32)]
    arrays, metrics = run_round(strategy, 1, FakeGrid(reply=reply), ArrayRecord(glob))
    assert arrays is not None
    assert all(np.all(np.isfinite(a)) for a in arrays.to_numpy_ndarrays())
    assert metrics["fedup-rejected-replies"] == 0
    if flagged:
        assert [e.status for e in strategy.events] == ["unlearned"]
        assert metrics["fedup-pruned-weights"] == 2


def test_an_overflowing_aggregate_keeps_the_previous_model(caplog: Any) -> None:
    big = np.finfo(np.float32).max

    def reply(node: int, rnd: int, msg: Message) -> Message:
        return make_reply(node, [np.full((4, 5), big, np.float32), np.zeros(4)], 10)

    glob = [np.ones((4, 5), np.float32), np.zeros(4)]
    # FedAvgM with lr 2 steps past the float32 limit.
    inner = flwr_strategies.FedAvgM(server_learning_rate=2.0)
    strategy = FedUP(inner, max_abs=None)
    arrays, _ = run_round(strategy, 1, FakeGrid(reply=reply), ArrayRecord(glob))
    assert arrays is None
    assert "NaN or Inf" in caplog.text


# ------------------------------------------------------ 12: huge metric integers
def test_a_huge_metric_integer_is_rejected_not_raised() -> None:
    replies = [
        make_reply(1, global_model(), metrics={"num-examples": 10, "x": 10**400}),
        make_reply(2, global_model(), metrics={"num-examples": 10**400}),
        make_reply(3, global_model(), metrics={"num-examples": 10, "x": 1}),
    ]
    checked = check(replies)
    assert [r.node_id for r in checked.valid] == [3]
    assert "metric 'x' is not a finite number" in dict(checked.rejected)[1]


# ---------------------------------------------- 13: nothing kept without detector
def test_without_a_detector_no_reply_is_kept() -> None:
    strategy = FedUP()
    run_round(strategy, 1, FakeGrid(range(1, 21)))
    assert strategy.state_nbytes() == model_nbytes(global_model())


def test_with_a_detector_replies_are_not_kept_between_rounds() -> None:
    strategy = FedUP(detector=OracleDetector({}))
    run_round(strategy, 1, FakeGrid(range(1, 21)))
    assert strategy.state_nbytes() == model_nbytes(global_model())
