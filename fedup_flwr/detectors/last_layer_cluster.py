"""LFighter-style detection: cluster the source/target rows of the last layer.

After LFighter: N. M. Jebreel, J. Domingo-Ferrer, D. Sánchez and
A. Blanco-Justicia, "LFighter: Defending against the label-flipping attack in
federated learning", Neural Networks 170 (2024) 111-126
(https://doi.org/10.1016/j.neunet.2023.11.019).
"""

from __future__ import annotations

import logging

import numpy as np
from flwr.common.logger import log
from numpy.typing import NDArray
from sklearn.cluster import KMeans
from sklearn.preprocessing import normalize

from fedup_flwr.detectors.base import BaseDetector, RoundUpdates
from fedup_flwr.detectors.registry import register_detector

__all__ = ["LastLayerClusterDetector"]

_IDENTICAL_ATOL = 1e-12


def _inverse_density(unit_rows: NDArray[np.float64]) -> float:
    """LFighter's inverse density: mean over members of their largest angle.

    ``unit_rows`` are L2-normalised (zero rows stay zero). A single member
    has inverse density 0 (its only angle is the one to itself).
    """
    cosines = np.clip(unit_rows @ unit_rows.T, -1.0, 1.0)
    angles = np.arccos(cosines)
    np.fill_diagonal(angles, 0.0)
    return float(np.mean(np.max(angles, axis=1)))


def _cosine_distance_to(
    unit_rows: NDArray[np.float64], reference: NDArray[np.float64]
) -> NDArray[np.float64]:
    """``1 - cos(row, reference)`` per row; a zero vector has cosine 0."""
    norm = float(np.linalg.norm(reference))
    if norm == 0.0:
        return np.ones(unit_rows.shape[0], dtype=np.float64)
    cosines = np.clip(unit_rows @ (reference / norm), -1.0, 1.0)
    return np.asarray(1.0 - cosines, dtype=np.float64)


