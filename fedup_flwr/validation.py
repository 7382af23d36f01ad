"""Checks on client replies (and detector answers) before FedUP trusts them.

A hostile or broken client must not crash the server or corrupt the global
model; every check returns a reason string instead of raising. The functions
are module-level so that a harness other than :class:`~fedup_flwr.FedUP` (the
detection benchmark) validates replies exactly as FedUP does, with the same
limits (:data:`DEFAULT_MAX_ABS`, :data:`DEFAULT_MAX_EXAMPLES`).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
from flwr.app import Array, ArrayRecord, Message
from numpy.typing import NDArray

# Re-exported: a harness validates replies and detector answers from here.
from fedup_flwr.consistency import consistent_replies, with_common_metrics
from fedup_flwr.detector_answers import (
    ask_detector,
    check_flagged,
    check_scores,
    freeze,
)

__all__ = [
    "DEFAULT_MAX_ABS",
    "DEFAULT_MAX_EXAMPLES",
    "CheckedReplies",
    "ValidReply",
    "ask_detector",
    "check_flagged",
    "check_global_model",
    "check_scores",
    "consistent_replies",
    "restore_dtypes",
    "unexpected_reply",
    "validate_train_replies",
    "validate_train_reply",
    "with_common_metrics",
]

#: Replies with any array value larger in magnitude are rejected.
DEFAULT_MAX_ABS: float = 1e8
#: Replies claiming more training examples are rejected.
DEFAULT_MAX_EXAMPLES: int = 10**9


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


def _finite_number(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int beyond float range (10**400)
        return False


def _peak(arr: NDArray[Any]) -> float:
    """Largest magnitude in ``arr``, exact for integer minima.

    ``np.abs`` of INT64_MIN overflows back to INT64_MIN; the extremes are
    converted to Python floats before taking their magnitude.
    """
    if arr.dtype.kind == "c":
        return float(np.max(np.abs(arr)))
    return max(abs(float(np.min(arr))), abs(float(np.max(arr))))


def check_global_model(arrays: Sequence[NDArray[Any]], keys: Sequence[str]) -> None:
    """Raise ValueError unless the global model can be trained and unlearned.

    Parameters
    ----------
    arrays : Sequence[NDArray]
        The global arrays about to be sent.
    keys : Sequence[str]
        Their names.

    Raises
    ------
    ValueError
        The model has no arrays, or an array holds NaN or Inf. FedUP's own
        aggregates never do (it keeps the previous model instead), so this
        fails fast on the initial model.
    """
    if len(arrays) == 0:
        raise ValueError(
            "the global model has no arrays; pass the model's ArrayRecord as "
            "initial_arrays"
        )
    for key, arr in zip(keys, arrays):
        if arr.dtype.kind in "fc" and not np.all(np.isfinite(arr)):
            raise ValueError(
                f"global array {key!r} contains NaN or Inf; replies cannot be "
                "checked against it nor unlearned from it: start from a finite "
                "model"
            )


def validate_train_reply(
    msg: Message,
    *,
    global_arrays: Sequence[NDArray[Any]],
    global_keys: Sequence[str],
    weighted_by_key: str = "num-examples",
    max_abs: float | None = DEFAULT_MAX_ABS,
    max_examples: int = DEFAULT_MAX_EXAMPLES,
) -> ValidReply | str:
    """Validate one training reply against the global model sent that round.

    The reply must carry no error, exactly one ArrayRecord with the global
    model's array names, shapes and dtypes and only finite values of at most
    ``max_abs`` in magnitude, and exactly one MetricRecord of finite numbers
    whose ``weighted_by_key`` is a whole number in ``[1, max_examples]``.

    Parameters
    ----------
    msg : Message
        The reply.
    global_arrays : Sequence[NDArray]
        The global arrays sent that round.
    global_keys : Sequence[str]
        Their names in the ArrayRecord sent.
    weighted_by_key : str (default: ``"num-examples"``)
        The metric holding the reply's aggregation weight.
    max_abs : float | None (default: :data:`DEFAULT_MAX_ABS`)
        Largest magnitude accepted in any array; None accepts any finite value.
    max_examples : int (default: :data:`DEFAULT_MAX_EXAMPLES`)
        Largest example count accepted.

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
        if not all(_finite_number(v) for v in values):
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
        if max_abs is not None and arr.size and _peak(arr) > max_abs:
            return f"array {keys[i]!r} has values above {max_abs:g} in magnitude"
    freeze(arrays)  # never written by FedUP; detectors get read-only views
    return ValidReply(node_id, msg, arrays, int(cast(float, metrics[weighted_by_key])))


