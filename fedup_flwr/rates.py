"""FedUP's rates: the default and adaptive pruning rates (Eq. 4-5), counts, bound.

:data:`DEFAULT_PRUNING_RATE` is the fixed P FedUP uses unless told otherwise;
:func:`adaptive_pruning_rate` maps a similarity onto P (Eq. 4-5) and
:class:`RateChoice` records which of the two a step used and why.
:func:`prune_count` says how many weights a rate prunes in an array, and
:func:`recovery_rounds_bound` bounds the recovery rounds (Eq. 6).

Pure Python and numpy; :mod:`fedup_flwr.core` re-exports the public names.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from fractions import Fraction

__all__ = [
    "DEFAULT_PRUNING_RATE",
    "RateChoice",
    "adaptive_pruning_rate",
    "check_rate",
    "prune_count",
    "pruning_rate",
    "recovery_rounds_bound",
]

DEFAULT_PRUNING_RATE = 0.01
"""FedUP's default pruning rate P: fixed, whatever the similarity.

No similarity measure separates IID from non-IID clients at the round FedUP
unlearns (``docs/notes/similarity.md``: the paper-literal one gives P near
``p_max`` everywhere), so the default is a fixed P chosen on the damage
figures (pruned-model accuracy, recovery rounds, attack removed) of the
committed pruning-rate sweeps (backdoor and label flipping, CIFAR-10 and
Fashion-MNIST, IID and Dirichlet, three seeds each; ``docs/results.md``):
P = 1% removed a moderate backdoor as fully as larger rates, cost the least
test accuracy right after pruning and recovered first or tied. A backdoor that
has fully taken hold needs more: with IID clients P = 5-10% removed more of
it at the cost of a round, and under Dirichlet(0.5) no rate tried removed it
(``docs/notes/rate_sweeps.md``). The rate is a setting, and the sweeps are the
evidence for its value. ``FedUP(pruning_rate=None)`` gives the adaptive rate
of Eq. 4-5 instead.
"""


@dataclass(frozen=True)
class RateChoice:
    """The pruning rate of one unlearning step and how it was chosen.

    Attributes
    ----------
    rate : float
        The P used.
    adaptive : bool
        True when P came from Eq. 4-5, False for a fixed P (or the fallback to
        :data:`DEFAULT_PRUNING_RATE` when the similarity was undefined).
    similarity_measure : str
        Name of the similarity measure (:mod:`fedup_flwr.similarity`).
    similarity : float | None
        The benign clients' similarity under that measure; also measured with a
        fixed P, so that a sweep shows where the adaptive rate would be. None
        when undefined (fewer than two benign replies).
    sim_min, sim_max, p_min, p_max, gamma : float | None
        The parameters of Eq. 4-5 when ``adaptive``; None otherwise.
    """

    rate: float
    adaptive: bool = False
    similarity_measure: str = ""
    similarity: float | None = None
    sim_min: float | None = None
    sim_max: float | None = None
    p_min: float | None = None
    p_max: float | None = None
    gamma: float | None = None


def check_rate(rate: float, name: str = "rate") -> float:
    """``float(rate)``, or ValueError naming ``name`` when outside [0, 1] or NaN."""
    rate = float(rate)
    if not 0.0 <= rate <= 1.0 or math.isnan(rate):
        raise ValueError(f"{name} must be in [0, 1], got {rate!r}")
    return rate


def prune_count(rate: float, size: int) -> int:
    """``ceil(rate * size)`` with the rate taken as the decimal it prints as.

    Binary floating point makes ``0.1 * 30`` slightly above 3; reading the rate
    as its shortest decimal (``Fraction("0.1")``) gives the 3 a user expects.
    """
    rate = check_rate(rate)
    if size < 0:
        raise ValueError(f"size must be non-negative, got {size}")
    return math.ceil(Fraction(repr(rate)) * size)


def adaptive_pruning_rate(
    similarity: float,
    *,
    p_min: float = 0.01,
    p_max: float = 0.15,
    gamma: float = 5.0,
    sim_min: float = 0.5,
    sim_max: float = 1.0,
) -> float:
    """Adaptive pruning rate from the clients' similarity (Eq. 4 and 5).

    ``z = clip((similarity - sim_min) / (sim_max - sim_min), 0, 1)`` and
    ``P = (p_max - p_min) * z**gamma + p_min``.

    Parameters
    ----------
    similarity : float
        Mean cosine similarity of the benign clients' last layers.
    p_min, p_max : float
        Rates for ``z = 0`` and ``z = 1``; ``0 <= p_min <= p_max <= 1``.
    gamma : float
        Steepness (> 0); the paper uses 5.
    sim_min, sim_max : float
        Range of the similarity mapped onto [0, 1]; ``sim_min < sim_max``.

    Returns
    -------
    float
        The pruning rate P in ``[p_min, p_max]``.
    """
    if not math.isfinite(similarity):
        raise ValueError(f"similarity must be finite, got {similarity!r}")
    check_rate(p_min, "p_min")
    check_rate(p_max, "p_max")
    if p_min > p_max:
        raise ValueError(f"p_min ({p_min}) must not exceed p_max ({p_max})")
    if not (math.isfinite(gamma) and gamma > 0):
        raise ValueError(f"gamma must be positive, got {gamma!r}")
    if not (math.isfinite(sim_min) and math.isfinite(sim_max) and sim_min < sim_max):
        raise ValueError(f"need sim_min < sim_max, got {sim_min} and {sim_max}")
    z = min(max((similarity - sim_min) / (sim_max - sim_min), 0.0), 1.0)
    return float((p_max - p_min) * z**gamma + p_min)


def pruning_rate(similarity: float, **kwargs: float) -> float:
    """Deprecated alias of :func:`adaptive_pruning_rate`.

    Renamed because ``pruning_rate`` is also the name of FedUP's fixed-rate
    argument; this alias will be removed in the next release.

    Parameters
    ----------
    similarity : float
        As for :func:`adaptive_pruning_rate`.
    **kwargs : float
        ``p_min``, ``p_max``, ``gamma``, ``sim_min``, ``sim_max``.

    Returns
    -------
    float
        ``adaptive_pruning_rate(similarity, **kwargs)``.
    """
    warnings.warn(
        "fedup_flwr.pruning_rate is deprecated; use adaptive_pruning_rate",
        DeprecationWarning,
        stacklevel=2,
    )
    return adaptive_pruning_rate(similarity, **kwargs)


def recovery_rounds_bound(rounds_from_scratch: int, rate: float) -> int:
    """Upper bound on recovery rounds, ``ceil(R* * P)`` (Eq. 6).

    Parameters
    ----------
    rounds_from_scratch : int
        R*, rounds a retrain from scratch needs (>= 0).
    rate : float
        Pruning rate P in [0, 1].
    """
    if int(rounds_from_scratch) != rounds_from_scratch or rounds_from_scratch < 0:
        raise ValueError(
            "rounds_from_scratch must be a non-negative integer, "
            f"got {rounds_from_scratch!r}"
        )
    return prune_count(rate, int(rounds_from_scratch))
