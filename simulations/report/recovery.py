"""Robust recovery figures, computed from a run's per-round curves.

A *first hit* (the round a curve first crosses a mark) says little when the
curve then falls back, and a run that stopped as soon as the mark was hit
cannot say whether it stays. The report therefore gives, per method:

- R_rec as the first hit and as *stays*: the first recovery round from which
  test accuracy stays within the tolerance of *before* until the end of the
  window (:func:`first_hit`, :func:`settles`, :class:`Reach`);
- the rounds until malicious accuracy stays within :data:`MAL_MARGIN` of B's,
  with test accuracy back (:func:`near_baseline_flags`);
- B's figures as the mean over :data:`B_WINDOW` retrain rounds around R*, or
  around its best round when R* was not reached (:func:`baseline_window`);
- whether the Eq. 6 bound ``ceil(R* x P)`` held (:func:`bound_held`);
- whether the attack took hold at all (:func:`attack_took_hold`).

Curves are lists indexed by recovery round (index 0: right after unlearning,
round T), or by retrain round minus one for B.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

MIN_HOLD = 3
"""Rounds a curve must be seen within the mark after a *stays* round for the
window to be long enough to tell that it stays (else the count is a lower
bound, ``≥k``)."""
MAL_MARGIN = 0.02
"""Malicious accuracy counts as back to B's within this margin (2 points)."""
ATTACK_MARGIN = 0.05
"""An attack whose malicious accuracy before unlearning is within this margin
(5 points) of B's did not take hold."""
B_WINDOW = 3
"""Retrain rounds averaged for B's figures, centred on R* (or the best round)."""


def first_hit(flags: Sequence[bool]) -> int | None:
    """Index of the first True in ``flags`` (None: none)."""
    return next((k for k, flag in enumerate(flags) if flag), None)


def settles(flags: Sequence[bool]) -> int | None:
    """First index from which every flag is True to the end (None: the last
    flag is False, or there are none)."""
    k = len(flags)
    while k > 0 and flags[k - 1]:
        k -= 1
    return None if k == len(flags) else k


@dataclass(frozen=True)
class Reach:
    """When a curve reached a mark within a recovery window.

    Attributes
    ----------
    first : int or None
        First recovery round within the mark (None: never).
    stays : int or None
        First round from which it stays within the mark to the window's end
        (None: outside the mark at the end).
    rounds_run : int
        Recovery rounds in the window (the curve has one more point).
    """

    first: int | None
    stays: int | None
    rounds_run: int

    @property
    def held_for(self) -> int | None:
        """Rounds seen within the mark after ``stays`` (None: never stays)."""
        return None if self.stays is None else self.rounds_run - self.stays

    @property
    def conclusive(self) -> bool:
        """Whether the window saw at least :data:`MIN_HOLD` rounds after
        ``stays``: long enough to tell that it stays."""
        return self.held_for is not None and self.held_for >= MIN_HOLD


def reach(flags: Sequence[bool]) -> Reach:
    """:class:`Reach` of ``flags`` (one per point of a curve).

    Raises
    ------
    ValueError
        If ``flags`` is empty (a curve has at least round T).
    """
    if not flags:
        raise ValueError("a recovery curve has at least one point (round T)")
    return Reach(first_hit(flags), settles(flags), len(flags) - 1)


def recovered_flags(
    test_curve: Sequence[float], before: float, tolerance: float
) -> list[bool]:
    """Per round: test accuracy within ``tolerance`` of ``before`` (R_rec's mark)."""
    return [acc >= before - tolerance for acc in test_curve]


def near_baseline_flags(
    test_curve: Sequence[float],
    mal_curve: Sequence[float],
    *,
    before: float,
    tolerance: float,
    baseline_mal: float,
) -> list[bool]:
    """Per round: malicious accuracy within :data:`MAL_MARGIN` above B's while
    test accuracy is back (a model collapsed by pruning does not count)."""
    if len(test_curve) != len(mal_curve):
        raise ValueError(
            f"test and malicious curves differ in length: "
            f"{len(test_curve)} != {len(mal_curve)}"
        )
    return [
        mal <= baseline_mal + MAL_MARGIN and test >= before - tolerance
        for test, mal in zip(test_curve, mal_curve)
    ]


