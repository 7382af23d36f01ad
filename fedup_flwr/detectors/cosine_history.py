"""FLAME's cluster test on cosine similarities accumulated over rounds.

After FoolsGold: C. Fung, C. J. M. Yoon and I. Beschastnikh, "The limitations
of federated learning in Sybil settings", RAID 2020, which judges clients by
the *history* of their updates rather than by one round, and FLAME
(Nguyen et al., USENIX Security 2022) for the test itself. Keeping every
client's summed update, as FoolsGold does, costs one model copy per client, so
this detector keeps the per-round cosine similarity of every pair instead
(``O(clients^2)`` numbers) and averages it over the rounds both took part in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from fedup_flwr.detectors.base import BaseDetector, RoundUpdates
from fedup_flwr.detectors.flame_cluster import outside_majority
from fedup_flwr.detectors.registry import register_detector

__all__ = ["CosineHistoryDetector", "PairHistory"]


class PairHistory:
    """Pairwise cosine similarities of the updates, summed over rounds.

    One number per pair of nodes (and one count per pair and per node)
    instead of FoolsGold's summed update per node (one model copy each):
    ``sums[i, j]`` is the summed similarity of nodes ``i`` and ``j`` over the
    ``pair_counts[i, j]`` rounds both replied, ``rounds[i]`` the rounds node
    ``i`` was scored in. Shared by ``cosine_history`` and ``foolsgold``.

    Attributes
    ----------
    nodes : list[int]
        The nodes seen so far, in order of arrival; row ``i`` of the arrays is
        ``nodes[i]``.
    sums : numpy.ndarray
        ``(m, m)`` summed similarities, float64, symmetric.
    pair_counts : numpy.ndarray
        ``(m, m)`` rounds each pair replied together, int64, symmetric.
    rounds : numpy.ndarray
        ``(m,)`` rounds each node was scored in, int64.

    Examples
    --------
    >>> import numpy as np
    >>> history = PairHistory()
    >>> rows = history.add([5, 7], np.array([[1.0, 0.5], [0.5, 1.0]]))
    >>> rows = history.add([7, 9], np.array([[1.0, -0.2], [-0.2, 1.0]]))
    >>> history.nodes, history.rounds_seen(7), history.rounds_seen(3)
    ([5, 7, 9], 2, 0)
    >>> history.mean(history.rows([5, 7, 9]))
    array([[ 1. ,  0.5,  nan],
           [ 0.5,  1. , -0.2],
           [ nan, -0.2,  1. ]])
    """

    def __init__(self) -> None:
        self.nodes: list[int] = []
        self.sums: NDArray[np.float64] = np.zeros((0, 0))
        self.pair_counts: NDArray[np.int64] = np.zeros((0, 0), dtype=np.int64)
        self.rounds: NDArray[np.int64] = np.zeros(0, dtype=np.int64)

    def rounds_seen(self, node: int) -> int:
        """Return the number of rounds in which ``node`` was scored."""
        try:
            return int(self.rounds[self.nodes.index(int(node))])
        except ValueError:
            return 0

    def rows(self, node_ids: Sequence[int]) -> list[int]:
        """Return the rows of ``node_ids``, all of which must be known.

        Raises
        ------
        ValueError
            If a node has not been seen.
        """
        return [self.nodes.index(int(n)) for n in node_ids]

    def add(self, node_ids: Sequence[int], cosines: NDArray[np.float64]) -> list[int]:
        """Add one round's similarities; return the rows of ``node_ids``.

        Parameters
        ----------
        node_ids : Sequence[int]
            The round's nodes, distinct; unknown ones are appended.
        cosines : numpy.ndarray
            ``(n, n)`` similarities, row ``i`` for ``node_ids[i]``.

        Returns
        -------
        list[int]
            The rows of ``node_ids`` in the accumulated arrays.
        """
        rows = self._grow(node_ids)
        block = np.ix_(rows, rows)
        self.sums[block] += cosines
        self.pair_counts[block] += 1
        self.rounds[rows] += 1
        return rows

    def mean(self, rows: Sequence[int]) -> NDArray[np.float64]:
        """Return the mean similarities among ``rows`` (NaN for pairs never seen)."""
        block = np.ix_(rows, rows)
        counts = self.pair_counts[block]
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(counts > 0, self.sums[block] / counts, np.nan)

    def state_dict(self) -> dict[str, Any]:
        """Return the accumulated pairwise similarities and counts.

        Returns
        -------
        dict[str, Any]
            ``{"nodes": [...], "sums": [[...]], "pair_counts": [[...]],
            "rounds": [...]}``: plain ints and floats (JSON-friendly);
            ``sums[i][j]`` is the summed similarity of ``nodes[i]`` and
            ``nodes[j]`` over the ``pair_counts[i][j]`` rounds both replied.
        """
        return {
            "nodes": list(self.nodes),
            "sums": self.sums.tolist(),
            "pair_counts": self.pair_counts.tolist(),
            "rounds": self.rounds.tolist(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a state saved by :meth:`state_dict` (unchanged on error).

        Parameters
        ----------
        state : Mapping[str, Any]
            The saved state; an empty mapping resets the accumulation.

        Raises
        ------
        ValueError
            If node ids repeat, shapes disagree, counts are negative or
            asymmetric, a pair count exceeds a node's rounds, or a sum is
            not finite or exceeds its count in magnitude.
        """
        nodes = [int(n) for n in state.get("nodes", [])]
        size = len(nodes)
        flat_sums = np.asarray(state.get("sums", []), dtype=np.float64).ravel()
        flat_counts = np.asarray(state.get("pair_counts", []), dtype=np.int64).ravel()
        rounds = np.asarray(state.get("rounds", []), dtype=np.int64).reshape(-1)
        if len(set(nodes)) != size:
            raise ValueError(f"state nodes repeat: {nodes}")
        if flat_sums.size != size * size or flat_counts.size != size * size:
            raise ValueError(
                f"state sums and pair_counts must be {size} x {size} for "
                f"{size} nodes, got {flat_sums.size} and {flat_counts.size} entries"
            )
        if rounds.size != size:
            raise ValueError(f"state rounds has {rounds.size} entries, not {size}")
        sums = flat_sums.reshape(size, size)
        counts = flat_counts.reshape(size, size)
        if (counts < 0).any() or (rounds < 0).any():
            raise ValueError("state counts must be >= 0")
        if not np.isfinite(sums).all():
            raise ValueError("state sums must be finite")
        if not (np.array_equal(counts, counts.T) and np.allclose(sums, sums.T)):
            raise ValueError("state sums and pair_counts must be symmetric")
        if size and (counts > np.minimum.outer(rounds, rounds)).any():
            raise ValueError("a pair count exceeds the rounds of one of its nodes")
        if (np.abs(sums) > counts + 1e-9).any():
            raise ValueError("state sums must be at most their counts in magnitude")
        self.nodes = nodes
        self.sums = sums
        self.pair_counts = counts
        self.rounds = rounds

    def _grow(self, node_ids: Sequence[int]) -> list[int]:
        """Add unknown nodes to the state; return the rows of ``node_ids``."""
        new = [int(n) for n in node_ids if int(n) not in self.nodes]
        if new:
            size = len(self.nodes) + len(new)
            sums = np.zeros((size, size))
            counts = np.zeros((size, size), dtype=np.int64)
            old = len(self.nodes)
            sums[:old, :old] = self.sums
            counts[:old, :old] = self.pair_counts
            self.sums, self.pair_counts = sums, counts
            self.rounds = np.concatenate([self.rounds, np.zeros(len(new), np.int64)])
            self.nodes.extend(new)
        return self.rows(node_ids)


