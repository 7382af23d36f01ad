"""Accumulated cosine similarity to the median update, with a MAD threshold.

After FL-Defender (N. M. Jebreel and J. Domingo-Ferrer, "FL-Defender:
Combating targeted attacks in federated learning", Knowledge-Based Systems 260,
2023, https://doi.org/10.1016/j.knosys.2022.110178) and FoolsGold
(C. Fung, C. J. M. Yoon and I. Beschastnikh, "The limitations of federated
learning in Sybil settings", RAID 2020): last-layer similarities, accumulated
over rounds per node.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from sklearn.metrics.pairwise import cosine_similarity

from fedup_flwr.detectors.base import (
    BaseDetector,
    RoundUpdates,
    mad_threshold,
)
from fedup_flwr.detectors.registry import register_detector

__all__ = ["CosineOutlierDetector"]


@register_detector("cosine_outlier")
class CosineOutlierDetector(BaseDetector):
    """Flags nodes whose accumulated last-layer direction strays from the median.

    Each round (with at least ``min_replies`` replies):

    1. Per node, the update (``global - local``) of the last kernel layer, the
       last array with ``ndim >= 2``, is flattened; the round's coordinate-wise
       median of these updates is the reference.
    2. Each node's cosine similarity to the median
       (:func:`sklearn.metrics.pairwise.cosine_similarity`; a zero vector has
       similarity 0) is added to that node's running sum, and its count of
       scored rounds goes up by one. A node's accumulated similarity is the
       mean over the rounds it took part in, so one noisy round weighs less
       and a persistent attacker stands out (as in FL-Defender and FoolsGold).
    3. The score of a replying node is ``1 - accumulated similarity``
       (a cosine distance in ``[0, 2]``; higher means more suspicious). A node
       is flagged when its score exceeds the median score of the replying nodes
       by more than ``max(k * MAD, atol)``, with
       ``MAD = 1.4826 * median(|score - median score|)``; that is, when its
       accumulated similarity falls below ``median - k * MAD``.

    The ``atol`` floor matters when the MAD is 0 (e.g. most nodes identical):
    then a node is flagged only if it is more than ``atol`` below the median.
    Identical nodes share one score, so they are never flagged. Rounds with
    too few replies are not accumulated.

    The threshold is relative to the round's spread, so with only honest
    nodes the tail beyond ``k`` scaled MADs is still flagged now and then
    (for normal noise about 2% of nodes per round at ``k = 2``, more with few
    nodes, whose MAD is itself noisy). Raise ``k``, or ``atol`` (an absolute
    least distance in cosine units), where false positives are costly, as
    they are in FedUP, which unlearns every flagged node.

    Parameters
    ----------
    k : float (default: 2.0)
        Width of the threshold in scaled MADs; at least 0.
    atol : float (default: 1e-6)
        Least distance below the median similarity that is flagged; at least 0.
    min_replies : int (default: 3)
        See :class:`BaseDetector`.
    seed : int (default: 0)
        Unused (the detector has no randomness); kept for a uniform interface.

    Attributes
    ----------
    scores : dict[int, float]
        The last call's scores (for a round with too few replies: the
        accumulated scores of known nodes, 0.0 for others).

    Examples
    --------
    >>> import numpy as np
    >>> glob = [np.zeros((10, 4)), np.zeros(10)]
    >>> step = np.linspace(-1.0, 1.0, 40).reshape(10, 4)
    >>> replies = {i: [glob[0] - step * (1 + i / 10), glob[1]] for i in range(5)}
    >>> replies[5] = [glob[0] + step, glob[1]]  # the opposite direction
    >>> CosineOutlierDetector().detect(1, replies, glob)
    {5}
    """

    name = "cosine_outlier"

    def __init__(
        self,
        *,
        k: float = 2.0,
        atol: float = 1e-6,
        min_replies: int = 3,
        seed: int = 0,
    ) -> None:
        super().__init__(min_replies=min_replies, seed=seed)
        k = float(k)
        atol = float(atol)
        if not np.isfinite(k) or k < 0.0:
            raise ValueError(f"k must be a finite number >= 0, got {k}")
        if not np.isfinite(atol) or atol < 0.0:
            raise ValueError(f"atol must be a finite number >= 0, got {atol}")
        self.k = k
        self.atol = atol
        self._sums: dict[int, float] = {}
        self._counts: dict[int, int] = {}

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(k={self.k}, atol={self.atol}, "
            f"min_replies={self.min_replies}, seed={self.seed})"
        )

    def accumulated_similarity(self, node: int) -> float | None:
        """Return a node's mean similarity to the median over its rounds.

        Parameters
        ----------
        node : int
            A node id.

        Returns
        -------
        float or None
            The accumulated similarity, or ``None`` for a node never scored.
        """
        count = self._counts.get(int(node), 0)
        return self._sums[int(node)] / count if count else None

    def state_dict(self) -> dict[str, Any]:
        """Return the accumulated similarity sums and counts per node.

        Returns
        -------
        dict[str, Any]
            ``{"nodes": [...], "sums": [...], "counts": [...]}``, parallel
            lists of plain ints and floats (JSON-friendly).
        """
        nodes = sorted(self._counts)
        return {
            "nodes": nodes,
            "sums": [float(self._sums[n]) for n in nodes],
            "counts": [int(self._counts[n]) for n in nodes],
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a state saved by :meth:`state_dict`.

        Parameters
        ----------
        state : Mapping[str, Any]
            The saved state; an empty mapping resets the accumulation.

        Raises
        ------
        ValueError
            If the lists differ in length, or a count is below 1.
        """
        nodes = [int(n) for n in state.get("nodes", [])]
        sums = [float(s) for s in state.get("sums", [])]
        counts = [int(c) for c in state.get("counts", [])]
        if not len(nodes) == len(sums) == len(counts):
            raise ValueError(
                f"state lists differ in length: {len(nodes)} nodes, "
                f"{len(sums)} sums, {len(counts)} counts"
            )
        if any(c < 1 for c in counts):
            raise ValueError(f"state counts must be >= 1, got {counts}")
        self._sums = dict(zip(nodes, sums, strict=True))
        self._counts = dict(zip(nodes, counts, strict=True))

    def _fallback_scores(self, node_ids: Sequence[int]) -> dict[int, float]:
        scores: dict[int, float] = {}
        for node in node_ids:
            similarity = self.accumulated_similarity(node)
            scores[node] = 0.0 if similarity is None else 1.0 - similarity
        return scores

    def _score_and_flag(
        self, server_round: int, updates: RoundUpdates
    ) -> tuple[dict[int, float], set[int]]:
        node_ids = updates.node_ids
        index = self._last_kernel(server_round, updates)
        if index is None:
            return self._fallback_scores(node_ids), set()
        matrix = updates.stack(index)  # only the last layer is read
        median = np.median(matrix, axis=0)
        similarities = cosine_similarity(matrix, median[np.newaxis, :])[:, 0]
        for node, similarity in zip(node_ids, similarities, strict=True):
            self._sums[node] = self._sums.get(node, 0.0) + float(similarity)
            self._counts[node] = self._counts.get(node, 0) + 1
        scores = np.array(
            [1.0 - self._sums[node] / self._counts[node] for node in node_ids]
        )
        threshold = mad_threshold(scores, k=self.k, floor=self.atol)
        flagged = {
            node
            for node, score in zip(node_ids, scores, strict=True)
            if score > threshold
        }
        return (
            {node: float(s) for node, s in zip(node_ids, scores, strict=True)},
            flagged,
        )
