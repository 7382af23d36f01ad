"""UnlearningPolicy on tiny hand-made cases: guard, rate limit, pending, state."""

from __future__ import annotations

import numpy as np
import pytest

from fedup_flwr import UnlearningPolicy
from fedup_flwr.policy import HeldModel


def held(node: int, rnd: int = 1) -> HeldModel:
    return HeldModel([np.full((2, 2), node, np.float32)], 10 * node, rnd)


def models(*nodes: int) -> dict[int, HeldModel]:
    return {n: held(n) for n in nodes}


def test_flag_excludes_and_queues_new_nodes() -> None:
    policy = UnlearningPolicy(rate_limit=3)
    policy.observe([1, 2, 3, 4, 5])
    decision = policy.flag({5}, models(1, 2, 3, 4, 5))
    assert decision.accepted == [5] and decision.refused == []
    assert policy.excluded == {5} and list(policy.pending) == [5]
    assert policy.pending[5].num_examples == 50
    # Flagging an excluded node again changes nothing.
    again = policy.flag({5}, models(1, 2, 3, 4, 5))
    assert again.accepted == [] and again.refused == [] and list(policy.pending) == [5]


def test_guard_refuses_half_or_more_of_the_nodes_seen() -> None:
    policy = UnlearningPolicy()
    policy.observe([1, 2, 3, 4])
    assert policy.flag({1}, models(1, 2, 3, 4)).accepted == [1]  # 1 of 4
    decision = policy.flag({2}, models(1, 2, 3, 4))  # 2 of 4: half
    assert decision.accepted == [] and decision.refused == [2]
    assert decision.reason == "2 flagged of 4 nodes seen"
    assert policy.excluded == {1} and list(policy.pending) == [1]
    policy.observe([5])  # 2 of 5 is a minority
    assert policy.flag({2}, models(2)).accepted == [2]


def test_flag_without_a_model_is_a_clear_error() -> None:
    policy = UnlearningPolicy()
    policy.observe(range(1, 10))
    with pytest.raises(ValueError, match=r"\[7\] have no model"):
        policy.flag({7}, models(1, 2))


def test_rate_limit_defers_then_allows() -> None:
    policy = UnlearningPolicy(rate_limit=3, recovery_rounds=2)
    policy.observe(range(1, 11))
    assert not policy.due(1)  # nothing pending
    policy.flag({1}, models(1))
    assert policy.due(1) and policy.deferred_until(1) is None
    assert policy.record_unlearning(1) == [1]
    assert policy.pending == {} and policy.last_unlearning == 1
    policy.flag({2}, models(2))
    assert [policy.deferred_until(r) for r in (2, 3, 4)] == [4, 4, None]
    assert [policy.due(r) for r in (2, 3, 4)] == [False, False, True]


def test_rounds_required_counts_recovery_after_the_last_unlearning() -> None:
    policy = UnlearningPolicy(recovery_rounds=3)
    assert policy.rounds_required(5) == 0  # no unlearning yet
    policy.observe(range(1, 5))
    policy.flag({1}, models(1))
    policy.record_unlearning(4)
    assert policy.recovery_until == 7
    assert [policy.rounds_required(r) for r in (4, 5, 7, 9)] == [3, 2, 0, 0]


def test_exclude_by_hand_does_not_queue_unlearning() -> None:
    policy = UnlearningPolicy()
    policy.exclude([3, 4])
    assert policy.excluded == {3, 4} and policy.pending == {}


def test_state_dict_round_trip() -> None:
    a = UnlearningPolicy(rate_limit=4, recovery_rounds=1)
    a.observe(range(1, 8))
    a.flag({1}, models(1))
    a.record_unlearning(2)
    a.flag({2}, {2: held(2, rnd=3)})
    b = UnlearningPolicy(rate_limit=4, recovery_rounds=1)
    b.load_state_dict(a.state_dict())
    assert (b.excluded, b.seen) == ({1, 2}, set(range(1, 8)))
    assert (b.last_unlearning, b.recovery_until) == (2, 3)
    assert list(b.pending) == [2] and b.pending[2].server_round == 3
    np.testing.assert_array_equal(b.pending[2].arrays[0], held(2).arrays[0])
    assert b.held_nbytes() == a.held_nbytes() == 16
    assert b.deferred_until(5) == 6 and b.due(6)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"rate_limit": 0}, "rate_limit"),
        ({"rate_limit": 1.5}, "rate_limit"),
        ({"recovery_rounds": -1}, "recovery_rounds"),
    ],
)
def test_bad_settings_fail_early(kwargs: dict[str, float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        UnlearningPolicy(**kwargs)  # type: ignore[arg-type]


def test_arguments_are_keyword_only() -> None:
    with pytest.raises(TypeError):
        UnlearningPolicy(3)  # type: ignore[misc]


def test_guard_counts_the_nodes_present_when_given() -> None:
    policy = UnlearningPolicy()
    policy.observe(range(1, 11))
    assert policy.flag({8}, models(8), present={8, 9, 10}).accepted == [8]
    decision = policy.flag({9}, models(9), present={8, 9, 10})
    assert decision.refused == [9] and decision.reason == "2 flagged of 3 nodes present"
    # Excluded nodes that left no longer count against the ones present.
    assert policy.flag({9}, models(9), present={9, 10, 11, 12, 13}).accepted == [9]


def test_rounds_required_counts_a_deferred_unlearning_and_its_recovery() -> None:
    policy = UnlearningPolicy(rate_limit=5, recovery_rounds=2)
    policy.observe(range(1, 11))
    policy.flag({1}, models(1))
    policy.record_unlearning(1)
    assert policy.rounds_required(3) == 0 and policy.unlearning_round(3) is None
    policy.flag({2}, models(2))
    # Unlearning allowed in round 6, recovery up to round 8.
    assert policy.unlearning_round(3) == 6 and policy.rounds_required(3) == 5
    assert policy.unlearning_round(9) == 10 and policy.rounds_required(9) == 3
    assert policy.drop_pending() == [2] and policy.rounds_required(3) == 0
    assert policy.excluded == {1, 2}


def test_load_state_dict_changes_nothing_on_a_bad_state() -> None:
    a = UnlearningPolicy()
    a.observe(range(1, 8))
    a.flag({1}, models(1))
    state = a.state_dict()
    state["recovery_until"] = "soon"
    b = UnlearningPolicy()
    with pytest.raises(ValueError, match="recovery_until"):
        b.load_state_dict(state)
    assert b.excluded == set() and b.pending == {}
