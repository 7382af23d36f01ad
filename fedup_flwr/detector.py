"""The detector interface FedUP asks which nodes are malicious, and an oracle."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from numpy.typing import NDArray

Arrays = Sequence[NDArray[Any]]

__all__ = ["Detector", "OracleDetector"]


@runtime_checkable
class Detector(Protocol):
    """Decides, from what the server sees, which nodes are malicious.

    ``detect`` receives the round number, the validated replies of that
    training round as ``{node_id: arrays}`` (the arrays of each node's trained
    model, in the global model's order) and the global arrays sent that round.
    It returns the node ids it flags. It must not be given ground truth.

    Detectors may also expose ``scores: dict[int, float]`` (the last round's
    per-node scores, reported in the round's metrics) and
    ``state_dict()`` / ``load_state_dict()`` for anything they accumulate;
    FedUP uses them when present.
    """

    def detect(
        self,
        server_round: int,
        replies: Mapping[int, Arrays],
        global_arrays: Arrays,
    ) -> set[int]:
        """Return the node ids flagged as malicious in ``server_round``."""
        ...


class OracleDetector:
    """Flags given node ids at given rounds (for experiments with ground truth).

    Parameters
    ----------
    schedule : Mapping[int, Iterable[int]]
        ``{server_round: node_ids}``; in that round the listed nodes that
        replied are flagged. Nodes that did not reply are not reported.

    Examples
    --------
    >>> oracle = OracleDetector({5: [11, 12]})
    >>> oracle.detect(5, {11: [], 12: [], 13: []}, [])
    {11, 12}
    """

    def __init__(self, schedule: Mapping[int, Iterable[int]]) -> None:
        self.schedule: dict[int, frozenset[int]] = {}
        for rnd, nodes in schedule.items():
            if int(rnd) != rnd or rnd < 1:
                raise ValueError(f"rounds must be positive integers, got {rnd!r}")
            self.schedule[int(rnd)] = frozenset(int(n) for n in nodes)
        self.scores: dict[int, float] = {}

    def detect(
        self,
        server_round: int,
        replies: Mapping[int, Arrays],
        global_arrays: Arrays,
    ) -> set[int]:
        """Return the scheduled nodes of ``server_round`` that replied."""
        flagged = self.schedule.get(server_round, frozenset())
        self.scores = {node: float(node in flagged) for node in replies}
        return {node for node in replies if node in flagged}

    def state_dict(self) -> dict[str, Any]:
        """Return the schedule (the oracle accumulates nothing else)."""
        return {"schedule": {r: sorted(n) for r, n in self.schedule.items()}}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a schedule saved by :meth:`state_dict`."""
        self.schedule = {
            int(r): frozenset(int(x) for x in n) for r, n in state["schedule"].items()
        }
