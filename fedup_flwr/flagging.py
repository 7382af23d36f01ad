"""One detection step of :class:`~fedup_flwr.FedUP`: ask, record, flag.

One job: each training round, :func:`flag_round` shows FedUP's detector
read-only views of the round's valid replies and of the global arrays
(:mod:`fedup_flwr.detector_answers` checks its answer), records its scores and
the number flagged in the round's metrics, and hands the flagged nodes to the
policy (:meth:`fedup_flwr.policy.UnlearningPolicy.flag`), which excludes them
or, when they would be half or more of the nodes (Theorem 1 needs a benign
majority), refuses; a refusal is logged and recorded as an
:class:`~fedup_flwr.events.UnlearningEvent`. A failing or malformed answer
means no detection that round, logged at ERROR.
"""

from __future__ import annotations

from logging import ERROR, INFO
from typing import TYPE_CHECKING

from flwr.common.logger import log

from fedup_flwr.detector_answers import ask_detector, check_scores, read_only
from fedup_flwr.events import UnlearningEvent
from fedup_flwr.policy import HeldModel
from fedup_flwr.validation import ValidReply

if TYPE_CHECKING:
    from fedup_flwr.strategy import FedUP

__all__ = ["flag_round"]


def flag_round(
    fedup: FedUP,
    server_round: int,
    valid: list[ValidReply],
    *,
    held: dict[int, HeldModel],
    present: set[int] | None,
    metrics: dict[str, float],
) -> None:
    """Ask FedUP's detector about this round's replies and act on its answer.

    Parameters
    ----------
    fedup : FedUP
        The strategy; its detector is asked, its policy told, its events
        appended to.
    server_round : int
        The round, in FedUP's numbering.
    valid : list[ValidReply]
        The round's valid replies (nothing is asked when empty).
    held : dict[int, HeldModel]
        The replies FedUP holds this round, by node; the flagged nodes' become
        the policy's pending models.
    present : set[int] | None
        Nodes connected when the round was configured (None: unknown); the
        replying nodes are added to them for the policy's majority check.
    metrics : dict[str, float]
        The round's metrics, updated in place (``fedup-score-<node>``,
        ``fedup-flagged``, ``fedup-detector-errors``, ``fedup-refused``).
    """
    detector = fedup.detector
    if detector is None or not valid:
        return
    # Read-only views: a detector's write cannot reach FedUP's state.
    replies = {r.node_id: read_only(r.arrays) for r in valid}
    glob = read_only(fedup.global_arrays)
    flagged = ask_detector(detector, server_round, replies, glob)
    if isinstance(flagged, str):
        log(
            ERROR,
            "FedUP: round %s: detector %s; no detection",
            server_round,
            flagged,
        )
        metrics["fedup-detector-errors"] = 1.0
        return
    scores = check_scores(getattr(detector, "scores", None))
    for node, score in (scores if isinstance(scores, dict) else {}).items():
        metrics[f"fedup-score-{node}"] = score
    metrics["fedup-flagged"] = float(len(flagged - fedup.excluded))
    present = None if present is None else present | set(replies)
    decision = fedup.policy.flag(flagged, held, present=present)
    if decision.accepted:
        log(
            INFO,
            "FedUP: round %s: nodes %s flagged and excluded",
            server_round,
            decision.accepted,
        )
    elif decision.refused:  # Theorem 1 needs a benign majority
        log(
            ERROR,
            "FedUP: round %s: refusing to unlearn %s: %s would be half or more",
            server_round,
            decision.refused,
            decision.reason,
        )
        fedup.events.append(
            UnlearningEvent(
                server_round, decision.refused, "refused", reason=decision.reason
            )
        )
        metrics["fedup-refused"] = 1.0
