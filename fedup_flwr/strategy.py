"""FedUP as a Flower strategy on the Message API.

``FedUP`` wraps an inner strategy (``FedAvg`` by default). It keeps the last
training round's replies, asks a detector which nodes are malicious, excludes
them at once, and prunes the global model where the flagged and the benign
models disagree most (Algorithms 1-2 of the paper), rate-limited and guarded.
The maths lives in :mod:`fedup_flwr.core`.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from logging import ERROR, INFO, WARNING
from typing import Any, cast

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.common.logger import log
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg, Result, Strategy
from numpy.typing import NDArray

from fedup_flwr.core import (
    apply_mask,
    last_layer_similarity,
    model_nbytes,
    pruning_rate,
    unlearning_mask,
)
from fedup_flwr.detector import Detector
from fedup_flwr.validation import (
    ValidReply,
    validate_train_reply,
    with_common_metrics,
)

__all__ = ["FedUP", "UnlearningEvent"]

EvaluateFn = Callable[[int, ArrayRecord], MetricRecord | None]


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
        ``"unlearned"`` or ``"refused"`` (guard of Theorem 1).
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


@dataclass
class _Stored:
    arrays: list[NDArray[Any]]
    num_examples: int
    server_round: int


class _ExcludingGrid:
    """A view of a Grid whose ``get_node_ids`` hides excluded nodes.

    Inner strategies sample from ``grid.get_node_ids()``, so excluded nodes are
    never sampled without copying any sampling code.
    """

    def __init__(self, grid: Grid, excluded: set[int]) -> None:
        self._grid = grid
        self._excluded = excluded

    def get_node_ids(self) -> Iterable[int]:
        return [n for n in self._grid.get_node_ids() if n not in self._excluded]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._grid, name)


class FedUP(Strategy):
    """Unlearn flagged clients by pruning the global model (FedUP).

    Parameters
    ----------
    strategy : Strategy | None (default: ``FedAvg()``)
        Inner strategy; it samples, aggregates and evaluates as usual.
    detector : Detector | None (default: None)
        Asked every training round which replying nodes are malicious. With
        None, FedUP never unlearns and behaves like the inner strategy (plus
        reply validation).
    pruning_rate : float | None (default: None)
        Fixed pruning rate P in [0, 1]; None adapts P to the benign clients'
        last-layer similarity (Eq. 4-5).
    rate_limit : int (default: 10)
        Minimum rounds between two unlearning steps (T, section IV-D).
    recovery_rounds : int (default: 3)
        Training rounds guaranteed after an unlearning; ``start`` runs extra
        rounds when the run would end sooner.
    p_min, p_max, gamma : float
        Parameters of the adaptive rate (Eq. 5).
    max_abs : float | None (default: 1e8)
        Replies with any array value larger in magnitude are rejected.
    max_examples : int (default: 10**9)
        Replies claiming more examples are rejected.
    first_round : int (default: 1)
        Number of the first round ``start`` runs, for a run that continues an
        earlier one (the detector, events and rate limit see these numbers).
    """

    def __init__(
        self,
        strategy: Strategy | None = None,
        detector: Detector | None = None,
        pruning_rate: float | None = None,
        rate_limit: int = 10,
        recovery_rounds: int = 3,
        p_min: float = 0.01,
        p_max: float = 0.15,
        gamma: float = 5.0,
        *,
        max_abs: float | None = 1e8,
        max_examples: int = 10**9,
        first_round: int = 1,
    ) -> None:
        if pruning_rate is not None and not 0.0 <= pruning_rate <= 1.0:
            raise ValueError(
                f"pruning_rate must be in [0, 1] or None, got {pruning_rate}"
            )
        if int(rate_limit) != rate_limit or rate_limit < 1:
            raise ValueError(f"rate_limit must be an integer >= 1, got {rate_limit!r}")
        if int(recovery_rounds) != recovery_rounds or recovery_rounds < 0:
            raise ValueError(
                f"recovery_rounds must be an integer >= 0, got {recovery_rounds!r}"
            )
        if not 0.0 <= p_min <= p_max <= 1.0:
            raise ValueError(f"need 0 <= p_min <= p_max <= 1, got {p_min}, {p_max}")
        if not gamma > 0:
            raise ValueError(f"gamma must be positive, got {gamma}")
        if int(first_round) != first_round or first_round < 1:
            raise ValueError(
                f"first_round must be an integer >= 1, got {first_round!r}"
            )
        if detector is not None and not callable(getattr(detector, "detect", None)):
            raise TypeError(
                f"detector {detector!r} has no detect(server_round, replies, "
                "global_arrays) method"
            )
        self.strategy: Strategy = strategy if strategy is not None else FedAvg()
        self.detector = detector
        self.pruning_rate = pruning_rate
        self.rate_limit = int(rate_limit)
        self.recovery_rounds = int(recovery_rounds)
        self.p_min, self.p_max, self.gamma = p_min, p_max, gamma
        self.max_abs = max_abs
        self.max_examples = max_examples
        self.events: list[UnlearningEvent] = []
        self.excluded: set[int] = set()
        self._pending: dict[int, _Stored] = {}
        self._last_replies: dict[int, _Stored] = {}
        self._global_keys: list[str] = []
        self._global_arrays: list[NDArray[Any]] = []
        # Nodes sent a training message this round (None before the first).
        self._sent_to: set[int] | None = None
        self._seen: set[int] = set()
        self._last_unlearning: int | None = None
        self._recovery_until = 0
        self._round_offset = int(first_round) - 1
        self._round_metrics: dict[str, float] = {}

    # ------------------------------------------------------------------ keys
    @property
    def weighted_by_key(self) -> str:
        """The inner strategy's weight key (``num-examples`` for FedAvg)."""
        return str(getattr(self.strategy, "weighted_by_key", "num-examples"))

    def summary(self) -> None:
        """Log FedUP's settings, then the inner strategy's."""
        log(INFO, "\t├──> FedUP settings:")
        log(
            INFO,
            "\t│\t├── Pruning rate: %s",
            f"adaptive (p_min={self.p_min:.3f}, p_max={self.p_max:.3f}, "
            f"gamma={self.gamma:.1f})"
            if self.pruning_rate is None
            else f"{self.pruning_rate:.3f}",
        )
        log(INFO, "\t│\t├── Rate limit: %d rounds", self.rate_limit)
        log(INFO, "\t│\t├── Recovery rounds: %d", self.recovery_rounds)
        log(INFO, "\t│\t└── Detector: %s", type(self.detector).__name__)
        log(INFO, "\t└──> Inner strategy: %s", type(self.strategy).__name__)
        self.strategy.summary()

    # ------------------------------------------------------------ configure
    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """Configure training on the non-excluded nodes; remember the arrays sent."""
        server_round += self._round_offset
        needed = getattr(self.strategy, "min_available_nodes", 0)
        eligible = [n for n in grid.get_node_ids() if n not in self.excluded]
        if len(eligible) < needed:
            log(
                WARNING,
                "FedUP: %d nodes are left after excluding %s, fewer than the inner "
                "strategy's min_available_nodes=%d; it will wait for more nodes",
                len(eligible),
                sorted(self.excluded),
                needed,
            )
        self._global_keys = list(arrays.keys())
        self._global_arrays = arrays.to_numpy_ndarrays()
        messages = self._drop_excluded(
            self.strategy.configure_train(
                server_round,
                arrays,
                config,
                cast(Grid, _ExcludingGrid(grid, self.excluded)),
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

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """Configure evaluation on the non-excluded nodes."""
        messages = self.strategy.configure_evaluate(
            server_round + self._round_offset,
            arrays,
            config,
            cast(Grid, _ExcludingGrid(grid, self.excluded)),
        )
        return self._drop_excluded(messages)

    def _drop_excluded(self, messages: Iterable[Message]) -> list[Message]:
        kept = [m for m in messages if m.metadata.dst_node_id not in self.excluded]
        return kept

    # ------------------------------------------------------------ aggregate
    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Validate, detect, aggregate the benign replies, and unlearn if due."""
        server_round += self._round_offset
        self._round_metrics = {}
        valid, failed = self._validate(server_round, list(replies))
        self._last_replies = {
            r.node_id: _Stored(r.arrays, r.num_examples, server_round) for r in valid
        }
        self._seen.update(self._last_replies)
        self._detect(server_round, valid)
        # Replies arrive in any order; a canonical order makes the float sums
        # (and so the global model) reproducible run to run.
        benign = sorted(
            (r for r in valid if r.node_id not in self.excluded), key=_canonical_key
        )
        arrays, metrics = self._aggregate_inner(server_round, benign, failed)
        if arrays is not None and self._unlearning_due(server_round):
            arrays = self._unlearn(server_round, arrays, benign)
        self._round_metrics["fedup-excluded-nodes"] = float(len(self.excluded))
        self._round_metrics["fedup-pending-nodes"] = float(len(self._pending))
        merged = MetricRecord() if metrics is None else metrics
        for key, value in self._round_metrics.items():
            merged[key] = value
        return arrays, merged

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
        self, server_round: int, replies: list[Message]
    ) -> tuple[list[ValidReply], list[Message]]:
        valid: list[ValidReply] = []
        failed: list[Message] = []
        rejected = 0
        answered: set[int] = set()
        for msg in replies:
            node = int(msg.metadata.src_node_id)
            unexpected = self._unexpected(node, answered)
            answered.add(node)
            if unexpected is not None:
                log(
                    WARNING,
                    "FedUP: round %s: reply from node %s dropped: %s",
                    server_round,
                    node,
                    unexpected,
                )
                rejected += 1
                continue
            result = validate_train_reply(
                msg,
                global_arrays=self._global_arrays,
                global_keys=self._global_keys,
                weighted_by_key=self.weighted_by_key,
                max_abs=self.max_abs,
                max_examples=self.max_examples,
            )
            if isinstance(result, str):
                log(
                    WARNING,
                    "FedUP: round %s: reply from node %s rejected: %s",
                    server_round,
                    node,
                    result,
                )
                rejected += 1
                if msg.has_error():
                    failed.append(msg)
            else:
                valid.append(result)
        self._round_metrics["fedup-rejected-replies"] = float(rejected)
        return with_common_metrics(valid), failed

    def _unexpected(self, node: int, answered: set[int]) -> str | None:
        """Why a reply from ``node`` is not expected this round, if it is not."""
        if node in self.excluded:
            return "the node is excluded"
        if self._sent_to is not None and node not in self._sent_to:
            return "no training message went to it this round (late or unsolicited)"
        if node in answered:
            return "a second reply from the same node this round"
        return None

    def _detect(self, server_round: int, valid: list[ValidReply]) -> None:
        if self.detector is None or not valid:
            return
        replies = {r.node_id: r.arrays for r in valid}
        try:
            flagged = self.detector.detect(server_round, replies, self._global_arrays)
        except Exception as err:  # a faulty detector means "no detection"
            log(
                ERROR,
                "FedUP: round %s: detector raised %s: %s; no detection",
                server_round,
                type(err).__name__,
                err,
            )
            self._round_metrics["fedup-detector-errors"] = 1.0
            return
        if not isinstance(flagged, (set, frozenset)) or not all(
            isinstance(n, (int, np.integer)) for n in flagged
        ):
            log(
                ERROR,
                "FedUP: round %s: detector returned %r, not a set of node "
                "ids; no detection",
                server_round,
                flagged,
            )
            self._round_metrics["fedup-detector-errors"] = 1.0
            return
        flagged = {int(n) for n in flagged}
        unknown = flagged - set(replies)
        if unknown:
            log(
                ERROR,
                "FedUP: round %s: detector flagged nodes %s that did not "
                "reply; no detection",
                server_round,
                sorted(unknown),
            )
            self._round_metrics["fedup-detector-errors"] = 1.0
            return
        for node, score in dict(getattr(self.detector, "scores", {}) or {}).items():
            self._round_metrics[f"fedup-score-{node}"] = float(score)
        new = flagged - self.excluded
        self._round_metrics["fedup-flagged"] = float(len(new))
        if not new:
            return
        total = self.excluded | new
        if 2 * len(total) >= len(self._seen):
            # Theorem 1 needs a benign majority; the detector is not trusted here.
            log(
                ERROR,
                "FedUP: round %s: refusing to unlearn %s: %d flagged nodes "
                "would be half or more of the %d nodes seen",
                server_round,
                sorted(new),
                len(total),
                len(self._seen),
            )
            self.events.append(
                UnlearningEvent(
                    server_round,
                    sorted(new),
                    "refused",
                    reason=f"{len(total)} flagged of {len(self._seen)} nodes seen",
                )
            )
            self._round_metrics["fedup-refused"] = 1.0
            return
        log(
            INFO,
            "FedUP: round %s: nodes %s flagged and excluded",
            server_round,
            sorted(new),
        )
        self.excluded.update(new)
        for node in new:
            self._pending[node] = self._last_replies[node]

    def _aggregate_inner(
        self, server_round: int, benign: list[ValidReply], failed: list[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        if not benign:
            log(
                WARNING,
                "FedUP: round %s: no valid benign reply; the global model is kept",
                server_round,
            )
            return None, None
        try:
            arrays, metrics = self.strategy.aggregate_train(
                server_round, [r.message for r in benign] + failed
            )
            return self._keep_dtypes(arrays), metrics
        except Exception as err:  # keep the previous model rather than crash
            log(
                ERROR,
                "FedUP: round %s: inner aggregation failed (%s); the global "
                "model is kept",
                server_round,
                err,
            )
            return None, None

    def _keep_dtypes(self, arrays: ArrayRecord | None) -> ArrayRecord | None:
        """Cast the aggregate back to the dtypes of the arrays sent.

        FedAvg averages integer buffers (BatchNorm's ``num_batches_tracked``)
        into float64; clients reply in the model's dtype, so the next round's
        replies would no longer match the global model.
        """
        if arrays is None or len(arrays) != len(self._global_arrays):
            return arrays
        values = arrays.to_numpy_ndarrays()
        if all(v.dtype == g.dtype for v, g in zip(values, self._global_arrays)):
            return arrays
        cast_values = [
            v
            if v.dtype == g.dtype
            else np.asarray(np.rint(v) if g.dtype.kind in "iub" else v).astype(g.dtype)
            for v, g in zip(values, self._global_arrays)
        ]
        return ArrayRecord({k: Array(v) for k, v in zip(arrays.keys(), cast_values)})

    def compute_mask(
        self,
        benign_models: list[list[NDArray[Any]]],
        benign_weights: list[int],
        malicious_models: list[list[NDArray[Any]]],
        malicious_weights: list[int],
        rate: float,
    ) -> list[NDArray[np.bool_]]:
        """The unlearning mask (Algorithm 1); override to rank weights otherwise.

        The global arrays sent in the round of the benign replies are in
        ``self.global_arrays``.
        """
        return unlearning_mask(
            benign_models,
            malicious_models,
            self._global_arrays,
            rate,
            benign_weights=benign_weights,
            malicious_weights=malicious_weights,
        )

    def apply_unlearning(
        self, aggregate: list[NDArray[Any]], mask: list[NDArray[np.bool_]]
    ) -> list[NDArray[Any]]:
        """Apply the mask to the benign aggregate (Algorithm 2); overridable."""
        return apply_mask(aggregate, mask)

    @property
    def global_arrays(self) -> list[NDArray[Any]]:
        """The global arrays sent in the last training round."""
        return self._global_arrays

    def _unlearning_due(self, server_round: int) -> bool:
        if not self._pending:
            return False
        if (
            self._last_unlearning is not None
            and server_round < self._last_unlearning + self.rate_limit
        ):
            log(
                INFO,
                "FedUP: round %s: unlearning of %s deferred by the rate limit "
                "until round %s",
                server_round,
                sorted(self._pending),
                self._last_unlearning + self.rate_limit,
            )
            return False
        return True

    def _unlearn(
        self, server_round: int, aggregate: ArrayRecord, benign: list[ValidReply]
    ) -> ArrayRecord:
        start = time.perf_counter()
        nodes = sorted(self._pending)
        held = self.state_nbytes()
        # The similarity is recorded even with a fixed P, so that a sweep over
        # fixed rates can show where the adaptive rate would have been.
        similarity = None
        if len(benign) >= 2:
            similarity = last_layer_similarity([r.arrays for r in benign])
        if self.pruning_rate is not None:
            rate = self.pruning_rate
        elif similarity is not None:
            rate = pruning_rate(
                similarity, p_min=self.p_min, p_max=self.p_max, gamma=self.gamma
            )
        else:
            log(WARNING, "FedUP: one benign reply, no similarity; using p_min")
            rate = self.p_min
        mask = self.compute_mask(
            [r.arrays for r in benign],
            [r.num_examples for r in benign],
            [self._pending[n].arrays for n in nodes],
            [self._pending[n].num_examples for n in nodes],
            rate,
        )
        pruned_arrays = self.apply_unlearning(aggregate.to_numpy_ndarrays(), mask)
        result = ArrayRecord(
            {k: Array(a) for k, a in zip(aggregate.keys(), pruned_arrays)}
        )
        seconds = time.perf_counter() - start
        event = UnlearningEvent(
            server_round,
            nodes,
            "unlearned",
            rate=rate,
            pruned=[int(m.sum()) for m in mask],
            prunable=[int(m.size) if np.ndim(m) >= 2 else 0 for m in mask],
            seconds=seconds,
            state_bytes=held,
            similarity=similarity,
        )
        self.events.append(event)
        self._pending.clear()
        self._last_unlearning = server_round
        self._recovery_until = server_round + self.recovery_rounds
        log(
            INFO,
            "FedUP: round %s: unlearned nodes %s, P=%.4f, %d weights pruned in %.3fs",
            server_round,
            nodes,
            rate,
            sum(event.pruned),
            seconds,
        )
        self._round_metrics.update(
            {
                "fedup-unlearned-nodes": float(len(nodes)),
                "fedup-pruning-rate": rate,
                "fedup-pruned-weights": float(sum(event.pruned)),
                "fedup-unlearn-seconds": seconds,
                "fedup-state-bytes": float(held),
            }
        )
        return result

    @property
    def next_round(self) -> int:
        """Number the next round ``start`` runs will have."""
        return self._round_offset + 1

    @next_round.setter
    def next_round(self, value: int) -> None:
        if int(value) != value or value < 1:
            raise ValueError(f"next_round must be an integer >= 1, got {value!r}")
        self._round_offset = int(value) - 1

    def exclude(self, node_ids: Iterable[int]) -> None:
        """Exclude nodes from training and evaluation without unlearning them.

        For operators who ban nodes by hand, and for baselines that train
        without some nodes from the start.
        """
        self.excluded.update(int(n) for n in node_ids)

    # --------------------------------------------------------------- state
    def state_nbytes(self) -> int:
        """Bytes of arrays FedUP holds (last replies, pending flags, global)."""
        stored = list(self._last_replies.values()) + list(self._pending.values())
        return sum(model_nbytes(s.arrays) for s in stored) + model_nbytes(
            self._global_arrays
        )

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume FedUP after a restart."""
        state: dict[str, Any] = {
            "excluded": sorted(self.excluded),
            "pending": {
                n: {
                    "arrays": s.arrays,
                    "num_examples": s.num_examples,
                    "server_round": s.server_round,
                }
                for n, s in self._pending.items()
            },
            "seen": sorted(self._seen),
            "last_unlearning": self._last_unlearning,
            "recovery_until": self._recovery_until,
            "round_offset": self._round_offset,
            "events": [asdict(e) for e in self.events],
        }
        if self.detector is not None and hasattr(self.detector, "state_dict"):
            state["detector"] = self.detector.state_dict()
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a state saved by :meth:`state_dict`."""
        self.excluded = {int(n) for n in state["excluded"]}
        self._pending = {
            int(n): _Stored(
                [np.asarray(a) for a in s["arrays"]],
                int(s["num_examples"]),
                int(s["server_round"]),
            )
            for n, s in state["pending"].items()
        }
        self._seen = {int(n) for n in state["seen"]}
        self._last_unlearning = state["last_unlearning"]
        self._recovery_until = int(state["recovery_until"])
        self._round_offset = int(state["round_offset"])
        self.events = [UnlearningEvent(**e) for e in state["events"]]
        if "detector" in state and hasattr(self.detector, "load_state_dict"):
            self.detector.load_state_dict(state["detector"])  # type: ignore[union-attr]

    # --------------------------------------------------------------- start
    def start(
        self,
        grid: Grid,
        initial_arrays: ArrayRecord,
        num_rounds: int = 3,
        timeout: float = 3600,
        train_config: ConfigRecord | None = None,
        evaluate_config: ConfigRecord | None = None,
        evaluate_fn: EvaluateFn | None = None,
    ) -> Result:
        """Run Flower's round loop, then extra rounds if recovery is cut short.

        After an unlearning in round r, rounds r+1 .. r+``recovery_rounds``
        always run: when ``num_rounds`` ends sooner, the loop is started again
        from the last global model for the missing rounds, numbered on.
        """
        offset = self._round_offset
        result = Result(arrays=initial_arrays)
        more = super().start(
            grid,
            initial_arrays,
            num_rounds,
            timeout,
            train_config,
            evaluate_config,
            evaluate_fn if offset == 0 else _shifted(evaluate_fn, offset),
        )
        _merge_results(result, more, offset, keep_round_zero=offset == 0)
        done = offset + num_rounds
        while self._recovery_until > done:
            extra = self._recovery_until - done
            log(
                INFO,
                "FedUP: %d extra recovery rounds (%d to %d) after the "
                "unlearning in round %s",
                extra,
                done + 1,
                self._recovery_until,
                self._last_unlearning,
            )
            self._round_offset = done
            more = super().start(
                grid,
                result.arrays,
                extra,
                timeout,
                train_config,
                evaluate_config,
                _shifted(evaluate_fn, done),
            )
            _merge_results(result, more, done)
            done += extra
        self._round_offset = done
        return result


def _canonical_key(reply: ValidReply) -> tuple[int, bytes, int]:
    """Order replies by content, not by arrival or node id (ids change per run)."""
    digest = hashlib.blake2b(digest_size=16)
    for arr in (reply.arrays[0], reply.arrays[-1]):
        digest.update(np.ascontiguousarray(arr).tobytes())
    return (reply.num_examples, digest.digest(), reply.node_id)


def _shifted(evaluate_fn: EvaluateFn | None, offset: int) -> EvaluateFn | None:
    if evaluate_fn is None:
        return None
    fn = evaluate_fn

    def shifted(server_round: int, arrays: ArrayRecord) -> MetricRecord | None:
        # Round 0 of a continuation is the last round already evaluated.
        return None if server_round == 0 else fn(server_round + offset, arrays)

    return shifted


def _merge_results(
    result: Result, more: Result, offset: int, *, keep_round_zero: bool = False
) -> None:
    if len(more.arrays) > 0:
        result.arrays = more.arrays
    for name in (
        "train_metrics_clientapp",
        "evaluate_metrics_clientapp",
        "evaluate_metrics_serverapp",
    ):
        target = getattr(result, name)
        for rnd, record in getattr(more, name).items():
            if rnd > 0 or keep_round_zero:
                target[rnd + offset] = record
