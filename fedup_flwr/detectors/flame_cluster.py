"""HDBSCAN on cosine distances of the updates, plus an update-norm bound.

After FLAME: T. D. Nguyen, P. Rieger, H. Chen, H. Yalame, H. Möllering,
H. Fereidooni, S. Marchal, M. Miettinen, A. Mirhoseini, S. Zeitouni,
F. Koushanfar, A.-R. Sadeghi and T. Schneider, "FLAME: Taming backdoors in
federated learning", USENIX Security 2022.
"""

from __future__ import annotations

import logging

import numpy as np
from flwr.common.logger import log
from numpy.typing import NDArray
from sklearn.cluster import HDBSCAN

from fedup_flwr.detectors.base import BaseDetector, RoundUpdates, mad_threshold
from fedup_flwr.detectors.registry import register_detector

__all__ = ["FlameClusterDetector", "majority_cluster", "outside_majority"]


def majority_cluster(distances: NDArray[np.float64]) -> NDArray[np.bool_]:
    """FLAME's clustering: the members of the HDBSCAN cluster holding a majority.

    :class:`sklearn.cluster.HDBSCAN` on precomputed distances with
    ``min_cluster_size = floor(n / 2) + 1``, ``min_samples = 1`` and
    ``allow_single_cluster=True`` (FLAME's settings), so at most one cluster
    can form and it holds more than half of the nodes; the others are noise.

    Parameters
    ----------
    distances : numpy.ndarray
        Symmetric ``(n, n)`` distances with a zero diagonal, ``n >= 2``.

    Returns
    -------
    numpy.ndarray
        A boolean mask of the cluster's members; all ``False`` when HDBSCAN
        labels every node as noise, all ``True`` for fewer than 3 nodes.

    Examples
    --------
    >>> import numpy as np
    >>> points = np.array([0.0, 0.1, 0.2, 0.15, 5.0])
    >>> majority_cluster(np.abs(points[:, None] - points[None, :]))
    array([False,  True,  True,  True, False])

    Only the densest ``floor(n / 2) + 1`` points form the cluster: point 0,
    benign-looking, is noise too (see :func:`outside_majority`).
    """
    n = distances.shape[0]
    if n < 3:  # no minority to find (and HDBSCAN needs min_cluster_size >= 2)
        return np.ones(n, dtype=bool)
    labels = (
        HDBSCAN(
            min_cluster_size=n // 2 + 1,
            min_samples=1,
            metric="precomputed",
            allow_single_cluster=True,
            copy=True,
        )
        .fit(distances)
        .labels_
    )
    clustered = labels[labels >= 0]
    if clustered.size == 0:
        return np.zeros(n, dtype=bool)
    values, counts = np.unique(clustered, return_counts=True)
    return np.asarray(labels == values[np.argmax(counts)], dtype=bool)


def outside_majority(
    distances: NDArray[np.float64], *, k: float, min_gap: float
) -> tuple[NDArray[np.float64], NDArray[np.bool_], NDArray[np.bool_]]:
    """Nodes outside FLAME's majority cluster and clearly farther from it.

    With ``min_cluster_size = floor(n / 2) + 1`` HDBSCAN keeps as its cluster
    only about the ``floor(n / 2) + 1`` most densely connected nodes and
    labels the others noise, benign ones included, so a node outside the
    cluster counts only if it is also clearly far from the cluster: with
    ``m_i`` the median distance of node ``i`` to the cluster's members
    (itself excluded) and ``ref`` the median of ``m`` over all nodes, node
    ``i`` counts when ``m_i > threshold = ref + max(k * MAD, min_gap * ref,
    1e-9)``, the MAD (scaled by 1.4826) taken over all ``m``. (A reference
    taken over the members alone makes every benign node left outside look
    far when a tight group of attackers is in the cluster.)

    Parameters
    ----------
    distances : numpy.ndarray
        Symmetric ``(n, n)`` distances with a zero diagonal.
    k : float
        Width of the threshold in scaled MADs.
    min_gap : float
        Least relative excess of ``m_i`` over ``ref``.

    Returns
    -------
    scores : numpy.ndarray
        ``m_i / threshold`` per node (0 when the cluster has fewer than two
        members); above 1 means beyond the threshold.
    outside : numpy.ndarray
        Boolean mask: outside the cluster and beyond the threshold.
    members : numpy.ndarray
        Boolean mask of the cluster (see :func:`majority_cluster`).
    """
    n = distances.shape[0]
    members = majority_cluster(distances)
    if members.sum() < 2:
        return np.zeros(n), np.zeros(n, dtype=bool), members
    others = members[np.newaxis, :] & ~np.eye(n, dtype=bool)
    to_cluster = np.array([float(np.median(distances[i, others[i]])) for i in range(n)])
    threshold = mad_threshold(to_cluster, k=k, floor=1e-9, rel_floor=min_gap)
    scores = to_cluster / threshold
    return scores, ~members & (scores > 1.0), members


