"""Rules shared by the built-in detectors: :class:`BaseDetector`, and the
robust threshold :func:`mad_threshold`.

Every built-in detector

* works on *updates*, ``global - local`` per array, read through one
  :class:`~fedup_flwr.detectors.updates.RoundUpdates` per round that computes
  only what the detector asks for (one layer, or inner products of the whole
  updates), in the model's dtype (float32 for PyTorch models);
* needs at least ``min_replies`` replies, otherwise it flags nothing;
* never flags half or more of the round's replies (FedUP's benign-majority
  assumption): a larger raw decision is cut down to the ``ceil(n / 2) - 1``
  highest-scoring flagged nodes;
* reports ``scores`` (``{node_id: score}``, higher means more suspicious) for
  every replying node after every call;
* is deterministic given its ``seed``, and has ``state_dict`` /
  ``load_state_dict`` (empty unless the detector accumulates something).
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
from flwr.common.logger import log
from numpy.typing import NDArray

from fedup_flwr.detector import Arrays
from fedup_flwr.detectors.updates import RoundUpdates, last_kernel_index

__all__ = ["BaseDetector", "RoundUpdates", "last_kernel_index"]


class BaseDetector(ABC):
    """Base class of the built-in detectors (see the module docstring).

    Subclasses implement :meth:`_score_and_flag`; :meth:`detect` checks the
    replies, computes the updates, applies the ``min_replies`` rule and the
    "never half or more" cap, and stores the scores.

    Parameters
    ----------
    min_replies : int (default: 3)
        Fewest replies a round needs for detection; with fewer, nothing is
        flagged (and a line is logged). Must be at least 1.
    seed : int (default: 0)
        Seed of any randomness (e.g. k-means initialisation), so that the same
        inputs give the same decision.

    Attributes
    ----------
    name : str
        The detector's registry name.
    scores : dict[int, float]
        Per-node scores of the last call, higher means more suspicious.
    """

    name: ClassVar[str] = "base"

    def __init__(self, *, min_replies: int = 3, seed: int = 0) -> None:
        if isinstance(min_replies, bool) or not isinstance(
            min_replies, (int, np.integer)
        ):
            raise TypeError(f"min_replies must be an int, got {min_replies!r}")
        if min_replies < 1:
            raise ValueError(f"min_replies must be at least 1, got {min_replies}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise TypeError(f"seed must be an int, got {seed!r}")
        self.min_replies = int(min_replies)
        self.seed = int(seed)
        self.scores: dict[int, float] = {}

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(min_replies={self.min_replies}, seed={self.seed})"
        )

    # ------------------------------------------------------------------ API
    def detect(
        self,
        server_round: int,
        replies: Mapping[int, Arrays],
        global_arrays: Arrays,
    ) -> set[int]:
        """Return the node ids flagged as malicious in ``server_round``.

        Parameters
        ----------
        server_round : int
            The current round.
        replies : Mapping[int, Sequence[numpy.ndarray]]
            ``{node_id: arrays}``, each node's trained model arrays in the
            order and shapes of ``global_arrays``.
        global_arrays : Sequence[numpy.ndarray]
            The global model's arrays sent to the nodes this round.

        Returns
        -------
        set[int]
            The flagged node ids: a subset of ``replies``, fewer than half.

        Raises
        ------
        ValueError
            If a reply's arrays do not match ``global_arrays`` in number or
            shape.
        """
        node_ids = sorted(int(node) for node in replies)
        n = len(node_ids)
        if n < self.min_replies:
            log(
                logging.INFO,
                "%s: round %s: %s replies, fewer than min_replies=%s; nothing flagged",
                self.name,
                server_round,
                n,
                self.min_replies,
            )
            self.scores = self._fallback_scores(node_ids)
            return set()
        updates = RoundUpdates(replies, global_arrays)
        raw_scores, raw_flagged = self._score_and_flag(server_round, updates)
        scores = {node: float(raw_scores.get(node, 0.0)) for node in node_ids}
        flagged = {int(node) for node in raw_flagged} & set(node_ids)
        self.scores = scores
        return self._cap(server_round, flagged, scores, n)

    def state_dict(self) -> dict[str, Any]:
        """Return what the detector accumulated (nothing, by default).

        Returns
        -------
        dict[str, Any]
            A state that :meth:`load_state_dict` restores.
        """
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a state saved by :meth:`state_dict` (nothing, by default).

        Parameters
        ----------
        state : Mapping[str, Any]
            The saved state.
        """
        del state

    # ----------------------------------------------------------- for subclasses
    @abstractmethod
    def _score_and_flag(
        self, server_round: int, updates: RoundUpdates
    ) -> tuple[dict[int, float], set[int]]:
        """Score every node and return the raw decision.

        Parameters
        ----------
        server_round : int
            The current round.
        updates : RoundUpdates
            The round's updates; ``updates.node_ids`` are the replying nodes,
            sorted, at least ``min_replies`` of them.

        Returns
        -------
        tuple[dict[int, float], set[int]]
            Scores (higher means more suspicious; missing nodes score 0.0)
            and the flagged nodes before the "never half or more" cap.
        """

    def _fallback_scores(self, node_ids: Sequence[int]) -> dict[int, float]:
        """Scores reported when a round has too few replies (0.0 each)."""
        return dict.fromkeys(node_ids, 0.0)

    def _last_kernel(self, server_round: int, updates: RoundUpdates) -> int | None:
        """The index of the model's last kernel (:func:`last_kernel_index`),
        for detectors that read the last layer; None, with a warning that
        nothing is flagged, when the model has no kernel."""
        index = last_kernel_index(updates.global_arrays)
        if index is None:
            log(
                logging.WARNING,
                "%s: round %s: the model has no array with 2 or more "
                "dimensions; nothing flagged",
                self.name,
                server_round,
            )
        return index

    # ------------------------------------------------------------- helpers
    def _cap(
        self,
        server_round: int,
        flagged: set[int],
        scores: Mapping[int, float],
        n: int,
    ) -> set[int]:
        """Keep fewer than half of ``n``: the highest-scoring flagged nodes."""
        if 2 * len(flagged) < n:
            return flagged
        keep = (n - 1) // 2  # == ceil(n / 2) - 1
        ranked = sorted(flagged, key=lambda node: (-scores[node], node))
        capped = set(ranked[:keep])
        log(
            logging.WARNING,
            "%s: round %s: raw decision flags %s of %s replies (half or more); "
            "keeping the %s highest-scoring: %s",
            self.name,
            server_round,
            len(flagged),
            n,
            keep,
            sorted(capped),
        )
        return capped


MAD_SCALE = 1.4826
"""Makes the median absolute deviation estimate a normal standard deviation."""


def mad_threshold(
    values: NDArray[np.float64], *, k: float, floor: float = 0.0, rel_floor: float = 0.0
) -> float:
    """A robust upper threshold: ``median + max(k * MAD, floor, rel_floor * median)``.

    ``MAD = MAD_SCALE * median(|values - median|)``, a standard deviation for
    normal data that a minority of outliers does not move. The floors keep
    the threshold above the median when most values are equal (MAD 0).

    Parameters
    ----------
    values : NDArray[np.float64]
        One value per node (at least one).
    k : float
        Width in scaled MADs.
    floor, rel_floor : float (default: 0)
        Least absolute excess over the median, and least excess relative to it.

    Raises
    ------
    ValueError
        If ``values`` is empty.
    """
    if values.size == 0:
        raise ValueError("mad_threshold needs at least one value")
    center = float(np.median(values))
    mad = MAD_SCALE * float(np.median(np.abs(values - center)))
    return center + max(k * mad, floor, rel_floor * center)
