"""FedUP strategy tests on real Flower Messages, without a SuperLink."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pytest
from conftest import (
    NODES,
    FakeGrid,
    client_model,
    fedavg,
    global_model,
    make_reply,
    run_round,
    set_task_identity,
)
from flwr.app import ArrayRecord, ConfigRecord, Message, RecordDict
from flwr.serverapp.strategy import (
    DifferentialPrivacyServerSideFixedClipping,
    FedAvg,
)

from fedup_flwr import FedUP, OracleDetector, prune_count
from fedup_flwr.exclusion import ExcludingStrategy


@pytest.fixture(autouse=True)
def _task_identity() -> None:
    # Flower reads the run id from the process's task identity when it builds
    # instruction messages; a ServerApp sets it, plain tests must.
    set_task_identity()


def test_no_detector_is_fedavg() -> None:
    arrays, metrics = run_round(FedUP(), 1)
    for got, want in zip(arrays.to_numpy_ndarrays(), fedavg(NODES)):
        np.testing.assert_allclose(got, want, rtol=1e-5)
    assert metrics["fedup-rejected-replies"] == 0


def test_flagged_nodes_excluded_and_model_pruned() -> None:
    strategy = FedUP(detector=OracleDetector({1: [5, 6]}), pruning_rate=0.25)
    arrays, metrics = run_round(strategy, 1)
    got = arrays.to_numpy_ndarrays()
    benign = fedavg([1, 2, 3, 4])
    zeros = got[0] == 0
    assert int(zeros.sum()) == prune_count(0.25, 20)  # 5 of the 4x5 kernel
    np.testing.assert_allclose(got[0][~zeros], benign[0][~zeros], rtol=1e-5)
    np.testing.assert_allclose(got[1], benign[1], rtol=1e-5)  # bias not pruned
    assert metrics["fedup-pruned-weights"] == 5
    assert metrics["fedup-unlearned-nodes"] == 2
    (event,) = strategy.events
    assert event.node_ids == [5, 6] and event.status == "unlearned"
    assert event.pruned == [5, 0] and event.prunable == [20, 0]
    # The flagged nodes are never sampled again, for training or evaluation.
    grid = FakeGrid()
    run_round(strategy, 2, grid)
    assert {n for _, n in grid.trained} == {1, 2, 3, 4}
    list(strategy.configure_evaluate(2, arrays, ConfigRecord(), grid))
    assert {
        m.metadata.dst_node_id
        for m in strategy.configure_evaluate(2, arrays, ConfigRecord(), grid)
    } == {1, 2, 3, 4}


def test_mask_targets_where_groups_disagree() -> None:
    # Benign and malicious replies disagree only on kernel entry (0, 0).
    glob = [np.ones((3, 3), np.float32), np.zeros(3, np.float32)]

    def reply(node: int, rnd: int, msg: Message) -> Message:
        arr = [a.copy() for a in glob]
        if node == 6:
            arr[0][0, 0] = 9.0
        return make_reply(node, arr, 10)

    strategy = FedUP(detector=OracleDetector({1: [6]}), pruning_rate=0.1)
    arrays, _ = run_round(strategy, 1, FakeGrid(reply=reply), ArrayRecord(glob))
    kernel = arrays.to_numpy_ndarrays()[0]
    assert kernel[0, 0] == 0 and int((kernel == 0).sum()) == 1


def test_adaptive_rate_follows_similarity() -> None:
    strategy = FedUP(detector=OracleDetector({1: [6]}), pruning_rate=None)
    run_round(strategy, 1)
    (event,) = strategy.events
    assert event.adaptive and event.similarity_measure == "weights"
    assert event.similarity is not None and event.similarity > 0.99
    assert event.rate == pytest.approx(
        0.01 + 0.14 * ((event.similarity - 0.5) / 0.5) ** 5
    )


class EveryRound:
    """Flags one new node per round (a DoS on unlearning)."""

    def __init__(self, order: Sequence[int]) -> None:
        self.order = list(order)

    def detect(
        self, server_round: int, replies: Mapping[int, Any], global_arrays: Any
    ) -> set[int]:
        return (
            {self.order[server_round - 1]} if server_round <= len(self.order) else set()
        )


def test_rate_limit_accumulates_detections() -> None:
    nodes = list(range(1, 21))
    strategy = FedUP(
        detector=EveryRound([1, 2, 3, 4, 5, 6, 7, 8]), rate_limit=3, pruning_rate=0.1
    )
    grid = FakeGrid(nodes)
    for rnd in range(1, 9):
        run_round(strategy, rnd, grid)
    rounds = [e.server_round for e in strategy.events if e.status == "unlearned"]
    assert rounds == [1, 4, 7]
    assert [e.node_ids for e in strategy.events] == [[1], [2, 3, 4], [5, 6, 7]]
    # Node 8 stays pending (flagged in round 8, next window is round 10).
    assert strategy.state_dict()["pending"].keys() == {8}
    # Flagged nodes left training at once, not at unlearning time.
    assert all(r <= n for r, n in grid.trained if n <= 8)


def test_pending_node_is_unlearned_from_its_stored_arrays() -> None:
    strategy = FedUP(detector=EveryRound([1, 2]), rate_limit=5, pruning_rate=0.2)
    grid = FakeGrid(list(range(1, 11)))
    run_round(strategy, 1, grid)
    run_round(strategy, 2, grid)  # node 2 flagged, deferred
    state = strategy.state_dict()
    np.testing.assert_array_equal(state["pending"][2]["arrays"][0], client_model(2)[0])
    for rnd in range(3, 7):
        run_round(strategy, rnd, grid)
    assert [e.server_round for e in strategy.events] == [1, 6]
    assert (6, 2) not in grid.trained


def test_guard_refuses_half_or_more() -> None:
    strategy = FedUP(detector=OracleDetector({1: [4, 5, 6]}), pruning_rate=0.1)
    arrays, metrics = run_round(strategy, 1)
    (event,) = strategy.events
    assert event.status == "refused" and event.node_ids == [4, 5, 6]
    assert strategy.excluded == set() and metrics["fedup-refused"] == 1
    assert not np.any(arrays.to_numpy_ndarrays()[0] == 0)


def test_same_node_flagged_twice_is_unlearned_once() -> None:
    strategy = FedUP(
        detector=OracleDetector({1: [6], 2: [6]}), pruning_rate=0.1, rate_limit=1
    )
    grid = FakeGrid()
    run_round(strategy, 1, grid)
    run_round(strategy, 2, grid)
    assert [e.node_ids for e in strategy.events] == [[6]]


def bad_replies(node: int, rnd: int, msg: Message) -> Message:
    good = client_model(node)
    match node:
        case 1:
            good[0][0, 0] = np.nan
            return make_reply(node, good, 10)
        case 2:
            return make_reply(node, [good[0][:2], good[1]], 10)
        case 3:
            return make_reply(node, [good[0].astype(np.float64), good[1]], 10)
        case 4:
            return make_reply(node, [good[0]], 10)
        case 5:
            return make_reply(node, error="ClientApp raised ValueError")
        case 6:
            return make_reply(node, [good[0] * 1e30, good[1]], 10)
        case 7:
            return make_reply(node, good, 0)
        case 8:
            return make_reply(node, good, -3)
        case 9:
            return make_reply(node, good, 2.5)
        case 10:
            return make_reply(node, good, 10**12)
        case 11:
            return make_reply(node, good, metrics={"num-examples": 10, "x": 1})
        case 12:
            return make_reply(node, good, float("nan"))
        case 13:
            rec = RecordDict({"arrays": ArrayRecord(good)})
            return make_reply(node, record=rec)
        case 14:
            good[1][0] = np.inf
            return make_reply(node, good, 10)
    return make_reply(node, good, 10 * node)


def test_hostile_replies_are_rejected_and_counted(caplog: Any) -> None:
    nodes = list(range(1, 19))  # 1-14 hostile but 11 (an extra metric), 15-18 fine
    strategy = FedUP()
    arrays, metrics = run_round(strategy, 1, FakeGrid(nodes, bad_replies))
    assert metrics["fedup-rejected-replies"] == 13
    # Node 11 only added a metric: kept (its metrics trimmed), weight 10.
    w = {11: 10.0, 15: 150.0, 16: 160.0, 17: 170.0, 18: 180.0}
    want_arrays = [
        sum(w[n] * client_model(n)[i] for n in w) / sum(w.values()) for i in range(2)
    ]
    for got, want in zip(arrays.to_numpy_ndarrays(), want_arrays):
        assert np.all(np.isfinite(got))
        np.testing.assert_allclose(got, want, rtol=1e-5)
    assert "node 1 rejected" in caplog.text or "node 1 " in caplog.text


def test_all_replies_rejected_keeps_previous_model() -> None:
    strategy = FedUP()
    grid = FakeGrid([1, 2], bad_replies)
    arrays, metrics = run_round(strategy, 1, grid)
    assert arrays is None and metrics["fedup-rejected-replies"] == 2


class Raising:
    def detect(self, *args: Any) -> set[int]:
        raise RuntimeError("detector bug")


class Returning:
    def __init__(self, value: Any) -> None:
        self.value = value

    def detect(self, *args: Any) -> Any:
        return self.value


@pytest.mark.parametrize(
    "detector",
    [Raising(), Returning([5]), Returning({99}), Returning({"5"}), Returning(None)],
)
def test_faulty_detector_means_no_detection(detector: Any) -> None:
    strategy = FedUP(detector=detector, pruning_rate=0.1)
    arrays, metrics = run_round(strategy, 1)
    assert metrics["fedup-detector-errors"] == 1
    assert strategy.excluded == set() and strategy.events == []
    for got, want in zip(arrays.to_numpy_ndarrays(), fedavg(NODES)):
        np.testing.assert_allclose(got, want, rtol=1e-5)


def test_detector_scores_reach_metrics() -> None:
    strategy = FedUP(detector=OracleDetector({1: [6]}), pruning_rate=0.1)
    _, metrics = run_round(strategy, 1)
    assert metrics["fedup-score-6"] == 1.0 and metrics["fedup-score-1"] == 0.0


def test_state_dict_round_trip_resumes_identically() -> None:
    def fresh() -> FedUP:
        return FedUP(detector=EveryRound([1, 2, 3]), rate_limit=4, pruning_rate=0.2)

    nodes = list(range(1, 11))
    a = fresh()
    for rnd in (1, 2):
        run_round(a, rnd, FakeGrid(nodes))
    b = fresh()
    b.load_state_dict(a.state_dict())
    results = []
    for s in (a, b):
        random.seed(0)  # FedAvg samples with `random`; same order, same sums
        out = [run_round(s, rnd, FakeGrid(nodes))[0] for rnd in range(3, 7)]
        results.append([r.to_numpy_ndarrays() for r in out])
    for ra, rb in zip(*results):
        for x, y in zip(ra, rb):
            np.testing.assert_array_equal(x, y)
    assert a.excluded == b.excluded == {1, 2, 3}
    assert [(e.server_round, e.node_ids, e.pruned) for e in a.events] == [
        (e.server_round, e.node_ids, e.pruned) for e in b.events
    ]


def test_start_runs_extra_recovery_rounds() -> None:
    strategy = FedUP(
        detector=OracleDetector({3: [6]}), pruning_rate=0.1, recovery_rounds=3
    )
    grid = FakeGrid()
    seen: list[int] = []

    def evaluate(rnd: int, arrays: ArrayRecord) -> None:
        seen.append(rnd)

    result = strategy.start(
        grid, ArrayRecord(global_model()), num_rounds=4, evaluate_fn=evaluate
    )
    assert max(r for r, _ in grid.trained) == 6
    assert sorted(result.train_metrics_clientapp) == [1, 2, 3, 4, 5, 6]
    assert seen == [0, 1, 2, 3, 4, 5, 6]
    assert all(n != 6 for r, n in grid.trained if r > 3)


def test_constructor_validation() -> None:
    with pytest.raises(ValueError, match="pruning_rate"):
        FedUP(pruning_rate=1.5)
    with pytest.raises(ValueError, match="rate_limit"):
        FedUP(rate_limit=0)
    with pytest.raises(ValueError, match="recovery_rounds"):
        FedUP(recovery_rounds=-1)
    with pytest.raises(TypeError, match="detect"):
        FedUP(detector=object())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="must not exceed p_max"):
        FedUP(p_min=0.2, p_max=0.1)
    with pytest.raises(ValueError, match="gamma"):
        FedUP(gamma=0)
    with pytest.raises(ValueError, match="first_round"):
        FedUP(first_round=0)


def test_excluding_strategy_alone_trains_without_the_excluded_nodes(
    caplog: Any,
) -> None:
    # FedUP's base, without detection: the retrain-without-them baseline.
    strategy = ExcludingStrategy()
    strategy.exclude([5, 6])
    grid = FakeGrid()
    msgs = list(
        strategy.configure_train(1, ArrayRecord(global_model()), ConfigRecord(), grid)
    )
    arrays, metrics = strategy.aggregate_train(1, grid.send_and_receive(msgs))
    assert {n for _, n in grid.trained} == {1, 2, 3, 4}
    for got, want in zip(arrays.to_numpy_ndarrays(), fedavg([1, 2, 3, 4])):
        np.testing.assert_allclose(got, want, rtol=1e-5)
    assert metrics["fedup-excluded-nodes"] == 2 and strategy.last_round == 1
    strategy.summary()
    assert "Excluded nodes: [5, 6]" in caplog.text


def test_wraps_inner_strategy_settings() -> None:
    inner = FedAvg(fraction_train=0.5, min_available_nodes=2)
    strategy = FedUP(strategy=inner)
    msgs = list(
        strategy.configure_train(
            1, ArrayRecord(global_model()), ConfigRecord(), FakeGrid()
        )
    )
    assert len(msgs) == 3 and strategy.strategy is inner


def test_first_round_numbers_a_continued_run() -> None:
    strategy = FedUP(
        detector=OracleDetector({12: [6]}),
        pruning_rate=0.1,
        recovery_rounds=0,
        first_round=11,
    )
    grid = FakeGrid()
    seen: list[int] = []
    result = strategy.start(
        grid,
        ArrayRecord(global_model()),
        num_rounds=3,
        evaluate_fn=lambda r, a: seen.append(r),
    )
    assert sorted({r for r, _ in grid.trained}) == [11, 12, 13]
    assert sorted(result.train_metrics_clientapp) == [11, 12, 13]
    assert seen == [
        11,
        12,
        13,
    ]  # the initial model (after round 10) is not re-evaluated
    assert [e.server_round for e in strategy.events] == [12]
    assert strategy.next_round == 14
    strategy.start(grid, result.arrays, num_rounds=1)
    assert max(r for r, _ in grid.trained) == 14


def test_integer_buffers_keep_their_dtype() -> None:
    # FedAvg averages int64 buffers (BatchNorm's num_batches_tracked) to float64;
    # FedUP casts back so that the next round's replies still match.
    glob = [np.ones((2, 2), np.float32), np.array(7, dtype=np.int64)]

    def reply(node: int, rnd: int, msg: Message) -> Message:
        return make_reply(node, [glob[0] * node, np.array(7 + node, np.int64)], 10)

    strategy = FedUP()
    arrays, _ = run_round(strategy, 1, FakeGrid(reply=reply), ArrayRecord(glob))
    out = arrays.to_numpy_ndarrays()
    assert out[1].dtype == np.int64 and int(out[1]) == 10  # rint(mean(8..13) = 10.5)
    _, metrics = run_round(strategy, 2, FakeGrid(reply=reply), arrays)
    assert metrics["fedup-rejected-replies"] == 0


def test_late_unsolicited_and_duplicate_replies_are_dropped() -> None:
    strategy = FedUP()
    grid = FakeGrid([1, 2, 3])
    msgs = list(
        strategy.configure_train(1, ArrayRecord(global_model()), ConfigRecord(), grid)
    )
    replies = grid.send_and_receive(msgs)
    # A late reply from a node not sampled this round, and a duplicate of node 1.
    replies += [make_reply(9, client_model(9), 90), make_reply(1, client_model(5), 10)]
    arrays, metrics = strategy.aggregate_train(1, replies)
    assert metrics["fedup-rejected-replies"] == 2
    for got, want in zip(arrays.to_numpy_ndarrays(), fedavg([1, 2, 3])):
        np.testing.assert_allclose(got, want, rtol=1e-5)


# ------------------------------------------------------- composing with wrappers
def dp(inner: Any, clipping_norm: float = 0.5) -> Any:
    return DifferentialPrivacyServerSideFixedClipping(
        inner, noise_multiplier=0.0, clipping_norm=clipping_norm, num_sampled_clients=6
    )


def test_fedup_around_a_dp_wrapper_clips_then_prunes() -> None:
    # The supported composition: FedUP(DP(FedAvg())).
    strategy = FedUP(dp(FedAvg()), detector=OracleDetector({1: [6]}), pruning_rate=0.25)
    assert strategy.weighted_by_key == "num-examples"  # found through the wrapper
    arrays, metrics = run_round(strategy, 1)
    out = arrays.to_numpy_ndarrays()
    glob = global_model()
    [event] = strategy.events
    assert event.status == "unlearned" and event.node_ids == [6]
    assert event.pruned == [prune_count(0.25, 20), 0]
    assert int(np.count_nonzero(out[0] == 0)) == prune_count(0.25, 20)
    # DP clipped every update to norm 0.5, so the kept weights stay within 0.5
    # of the global model (plain FedAvg of nodes 1-5 would move them further).
    kept = out[0] != 0
    delta = np.concatenate([(out[0] - glob[0])[kept], out[1] - glob[1]])
    assert np.linalg.norm(delta) <= 0.5 + 1e-5
    assert np.linalg.norm(fedavg([1, 2, 3, 4, 5])[0] - glob[0]) > 0.5
    assert metrics["fedup-unlearned-nodes"] == 1
    grid = FakeGrid()
    run_round(strategy, 2, grid)
    assert 6 not in {n for _, n in grid.trained}


def test_wrapped_fedup_warns_and_tells_the_rounds_still_required(caplog: Any) -> None:
    fedup = FedUP(
        detector=OracleDetector({2: [6]}), pruning_rate=0.1, recovery_rounds=3
    )
    wrapper = dp(fedup, clipping_norm=100.0)
    grid = FakeGrid()
    wrapper.start(grid, ArrayRecord(global_model()), num_rounds=3)
    # The wrapper's start runs no extra round: recovery is cut short, and said so.
    assert max(r for r, _ in grid.trained) == 3
    assert [e.server_round for e in fedup.events] == [2]
    assert fedup.last_round == 3 and fedup.rounds_required() == 2
    assert fedup.rounds_required(4) == 1 and fedup.rounds_required(5) == 0
    assert "2 recovery rounds are still required" in caplog.text
    # The documented way to finish: continue the numbering, run what is missing.
    fedup.next_round = fedup.last_round + 1
    wrapper.start(grid, ArrayRecord(global_model()), num_rounds=fedup.rounds_required())
    assert sorted({r for r, _ in grid.trained}) == [1, 2, 3, 4, 5]
    assert fedup.rounds_required() == 0


def test_start_extends_itself_and_does_not_warn(caplog: Any) -> None:
    strategy = FedUP(
        detector=OracleDetector({2: [6]}), pruning_rate=0.1, recovery_rounds=3
    )
    strategy.start(FakeGrid(), ArrayRecord(global_model()), num_rounds=3)
    assert strategy.last_round == 5 and strategy.rounds_required() == 0
    assert "still required" not in caplog.text


def test_a_wrapped_run_ending_with_deferred_unlearning_warns(caplog: Any) -> None:
    # Node 5 is flagged in round 2, inside the rate-limit window of round 1's
    # unlearning: it is excluded but still in the model when the run ends.
    # (FedUP's own start() runs the deferred unlearning: test_hardening.py.)
    strategy = FedUP(
        detector=OracleDetector({1: [6], 2: [5]}),
        pruning_rate=0.1,
        rate_limit=5,
        recovery_rounds=0,
    )
    dp(strategy, clipping_norm=100.0).start(
        FakeGrid(), ArrayRecord(global_model()), num_rounds=3
    )
    assert list(strategy.policy.pending) == [5]
    assert "nodes [5] are excluded but not yet unlearned" in caplog.text
    assert strategy.rounds_required() == 3  # rounds 4 and 5 wait, 6 unlearns
