"""The report's robust recovery definitions, on curves small enough to check
by hand (issue 12): first hit vs stays, B's window, Eq. 6, attack strength."""

from __future__ import annotations

import pytest

from simulations.report.cells import hold_mark, reach_cell
from simulations.report.recovery import (
    Reach,
    attack_took_hold,
    baseline_window,
    bound_held,
    first_hit,
    near_baseline_flags,
    reach,
    recovered_flags,
    settles,
)

T, F = True, False


def test_first_hit_and_settles() -> None:
    flags = [F, T, F, T, T]
    assert first_hit(flags) == 1  # within at round 1 ...
    assert settles(flags) == 3  # ... but it stays only from round 3
    assert settles([T, T]) == 0
    assert settles([T, F]) is None  # outside at the end: never stays
    assert first_hit([F, F]) is None and settles([F, F]) is None
    assert first_hit([]) is None and settles([]) is None


def test_reach_says_whether_the_window_was_long_enough() -> None:
    long = reach([F, T, F, T, T, T, T])  # 6 recovery rounds
    assert (long.first, long.stays, long.rounds_run) == (1, 3, 6)
    assert long.held_for == 3 and long.conclusive  # 3 rounds seen after round 3
    short = reach([F, T])  # a run that stopped as soon as it recovered
    assert (short.first, short.stays, short.held_for) == (1, 1, 0)
    assert not short.conclusive
    never = reach([F, T, F])
    assert never.stays is None and never.held_for is None and not never.conclusive
    with pytest.raises(ValueError, match="at least one point"):
        reach([])


def test_recovered_and_near_baseline_flags() -> None:
    # before 0.80, tolerance 0.01: the mark is 0.79.
    assert recovered_flags([0.5, 0.785, 0.795], 0.80, 0.01) == [F, F, T]
    flags = near_baseline_flags(
        [0.10, 0.795, 0.795, 0.70],  # collapsed; back; back; not back
        [0.00, 0.030, 0.050, 0.00],
        before=0.80,
        tolerance=0.01,
        baseline_mal=0.02,  # within 2 points: malicious <= 0.04
    )
    # A collapsed model (malicious 0) does not count; nor does a model whose
    # test accuracy is not back.
    assert flags == [F, T, F, F]
    with pytest.raises(ValueError, match="differ in length"):
        near_baseline_flags([0.1], [], before=0.8, tolerance=0.01, baseline_mal=0.0)


def test_baseline_window_around_r_star() -> None:
    test = [0.50, 0.60, 0.70, 0.65, 0.60]
    mal = [0.30, 0.20, 0.10, 0.20, 0.30]
    w = baseline_window(test, mal, 3)
    assert w is not None
    assert w.rounds == (2, 3, 4) and w.centre == 3 and w.at_r_star
    assert w.mal_mean == pytest.approx(0.5 / 3)
    assert w.mal_spread == pytest.approx(0.1)
    assert w.test_mean == pytest.approx(0.65)
    assert w.test_spread == pytest.approx(0.1)
    # A retrain that stopped at R* (its last round) has no round after it.
    end = baseline_window(test, mal, 5)
    assert end is not None and end.rounds == (4, 5)
    assert end.mal_mean == pytest.approx(0.25)


def test_baseline_window_around_the_best_round_when_r_star_is_missing() -> None:
    # B peaked at round 2 (first of the tied best) and declined: its last round
    # (what results.json records) is not its best.
    test = [0.50, 0.70, 0.70, 0.40]
    mal = [0.10, 0.04, 0.06, 0.30]
    w = baseline_window(test, mal, None)
    assert w is not None
    assert w.centre == 2 and not w.at_r_star and w.rounds == (1, 2, 3)
    assert w.mal_mean == pytest.approx(0.2 / 3)
    assert baseline_window([], [], None) is None


def test_baseline_window_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="odd"):
        baseline_window([0.5, 0.6], [0.1, 0.1], 1, size=2)
    with pytest.raises(ValueError, match="outside the 2 retrain rounds"):
        baseline_window([0.5, 0.6], [0.1, 0.1], 3)
    with pytest.raises(ValueError, match="differ in length"):
        baseline_window([0.5, 0.6], [0.1], 1)


def test_bound_held() -> None:
    assert bound_held(1, 5, 1) is True
    assert bound_held(2, 5, 1) is False
    assert bound_held(None, 5, 2) is False  # never recovered in 5 >= 2 rounds
    assert bound_held(None, 1, 2) is None  # stopped before the bound: can't tell
    assert bound_held(3, 5, None) is None  # no bound (R* or P undefined)


def test_attack_took_hold() -> None:
    assert attack_took_hold(0.40, 0.36) is False  # 4 points above B
    assert attack_took_hold(0.43, 0.36) is True  # 7 points above B
    assert attack_took_hold(0.30, 0.36) is False  # below B
    assert attack_took_hold(0.43, None) is None  # no B to compare with
    assert attack_took_hold(0.43, 0.36, margin=0.10) is False


def test_reach_cells() -> None:
    assert reach_cell(Reach(1, 3, 6)) == "1 / 3"
    assert reach_cell(Reach(1, None, 6)) == "1 / >6"
    assert reach_cell(Reach(None, None, 5)) == ">5 / >5"
    stopped = Reach(2, 2, 2)
    assert reach_cell(stopped, True) == "2 / ≥2 (stopped early at 2)"
    assert reach_cell(Reach(3, 4, 5), False) == "3 / ≥4 (window ended at 5)"
    # Not reached in a run that stopped early (a method stopped once its test
    # accuracy was back, before malicious accuracy reached B's).
    assert reach_cell(Reach(None, None, 1), True) == ">1 / >1 (stopped early at 1)"


def test_hold_mark() -> None:
    assert hold_mark([True, True]) == ""
    assert hold_mark([None]) == ""
    assert hold_mark([False]) == "attack did not take hold"
    assert hold_mark([True, False, True]) == "attack did not take hold in 1 of 3 seeds"
