"""Detection quality metrics: per round, per run, and a detector's summary.

Notation, for one detector: ``F`` the nodes it flagged, ``M`` the malicious
nodes, ``B`` the benign nodes, all among the nodes that replied.

* Per round ``r`` (:class:`RoundMetrics`): ``F``, ``M``, ``B`` of that round.
* Per run (:class:`RunMetrics`, :func:`run_metrics`): the **flag sets over the
  whole run**, ``F = ∪ F_r``, ``M = ∪ M_r``, ``B = ∪ B_r \\ M`` over the
  measured rounds ``r >= from_round``: a node flagged in any round counts as
  flagged once, so a benign node flagged in one round is a false positive of
  the run however often it is flagged.

On either, with ``tp = |F ∩ M|``, ``fp = |F ∩ B|`` and ``fn = |M \\ F|``:

* ``precision = tp / |F|``; undefined (NaN) when ``F`` is empty;
* ``recall = tp / |M|``; undefined when ``M`` is empty (no attack);
* ``f1 = 2 tp / (2 tp + fp + fn)``: the harmonic mean of the two where both
  exist, 0 when nothing malicious is flagged, undefined only when ``F`` and
  ``M`` are both empty;
* ``fp_rate = fp / |B|``.

A round is **correct** when its flagged set includes an attacker and no
benign node (``F`` non-empty and ``F ⊆ M``); the **first correct round** is
the first such round of the run. It is the round in which FedUP, which
unlearns what its detector reports, would first unlearn attackers and no
benign client. Without an attack no round is correct.

On runs without an attack, the **false-alarm rate** is the fraction of the
measured rounds in which any client was flagged (``flagged_round_rate``; it is
computed for every run, and is a false-alarm rate only without an attack).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["RoundMetrics", "RunMetrics", "persistent", "run_metrics", "summarize"]


class _Confusion:
    """Counts and rates of a flagged set against the ground truth."""

    flagged: frozenset[int]
    malicious: frozenset[int]
    benign: frozenset[int]

    @property
    def tp(self) -> int:
        """Malicious nodes flagged."""
        return len(self.flagged & self.malicious)

    @property
    def fp(self) -> int:
        """Benign nodes flagged (flagged nodes not known as malicious)."""
        return len(self.flagged - self.malicious)

    @property
    def fn(self) -> int:
        """Malicious nodes not flagged."""
        return len(self.malicious - self.flagged)

    @property
    def precision(self) -> float:
        """``tp / |flagged|``; NaN when nothing is flagged."""
        return self.tp / len(self.flagged) if self.flagged else math.nan

    @property
    def recall(self) -> float:
        """``tp / |malicious|``; NaN when there is no malicious node."""
        return self.tp / len(self.malicious) if self.malicious else math.nan

    @property
    def f1(self) -> float:
        """``2 tp / (2 tp + fp + fn)``; NaN when that is ``0 / 0``."""
        denominator = 2 * self.tp + self.fp + self.fn
        return 2 * self.tp / denominator if denominator else math.nan

    @property
    def fp_rate(self) -> float:
        """``fp / |benign|``; NaN when there is no benign node."""
        return self.fp / len(self.benign) if self.benign else math.nan

    @property
    def correct(self) -> bool:
        """A non-empty flagged set made only of malicious nodes."""
        return bool(self.flagged) and self.flagged <= self.malicious

    @property
    def exact(self) -> bool:
        """The flagged set is exactly the malicious nodes (and not empty)."""
        return bool(self.flagged) and self.flagged == self.malicious


@dataclass(frozen=True)
class RoundMetrics(_Confusion):
    """One detector's decision in one round, against the ground truth.

    Parameters
    ----------
    server_round : int
        The round.
    flagged : frozenset[int]
        The nodes the detector flagged.
    malicious : frozenset[int]
        The malicious nodes that replied this round.
    benign : frozenset[int]
        The benign nodes that replied this round.

    Examples
    --------
    >>> m = RoundMetrics(1, frozenset({1, 5}), frozenset({1, 2}), frozenset({5, 6}))
    >>> m.precision, m.recall, m.f1, m.fp_rate
    (0.5, 0.5, 0.5, 0.5)
    """

    server_round: int
    flagged: frozenset[int]
    malicious: frozenset[int]
    benign: frozenset[int]


@dataclass(frozen=True)
class RunMetrics(_Confusion):
    """One detector's flag sets over a whole run, against the ground truth.

    Parameters
    ----------
    flagged : frozenset[int]
        The nodes flagged in any measured round.
    malicious : frozenset[int]
        The malicious nodes that replied in any measured round.
    benign : frozenset[int]
        The other nodes that replied in any measured round.
    rounds : int
        The number of measured rounds.
    """

    flagged: frozenset[int]
    malicious: frozenset[int]
    benign: frozenset[int]
    rounds: int


def run_metrics(rounds: Iterable[RoundMetrics], from_round: int = 1) -> RunMetrics:
    """Union the flag sets of the rounds ``>= from_round`` (see module docs).

    Parameters
    ----------
    rounds : Iterable[RoundMetrics]
        One detector's rounds of one run.
    from_round : int (default: 1)
        The first round measured.

    Returns
    -------
    RunMetrics
        The run's flag sets.

    Examples
    --------
    >>> mal, ben = frozenset({1, 2}), frozenset({3, 4})
    >>> run = run_metrics([RoundMetrics(1, frozenset({1}), mal, ben),
    ...                    RoundMetrics(2, frozenset({1, 3}), mal, ben)])
    >>> sorted(run.flagged), run.precision, run.recall, run.fp_rate
    ([1, 3], 0.5, 0.5, 0.5)
    """
    measured = [m for m in rounds if m.server_round >= from_round]
    flagged: frozenset[int] = frozenset().union(*(m.flagged for m in measured))
    malicious: frozenset[int] = frozenset().union(*(m.malicious for m in measured))
    benign: frozenset[int] = frozenset().union(*(m.benign for m in measured))
    return RunMetrics(flagged, malicious, benign - malicious, len(measured))


def persistent(
    flags: Sequence[frozenset[int]], *, window: int, votes: int
) -> list[frozenset[int]]:
    """The flags a k-of-n persistence rule keeps, round by round.

    A client stays flagged in a round only if it was flagged in at least
    ``votes`` of the last ``window`` rounds, that round included. This is the
    rule an operator reaches for to quieten a noisy detector ("act only on a
    client flagged again and again"); the detection report measures it on the
    recorded flags, which it can do exactly because such a rule only filters
    a detector's answers and never changes what the detector sees.

    Parameters
    ----------
    flags : Sequence[frozenset[int]]
        One detector's flag sets, one per consecutive round.
    window : int
        Rounds looked at, ``>= 1``.
    votes : int
        Flags needed among them, ``1 <= votes <= window``.

    Returns
    -------
    list[frozenset[int]]
        The kept flag sets, one per round.

    Raises
    ------
    ValueError
        If ``window`` or ``votes`` is out of range.

    Examples
    --------
    >>> a, b = frozenset({1}), frozenset({1, 2})
    >>> [sorted(f) for f in persistent([a, b, b], window=2, votes=2)]
    [[], [1], [1, 2]]
    """
    if window < 1 or not 1 <= votes <= window:
        raise ValueError(
            f"need 1 <= votes <= window, got votes={votes}, window={window}"
        )
    kept: list[frozenset[int]] = []
    for i in range(len(flags)):
        recent = flags[max(0, i - window + 1) : i + 1]
        counts = Counter(node for f in recent for node in f)
        kept.append(frozenset(n for n, c in counts.items() if c >= votes))
    return kept


def _mean(values: Iterable[float]) -> float | None:
    """Mean of the values that are not NaN; ``None`` when there are none."""
    finite = [v for v in values if not math.isnan(v)]
    return sum(finite) / len(finite) if finite else None


def _defined(value: float) -> float | None:
    return None if math.isnan(value) else value


def summarize(rounds: Sequence[RoundMetrics], from_round: int = 1) -> dict[str, Any]:
    """Summarize one detector's rounds of one run.

    Parameters
    ----------
    rounds : Sequence[RoundMetrics]
        The detector's rounds, in any order.
    from_round : int (default: 1)
        Means, counts and the run's flag sets use rounds ``>= from_round``;
        the ``first_*`` rounds look at every round.

    Returns
    -------
    dict[str, Any]
        Per-round means ``precision``, ``recall``, ``f1``, ``fp_rate`` (over
        the rounds where each is defined, or ``None``); the run's
        ``run_precision``, ``run_recall``, ``run_f1``, ``run_fp_rate`` (or
        ``None`` where undefined) and ``run_tp``, ``run_fp``, ``run_fn``;
        ``first_correct_round``, ``first_exact_round``, ``first_flag_round``
        (or ``None``) and ``first_flag_correct`` (or ``None``); the counts
        ``flag_rounds``, ``correct_rounds``, ``exact_rounds`` (every attacker
        flagged and no one else), ``rounds_measured`` and
        ``flagged_round_rate = flag_rounds / rounds_measured`` (``None``
        without measured rounds).

    Examples
    --------
    >>> mal, ben = frozenset({1}), frozenset({2, 3})
    >>> rs = [RoundMetrics(1, frozenset(), mal, ben),
    ...       RoundMetrics(2, frozenset({1, 2}), mal, ben),
    ...       RoundMetrics(3, frozenset({1}), mal, ben)]
    >>> s = summarize(rs)
    >>> s["first_correct_round"], s["first_flag_round"], s["first_flag_correct"]
    (3, 2, False)
    >>> round(s["precision"], 2), round(s["recall"], 2), round(s["fp_rate"], 2)
    (0.75, 0.67, 0.17)
    >>> s["run_precision"], s["run_recall"], s["run_fp_rate"]
    (0.5, 1.0, 0.5)
    """
    ordered = sorted(rounds, key=lambda m: m.server_round)
    measured = [m for m in ordered if m.server_round >= from_round]
    first_correct = next((m.server_round for m in ordered if m.correct), None)
    first_exact = next((m.server_round for m in ordered if m.exact), None)
    first_flag = next((m for m in ordered if m.flagged), None)
    flag_rounds = sum(1 for m in measured if m.flagged)
    run = run_metrics(measured, from_round)
    return {
        "precision": _mean(m.precision for m in measured),
        "recall": _mean(m.recall for m in measured),
        "f1": _mean(m.f1 for m in measured),
        "fp_rate": _mean(m.fp_rate for m in measured),
        "run_precision": _defined(run.precision),
        "run_recall": _defined(run.recall),
        "run_f1": _defined(run.f1),
        "run_fp_rate": _defined(run.fp_rate),
        "run_tp": run.tp,
        "run_fp": run.fp,
        "run_fn": run.fn,
        "first_correct_round": first_correct,
        "first_exact_round": first_exact,
        "first_flag_round": None if first_flag is None else first_flag.server_round,
        "first_flag_correct": None if first_flag is None else first_flag.correct,
        "flag_rounds": flag_rounds,
        "correct_rounds": sum(1 for m in measured if m.correct),
        "exact_rounds": sum(1 for m in measured if m.exact),
        "rounds_measured": len(measured),
        "flagged_round_rate": flag_rounds / len(measured) if measured else None,
    }
