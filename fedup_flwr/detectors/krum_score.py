"""Krum scores on the whole update: flag the nodes farthest from their peers.

After Krum: P. Blanchard, E. M. El Mhamdi, R. Guerraoui and J. Stainer,
"Machine learning with adversaries: Byzantine tolerant gradient descent",
NeurIPS 2017.
"""

from __future__ import annotations

import logging

import numpy as np
from flwr.common.logger import log

from fedup_flwr.detectors.base import BaseDetector, RoundUpdates
from fedup_flwr.detectors.registry import register_detector

__all__ = ["KrumScoreDetector"]

_TIE_RTOL = 1e-9


@register_detector("krum_score")
class KrumScoreDetector(BaseDetector):
    """Flags the ``f`` nodes with the highest Krum scores.

    The Krum score of a node (Blanchard et al., NeurIPS 2017) is the sum of the
    squared Euclidean distances from its whole update (``global - local``,
    every floating array; the distances come from inner products accumulated
    chunk by chunk, see :class:`~fedup_flwr.detectors.updates.RoundUpdates`)
    to its ``n - f - 2`` nearest other updates, where ``n`` is the
    number of replies and ``f`` the assumed number of Byzantine nodes. Krum
    keeps the lowest score; this detector flags the ``f`` highest, i.e. the
    nodes farthest from any large group of peers. The score itself is reported
    (higher means more suspicious; it is in squared update units, so compare
    scores within a round only).

    A node among the ``f`` highest is flagged only if its score is strictly
    above the highest score not among them (relative tolerance 1e-9): a tie at
    the boundary is not broken arbitrarily, so identical nodes are never
    flagged. When ``n - f - 2 < 1`` Krum is undefined: nothing is flagged (a
    line is logged) and the scores use one neighbour.

    Parameters
    ----------
    f : int (default: 1)
        Number of nodes to flag per round (the Byzantine nodes Krum
        tolerates); at least 0. ``0`` only reports scores.
    min_replies : int (default: 3)
        See :class:`BaseDetector`.
    seed : int (default: 0)
        Unused (the detector has no randomness); kept for a uniform interface.

    Attributes
    ----------
    scores : dict[int, float]
        The last call's Krum scores.

    Examples
    --------
    >>> import numpy as np
    >>> glob = [np.zeros((10, 4)), np.zeros(10)]
    >>> replies = {i: [glob[0] + 0.01 * i, glob[1]] for i in range(5)}
    >>> replies[5] = [glob[0] + 3.0, glob[1]]
    >>> KrumScoreDetector(f=1).detect(1, replies, glob)
    {5}
    """

    name = "krum_score"

    def __init__(self, *, f: int = 1, min_replies: int = 3, seed: int = 0) -> None:
        super().__init__(min_replies=min_replies, seed=seed)
        if isinstance(f, bool) or not isinstance(f, (int, np.integer)):
            raise TypeError(f"f must be an int, got {f!r}")
        if f < 0:
            raise ValueError(f"f must be >= 0, got {f}")
        self.f = int(f)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(f={self.f}, min_replies={self.min_replies}, "
            f"seed={self.seed})"
        )

    def _score_and_flag(
        self, server_round: int, updates: RoundUpdates
    ) -> tuple[dict[int, float], set[int]]:
        node_ids = updates.node_ids
        n = len(node_ids)
        neighbours = n - self.f - 2
        # from inner products accumulated chunk by chunk: no (n, size) matrix
        distances = updates.squared_distances()
        np.fill_diagonal(distances, np.inf)
        nearest = np.sort(distances, axis=1)[:, : max(1, neighbours)]
        krum = nearest.sum(axis=1)
        scores = {node: float(s) for node, s in zip(node_ids, krum, strict=True)}
        if neighbours < 1:
            log(
                logging.WARNING,
                "%s: round %s: n - f - 2 = %s - %s - 2 < 1, Krum is undefined; "
                "nothing flagged",
                self.name,
                server_round,
                n,
                self.f,
            )
            return scores, set()
        if self.f == 0:
            return scores, set()
        ranked = sorted(node_ids, key=lambda node: (-scores[node], node))
        boundary = scores[ranked[self.f]]  # the highest score not among the f
        margin = _TIE_RTOL * max(abs(scores[ranked[0]]), abs(boundary))
        flagged = {
            node for node in ranked[: self.f] if scores[node] - boundary > margin
        }
        return scores, flagged
