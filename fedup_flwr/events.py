"""The record FedUP keeps of each unlearning step (or refusal)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
from numpy.typing import NDArray

from fedup_flwr.core import is_prunable
from fedup_flwr.rates import RateChoice

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
        The benign clients' similarity under ``similarity_measure`` (measured
        with a fixed P too; None when undefined).
    reason : str
        Why a step was refused (empty otherwise).
    adaptive : bool
        Whether P came from Eq. 4-5 (see :class:`~fedup_flwr.rates.RateChoice`).
    similarity_measure : str
        Name of the similarity measure (empty for a refusal).
    sim_min, sim_max, p_min, p_max, gamma : float | None
        The parameters of Eq. 4-5 when ``adaptive``; None otherwise.
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
    adaptive: bool = False
    similarity_measure: str = ""
    sim_min: float | None = None
    sim_max: float | None = None
    p_min: float | None = None
    p_max: float | None = None
    gamma: float | None = None

    @classmethod
    def from_mask(
        cls,
        server_round: int,
        node_ids: list[int],
        mask: Sequence[NDArray[np.bool_]],
        *,
        choice: RateChoice,
        seconds: float,
        state_bytes: int,
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
        choice : RateChoice
            The rate used and how it was chosen (its fields become the
            attributes of the same names).
        seconds, state_bytes
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
            **asdict(choice),
        )

    def metrics(self) -> dict[str, float]:
        """The step's figures under the metric names FedUP reports each round.

        Returns
        -------
        dict[str, float]
            ``fedup-unlearned-nodes``, ``fedup-pruning-rate``,
            ``fedup-pruned-weights``, ``fedup-unlearn-seconds``,
            ``fedup-state-bytes`` and ``fedup-adaptive`` (1 when P came from
            Eq. 4-5); ``fedup-similarity-<measure>`` when the similarity was
            defined (metrics hold numbers, so the key names the measure); and
            ``fedup-sim-min``, ``fedup-sim-max``, ``fedup-p-min``,
            ``fedup-p-max``, ``fedup-gamma`` when adaptive.
        """
        out = {
            "fedup-unlearned-nodes": float(len(self.node_ids)),
            "fedup-pruning-rate": float(self.rate),
            "fedup-pruned-weights": float(sum(self.pruned)),
            "fedup-unlearn-seconds": float(self.seconds),
            "fedup-state-bytes": float(self.state_bytes),
            "fedup-adaptive": float(self.adaptive),
        }
        if self.similarity is not None:
            out[f"fedup-similarity-{self.similarity_measure}"] = self.similarity
        params = {
            "fedup-sim-min": self.sim_min,
            "fedup-sim-max": self.sim_max,
            "fedup-p-min": self.p_min,
            "fedup-p-max": self.p_max,
            "fedup-gamma": self.gamma,
        }
        out.update({k: float(v) for k, v in params.items() if v is not None})
        return out
