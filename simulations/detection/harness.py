"""The measuring strategy: FedAvg that shows every round to several detectors.

The detectors only observe: every valid reply is aggregated, nothing is
excluded. Replies are validated, and the aggregate's dtypes repaired, by
FedUP's own functions (:mod:`fedup_flwr.validation`), with FedUP's default
limits, so a detector here sees exactly what it would see inside FedUP.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from logging import INFO, WARNING
from typing import Any

from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.common.logger import log
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg
from numpy.typing import NDArray

from fedup_flwr.detector import Detector
from fedup_flwr.detectors.updates import RoundUpdates, last_kernel_index
from fedup_flwr.validation import (
    DEFAULT_MAX_ABS,
    DEFAULT_MAX_EXAMPLES,
    check_flagged,
    restore_dtypes,
    validate_train_replies,
)

__all__ = [
    "DetectingFedAvg",
    "DetectionLog",
    "DetectorCall",
    "RoundGram",
    "round_gram",
]


@dataclass
class DetectorCall:
    """What one detector returned in one round (node ids, no ground truth).

    Attributes
    ----------
    server_round : int
        The round.
    detector : str
        The detector's registry name.
    replies : tuple[int, ...]
        The nodes whose replies were valid (shown to the detector), sorted.
    flagged : frozenset[int]
        The nodes it flagged (empty if it raised).
    scores : dict[int, float]
        Its ``scores`` attribute after the call, if any.
    seconds : float
        The time ``detect`` took.
    error : str
        ``"TypeName: message"`` if ``detect`` raised, else empty.
    """

    server_round: int
    detector: str
    replies: tuple[int, ...]
    flagged: frozenset[int]
    scores: dict[int, float]
    seconds: float
    error: str = ""


@dataclass(frozen=True)
class RoundGram:
    """The inner products of one round's updates (what a detector could compare).

    Attributes
    ----------
    nodes : tuple[int, ...]
        The nodes whose replies were valid, sorted; row ``i`` is ``nodes[i]``.
    model : list[list[float]]
        ``<u_i, u_j>`` over every floating array (the whole update).
    last_layer : list[list[float]]
        The same over the last array with ``ndim >= 2`` (the output layer's
        kernel).
    """

    nodes: tuple[int, ...]
    model: list[list[float]]
    last_layer: list[list[float]]


def round_gram(
    replies: Mapping[int, list[NDArray[Any]]], global_arrays: list[NDArray[Any]]
) -> RoundGram:
    """Inner products of the updates, whole model and last layer.

    Parameters
    ----------
    replies : Mapping[int, list[NDArray]]
        ``{node_id: arrays}`` of the valid replies.
    global_arrays : list[NDArray]
        The global arrays sent this round.

    Returns
    -------
    RoundGram
        Float64 Gram matrices of ``local - global`` (float32 updates).
    """
    updates = RoundUpdates(replies, global_arrays)
    kernel = last_kernel_index(global_arrays)
    last = updates.floating[-1:] if kernel is None else [kernel]
    return RoundGram(
        tuple(updates.node_ids),
        updates.gram().tolist(),
        updates.gram(last).tolist(),
    )


@dataclass
class DetectionLog:
    """Everything the strategy saw, for the harness to score afterwards.

    Attributes
    ----------
    calls : list[DetectorCall]
        Every detector call, in order.
    evaluations : dict[int, dict[str, float]]
        The global model's metrics after each round (0: before training).
    grams : dict[int, RoundGram]
        Each round's inner products of the updates, when the strategy records
        them (``record_gram=True``).
    """

    calls: list[DetectorCall] = field(default_factory=list)
    evaluations: dict[int, dict[str, float]] = field(default_factory=dict)
    grams: dict[int, RoundGram] = field(default_factory=dict)


def call_detector(
    name: str,
    detector: Detector,
    server_round: int,
    replies: Mapping[int, list[NDArray[Any]]],
    global_arrays: list[NDArray[Any]],
) -> DetectorCall:
    """Ask one detector, timing it; a detector that raises flags nothing.

    Parameters
    ----------
    name : str
        The detector's name (recorded).
    detector : Detector
        The detector.
    server_round : int
        The round.
    replies : Mapping[int, list[NDArray]]
        ``{node_id: arrays}`` of the valid replies.
    global_arrays : list[NDArray]
        The global arrays sent this round.

    Returns
    -------
    DetectorCall
        Its decision, scores, time and error (if any). An answer that is not
        a set of node ids among ``replies``
        (:func:`fedup_flwr.validation.check_flagged`) counts as an error and
        flags nothing, as FedUP would treat it.
    """
    started = time.perf_counter()
    error = ""
    flagged: frozenset[int] = frozenset()
    try:
        checked = check_flagged(
            detector.detect(server_round, replies, global_arrays), replies
        )
    except Exception as err:  # a faulty detector must not stop the measurement
        checked = f"{type(err).__name__}: {err}"
    seconds = time.perf_counter() - started
    if isinstance(checked, str):
        error = checked
    else:
        flagged = frozenset(checked)
    try:
        raw = dict(getattr(detector, "scores", {}) or {})
        scores = {int(n): float(s) for n, s in raw.items()}
    except (TypeError, ValueError) as err:
        scores, error = {}, error or f"scores: {type(err).__name__}: {err}"
    return DetectorCall(
        server_round, name, tuple(sorted(replies)), flagged, scores, seconds, error
    )


class DetectingFedAvg(FedAvg):
    """FedAvg that shows each round's validated replies to several detectors.

    Replies are validated as FedUP validates them
    (:func:`fedup_flwr.validation.validate_train_replies` with
    ``DEFAULT_MAX_ABS`` and ``DEFAULT_MAX_EXAMPLES``: malformed, unsolicited
    and repeated replies are dropped); the valid ones go to
    every detector, then all of them are aggregated and the aggregate is cast
    back to the dtypes sent (:func:`fedup_flwr.validation.restore_dtypes`).

    Parameters
    ----------
    detectors : Mapping[str, Detector]
        The detectors by name; each keeps its state over the rounds.
    record : DetectionLog
        Where each detector's decision is appended.
    record_gram : bool (default: False)
        Also store each round's inner products of the updates
        (:func:`round_gram`) in ``record.grams``, for the separability
        measurement (:mod:`simulations.detection.separability`).
    """

    def __init__(
        self,
        detectors: Mapping[str, Detector],
        record: DetectionLog,
        *,
        record_gram: bool = False,
    ) -> None:
        super().__init__(
            fraction_train=1.0,
            fraction_evaluate=0.0,
            min_available_nodes=1,
            min_train_nodes=1,
        )
        self.detectors = dict(detectors)
        self.record = record
        self.record_gram = record_gram
        self._global_arrays: list[NDArray[Any]] = []
        self._global_keys: list[str] = []
        self._sent_to: set[int] = set()

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """Remember the arrays sent, then configure FedAvg's round."""
        self._global_keys = list(arrays.keys())
        self._global_arrays = arrays.to_numpy_ndarrays()
        messages = list(super().configure_train(server_round, arrays, config, grid))
        self._sent_to = {int(m.metadata.dst_node_id) for m in messages}
        return messages

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Validate, show the valid replies to every detector, aggregate them."""
        checked = validate_train_replies(
            replies,
            global_arrays=self._global_arrays,
            global_keys=self._global_keys,
            weighted_by_key=self.weighted_by_key,
            max_abs=DEFAULT_MAX_ABS,
            max_examples=DEFAULT_MAX_EXAMPLES,
            sent_to=self._sent_to,
        )
        for node, reason in checked.rejected:
            log(
                WARNING,
                "round %s: reply of %s rejected: %s",
                server_round,
                node,
                reason,
            )
        valid = checked.valid
        by_node = {r.node_id: r.arrays for r in valid}
        if self.record_gram and by_node:
            self.record.grams[server_round] = round_gram(by_node, self._global_arrays)
        for name, detector in self.detectors.items():
            call = call_detector(
                name, detector, server_round, by_node, self._global_arrays
            )
            self.record.calls.append(call)
            log(
                INFO,
                "round %s: %s flagged %s",
                server_round,
                name,
                sorted(call.flagged),
            )
        if not valid:
            return None, None
        arrays, metrics = super().aggregate_train(
            server_round, [r.message for r in valid]
        )
        return restore_dtypes(arrays, self._global_arrays), metrics
