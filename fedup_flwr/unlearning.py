"""One unlearning step of :class:`~fedup_flwr.FedUP`: rate, mask, prune, record.

:func:`choose_rate` picks the step's pruning rate (fixed, or Eq. 4-5 on a
named similarity measure). :func:`unlearn` runs the step on the round's
benign aggregate with FedUP's overridable pieces (``pruning_rate_for``,
``compute_mask``, ``apply_unlearning``), zeroes the inner strategy's
momentum at the pruned weights
(:func:`fedup_flwr.inner_state.forget_pruned`), and records an
:class:`~fedup_flwr.events.UnlearningEvent`. A model with no prunable array
(no ``ndim >= 2``) is recorded as a refusal instead: the nodes stay excluded.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from logging import ERROR, INFO, WARNING
from typing import TYPE_CHECKING

from flwr.app import Array, ArrayRecord
from flwr.common.logger import log

from fedup_flwr.averaging import Model
from fedup_flwr.core import prunable_flags
from fedup_flwr.events import UnlearningEvent
from fedup_flwr.inner_state import forget_pruned
from fedup_flwr.rates import DEFAULT_PRUNING_RATE, RateChoice, adaptive_pruning_rate
from fedup_flwr.similarity import get_similarity
from fedup_flwr.validation import ValidReply

if TYPE_CHECKING:
    from fedup_flwr.strategy import FedUP

__all__ = ["choose_rate", "unlearn"]


def choose_rate(
    benign_models: Sequence[Model],
    global_model: Model,
    *,
    pruning_rate: float | None,
    similarity: str,
    sim_min: float,
    sim_max: float,
    p_min: float,
    p_max: float,
    gamma: float,
) -> RateChoice:
    """The pruning rate of one unlearning step (Eq. 4-5 or fixed).

    Parameters
    ----------
    benign_models : sequence of models
        The benign replies of the round.
    global_model : model
        The arrays the server sent that round (the update measures subtract it).
    pruning_rate : float | None
        A fixed P; None for the adaptive rate.
    similarity : str
        Name of the measure (:func:`fedup_flwr.similarity.get_similarity`).
    sim_min, sim_max, p_min, p_max, gamma : float
        Parameters of Eq. 4-5.

    Returns
    -------
    RateChoice
        P and how it was chosen. The similarity is measured with a fixed P too,
        so that a run shows where the adaptive rate would have been. When it is
        undefined (fewer than two benign replies, or a model the measure cannot
        read) the adaptive rate falls back to
        :data:`~fedup_flwr.rates.DEFAULT_PRUNING_RATE`, with a WARNING.
    """
    value: float | None = None
    reason = f"{len(benign_models)} benign reply(ies): the similarity needs two"
    if len(benign_models) >= 2:
        try:
            value = get_similarity(similarity)(benign_models, global_model)
        except ValueError as err:  # e.g. no kernel: a measure, not a crash
            reason = str(err)
    if pruning_rate is not None:
        return RateChoice(pruning_rate, False, similarity, value)
    if value is None:
        log(
            WARNING,
            "FedUP: no %s similarity (%s); using the default fixed P=%s",
            similarity,
            reason,
            DEFAULT_PRUNING_RATE,
        )
        return RateChoice(DEFAULT_PRUNING_RATE, False, similarity, None)
    params = {
        "sim_min": sim_min,
        "sim_max": sim_max,
        "p_min": p_min,
        "p_max": p_max,
        "gamma": gamma,
    }
    rate = adaptive_pruning_rate(value, **params)
    return RateChoice(rate, True, similarity, value, **params)


def unlearn(
    fedup: FedUP, server_round: int, aggregate: ArrayRecord, benign: list[ValidReply]
) -> ArrayRecord:
    """Unlearn FedUP's pending nodes from ``aggregate`` (Algorithms 1-2).

    Parameters
    ----------
    fedup : FedUP
        The strategy; its policy's pending nodes are unlearned.
    server_round : int
        The round, in FedUP's numbering.
    aggregate : ArrayRecord
        The inner strategy's aggregate of the benign replies.
    benign : list[ValidReply]
        The benign replies of the round.

    Returns
    -------
    ArrayRecord
        The pruned aggregate (``aggregate`` itself when nothing can be pruned).
    """
    policy = fedup.policy
    if not any(prunable_flags(fedup.global_arrays)):
        nodes = policy.drop_pending()
        reason = "the model has no array with ndim >= 2 to prune"
        log(
            ERROR,
            "FedUP: round %s: cannot unlearn nodes %s: %s; they stay excluded",
            server_round,
            nodes,
            reason,
        )
        fedup.events.append(
            UnlearningEvent(server_round, nodes, "refused", reason=reason)
        )
        return aggregate
    start = time.perf_counter()
    held = fedup.state_nbytes()
    pending = policy.pending
    nodes = sorted(pending)
    choice = fedup.pruning_rate_for(benign)
    mask = fedup.compute_mask(
        [r.arrays for r in benign],
        [r.num_examples for r in benign],
        [pending[n].arrays for n in nodes],
        [pending[n].num_examples for n in nodes],
        choice.rate,
    )
    pruned_arrays = fedup.apply_unlearning(aggregate.to_numpy_ndarrays(), mask)
    keys = list(aggregate.keys())
    result = ArrayRecord({k: Array(a) for k, a in zip(keys, pruned_arrays)})
    seconds = time.perf_counter() - start
    event = UnlearningEvent.from_mask(
        server_round,
        nodes,
        mask,
        choice=choice,
        seconds=seconds,
        state_bytes=held,
    )
    fedup.events.append(event)
    policy.record_unlearning(server_round)
    log(
        INFO,
        "FedUP: round %s: unlearned nodes %s, P=%.4f (%s), %d weights pruned in %.3fs",
        server_round,
        nodes,
        choice.rate,
        f"adaptive, {choice.similarity_measure} similarity {choice.similarity:.4f}"
        if choice.adaptive
        else "fixed",
        sum(event.pruned),
        seconds,
    )
    reset = forget_pruned(fedup.strategy, keys, mask)
    if reset:
        log(INFO, "FedUP: round %s: pruned weights zeroed in %s", server_round, reset)
    return result
