"""The record FedUP keeps of each unlearning step (or refusal)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from fedup_flwr.core import is_prunable

__all__ = ["UnlearningEvent"]


@dataclass
class UnlearningEvent:
    """One unlearning step, or one refused by the guard.

    Attributes
    ----------
    server_round : int
        Round in which it happened.
    node_ids : list[int]
        Nodes whose influence was removed (or would have been).
    status : str
        ``"unlearned"``, or ``"refused"``: by the guard of Theorem 1 (nodes not
        excluded), or because the model has no prunable array (nodes excluded,
        nothing pruned); ``reason`` says which.
    rate : float
        Pruning rate P used (0 when refused).
    pruned : list[int]
        Weights zeroed per array.
    prunable : list[int]
        Weights that could be pruned per array (0 for non-prunable arrays).
    seconds : float
        Wall time of mask + apply.
    state_bytes : int
        Bytes of client arrays FedUP held for the step.
    similarity : float | None
        Benign last-layer similarity when P was adaptive.
    reason : str
        Why a step was refused (empty otherwise).
    """

    server_round: int
    node_ids: list[int]
    status: str
    rate: float = 0.0
    pruned: list[int] = field(default_factory=list)
    prunable: list[int] = field(default_factory=list)
    seconds: float = 0.0
    state_bytes: int = 0
    similarity: float | None = None
    reason: str = ""

    @classmethod
    def from_mask(
        cls,
        server_round: int,
        node_ids: list[int],
        mask: Sequence[NDArray[np.bool_]],
        *,
        rate: float,
        seconds: float,
        state_bytes: int,
        similarity: float | None,
    ) -> UnlearningEvent:
        """An ``"unlearned"`` event, counting pruned and prunable weights.

        Parameters
        ----------
        server_round : int
            Round of the step.
        node_ids : list[int]
            Nodes unlearned.
        mask : Sequence[NDArray[np.bool_]]
            The mask applied (True = zeroed).
        rate, seconds, state_bytes, similarity
            As the attributes of the same names.

        Returns
        -------
        UnlearningEvent
            With ``pruned`` and ``prunable`` per array.
        """
        return cls(
            server_round,
            list(node_ids),
            "unlearned",
            pruned=[int(np.count_nonzero(m)) for m in mask],
            prunable=[int(np.size(m)) if is_prunable(m) else 0 for m in mask],
            seconds=seconds,
            state_bytes=state_bytes,
            similarity=similarity,
            rate=rate,
        )

    def metrics(self) -> dict[str, float]:
        """The step's figures under the metric names FedUP reports each round.

        Returns
        -------
        dict[str, float]
            ``fedup-unlearned-nodes``, ``fedup-pruning-rate``,
            ``fedup-pruned-weights``, ``fedup-unlearn-seconds`` and
            ``fedup-state-bytes``.
        """
        return {
            "fedup-unlearned-nodes": float(len(self.node_ids)),
            "fedup-pruning-rate": float(self.rate),
            "fedup-pruned-weights": float(sum(self.pruned)),
            "fedup-unlearn-seconds": float(self.seconds),
            "fedup-state-bytes": float(self.state_bytes),
        }
