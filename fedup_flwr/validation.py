"""Checks on client replies before FedUP stores or aggregates them.

A hostile or broken client must not crash the server or corrupt the global
model; every check returns a reason string instead of raising.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
from flwr.app import Message, MetricRecord, RecordDict
from numpy.typing import NDArray

__all__ = ["ValidReply", "validate_train_reply", "with_common_metrics"]


@dataclass(frozen=True)
class ValidReply:
    """A training reply that passed every check.

    Attributes
    ----------
    node_id : int
        ``msg.metadata.src_node_id``.
    message : Message
        The original reply (forwarded to the inner strategy).
    arrays : list[NDArray]
        The node's model arrays, in the global model's order.
    num_examples : int
        The reply's example count (the aggregation weight).
    """

    node_id: int
    message: Message
    arrays: list[NDArray[Any]]
    num_examples: int


def _check_num_examples(value: Any, max_examples: int) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"num-examples has type {type(value).__name__}, expected a number"
    if isinstance(value, float) and (not math.isfinite(value) or value != int(value)):
        return f"num-examples {value!r} is not an integer"
    if value <= 0:
        return f"num-examples {value!r} is not positive"
    if value > max_examples:
        return f"num-examples {value!r} exceeds the limit {max_examples}"
    return None


def with_common_metrics(replies: list[ValidReply]) -> list[ValidReply]:
    """Trim every reply's MetricRecord to the keys all valid replies share.

    Flower's aggregation needs identical metric keys; a client that adds or
    omits a metric must not make the round fail, nor make honest replies look
    inconsistent. Messages that already match are returned unchanged.
    """
    if not replies:
        return replies
    key_sets = [frozenset(_metrics(r.message).keys()) for r in replies]
    common = frozenset.intersection(*key_sets)
    out = []
    for reply, keys in zip(replies, key_sets):
        if keys == common:
            out.append(reply)
            continue
        content = reply.message.content
        name, record = next(iter(content.metric_records.items()))
        trimmed = RecordDict(
            {
                **dict(content.array_records.items()),
                name: MetricRecord({k: v for k, v in record.items() if k in common}),
            }
        )
        # FedUP owns the replies it was handed; trim the metrics in place.
        reply.message.content = trimmed
        out.append(reply)
    return out


def _metrics(msg: Message) -> MetricRecord:
    return next(iter(msg.content.metric_records.values()))


def validate_train_reply(
    msg: Message,
    *,
    global_arrays: Sequence[NDArray[Any]],
    global_keys: Sequence[str],
    weighted_by_key: str,
    max_abs: float | None,
    max_examples: int,
) -> ValidReply | str:
    """Validate one training reply against the global model sent that round.

    Returns
    -------
    ValidReply | str
        The parsed reply, or the reason it was rejected.
    """
    node_id = int(msg.metadata.src_node_id)
    if msg.has_error():
        return f"the ClientApp failed: {msg.error.reason}"
    content = msg.content
    if len(content.array_records) != 1:
        return f"expected one ArrayRecord, got {len(content.array_records)}"
    if len(content.metric_records) != 1:
        return f"expected one MetricRecord, got {len(content.metric_records)}"
    metrics = next(iter(content.metric_records.values()))
    if weighted_by_key not in metrics:
        return f"the MetricRecord has no {weighted_by_key!r}"
    for key, value in metrics.items():
        values = value if isinstance(value, list) else [value]
        if any(
            isinstance(v, bool)
            or not isinstance(v, (int, float))
            or not math.isfinite(v)
            for v in values
        ):
            return f"metric {key!r} is not a finite number"
    reason = _check_num_examples(metrics[weighted_by_key], max_examples)
    if reason is not None:
        return reason
    record = next(iter(content.array_records.values()))
    keys = list(record.keys())
    if keys != list(global_keys):
        missing = sorted(set(global_keys) - set(keys))
        extra = sorted(set(keys) - set(global_keys))
        return (
            f"array names differ from the global model (missing {missing}, "
            f"extra {extra})"
        )
    try:
        arrays = record.to_numpy_ndarrays()
    except Exception as err:  # corrupt bytes must not crash the server
        return f"arrays could not be decoded ({type(err).__name__}: {err})"
    for i, (arr, ref) in enumerate(zip(arrays, global_arrays)):
        if arr.shape != ref.shape:
            return f"array {keys[i]!r} has shape {arr.shape}, expected {ref.shape}"
        if arr.dtype != ref.dtype:
            return f"array {keys[i]!r} has dtype {arr.dtype}, expected {ref.dtype}"
        if np.issubdtype(arr.dtype, np.inexact) and not np.all(np.isfinite(arr)):
            return f"array {keys[i]!r} contains NaN or Inf"
        if max_abs is not None and arr.size and float(np.max(np.abs(arr))) > max_abs:
            return f"array {keys[i]!r} has values above {max_abs:g} in magnitude"
    return ValidReply(node_id, msg, arrays, int(cast(float, metrics[weighted_by_key])))
