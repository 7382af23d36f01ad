"""A strategy wrapper that keeps excluded nodes out and invalid replies away.

:class:`ExcludingStrategy` is :class:`~fedup_flwr.FedUP`'s base: it runs an
inner strategy as a Flower wrapper does (``self.strategy``), but hides excluded
nodes from sampling, drops their replies, validates every training reply
(:mod:`fedup_flwr.validation`), aggregates the valid ones in a canonical order,
casts the aggregate back to the dtypes sent, and numbers rounds from
``first_round``. Used alone (no detector, nodes excluded by hand) it is the
retrain-without-them baseline.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from logging import ERROR, INFO, WARNING
from typing import Any, cast

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.common.logger import log
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg, Strategy
from numpy.typing import NDArray

from fedup_flwr.inner_state import sync_current_arrays
from fedup_flwr.rounds import ExcludingGrid, inner_attr
from fedup_flwr.validation import (
    DEFAULT_MAX_ABS,
    DEFAULT_MAX_EXAMPLES,
    ValidReply,
    check_global_model,
    restore_dtypes,
    validate_train_replies,
)

__all__ = ["ExcludingStrategy"]


class ExcludingStrategy(Strategy):
    """Run an inner strategy without excluded nodes, on validated replies only.

    Parameters
    ----------
    strategy : Strategy | None (default: ``FedAvg()``)
        Inner strategy; it samples, aggregates and evaluates as usual.
    max_abs : float | None (default: ``validation.DEFAULT_MAX_ABS``)
        Replies with any array value larger in magnitude are rejected.
    max_examples : int (default: ``validation.DEFAULT_MAX_EXAMPLES``)
        Replies claiming more examples are rejected.
    first_round : int (default: 1)
        Number given to the first round, for a run that continues an earlier
        one; the hooks add ``first_round - 1`` to Flower's round numbers.
    """

    def __init__(
        self,
        strategy: Strategy | None = None,
        *,
        max_abs: float | None = DEFAULT_MAX_ABS,
        max_examples: int = DEFAULT_MAX_EXAMPLES,
        first_round: int = 1,
    ) -> None:
        if int(first_round) != first_round or first_round < 1:
            raise ValueError(
                f"first_round must be an integer >= 1, got {first_round!r}"
            )
        self.strategy: Strategy = strategy if strategy is not None else FedAvg()
        self.max_abs = max_abs
        self.max_examples = max_examples
        self._excluded: set[int] = set()
        self._global_keys: list[str] = []
        self._global_arrays: list[NDArray[Any]] = []
        # Nodes sent a training message this round (None before the first).
        self._sent_to: set[int] | None = None
        # Nodes connected when the round was configured (None before).
        self._present: set[int] | None = None
        self._round_offset = int(first_round) - 1
        self._last_round = self._round_offset
        self._round_metrics: dict[str, float] = {}

    # ------------------------------------------------------------- settings
    @property
    def excluded(self) -> set[int]:
        """Nodes that no longer train or evaluate."""
        return self._excluded

    def exclude(self, node_ids: Iterable[int]) -> None:
        """Exclude nodes from training and evaluation (without unlearning).

        For operators who ban nodes by hand, and for baselines that train
        without some nodes from the start.
        """
        self.excluded.update(int(n) for n in node_ids)

    @property
    def weighted_by_key(self) -> str:
        """The inner strategy's weight key (``num-examples`` for FedAvg).

        Looked up through wrappers inside this one (their ``strategy``).
        """
        return str(inner_attr(self.strategy, "weighted_by_key", "num-examples"))

    @property
    def global_arrays(self) -> list[NDArray[Any]]:
        """The global arrays sent in the last training round."""
        return self._global_arrays

    @property
    def next_round(self) -> int:
        """Number the next round ``start`` runs will have."""
        return self._round_offset + 1

    @next_round.setter
    def next_round(self, value: int) -> None:
        if int(value) != value or value < 1:
            raise ValueError(f"next_round must be an integer >= 1, got {value!r}")
        self._round_offset = int(value) - 1

    @property
    def last_round(self) -> int:
        """The last round aggregated, in this strategy's numbering (0 before)."""
        return self._last_round

    def summary(self) -> None:
        """Log the excluded nodes, then the inner strategy's settings."""
        log(INFO, "\t├──> Excluded nodes: %s", sorted(self.excluded))
        log(INFO, "\t└──> Inner strategy: %s", type(self.strategy).__name__)
        self.strategy.summary()

    # ------------------------------------------------------------ configure
    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """Configure training on the non-excluded nodes; remember the arrays sent."""
        server_round += self._round_offset
        keys, values = list(arrays.keys()), arrays.to_numpy_ndarrays()
        check_global_model(values, keys)
        self._present = {int(n) for n in grid.get_node_ids()}
        self._warn_unreachable_minimums(
            server_round, len(self._present - self.excluded)
        )
        self._global_keys, self._global_arrays = keys, values
        messages = self._drop_excluded(
            self.strategy.configure_train(
                server_round,
                arrays,
                config,
                cast(Grid, ExcludingGrid(grid, self.excluded)),
            )
        )
        self._sent_to = {int(m.metadata.dst_node_id) for m in messages}
        log(
            INFO,
            "FedUP: round %s: training on nodes %s; excluded %s",
            server_round,
            sorted(m.metadata.dst_node_id for m in messages),
            sorted(self.excluded),
        )
        return messages

    def _warn_unreachable_minimums(self, server_round: int, eligible: int) -> None:
        # Flower's sampler waits, without end, for enough nodes to sample from.
        fraction = float(inner_attr(self.strategy, "fraction_train", 1.0))
        for name in ("min_available_nodes", "min_train_nodes"):
            needed = int(inner_attr(self.strategy, name, 0))
            if fraction > 0 and eligible < needed:
                log(
                    WARNING,
                    "FedUP: round %s: %d nodes are left after excluding %s, fewer "
                    "than the inner strategy's %s=%d; Flower's sampler waits for "
                    "more nodes to connect (lower %s to go on without them)",
                    server_round,
                    eligible,
                    sorted(self.excluded),
                    name,
                    needed,
                    name,
                )

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """Configure evaluation on the non-excluded nodes."""
        messages = self.strategy.configure_evaluate(
            server_round + self._round_offset,
            arrays,
            config,
            cast(Grid, ExcludingGrid(grid, self.excluded)),
        )
        return self._drop_excluded(messages)

    def _drop_excluded(self, messages: Iterable[Message]) -> list[Message]:
        return [m for m in messages if m.metadata.dst_node_id not in self.excluded]

    # ------------------------------------------------------------ aggregate
    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Validate the replies, aggregate the kept ones, then finish the round.

        Subclasses choose the replies to aggregate (:meth:`_select`) and may
        change the aggregate (:meth:`_finish_round`); the round's
        ``self._round_metrics`` are added to the inner strategy's metrics.
        """
        server_round += self._round_offset
        self._last_round = server_round
        self._round_metrics = {}
        valid, failed = self._validate(server_round, replies)
        # Replies arrive in any order; a canonical order makes the float sums
        # (and so the global model) reproducible run to run.
        kept = sorted(self._select(server_round, valid), key=_canonical_key)
        inner, metrics = self._aggregate_inner(server_round, kept, failed)
        arrays = self._finish_round(server_round, inner, kept)
        if arrays is None or arrays is not inner:  # pruned, cast, or kept
            # An inner strategy's own copy of the model (FedAvgM's) must follow.
            sync_current_arrays(
                self.strategy,
                arrays
                if arrays is not None
                else _record(self._global_keys, self._global_arrays),
            )
        self._round_metrics["fedup-excluded-nodes"] = float(len(self.excluded))
        merged = MetricRecord() if metrics is None else metrics
        for key, value in self._round_metrics.items():
            merged[key] = value
        return arrays, merged

    def _select(self, server_round: int, valid: list[ValidReply]) -> list[ValidReply]:
        """The valid replies to aggregate: here those of non-excluded nodes."""
        return [r for r in valid if r.node_id not in self.excluded]

    def _finish_round(
        self, server_round: int, arrays: ArrayRecord | None, kept: list[ValidReply]
    ) -> ArrayRecord | None:
        """Last change to the round's aggregate (None: keep the global model)."""
        return arrays

    def aggregate_evaluate(
        self, server_round: int, replies: Iterable[Message]
    ) -> MetricRecord | None:
        """Forward to the inner strategy, without replies of excluded nodes."""
        kept = [m for m in replies if m.metadata.src_node_id not in self.excluded]
        try:
            return self.strategy.aggregate_evaluate(
                server_round + self._round_offset, kept
            )
        except Exception as err:  # a bad evaluation reply must not stop training
            log(ERROR, "FedUP: evaluation aggregation failed (%s); skipped", err)
            return None

    def _validate(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[list[ValidReply], list[Message]]:
        checked = validate_train_replies(
            replies,
            arrays_name=str(inner_attr(self.strategy, "arrayrecord_key", "arrays")),
            global_arrays=self._global_arrays,
            global_keys=self._global_keys,
            weighted_by_key=self.weighted_by_key,
            max_abs=self.max_abs,
            max_examples=self.max_examples,
            excluded=self.excluded,
            sent_to=self._sent_to,
        )
        for node, reason in checked.rejected:
            log(
                WARNING,
                "FedUP: round %s: reply from node %s rejected: %s",
                server_round,
                node,
                reason,
            )
        self._round_metrics["fedup-rejected-replies"] = float(len(checked.rejected))
        return checked.valid, checked.failed

    def _aggregate_inner(
        self, server_round: int, kept: list[ValidReply], failed: list[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        if not kept:
            log(
                WARNING,
                "FedUP: round %s: no valid benign reply; the global model is kept",
                server_round,
            )
            return None, None
        try:
            arrays, metrics = self.strategy.aggregate_train(
                server_round, [r.message for r in kept] + failed
            )
            arrays = restore_dtypes(arrays, self._global_arrays)
            if arrays is not None and not all(
                np.all(np.isfinite(a)) for a in arrays.to_numpy_ndarrays()
            ):
                # An overflow (values near the dtype's limit, max_abs=None) or a
                # strategy's own bug; the next round would start from it.
                raise ValueError("the aggregate contains NaN or Inf")
            return arrays, metrics
        except Exception as err:  # keep the previous model rather than crash
            log(
                ERROR,
                "FedUP: round %s: inner aggregation failed (%s); the global "
                "model is kept",
                server_round,
                err,
            )
            return None, None


def _record(keys: list[str], arrays: list[NDArray[Any]]) -> ArrayRecord:
    return ArrayRecord({k: Array(a) for k, a in zip(keys, arrays)})


def _canonical_key(reply: ValidReply) -> tuple[int, bytes, int]:
    """Order replies by content, not by arrival or node id (ids change per run)."""
    digest = hashlib.blake2b(digest_size=16)
    for arr in (reply.arrays[0], reply.arrays[-1]):
        digest.update(np.ascontiguousarray(arr).tobytes())
    return (reply.num_examples, digest.digest(), reply.node_id)