@register_detector("last_layer_cluster")
class LastLayerClusterDetector(BaseDetector):
    """Flags the bad k-means cluster of the last layer's source/target rows.

    After LFighter (Jebreel et al., Neural Networks 170, 2024): label flippers
    and honest nodes pull the output neurons of the flipped (source) and target
    classes in opposite directions, so those neurons' updates separate the two
    groups. Each round:

    1. The update (``global - local``) of the last kernel layer, the last
       array with ``ndim >= 2`` (shape ``(num_classes, features)`` for a
       ``Linear`` layer; further dimensions are flattened), is taken per node.
    2. The two output rows with the largest summed update norm over the nodes
       are the presumed source and target classes; each node's feature vector
       is those two rows concatenated. With two or fewer outputs the whole
       layer is used.
    3. Feature vectors are L2-normalised (:func:`sklearn.preprocessing.normalize`,
       so clustering compares directions) and split by
       :class:`sklearn.cluster.KMeans` (``n_clusters=2``, ``n_init``,
       ``random_state=seed``).
    4. As in LFighter, each cluster's *inverse density* is the mean over its
       members of their largest angle to another member, weighted by the
       cluster's share of the nodes; the cluster with the **lower** weighted
       value, i.e. the smaller and/or denser one (attackers pursue one goal,
       so their updates agree more), is flagged. A lone node forms a cluster of
       inverse density 0, so a single outlier is flagged. On a tie the
       smaller cluster is flagged, or nothing if both have the same size.

    Nothing is flagged when all feature vectors point the same way (identical
    updates), when k-means finds a single cluster, or, unless
    ``max_centroid_similarity`` is ``None``, when the two cluster centroids
    are too alike (cosine similarity above ``max_centroid_similarity``): two
    groups of honest nodes that differ only by noise are then not reported.
    Note that LFighter itself always discards one cluster; ``None`` restores
    that behaviour.

    Score (higher means more suspicious): ``1 - cos(x_i, c)``, the cosine
    distance in ``[0, 2]`` of a node's normalised feature vector to the
    centroid ``c`` of the cluster judged good (to the mean of all nodes when
    nothing was clustered). Flagged nodes lie far from the good centroid, and
    when the cap of :class:`BaseDetector` applies the farthest are kept.

    Parameters
    ----------
    max_centroid_similarity : float or None (default: 0.5)
        Flag only when the cosine similarity of the two cluster centroids
        (of normalised vectors) is at most this; in ``[-1, 1]``. ``None``
        always flags a cluster, as LFighter does.
    n_init : int (default: 10)
        k-means restarts.
    min_replies : int (default: 3)
        See :class:`BaseDetector`.
    seed : int (default: 0)
        k-means ``random_state``.

    Attributes
    ----------
    scores : dict[int, float]
        The last call's scores (see above).
    classes : tuple[int, ...]
        The output rows used in the last call (all rows for two or fewer
        outputs; empty when the model has no kernel layer).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> glob = [np.zeros((10, 4)), np.zeros(10)]
    >>> honest = np.zeros((10, 4)); honest[3] = 1.0; honest[5] = -1.0
    >>> replies = {
    ...     i: [glob[0] - honest - 0.05 * rng.standard_normal((10, 4)), glob[1]]
    ...     for i in range(6)
    ... }
    >>> replies[6] = [glob[0] + honest, glob[1]]  # rows 3 and 5 move the other way
    >>> LastLayerClusterDetector().detect(1, replies, glob)
    {6}
    """

    name = "last_layer_cluster"

    def __init__(
        self,
        *,
        max_centroid_similarity: float | None = 0.5,
        n_init: int = 10,
        min_replies: int = 3,
        seed: int = 0,
    ) -> None:
        super().__init__(min_replies=min_replies, seed=seed)
        if max_centroid_similarity is not None:
            max_centroid_similarity = float(max_centroid_similarity)
            if not -1.0 <= max_centroid_similarity <= 1.0:
                raise ValueError(
                    "max_centroid_similarity must be in [-1, 1] or None, got "
                    f"{max_centroid_similarity}"
                )
        if isinstance(n_init, bool) or not isinstance(n_init, (int, np.integer)):
            raise TypeError(f"n_init must be an int, got {n_init!r}")
        if n_init < 1:
            raise ValueError(f"n_init must be at least 1, got {n_init}")
        self.max_centroid_similarity = max_centroid_similarity
        self.n_init = int(n_init)
        self.classes: tuple[int, ...] = ()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(max_centroid_similarity="
            f"{self.max_centroid_similarity}, n_init={self.n_init}, "
            f"min_replies={self.min_replies}, seed={self.seed})"
        )

    def _score_and_flag(
        self, server_round: int, updates: RoundUpdates
    ) -> tuple[dict[int, float], set[int]]:
        node_ids = updates.node_ids
        index = self._last_kernel(server_round, updates)
        if index is None:
            self.classes = ()
            return dict.fromkeys(node_ids, 0.0), set()
        outputs = updates.global_arrays[index].shape[0]
        # (nodes, outputs, features): only the last layer is read
        kernels = updates.stack(index).reshape(len(node_ids), outputs, -1)
        if outputs <= 2:
            self.classes = tuple(range(outputs))
            features = kernels.reshape(len(node_ids), -1)
        else:
            magnitude = np.linalg.norm(kernels, axis=2).sum(axis=0)
            top_two = np.sort(np.argsort(-magnitude, kind="stable")[:2])
            self.classes = tuple(int(c) for c in top_two)
            features = kernels[:, top_two, :].reshape(len(node_ids), -1)
        unit = np.asarray(normalize(features), dtype=np.float64)

        def scores_to(reference: NDArray[np.float64]) -> dict[int, float]:
            distance = _cosine_distance_to(unit, reference)
            return {node: float(d) for node, d in zip(node_ids, distance, strict=True)}

        if float(np.ptp(unit, axis=0).max(initial=0.0)) <= _IDENTICAL_ATOL:
            log(
                logging.INFO,
                "%s: round %s: all updates of classes %s point the same way; "
                "nothing flagged",
                self.name,
                server_round,
                list(self.classes),
            )
            return scores_to(unit.mean(axis=0)), set()

        labels = (
            KMeans(n_clusters=2, n_init=self.n_init, random_state=self.seed)
            .fit(unit)
            .labels_
        )
        members = [np.flatnonzero(labels == c) for c in (0, 1)]
        if min(len(m) for m in members) == 0:
            log(
                logging.INFO,
                "%s: round %s: k-means found a single cluster; nothing flagged",
                self.name,
                server_round,
            )
            return scores_to(unit.mean(axis=0)), set()

        n = len(node_ids)
        weighted = [len(m) / n * _inverse_density(unit[m]) for m in members]
        if np.isclose(weighted[0], weighted[1], rtol=1e-9, atol=1e-12):
            if len(members[0]) == len(members[1]):
                log(
                    logging.INFO,
                    "%s: round %s: two clusters of equal size and density; "
                    "nothing flagged",
                    self.name,
                    server_round,
                )
                return scores_to(unit.mean(axis=0)), set()
            bad = 0 if len(members[0]) < len(members[1]) else 1
        else:
            bad = 0 if weighted[0] < weighted[1] else 1
        good_centroid = unit[members[1 - bad]].mean(axis=0)
        scores = scores_to(good_centroid)
        flagged = {int(node_ids[int(i)]) for i in members[bad]}

        if self.max_centroid_similarity is not None:
            bad_centroid = unit[members[bad]].mean(axis=0)
            norms = float(np.linalg.norm(bad_centroid) * np.linalg.norm(good_centroid))
            similarity = (
                float(bad_centroid @ good_centroid) / norms if norms > 0.0 else 0.0
            )
            if similarity > self.max_centroid_similarity:
                log(
                    logging.INFO,
                    "%s: round %s: cluster centroids have cosine similarity %.3f "
                    "> max_centroid_similarity=%s; nothing flagged",
                    self.name,
                    server_round,
                    similarity,
                    self.max_centroid_similarity,
                )
                return scores, set()
        return scores, flagged
