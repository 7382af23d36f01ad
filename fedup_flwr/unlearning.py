"""One unlearning step of :class:`~fedup_flwr.FedUP`: mask, prune, record.

:func:`unlearn` runs the step on the round's benign aggregate with FedUP's
overridable pieces (``pruning_rate_for``, ``compute_mask``,
``apply_unlearning``), zeroes the inner strategy's momentum at the pruned
weights (:func:`fedup_flwr.inner_state.forget_pruned`), and records an
:class:`~fedup_flwr.events.UnlearningEvent`. A model with no prunable array
(no ``ndim >= 2``) is recorded as a refusal instead: the nodes stay excluded.
"""

from __future__ import annotations

import time
from logging import ERROR, INFO
from typing import TYPE_CHECKING

from flwr.app import Array, ArrayRecord
from flwr.common.logger import log

from fedup_flwr.core import prunable_flags
from fedup_flwr.events import UnlearningEvent
from fedup_flwr.inner_state import forget_pruned
from fedup_flwr.validation import ValidReply

if TYPE_CHECKING:
    from fedup_flwr.strategy import FedUP

__all__ = ["unlearn"]


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
    rate, similarity = fedup.pruning_rate_for(benign)
    mask = fedup.compute_mask(
        [r.arrays for r in benign],
        [r.num_examples for r in benign],
        [pending[n].arrays for n in nodes],
        [pending[n].num_examples for n in nodes],
        rate,
    )
    pruned_arrays = fedup.apply_unlearning(aggregate.to_numpy_ndarrays(), mask)
    keys = list(aggregate.keys())
    result = ArrayRecord({k: Array(a) for k, a in zip(keys, pruned_arrays)})
    seconds = time.perf_counter() - start
    event = UnlearningEvent.from_mask(
        server_round,
        nodes,
        mask,
        rate=rate,
        seconds=seconds,
        state_bytes=held,
        similarity=similarity,
    )
    fedup.events.append(event)
    policy.record_unlearning(server_round)
    log(
        INFO,
        "FedUP: round %s: unlearned nodes %s, P=%.4f, %d weights pruned in %.3fs",
        server_round,
        nodes,
        rate,
        sum(event.pruned),
        seconds,
    )
    reset = forget_pruned(fedup.strategy, keys, mask)
    if reset:
        log(INFO, "FedUP: round %s: pruned weights zeroed in %s", server_round, reset)
    return result
