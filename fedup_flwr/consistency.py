"""Checks across one round's valid replies: what the inner strategy will read.

Flower's aggregation reads the record names of the first reply and expects
every reply to have the same metric keys, each a number or a list of one
length; one reply that differs makes the whole aggregation fail. Each reply
is first checked on its own (:mod:`fedup_flwr.validation`); here the replies
are checked against each other, and the odd ones rejected:

* the ArrayRecord and MetricRecord names most replies use (ties: the names
  Flower uses, ``arrays`` and ``metrics``, then alphabetical order);
* per metric, the kind most replies send: a number, or a list of one length
  (ties: a number, then the shorter list);
* then every reply's metrics are trimmed to the keys all share
  (:func:`with_common_metrics`): a missing or extra metric is not a reason
  to reject a reply.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from flwr.app import Message, MetricRecord, RecordDict

if TYPE_CHECKING:
    from fedup_flwr.validation import ValidReply

__all__ = ["consistent_replies", "with_common_metrics"]

H = TypeVar("H", bound=Hashable)


def _most_common(values: Iterable[H], preference: Callable[[H], Any]) -> H:
    """The most frequent value; ties go to the largest ``preference``."""
    counts = Counter(values)
    ranked = sorted(counts, key=lambda v: (-counts[v], preference(v), repr(v)))
    return ranked[0]


def _kind(value: Any) -> int | None:
    """None for a number, the length for a list."""
    return len(value) if isinstance(value, list) else None


def _describe(kind: int | None) -> str:
    return "a number" if kind is None else f"a list of {kind}"


def _array_name(msg: Message) -> str:
    return next(iter(msg.content.array_records))


def _metric_name(msg: Message) -> str:
    return next(iter(msg.content.metric_records))


def consistent_replies(
    replies: list[ValidReply], *, arrays_name: str = "arrays"
) -> tuple[list[ValidReply], list[tuple[int, str]]]:
    """Keep the replies the inner strategy can aggregate together.

    Parameters
    ----------
    replies : list[ValidReply]
        Replies that passed the checks of one reply.
    arrays_name : str (default: ``"arrays"``)
        The inner strategy's ``arrayrecord_key``: preferred on a tie.

    Returns
    -------
    tuple[list[ValidReply], list[tuple[int, str]]]
        The consistent replies, metrics trimmed to their common keys, and
        ``(node_id, reason)`` for every reply rejected.
    """
    if not replies:
        return replies, []
    rejected: list[tuple[int, str]] = []
    kept = list(replies)
    for what, name_of, preferred in (
        ("ArrayRecord", _array_name, arrays_name),
        ("MetricRecord", _metric_name, "metrics"),
    ):
        names = [name_of(r.message) for r in kept]
        usual = _most_common(names, preferred.__ne__)
        rejected += [
            (r.node_id, f"sent an {what} named {n!r}; the other replies use {usual!r}")
            for r, n in zip(kept, names)
            if n != usual
        ]
        kept = [r for r, n in zip(kept, names) if n == usual]
    metrics = [_metrics(r.message) for r in kept]
    keys = sorted({k for m in metrics for k in m})
    usual_kind = {
        k: _most_common(
            (_kind(m[k]) for m in metrics if k in m),
            lambda kind: (kind is not None, kind or 0),
        )
        for k in keys
    }
    out = []
    for r, m in zip(kept, metrics):
        odd = [k for k in keys if k in m and _kind(m[k]) != usual_kind[k]]
        if odd:
            k = odd[0]
            rejected.append(
                (
                    r.node_id,
                    f"metric {k!r} is {_describe(_kind(m[k]))} where the other "
                    f"replies send {_describe(usual_kind[k])}",
                )
            )
        else:
            out.append(r)
    return with_common_metrics(out), rejected


def with_common_metrics(replies: list[ValidReply]) -> list[ValidReply]:
    """Trim every reply's MetricRecord to the keys all valid replies share.

    Flower's aggregation needs identical metric keys; a client that adds or
    omits a metric must not make the round fail, nor make honest replies look
    inconsistent. Messages that already match are returned unchanged.

    Parameters
    ----------
    replies : list[ValidReply]
        The round's valid replies; their messages are trimmed in place.

    Returns
    -------
    list[ValidReply]
        The same replies, in the same order.
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
