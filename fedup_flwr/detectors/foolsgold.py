"""A coordinated minority: nodes far more alike over rounds than honest ones.

After FoolsGold: C. Fung, C. J. M. Yoon and I. Beschastnikh, "The limitations
of federated learning in Sybil settings", RAID 2020. Sybils (or colluding
attackers) pursue one objective, so their updates keep resembling each other
round after round, while honest clients, each with its own data, do not. Under
non-IID data there is no benign *majority cluster* for FLAME's test to find
(``flame_cluster``, ``cosine_history``), but honest clients are still less
alike than the attackers are to each other, which FoolsGold's score measures.

FoolsGold keeps every client's summed update (one model copy per client);
this detector keeps the per-round cosine similarity of every pair instead
(:class:`~fedup_flwr.detectors.cosine_history.PairHistory`, as
``cosine_history`` does) and averages it over the rounds both took part in.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from fedup_flwr.detectors.base import RoundUpdates, mad_threshold
from fedup_flwr.detectors.cosine_history import HistoryDetector
from fedup_flwr.detectors.registry import register_detector

__all__ = ["FoolsGoldDetector", "coordinated_minority", "group_similarity"]


def group_similarity(
    similarities: NDArray[np.float64], *, group: int = 2, pardon: bool = True
) -> tuple[NDArray[np.float64], NDArray[np.intp]]:
    """FoolsGold's score, generalised to groups: similarity to the closest few.

    FoolsGold scores node ``i`` by ``v_i = max_{j != i} s_ij`` (``group=2``:
    a pair). With ``group = g``, the score is the ``(g - 1)``-th largest
    ``s_ij``: node ``i`` scores high only if ``g - 1`` other nodes all
    resemble it, as a group of ``g`` sybils do, while two honest nodes with
    nearly the same data do not. NaN entries (pairs never seen together) are
    skipped. With ``pardon``, FoolsGold's pardoning is applied first: with
    ``v`` the largest similarities, when ``v_j > v_i > 0``, ``s_ij`` is
    scaled by ``v_i / v_j``, so that a node that resembles a member of a
    tighter group than its own scores lower.

    Parameters
    ----------
    similarities : numpy.ndarray
        ``(n, n)`` similarities, symmetric; the diagonal is ignored.
    group : int (default: 2)
        Smallest group to score (at least 2).
    pardon : bool (default: True)
        Apply FoolsGold's pardoning.

    Returns
    -------
    scores : numpy.ndarray
        Shape ``(n,)``; ``-inf`` for a node with fewer than ``group - 1``
        pairs seen.
    partners : numpy.ndarray
        Shape ``(n, group - 1)``: each node's ``group - 1`` closest nodes
        (after pardoning), closest first; ``-1`` where a node has no such
        pair.

    Examples
    --------
    >>> import numpy as np
    >>> s = np.array([[1.0, 0.8, 0.4], [0.8, 1.0, 0.1], [0.4, 0.1, 1.0]])
    >>> group_similarity(s, pardon=False)
    (array([0.8, 0.8, 0.4]), array([[1],
           [0],
           [0]]))

    Node 2 resembles node 0 (0.4), whose own best match is better (0.8):
    pardoned, ``0.4 * 0.4 / 0.8 = 0.2``.

    >>> group_similarity(s)[0]
    array([0.8, 0.8, 0.2])

    Groups of three: each node's second closest.

    >>> group_similarity(s, group=3, pardon=False)[0]
    array([0.4, 0.1, 0.1])
    """
    n = similarities.shape[0]
    if group > n:  # fewer nodes than a group
        return np.full(n, -np.inf), np.full((n, group - 1), -1, dtype=np.intp)
    masked = np.where(np.isnan(similarities), -np.inf, similarities)
    masked[np.arange(n), np.arange(n)] = -np.inf
    if pardon:
        # FoolsGold: if v_j > v_i, cs_ij *= v_i / v_j (rows of positive v only:
        # scaling a negative similarity would move it up).
        v = masked.max(axis=1, initial=-np.inf)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = v[:, np.newaxis] / v[np.newaxis, :]
        scale = (v[np.newaxis, :] > v[:, np.newaxis]) & (v[:, np.newaxis] > 0.0)
        with np.errstate(invalid="ignore"):  # -inf * 0 where v_i = 0
            masked = np.where(scale & np.isfinite(masked), masked * ratio, masked)
    # Stable sort on the negated row: ties go to the lower index.
    order = np.argsort(-masked, axis=1, kind="stable")[:, : group - 1]
    closest = np.take_along_axis(masked, order, axis=1)
    partners = np.where(np.isfinite(closest), order, -1).astype(np.intp)
    return closest[:, -1].copy(), partners


def coordinated_minority(
    similarities: NDArray[np.float64],
    *,
    k: float,
    min_gap: float,
    group: int = 2,
    pardon: bool = True,
) -> tuple[NDArray[np.float64], NDArray[np.bool_], NDArray[np.intp]]:
    """Nodes far more alike than the others, with partners that are too.

    With the scores and partners of :func:`group_similarity`, the threshold
    is ``median + max(k * MAD, min_gap)`` of the scores
    (:func:`~fedup_flwr.detectors.base.mad_threshold`, over the nodes with a
    score). Node ``i`` counts when its score and those of its ``group - 1``
    partners all exceed it: a group, for one node unlike the others is an
    outlier, not a sybil. When half or more of the nodes are alike, the
    median is theirs and none of them exceeds the threshold.

    Parameters
    ----------
    similarities : numpy.ndarray
        ``(n, n)`` similarities, symmetric, NaN for pairs never seen.
    k : float
        Width of the threshold in scaled MADs.
    min_gap : float
        Least excess of the threshold over the median.
    group : int (default: 2)
        Smallest group to flag (see :func:`group_similarity`).
    pardon : bool (default: True)
        Apply FoolsGold's pardoning (see :func:`group_similarity`).

    Returns
    -------
    excess : numpy.ndarray
        Score minus threshold per node (above 0: beyond it); 0 for a node
        without a score, and for all when fewer than two nodes have one.
    counts : numpy.ndarray
        Boolean mask: beyond the threshold, and so are its partners.
    partners : numpy.ndarray
        See :func:`group_similarity`.

    Examples
    --------
    >>> import numpy as np
    >>> s = np.full((8, 8), 0.05)
    >>> s[6, 7] = s[7, 6] = 0.7  # nodes 6 and 7 alike
    >>> excess, counts, partners = coordinated_minority(s, k=3.0, min_gap=0.1)
    >>> counts
    array([False, False, False, False, False, False,  True,  True])
    >>> partners[6:, 0], excess.round(2)
    (array([7, 6]), array([-0.1 , -0.1 , -0.1 , -0.1 , -0.1 , -0.1 ,  0.55,  0.55]))

    A pair is no group of three:

    >>> coordinated_minority(s, k=3.0, min_gap=0.1, group=3)[1].any()
    np.False_
    """
    n = similarities.shape[0]
    scores, partners = group_similarity(similarities, group=group, pardon=pardon)
    seen = np.isfinite(scores)
    excess = np.zeros(n)
    counts = np.zeros(n, dtype=bool)
    if seen.sum() < 2:
        return excess, counts, partners
    threshold = mad_threshold(scores[seen], k=k, floor=min_gap)
    excess[seen] = scores[seen] - threshold
    beyond = excess > 0.0
    counts = beyond & (partners >= 0).all(axis=1)
    counts &= beyond[np.maximum(partners, 0)].all(axis=1)
    return excess, counts, partners


@register_detector("foolsgold")
class FoolsGoldDetector(HistoryDetector):
    """Flags a coordinated minority: nodes much more alike over rounds than others.

    After FoolsGold (Fung, Yoon and Beschastnikh, RAID 2020). Each round
    (with at least ``min_replies`` replies):

    1. The pairwise cosine similarities of the whole updates (``global -
       local``, every floating array, from inner products accumulated chunk
       by chunk, in the model's dtype) are added to each pair's running sum
       (:class:`~fedup_flwr.detectors.cosine_history.PairHistory`, shared
       with ``cosine_history``; one number per pair where FoolsGold keeps one
       model copy per node).
    2. Among the replying nodes, a pair's accumulated similarity is its mean
       over the rounds both took part in. After FoolsGold's pardoning, a
       node's score is its similarity to its ``group - 1``-th closest node
       (:func:`group_similarity`; ``group=2`` is FoolsGold's
       ``v_i = max_j cs_ij``).
    3. A node is flagged when its score and those of its ``group - 1``
       closest nodes all exceed ``median + max(k * MAD, min_gap)`` of the
       scores (:func:`coordinated_minority`), the test counting only the
       pairs that replied together in at least ``min_rounds`` rounds (so a
       decision rests on several rounds, and a newcomer neither is flagged
       early nor hides its group behind its short history).

    Score (higher means more suspicious): the node's score minus the
    threshold, over every pair seen (above 0: beyond it; flagging also needs
    the partners beyond it and ``min_rounds`` rounds).

    Why ``group=3`` by default: under label skew (Dirichlet partitions),
    two honest clients with nearly the same label distribution are as alike
    as two sybils; on simulated Dirichlet(0.5) updates, FoolsGold's pair
    score (``group=2``) flagged such honest pairs in 3 of 20 runs with 10
    clients and 6 of 20 with 20 clients, and ``group=3`` in none. Every
    attack this project measures has at least three attackers; set
    ``group=2`` to catch a pair.

    Assumptions: the attackers are at least ``group``, fewer than half of the
    replies, and keep one shared objective over rounds, so that their updates
    stay more alike than honest ones; honest nodes' data differ (non-IID) or
    their updates are alike as a whole (IID), so that no small honest group
    stands out. ``group`` honest nodes with nearly the same data are alike
    for the same reason as sybils and are flagged (FoolsGold's known
    limitation); so is a mix of attackers and honest nodes whose similarity
    to each other is as high. A lone attacker, or attackers that each pursue
    their own objective, are not. Boosting changes no direction and is not
    seen here (see ``flame_cluster``'s norm test). Stable node ids.

    Parameters
    ----------
    k : float (default: 3.0)
        Width of the threshold in scaled MADs; at least 0.
    min_gap : float (default: 0.05)
        Least excess of the threshold over the median score, in cosine
        similarity; at least 0. Keeps honest nodes unflagged when their
        scores are nearly equal (MAD near 0, e.g. IID data).
    group : int (default: 3)
        Smallest group of alike nodes to flag; at least 2 (2: FoolsGold's
        maximum similarity).
    min_rounds : int (default: 3)
        Rounds a pair must have replied together to count towards a flag; at
        least 1.
    pardon : bool (default: True)
        Apply FoolsGold's pardoning (see :func:`group_similarity`).
    min_replies : int (default: 3)
        See :class:`~fedup_flwr.detectors.base.BaseDetector`.
    seed : int (default: 0)
        Unused (the detector has no randomness); kept for a uniform interface.

    Attributes
    ----------
    scores : dict[int, float]
        The last call's scores.
    partners : dict[int, list[int]]
        The last call's ``group - 1`` closest nodes of each scored node,
        closest first.

    Examples
    --------
    Seven honest nodes, each with its own direction (non-IID), and three
    attackers that add one shared poison direction to theirs:

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> glob = [np.zeros((16, 16), dtype=np.float32)]
    >>> own, poison = rng.standard_normal((10, 16, 16)), rng.standard_normal((16, 16))
    >>> det = FoolsGoldDetector()
    >>> for rnd in (1, 2, 3):
    ...     noise = rng.standard_normal((10, 16, 16))
    ...     replies = {i: [-(own[i] + noise[i])] for i in range(7)}
    ...     for i in (7, 8, 9):
    ...         replies[i] = [-(own[i] + noise[i] + poison)]
    ...     print(rnd, sorted(det.detect(rnd, replies, glob)))
    1 []
    2 []
    3 [7, 8, 9]
    """

    name = "foolsgold"

    def __init__(
        self,
        *,
        k: float = 3.0,
        min_gap: float = 0.05,
        group: int = 3,
        min_rounds: int = 3,
        pardon: bool = True,
        min_replies: int = 3,
        seed: int = 0,
    ) -> None:
        super().__init__(
            k=k, min_gap=min_gap, min_rounds=min_rounds,
            min_replies=min_replies, seed=seed,
        )  # fmt: skip
        if isinstance(group, bool) or not isinstance(group, (int, np.integer)):
            raise TypeError(f"group must be an int, got {group!r}")
        if group < 2:
            raise ValueError(
                f"group must be at least 2 (a group of alike nodes), got {group}"
            )
        if not isinstance(pardon, (bool, np.bool_)):
            raise TypeError(f"pardon must be a bool, got {pardon!r}")
        self.group = int(group)
        self.pardon = bool(pardon)
        self.partners: dict[int, list[int]] = {}

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(k={self.k}, min_gap={self.min_gap}, "
            f"group={self.group}, min_rounds={self.min_rounds}, "
            f"pardon={self.pardon}, "
            f"min_replies={self.min_replies}, seed={self.seed})"
        )

    def _fallback_scores(self, node_ids: Sequence[int]) -> dict[int, float]:
        # Too few replies: score the known nodes from their history, add nothing.
        known = [n for n in node_ids if n in self._history.nodes]
        scores = dict.fromkeys(node_ids, 0.0)
        if len(known) >= 2:
            excess, _ = self._test(self._history.rows(known))
            scores.update(zip(known, (float(v) for v in excess), strict=True))
        return scores

    def _score_and_flag(
        self, server_round: int, updates: RoundUpdates
    ) -> tuple[dict[int, float], set[int]]:
        node_ids = updates.node_ids
        rows = self._history.add(node_ids, updates.cosine_similarities())
        excess, flagged = self._test(rows)
        return (
            {node: float(v) for node, v in zip(node_ids, excess, strict=True)},
            {node_ids[i] for i in np.flatnonzero(flagged)},
        )

    def _test(
        self, rows: Sequence[int]
    ) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
        """FoolsGold's test on the accumulated similarities of ``rows``.

        Scores use every pair seen; the decision only the pairs that replied
        together in at least ``min_rounds`` rounds (evidence from several
        rounds, and a newcomer's few rounds neither flag it nor hide its
        group's older members behind it).
        """
        history = self._history
        mean = history.mean(rows)
        excess, _, partners = coordinated_minority(
            mean, k=self.k, min_gap=self.min_gap, group=self.group, pardon=self.pardon
        )
        settled = history.pair_counts[np.ix_(rows, rows)] >= self.min_rounds
        _, counts, _ = coordinated_minority(
            np.where(settled, mean, np.nan),
            k=self.k,
            min_gap=self.min_gap,
            group=self.group,
            pardon=self.pardon,
        )
        node_ids = [history.nodes[r] for r in rows]
        self.partners = {
            node_ids[i]: [node_ids[int(p)] for p in partners[i]]
            for i in np.flatnonzero((partners >= 0).all(axis=1))
        }
        return excess, counts
