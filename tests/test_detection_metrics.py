"""Per-run detection metrics (issue 14) on tiny hand-made rounds."""

from __future__ import annotations

import pytest

from simulations.detection.metrics import (
    RoundMetrics,
    persistent,
    run_metrics,
    summarize,
)

MAL, BEN = frozenset({1, 2}), frozenset({3, 4, 5})


def rm(rnd: int, flagged: set[int], mal: frozenset[int] = MAL,
       ben: frozenset[int] = BEN) -> RoundMetrics:  # fmt: skip
    return RoundMetrics(rnd, frozenset(flagged), mal, ben)


def test_run_flag_sets_are_unions_over_rounds() -> None:
    # Attacker 1 in round 1, attacker 1 and benign 3 in round 2, nothing in 3.
    run = run_metrics([rm(1, {1}), rm(2, {1, 3}), rm(3, set())])
    assert run.flagged == {1, 3} and run.rounds == 3
    assert (run.tp, run.fp, run.fn) == (1, 1, 1)
    assert run.precision == 0.5  # 1 of {1, 3}
    assert run.recall == 0.5  # 1 of {1, 2}
    assert run.f1 == 0.5  # 2*1 / (2*1 + 1 + 1)
    assert run.fp_rate == pytest.approx(1 / 3)  # 3 of {3, 4, 5}


def test_a_node_flagged_in_many_rounds_counts_once() -> None:
    run = run_metrics([rm(r, {1, 3}) for r in range(1, 6)])
    assert (run.tp, run.fp, run.fn) == (1, 1, 1)
    assert run.precision == 0.5


def test_all_attackers_over_several_rounds_is_a_perfect_run() -> None:
    # No round flags both attackers, but the run does: per-round means miss it.
    rounds = [rm(1, {1}), rm(2, {2})]
    run = run_metrics(rounds)
    assert (run.precision, run.recall, run.f1, run.fp_rate) == (1.0, 1.0, 1.0, 0.0)
    s = summarize(rounds)
    assert s["recall"] == 0.5 and s["run_recall"] == 1.0
    assert s["f1"] == pytest.approx(2 / 3) and s["run_f1"] == 1.0


def test_run_sets_skip_rounds_before_from_round() -> None:
    rounds = [rm(1, {3}), rm(2, {1, 2})]
    assert run_metrics(rounds, from_round=2).flagged == {1, 2}
    s = summarize(rounds, from_round=2)
    assert (s["run_precision"], s["run_recall"], s["run_fp"]) == (1.0, 1.0, 0)
    assert s["run_fp_rate"] == 0.0
    assert s["first_flag_round"] == 1  # first-* rounds still see every round


def test_nodes_that_reply_in_some_rounds_only() -> None:
    # Attacker 2 replies only in round 2; benign 5 only in round 1.
    rounds = [
        RoundMetrics(1, frozenset({1}), frozenset({1}), frozenset({3, 4, 5})),
        RoundMetrics(2, frozenset(), frozenset({1, 2}), frozenset({3, 4})),
    ]
    run = run_metrics(rounds)
    assert run.malicious == {1, 2} and run.benign == {3, 4, 5}
    assert (run.tp, run.fn) == (1, 1)


def test_first_correct_round_needs_an_attacker_and_no_benign_node() -> None:
    rounds = [
        rm(1, set()),  # nothing flagged: not correct
        rm(2, {1, 3}),  # an attacker, but also a benign node: not correct
        rm(3, {3}),  # only a benign node: not correct
        rm(4, {2}),  # one attacker, no benign node: the first correct round
        rm(5, {1, 2}),  # exact
    ]
    s = summarize(rounds)
    assert s["first_correct_round"] == 4
    assert s["first_exact_round"] == 5
    assert s["first_flag_round"] == 2 and s["first_flag_correct"] is False
    assert s["correct_rounds"] == 2
    assert s["exact_rounds"] == 1  # round 5 only: every attacker, no one else


def test_no_attack_false_alarm_rate_is_the_share_of_rounds_with_a_flag() -> None:
    none: frozenset[int] = frozenset()
    ben = frozenset({1, 2, 3, 4})
    rounds = [
        RoundMetrics(1, frozenset(), none, ben),
        RoundMetrics(2, frozenset({2}), none, ben),
        RoundMetrics(3, frozenset(), none, ben),
        RoundMetrics(4, frozenset({2, 3}), none, ben),
    ]
    s = summarize(rounds)
    assert s["flagged_round_rate"] == 0.5  # rounds 2 and 4 of 4
    assert s["first_correct_round"] is None  # never correct without attackers
    assert s["run_recall"] is None  # no attacker: undefined
    assert s["run_precision"] == 0.0 and s["run_f1"] == 0.0
    assert s["run_fp_rate"] == 0.5  # {2, 3} of {1, 2, 3, 4}
    quiet = summarize([RoundMetrics(1, frozenset(), none, ben)])
    assert quiet["flagged_round_rate"] == 0.0
    assert quiet["run_f1"] is None and quiet["run_precision"] is None
    assert summarize([])["flagged_round_rate"] is None


def test_per_round_means_are_kept() -> None:
    s = summarize([rm(1, {1}), rm(2, {1, 3})])
    assert s["precision"] == pytest.approx((1.0 + 0.5) / 2)
    assert s["recall"] == pytest.approx(0.5)
    assert s["fp_rate"] == pytest.approx((0 + 1 / 3) / 2)
    assert s["rounds_measured"] == 2 and s["flag_rounds"] == 2


def test_persistence_keeps_a_flag_only_with_enough_recent_votes() -> None:
    a, ab, none = frozenset({1}), frozenset({1, 2}), frozenset()
    flags = [a, ab, none, a, ab]
    # 2 of the last 3 rounds: 1 from round 2 on; 2 (rounds 2 and 5) never twice
    # within 3 rounds.
    kept = persistent(flags, window=3, votes=2)
    assert [sorted(f) for f in kept] == [[], [1], [1], [1], [1]]
    assert [sorted(f) for f in persistent(flags, window=3, votes=3)] == [
        [], [], [], [], []
    ]  # fmt: skip


def test_persistence_one_of_one_keeps_every_flag() -> None:
    flags = [frozenset({1}), frozenset(), frozenset({2, 3})]
    assert persistent(flags, window=1, votes=1) == flags


@pytest.mark.parametrize(("window", "votes"), [(0, 1), (3, 0), (2, 3)])
def test_persistence_rejects_an_impossible_rule(window: int, votes: int) -> None:
    with pytest.raises(ValueError, match="votes <= window"):
        persistent([frozenset({1})], window=window, votes=votes)