def restore_dtypes(
    arrays: ArrayRecord | None, reference: Sequence[NDArray[Any]]
) -> ArrayRecord | None:
    """Cast an aggregate back to the dtypes of the arrays sent.

    FedAvg averages integer buffers (BatchNorm's ``num_batches_tracked``) into
    float64; clients reply in the model's dtype, so without this the next
    round's replies would no longer match the global model.

    Parameters
    ----------
    arrays : ArrayRecord | None
        The inner strategy's aggregate.
    reference : Sequence[NDArray]
        The global arrays sent that round, in the same order.

    Returns
    -------
    ArrayRecord | None
        ``arrays`` with every array cast to its reference's dtype (integer and
        boolean kinds rounded to nearest first); ``arrays`` itself when it is
        None, has a different number of arrays, or already matches.
    """
    if arrays is None or len(arrays) != len(reference):
        return arrays
    values = arrays.to_numpy_ndarrays()
    if all(v.dtype == g.dtype for v, g in zip(values, reference)):
        return arrays
    cast_values = [
        v
        if v.dtype == g.dtype
        else np.asarray(np.rint(v) if g.dtype.kind in "iub" else v).astype(g.dtype)
        for v, g in zip(values, reference)
    ]
    return ArrayRecord({k: Array(v) for k, v in zip(arrays.keys(), cast_values)})


@dataclass
class CheckedReplies:
    """One round's training replies, sorted by :func:`validate_train_replies`.

    Attributes
    ----------
    valid : list[ValidReply]
        Replies that passed every check, metrics trimmed to common keys.
    failed : list[Message]
        Rejected replies that carry an error (a ClientApp failure); an inner
        strategy may still count them as failures.
    rejected : list[tuple[int, str]]
        ``(node_id, reason)`` of every rejected or dropped reply, in order.
    """

    valid: list[ValidReply] = field(default_factory=list)
    failed: list[Message] = field(default_factory=list)
    rejected: list[tuple[int, str]] = field(default_factory=list)


def unexpected_reply(
    node_id: int,
    *,
    excluded: Collection[int] = (),
    sent_to: Collection[int] | None = None,
    answered: Collection[int] = (),
) -> str | None:
    """Why a reply from ``node_id`` is not expected this round, if it is not.

    Parameters
    ----------
    node_id : int
        The replying node.
    excluded : Collection[int]
        Nodes that must not take part.
    sent_to : Collection[int] | None
        Nodes sent a training message this round; None accepts any node.
    answered : Collection[int]
        Nodes that already replied this round.

    Returns
    -------
    str | None
        The reason, or None when the reply is expected.
    """
    if node_id in excluded:
        return "the node is excluded"
    if sent_to is not None and node_id not in sent_to:
        return "no training message went to it this round (late or unsolicited)"
    if node_id in answered:
        return "a second reply from the same node this round"
    return None


def validate_train_replies(
    replies: Iterable[Message],
    *,
    global_arrays: Sequence[NDArray[Any]],
    global_keys: Sequence[str],
    weighted_by_key: str = "num-examples",
    max_abs: float | None = DEFAULT_MAX_ABS,
    max_examples: int = DEFAULT_MAX_EXAMPLES,
    excluded: Collection[int] = (),
    sent_to: Collection[int] | None = None,
    arrays_name: str = "arrays",
) -> CheckedReplies:
    """Validate one round's training replies.

    Drops replies that are not expected (:func:`unexpected_reply`: excluded
    node, not sent a message, second reply), checks the others with
    :func:`validate_train_reply`, then rejects the replies the inner strategy
    could not aggregate with the others and trims the rest's metrics to their
    common keys (:func:`~fedup_flwr.consistency.consistent_replies`).

    Parameters
    ----------
    replies : Iterable[Message]
        The replies, in arrival order.
    global_arrays, global_keys, weighted_by_key, max_abs, max_examples
        As for :func:`validate_train_reply`.
    excluded, sent_to
        As for :func:`unexpected_reply`.
    arrays_name : str (default: ``"arrays"``)
        The inner strategy's ``arrayrecord_key``, preferred on a tie.

    Returns
    -------
    CheckedReplies
        Valid replies, failed replies and the reasons for every rejection.
    """
    out = CheckedReplies()
    answered: set[int] = set()
    for msg in replies:
        node = int(msg.metadata.src_node_id)
        reason = unexpected_reply(
            node, excluded=excluded, sent_to=sent_to, answered=answered
        )
        answered.add(node)
        if reason is not None:
            out.rejected.append((node, reason))
            continue
        result = validate_train_reply(
            msg,
            global_arrays=global_arrays,
            global_keys=global_keys,
            weighted_by_key=weighted_by_key,
            max_abs=max_abs,
            max_examples=max_examples,
        )
        if isinstance(result, str):
            out.rejected.append((node, result))
            if msg.has_error():
                out.failed.append(msg)
        else:
            out.valid.append(result)
    out.valid, inconsistent = consistent_replies(out.valid, arrays_name=arrays_name)
    out.rejected.extend(inconsistent)
    return out