@dataclass(frozen=True)
class Window:
    """B's figures over a few retrain rounds.

    Attributes
    ----------
    rounds : tuple[int, ...]
        Retrain rounds averaged (1 = the first retrain round).
    centre : int
        R*, or B's best round (highest test accuracy) when R* was not reached.
    at_r_star : bool
        Whether ``centre`` is R* (False: the best round, R* not reached).
    test, mal : tuple[float, ...]
        Test and malicious accuracy in those rounds.
    forget : tuple[float, ...]
        Accuracy on the forgotten clients' data in those rounds (empty: not
        given).
    """

    rounds: tuple[int, ...]
    centre: int
    at_r_star: bool
    test: tuple[float, ...]
    mal: tuple[float, ...]
    forget: tuple[float, ...] = ()

    @property
    def test_mean(self) -> float:
        """Mean test accuracy over the window."""
        return statistics.mean(self.test)

    @property
    def mal_mean(self) -> float:
        """Mean malicious accuracy over the window."""
        return statistics.mean(self.mal)

    @property
    def forget_mean(self) -> float | None:
        """Mean forgetting-data accuracy over the window (None: not given)."""
        return statistics.mean(self.forget) if self.forget else None

    @property
    def mal_spread(self) -> float:
        """Max minus min of malicious accuracy over the window."""
        return max(self.mal) - min(self.mal)

    @property
    def test_spread(self) -> float:
        """Max minus min of test accuracy over the window."""
        return max(self.test) - min(self.test)


def baseline_window(
    test_curve: Sequence[float],
    mal_curve: Sequence[float],
    r_star: int | None,
    *,
    size: int = B_WINDOW,
    forget_curve: Sequence[float] | None = None,
) -> Window | None:
    """B's :class:`Window`: the retrain rounds within ``size // 2`` of R*
    (of the best round when ``r_star`` is None) that were run.

    A retrain that stopped at R* has no round after it: the window then holds
    fewer than ``size`` rounds, as its ``rounds`` say.

    Parameters
    ----------
    test_curve, mal_curve : sequence of float
        B's accuracies per retrain round (index 0: round 1).
    r_star : int or None
        R* (1-based), or None when not reached.
    size : int
        Window length, odd and positive.
    forget_curve : sequence of float, optional
        B's accuracy on the forgotten clients' data per retrain round.

    Returns
    -------
    Window or None
        None when there are no retrain rounds.

    Raises
    ------
    ValueError
        On curves of different lengths, an even or non-positive ``size``, or
        an R* outside the retrain rounds.
    """
    if size < 1 or size % 2 == 0:
        raise ValueError(f"size must be a positive odd number, got {size}")
    lengths = {len(test_curve), len(mal_curve)}
    lengths |= set() if forget_curve is None else {len(forget_curve)}
    if len(lengths) > 1:
        raise ValueError(f"B's curves differ in length: {sorted(lengths)}")
    n = len(test_curve)
    if n == 0:
        return None
    if r_star is None:
        centre = max(range(n), key=lambda i: (test_curve[i], -i)) + 1
    elif 1 <= r_star <= n:
        centre = r_star
    else:
        raise ValueError(f"R* = {r_star} is outside the {n} retrain rounds")
    half = size // 2
    rounds = tuple(r for r in range(centre - half, centre + half + 1) if 1 <= r <= n)
    return Window(
        rounds=rounds,
        centre=centre,
        at_r_star=r_star is not None,
        test=tuple(test_curve[r - 1] for r in rounds),
        mal=tuple(mal_curve[r - 1] for r in rounds),
        forget=()
        if forget_curve is None
        else tuple(forget_curve[r - 1] for r in rounds),
    )


def bound_held(r_rec: int | None, rounds_run: int, bound: int | None) -> bool | None:
    """Whether R_rec (first hit) is within the Eq. 6 bound.

    None when there is no bound (R* or P undefined) or when the method was
    not run long enough to tell (not recovered in fewer rounds than the bound).
    """
    if bound is None:
        return None
    if r_rec is not None:
        return r_rec <= bound
    return False if rounds_run >= bound else None


def attack_took_hold(
    mal_before: float, baseline_mal: float | None, *, margin: float = ATTACK_MARGIN
) -> bool | None:
    """Whether malicious accuracy before unlearning is more than ``margin``
    above B's (None: no B to compare with). A scenario where it is not has
    nothing to unlearn: its rows are marked and left out of every claim."""
    if baseline_mal is None:
        return None
    return mal_before > baseline_mal + margin