@register_detector("flame_cluster")
class FlameClusterDetector(BaseDetector):
    """Flags nodes outside FLAME's majority cluster, and boosted updates.

    After FLAME (Nguyen et al., USENIX Security 2022), each round:

    1. The cosine distances ``1 - cos(u_i, u_j)`` of the whole updates
       (``global - local``, every floating array, computed chunk by chunk
       from inner products) are clustered by :func:`majority_cluster`
       (HDBSCAN, minimum cluster size ``floor(n / 2) + 1``).
    2. FLAME discards every node outside the cluster. HDBSCAN with a single
       cluster also labels as noise the benign nodes that join it last, so a
       node outside the cluster is flagged only if it is also clearly far
       from the cluster (:func:`outside_majority`: its median cosine distance
       to the members exceeds the median of the same over all nodes by more
       than ``max(k * MAD, min_gap * median)``).
    3. FLAME clips every update to the median update norm, which undoes
       boosting (model replacement scales an update by about ``N / M``). A
       detector cannot clip, so it flags instead: any node whose update norm
       exceeds ``norm_ratio`` times the round's median norm is flagged,
       inside the cluster or not.

    Score (higher means more suspicious): the larger of ``m_i / threshold``
    (step 2) and ``norm_i / (norm_ratio * median norm)`` (step 3); a node
    with score above 1 is beyond a threshold (for step 2 it must also be
    outside the cluster to be flagged).

    Assumptions: benign nodes are a majority, and attackers' updates point
    away from the benign ones more than benign updates point away from each
    other. Under label skew, benign nodes with alike label distributions
    form groups of their own; the thresholds are set so that such a group is
    not flagged, at the cost of recall (a backdoor whose poisoned labels
    resemble a benign group's skew is missed). A tight group of attackers
    that joins the cluster is not flagged either. One round is noisy late
    in training, when updates are nearly orthogonal: ``cosine_history``
    averages over rounds. Benign update norms stay within ``norm_ratio`` of
    their median (local training of similar length; a client with many more
    local steps than the median can exceed it).

    Parameters
    ----------
    k : float (default: 3.0)
        Width of the cluster-distance threshold in scaled MADs; at least 0.
    min_gap : float (default: 0.05)
        Least relative excess of ``m_i`` over ``ref``; at least 0.
    norm_ratio : float or None (default: 1.5)
        Flag updates longer than this many median norms; greater than 1.
        ``None`` turns the norm test off.
    min_replies : int (default: 3)
        See :class:`BaseDetector`.
    seed : int (default: 0)
        Unused (HDBSCAN is deterministic); kept for a uniform interface.

    Attributes
    ----------
    scores : dict[int, float]
        The last call's scores.
    cluster : set[int]
        The last call's majority-cluster members.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> glob = [np.zeros((8, 8), dtype=np.float32)]
    >>> step = rng.standard_normal((8, 8))
    >>> replies = {i: [-(step + 0.3 * rng.standard_normal((8, 8)))] for i in range(7)}
    >>> replies[7] = [-2.5 * step]  # a boosted update: right direction, too long
    >>> replies[8] = [step]  # the opposite direction
    >>> sorted(FlameClusterDetector().detect(1, replies, glob))
    [7, 8]
    """

    name = "flame_cluster"

    def __init__(
        self,
        *,
        k: float = 3.0,
        min_gap: float = 0.05,
        norm_ratio: float | None = 1.5,
        min_replies: int = 3,
        seed: int = 0,
    ) -> None:
        super().__init__(min_replies=min_replies, seed=seed)
        k, min_gap = float(k), float(min_gap)
        if not np.isfinite(k) or k < 0.0:
            raise ValueError(f"k must be a finite number >= 0, got {k}")
        if not np.isfinite(min_gap) or min_gap < 0.0:
            raise ValueError(f"min_gap must be a finite number >= 0, got {min_gap}")
        if norm_ratio is not None:
            norm_ratio = float(norm_ratio)
            if not np.isfinite(norm_ratio) or norm_ratio <= 1.0:
                raise ValueError(
                    f"norm_ratio must be a finite number > 1 or None, got {norm_ratio}"
                )
        self.k = k
        self.min_gap = min_gap
        self.norm_ratio = norm_ratio
        self.cluster: set[int] = set()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(k={self.k}, min_gap={self.min_gap}, "
            f"norm_ratio={self.norm_ratio}, min_replies={self.min_replies}, "
            f"seed={self.seed})"
        )

    def _score_and_flag(
        self, server_round: int, updates: RoundUpdates
    ) -> tuple[dict[int, float], set[int]]:
        node_ids = updates.node_ids
        n = len(node_ids)
        distances = np.clip(1.0 - updates.cosine_similarities(), 0.0, 2.0)
        np.fill_diagonal(distances, 0.0)
        cos_scores, outside, members = outside_majority(
            distances, k=self.k, min_gap=self.min_gap
        )
        self.cluster = {node_ids[i] for i in np.flatnonzero(members)}
        if members.sum() < 2:
            log(
                logging.INFO,
                "%s: round %s: HDBSCAN found no majority cluster; only the "
                "norm test applies",
                self.name,
                server_round,
            )
        norm_scores = np.zeros(n)
        boosted = np.zeros(n, dtype=bool)
        norms = updates.norms()
        median_norm = float(np.median(norms))
        if self.norm_ratio is not None and median_norm > 0.0:
            norm_scores = norms / (self.norm_ratio * median_norm)
            boosted = norm_scores > 1.0
        scores = np.maximum(cos_scores, norm_scores)
        flagged = {node_ids[i] for i in np.flatnonzero(outside | boosted)}
        return (
            {node: float(s) for node, s in zip(node_ids, scores, strict=True)},
            flagged,
        )