class HistoryDetector(BaseDetector):
    """A detector that judges nodes by their pairwise similarities averaged
    over rounds (:class:`PairHistory`): the shared parameters, their checks,
    and the state (``state_dict`` / ``load_state_dict``).

    Parameters
    ----------
    k : float (default: 3.0)
        Width of the threshold in scaled MADs; at least 0.
    min_gap : float (default: 0.05)
        Least margin over the median (each subclass says of what); at least 0.
    min_rounds : int (default: 3)
        Rounds of history needed before a node can be flagged; at least 1.
    min_replies, seed : int
        See :class:`BaseDetector`.
    """

    def __init__(
        self,
        *,
        k: float = 3.0,
        min_gap: float = 0.05,
        min_rounds: int = 3,
        min_replies: int = 3,
        seed: int = 0,
    ) -> None:
        super().__init__(min_replies=min_replies, seed=seed)
        if isinstance(min_rounds, bool) or not isinstance(
            min_rounds, (int, np.integer)
        ):
            raise TypeError(f"min_rounds must be an int, got {min_rounds!r}")
        if min_rounds < 1:
            raise ValueError(f"min_rounds must be at least 1, got {min_rounds}")
        k, min_gap = float(k), float(min_gap)
        if not np.isfinite(k) or k < 0.0:
            raise ValueError(f"k must be a finite number >= 0, got {k}")
        if not np.isfinite(min_gap) or min_gap < 0.0:
            raise ValueError(f"min_gap must be a finite number >= 0, got {min_gap}")
        self.k = k
        self.min_gap = min_gap
        self.min_rounds = int(min_rounds)
        self._history = PairHistory()

    def rounds_seen(self, node: int) -> int:
        """Return the number of rounds in which ``node`` was scored."""
        return self._history.rounds_seen(node)

    def state_dict(self) -> dict[str, Any]:
        """Return the accumulated pairwise similarities and counts.

        Returns
        -------
        dict[str, Any]
            :meth:`PairHistory.state_dict`: ``{"nodes": [...], "sums":
            [[...]], "pair_counts": [[...]], "rounds": [...]}``, plain ints
            and floats (JSON-friendly), the same for every subclass.
        """
        return self._history.state_dict()

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a state saved by :meth:`state_dict`.

        Parameters
        ----------
        state : Mapping[str, Any]
            The saved state; an empty mapping resets the accumulation.

        Raises
        ------
        ValueError
            If the state is inconsistent (see
            :meth:`PairHistory.load_state_dict`); the detector is then
            unchanged.
        """
        self._history.load_state_dict(state)


@register_detector("cosine_history")
class CosineHistoryDetector(HistoryDetector):
    """Flags nodes that stay apart from the benign majority, round after round.

    Late in training, and under non-IID data, one round's updates are nearly
    orthogonal and a single-round test (``flame_cluster``) misses attackers or
    flags benign nodes; averaged over rounds, the noise of each pair's
    similarity shrinks while an attacker's steady difference (its poisoned
    objective) stays. Each round (with at least ``min_replies`` replies):

    1. The pairwise cosine similarities of the whole updates (``global -
       local``, every floating array, from inner products accumulated chunk
       by chunk) are added to each pair's running sum; each pair's and each
       node's round counts go up by one.
    2. Among the replying nodes, the *accumulated* distance of a pair is
       ``1 - `` its mean similarity over the rounds both took part in.
    3. FLAME's test runs on these distances
       (:func:`~fedup_flwr.detectors.flame_cluster.outside_majority`: HDBSCAN
       with minimum cluster size ``floor(n / 2) + 1``; a node outside the
       majority cluster counts when its median distance to the members
       exceeds theirs by more than ``max(k * MAD, min_gap * median)``).
    4. A node that counts is flagged only once it has been scored in at least
       ``min_rounds`` rounds, so a decision rests on evidence from several
       rounds.

    Score (higher means more suspicious): the node's median accumulated
    distance to the cluster over the threshold (above 1: beyond it).

    Assumptions: a benign majority whose updates, averaged over rounds, agree
    more with each other than with the attackers'; attackers who keep their
    objective over rounds (an attacker who behaves in most rounds dilutes its
    history); stable node ids. Boosting changes no direction and is not seen
    here (see ``flame_cluster``'s norm test).

    Parameters
    ----------
    k : float (default: 3.0)
        Width of the threshold in scaled MADs; at least 0.
    min_gap : float (default: 0.05)
        Least relative excess over the members' median distance; at least 0.
    min_rounds : int (default: 3)
        Rounds a node must have been scored in before it can be flagged; at
        least 1.
    min_replies : int (default: 3)
        See :class:`BaseDetector`.
    seed : int (default: 0)
        Unused (the detector has no randomness); kept for a uniform interface.

    Attributes
    ----------
    scores : dict[int, float]
        The last call's scores.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> glob = [np.zeros((16, 16), dtype=np.float32)]
    >>> task, poison = rng.standard_normal((2, 16, 16))
    >>> det = CosineHistoryDetector()
    >>> for rnd in (1, 2, 3):
    ...     noise = rng.standard_normal((10, 16, 16))
    ...     replies = {i: [-(task + 1.5 * noise[i])] for i in range(7)}
    ...     for i in (7, 8, 9):  # the same poisoned objective every round
    ...         replies[i] = [-(poison + 1.5 * noise[i])]
    ...     print(rnd, sorted(det.detect(rnd, replies, glob)))
    1 []
    2 []
    3 [7, 8, 9]
    """

    name = "cosine_history"

    def __init__(
        self,
        *,
        k: float = 3.0,
        min_gap: float = 0.05,
        min_rounds: int = 3,
        min_replies: int = 3,
        seed: int = 0,
    ) -> None:
        super().__init__(
            k=k, min_gap=min_gap, min_rounds=min_rounds,
            min_replies=min_replies, seed=seed,
        )  # fmt: skip

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(k={self.k}, min_gap={self.min_gap}, "
            f"min_rounds={self.min_rounds}, min_replies={self.min_replies}, "
            f"seed={self.seed})"
        )

    def _fallback_scores(self, node_ids: Sequence[int]) -> dict[int, float]:
        history = self._history
        known = [n for n in node_ids if n in history.nodes]
        scores = dict.fromkeys(node_ids, 0.0)
        if len(known) >= 2:
            rows = history.rows(known)
            if (history.pair_counts[np.ix_(rows, rows)] > 0).all():
                values, _ = self._test(rows)
                scores.update(zip(known, (float(v) for v in values), strict=True))
        return scores

    def _test(
        self, rows: Sequence[int]
    ) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
        """FLAME's test on the accumulated distances of ``rows`` (pairs seen)."""
        distances = np.clip(1.0 - self._history.mean(rows), 0.0, 2.0)
        np.fill_diagonal(distances, 0.0)
        scores, outside, _ = outside_majority(distances, k=self.k, min_gap=self.min_gap)
        return scores, outside

    def _score_and_flag(
        self, server_round: int, updates: RoundUpdates
    ) -> tuple[dict[int, float], set[int]]:
        node_ids = updates.node_ids
        rows = self._history.add(node_ids, updates.cosine_similarities())
        scores, outside = self._test(rows)
        ready = self._history.rounds[rows] >= self.min_rounds
        flagged = {node_ids[i] for i in np.flatnonzero(outside & ready)}
        return (
            {node: float(v) for node, v in zip(node_ids, scores, strict=True)},
            flagged,
        )
