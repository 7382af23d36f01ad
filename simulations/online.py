"""Detection every round (real detectors, DoS), instead of an oracle at round T.

The harness wraps a detector so that its flags count only from ``from_round``
on (it still sees every round, so detectors that accumulate history can), and
provides ``FlagEveryRound``, a detector that flags a new node every round: an
attack on the unlearning itself (section IV-D), which FedUP's rate limit and
guard must absorb.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from numpy.typing import NDArray

from fedup_flwr import Detector

Arrays = Sequence[NDArray[Any]]


class FromRound:
    """Ignore a detector's flags before ``from_round`` (it still sees the rounds)."""

    def __init__(self, detector: Detector, from_round: int) -> None:
        self.detector = detector
        self.from_round = int(from_round)
        self.scores: dict[int, float] = {}

    def detect(
        self, server_round: int, replies: Mapping[int, Arrays], global_arrays: Arrays
    ) -> set[int]:
        """The inner detector's flags, or nothing before ``from_round``."""
        flagged = self.detector.detect(server_round, replies, global_arrays)
        self.scores = dict(getattr(self.detector, "scores", {}) or {})
        return set(flagged) if server_round >= self.from_round else set()

    def state_dict(self) -> dict[str, Any]:
        inner = getattr(self.detector, "state_dict", None)
        return {"inner": inner() if callable(inner) else {}}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        inner = getattr(self.detector, "load_state_dict", None)
        if callable(inner):
            inner(state["inner"])


class FlagEveryRound:
    """Flags the smallest replying node id it has not flagged yet, every round."""

    def __init__(self) -> None:
        self.flagged: list[int] = []
        self.scores: dict[int, float] = {}

    def detect(
        self, server_round: int, replies: Mapping[int, Arrays], global_arrays: Arrays
    ) -> set[int]:
        """One new node per round."""
        fresh = sorted(set(replies) - set(self.flagged))
        self.scores = {n: float(n in self.flagged) for n in replies}
        if not fresh:
            return set()
        self.flagged.append(fresh[0])
        return {fresh[0]}

    def state_dict(self) -> dict[str, Any]:
        return {"flagged": list(self.flagged)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.flagged = [int(n) for n in state["flagged"]]
