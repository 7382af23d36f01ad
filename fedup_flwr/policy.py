"""When FedUP may unlearn: the benign-majority guard, the rate limit, recovery.

:class:`UnlearningPolicy` decides *whether* and *when* flagged nodes are
unlearned, never *how* (that is :mod:`fedup_flwr.core`). It holds the excluded
nodes, the nodes awaiting unlearning with their last model (the pending set),
the nodes seen so far, and the rounds of the last unlearning and of the end of
its recovery. It is a small stateful object with ``state_dict()`` and
``load_state_dict()``, tested on its own.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from fedup_flwr.core import model_nbytes

__all__ = ["FlagDecision", "HeldModel", "UnlearningPolicy", "node_ids", "state_int"]


@dataclass
class HeldModel:
    """A node's last valid model, held until it is unlearned.

    Attributes
    ----------
    arrays : list[NDArray]
        The node's model arrays.
    num_examples : int
        Its example count (its weight in the flagged average).
    server_round : int
        The round it was sent in.
    """

    arrays: list[NDArray[Any]]
    num_examples: int
    server_round: int


@dataclass(frozen=True)
class FlagDecision:
    """What :meth:`UnlearningPolicy.flag` did with a detection.

    Attributes
    ----------
    accepted : list[int]
        Nodes newly excluded and queued for unlearning.
    refused : list[int]
        Nodes the guard refused to unlearn (empty unless refused).
    reason : str
        Why they were refused (empty otherwise).
    """

    accepted: list[int]
    refused: list[int]
    reason: str = ""


def _check_int(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or int(value) != value or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


class UnlearningPolicy:
    """Guard, rate limit and pending set of FedUP's unlearning steps.

    * Guard (Theorem 1 needs a benign majority): a detection is refused when
      the excluded nodes plus the newly flagged ones would be half or more of
      the nodes seen.
    * Rate limit (section IV-D): two unlearning steps are at least
      ``rate_limit`` rounds apart; nodes flagged in between wait in the
      pending set (excluded at once) and are unlearned together.
    * Recovery: after an unlearning in round r, rounds up to
      ``r + recovery_rounds`` must still run (:meth:`rounds_required`).

    Parameters
    ----------
    rate_limit : int (default: 10)
        Minimum rounds between two unlearning steps (>= 1).
    recovery_rounds : int (default: 3)
        Training rounds required after an unlearning (>= 0).

    Attributes
    ----------
    excluded : set[int]
        Nodes that no longer train or evaluate.
    pending : dict[int, HeldModel]
        Flagged nodes not yet unlearned, with their last model.
    seen : set[int]
        Nodes that sent at least one valid training reply.
    last_unlearning : int | None
        Round of the last unlearning step.
    recovery_until : int
        Last round of the recovery after it (0 before any).
    """

    def __init__(self, *, rate_limit: int = 10, recovery_rounds: int = 3) -> None:
        self.rate_limit = _check_int(rate_limit, "rate_limit", 1)
        self.recovery_rounds = _check_int(recovery_rounds, "recovery_rounds", 0)
        self.excluded: set[int] = set()
        self.pending: dict[int, HeldModel] = {}
        self.seen: set[int] = set()
        self.last_unlearning: int | None = None
        self.recovery_until = 0

    def observe(self, node_ids: Iterable[int]) -> None:
        """Count nodes that sent a valid reply (the guard's denominator)."""
        self.seen.update(int(n) for n in node_ids)

    def exclude(self, node_ids: Iterable[int]) -> None:
        """Exclude nodes without unlearning them (e.g. banned by hand)."""
        self.excluded.update(int(n) for n in node_ids)

    def flag(
        self,
        flagged: Collection[int],
        models: Mapping[int, HeldModel],
        *,
        present: Collection[int] | None = None,
    ) -> FlagDecision:
        """Exclude and queue the newly flagged nodes, unless the guard refuses.

        Parameters
        ----------
        flagged : Collection[int]
            Nodes a detector flagged; already excluded ones are ignored.
        models : Mapping[int, HeldModel]
            This round's models by node; must hold every newly flagged node.
        present : Collection[int] | None (default: None)
            The nodes connected now and those that replied this round: the
            guard's population. Nodes that left no longer count, so that the
            nodes still present never become excluded in majority. None
            counts every node seen (without a grid to ask).

        Returns
        -------
        FlagDecision
            The nodes accepted, or refused with the reason.

        Raises
        ------
        ValueError
            A newly flagged node has no model in ``models``.
        """
        new = {int(n) for n in flagged} - self.excluded
        if not new:
            return FlagDecision([], [])
        missing = sorted(new - set(models))
        if missing:
            raise ValueError(
                f"flagged nodes {missing} have no model this round; flag only "
                "nodes that replied"
            )
        population = set(self.seen) if present is None else {int(n) for n in present}
        total = len((self.excluded | new) & population)
        if 2 * total >= len(population):
            where = "seen" if present is None else "present"
            return FlagDecision(
                [], sorted(new), f"{total} flagged of {len(population)} nodes {where}"
            )
        self.excluded.update(new)
        for node in new:
            self.pending[node] = models[node]
        return FlagDecision(sorted(new), [])

    def deferred_until(self, server_round: int) -> int | None:
        """First round the rate limit allows the pending unlearning, if later.

        Returns None when nothing is pending or unlearning is allowed now.
        """
        if not self.pending or self.last_unlearning is None:
            return None
        allowed = self.last_unlearning + self.rate_limit
        return allowed if server_round < allowed else None

    def due(self, server_round: int) -> bool:
        """Whether pending nodes should be unlearned in ``server_round``."""
        return bool(self.pending) and self.deferred_until(server_round) is None

    def record_unlearning(self, server_round: int) -> list[int]:
        """Mark the pending nodes unlearned in ``server_round``; return them."""
        nodes = sorted(self.pending)
        self.pending.clear()
        self.last_unlearning = int(server_round)
        self.recovery_until = int(server_round) + self.recovery_rounds
        return nodes

    def drop_pending(self) -> list[int]:
        """Give up unlearning the pending nodes (they stay excluded); return them."""
        nodes = sorted(self.pending)
        self.pending.clear()
        return nodes

    def unlearning_round(self, last_round: int) -> int | None:
        """Round of the pending nodes' unlearning if rounds run after ``last_round``.

        The rate limit may put it later than ``last_round + 1``; None when
        nothing is pending.
        """
        if not self.pending:
            return None
        if self.last_unlearning is None:
            return int(last_round) + 1
        return max(int(last_round) + 1, self.last_unlearning + self.rate_limit)

    def rounds_required(self, last_round: int) -> int:
        """Training rounds still required after ``last_round``.

        Enough rounds for the recovery after the last unlearning and, when
        nodes are pending, for their deferred unlearning and its recovery.
        """
        until = self.recovery_until
        deferred = self.unlearning_round(last_round)
        if deferred is not None:
            until = max(until, deferred + self.recovery_rounds)
        return max(0, until - int(last_round))

    def check_layout(self, model: Sequence[NDArray[Any]]) -> None:
        """ValueError unless every pending model has ``model``'s shapes and dtypes.

        A state loaded from a run of another model would fail only at the
        unlearning; FedUP checks at each round's configuration instead.
        """
        layout = [(a.shape, a.dtype) for a in model]
        for node, held in self.pending.items():
            if [(a.shape, a.dtype) for a in held.arrays] != layout:
                raise ValueError(
                    f"the held model of pending node {node} does not match the "
                    "global model's layout (shapes, dtypes); was the state loaded "
                    "from a run of another model?"
                )

    def held_nbytes(self) -> int:
        """Bytes of the pending nodes' arrays."""
        return sum(model_nbytes(h.arrays) for h in self.pending.values())

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume the policy (node ids, rounds, models)."""
        return {
            "excluded": sorted(self.excluded),
            "pending": {
                n: {
                    "arrays": h.arrays,
                    "num_examples": h.num_examples,
                    "server_round": h.server_round,
                }
                for n, h in self.pending.items()
            },
            "seen": sorted(self.seen),
            "last_unlearning": self.last_unlearning,
            "recovery_until": self.recovery_until,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a state saved by :meth:`state_dict` (other keys are ignored).

        Raises
        ------
        ValueError
            A value is missing or not what :meth:`state_dict` writes (node ids
            and rounds as integers, pending models as finite numeric arrays of
            one layout, positive example counts); nothing is changed then.
        """
        excluded = node_ids(state.get("excluded"), "excluded")
        seen = node_ids(state.get("seen"), "seen")
        pending = _pending(state.get("pending"))
        last = state.get("last_unlearning")
        last = None if last is None else state_int(last, "last_unlearning", 1)
        until = state_int(state.get("recovery_until"), "recovery_until", 0)
        self.excluded, self.seen, self.pending = excluded, seen, pending
        self.last_unlearning, self.recovery_until = last, until


def state_int(value: Any, name: str, minimum: int) -> int:
    """``value`` as an int, or ValueError naming the state entry ``name``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"state[{name!r}] must be an integer, got {value!r:.80}")
    if value < minimum:
        raise ValueError(f"state[{name!r}] must be >= {minimum}, got {value}")
    return int(value)


def node_ids(values: Any, name: str) -> set[int]:
    """A state entry's node ids as a set, or ValueError naming the entry."""
    if isinstance(values, (str, bytes, Mapping)) or not isinstance(values, Iterable):
        raise ValueError(
            f"state[{name!r}] must be a list of node ids, got {values!r:.80}"
        )
    return {state_int(n, f"{name}[]", 0) for n in values}


def _pending(value: Any) -> dict[int, HeldModel]:
    if not isinstance(value, Mapping):
        raise ValueError(f"state['pending'] must be a mapping, got {value!r:.80}")
    out: dict[int, HeldModel] = {}
    layout: list[tuple[tuple[int, ...], np.dtype[Any]]] | None = None
    for node, held in value.items():
        what = f"pending[{node!r}]"
        node = state_int(node, "pending key", 0)
        if not isinstance(held, Mapping):
            raise ValueError(f"state[{what!r}] must be a mapping, got {held!r:.80}")
        arrays = held.get("arrays")
        if not isinstance(arrays, (list, tuple)) or not all(
            isinstance(a, np.ndarray) and a.dtype.kind in "biuf" for a in arrays
        ):
            raise ValueError(
                f"state[{what!r}]['arrays'] must be a list of numeric numpy "
                f"arrays, got {arrays!r:.80}"
            )
        if not all(np.all(np.isfinite(a)) for a in arrays):
            raise ValueError(f"state[{what!r}]['arrays'] contain NaN or Inf")
        mine = [(a.shape, a.dtype) for a in arrays]
        if layout is not None and mine != layout:
            raise ValueError(
                f"state[{what!r}]['arrays'] have another layout (shapes, dtypes) "
                "than the other pending nodes' arrays"
            )
        layout = mine
        out[node] = HeldModel(
            list(arrays),
            state_int(held.get("num_examples"), f"{what}['num_examples']", 1),
            state_int(held.get("server_round"), f"{what}['server_round']", 1),
        )
    return out
