"""Checks on what a detector hands back, and read-only views of what it gets.

A faulty detector means "no detection": :func:`ask_detector` never raises, and
turns an unusable answer (not a set of node ids, unknown nodes, malformed
``scores``) into a reason string. Detectors are shown read-only views of
FedUP's arrays (:func:`read_only`), so a write cannot reach FedUP's state.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["ask_detector", "check_flagged", "check_scores", "freeze", "read_only"]


def _is_node_id(value: object) -> bool:
    # bool is an int subclass, but True is not node 1.
    return isinstance(value, (int, np.integer)) and not isinstance(
        value, (bool, np.bool_)
    )


def read_only(arrays: Sequence[NDArray[Any]]) -> list[NDArray[Any]]:
    """Non-writeable views of ``arrays``, in a new list.

    The arrays themselves are marked read-only too, so that a view's
    ``writeable`` flag cannot be set back (numpy refuses it when the base is
    read-only); the new list means replacing an element changes nothing of
    the caller's.

    Parameters
    ----------
    arrays : Sequence[NDArray]
        Arrays the caller owns and never writes into.

    Returns
    -------
    list[NDArray]
        One read-only view per array.
    """
    freeze(arrays)
    return [arr.view() for arr in arrays]


def freeze(arrays: Sequence[NDArray[Any]]) -> None:
    """Mark arrays, and the arrays owning their memory, read-only.

    numpy lets a view be made writeable again while the array owning the
    memory is writeable, so the owner is frozen too. Only for arrays whose
    memory nobody else writes (a decoded reply, the decoded global model).
    """
    for arr in arrays:
        owner = arr
        while isinstance(owner.base, np.ndarray):
            owner = owner.base
        owner.flags.writeable = False
        arr.flags.writeable = False


def check_flagged(flagged: object, replied: Collection[int]) -> set[int] | str:
    """Check a detector's answer: a set of node ids among those that replied.

    Parameters
    ----------
    flagged : object
        What ``Detector.detect`` returned.
    replied : Collection[int]
        The nodes whose replies the detector was shown.

    Returns
    -------
    set[int] | str
        The flagged node ids as plain ints, or why the answer is unusable.
    """
    if not isinstance(flagged, (set, frozenset)) or not all(
        _is_node_id(n) for n in flagged
    ):
        return f"returned {flagged!r:.200}, not a set of node ids"
    nodes = {int(n) for n in flagged}
    unknown = nodes - set(replied)
    if unknown:
        return f"flagged nodes {sorted(unknown)} that did not reply"
    return nodes


def check_scores(scores: object) -> dict[int, float] | str:
    """Check a detector's ``scores``: a mapping of node id to real number.

    Parameters
    ----------
    scores : object
        The detector's ``scores`` attribute (None when it has none).

    Returns
    -------
    dict[int, float] | str
        The scores as plain ints and floats ({} for None), or why they are
        unusable.
    """
    if scores is None:
        return {}
    if not isinstance(scores, Mapping):
        return f"has scores {scores!r:.200}, not a mapping of node id to number"
    out: dict[int, float] = {}
    for node, value in scores.items():
        if not _is_node_id(node):
            return f"has a score for {node!r:.50}, which is not a node id"
        if isinstance(value, (bool, np.bool_)) or not isinstance(
            value, (int, float, np.integer, np.floating)
        ):
            return f"scores node {node} with {value!r:.50}, not a real number"
        try:
            out[int(node)] = float(value)
        except OverflowError:
            return f"scores node {node} with an integer too large for a float"
    return out


def ask_detector(
    detector: Any,
    server_round: int,
    replies: Mapping[int, Sequence[NDArray[Any]]],
    global_arrays: Sequence[NDArray[Any]],
) -> set[int] | str:
    """Call ``detector.detect`` and check its answer and scores; never raises.

    Parameters
    ----------
    detector : Detector
        Anything with ``detect(server_round, replies, global_arrays)``.
    server_round : int
        The round.
    replies : Mapping[int, Sequence[NDArray]]
        The valid replies' arrays by node id (best given read-only).
    global_arrays : Sequence[NDArray]
        The global arrays sent that round (best given read-only).

    Returns
    -------
    set[int] | str
        The flagged node ids (:func:`check_flagged`), or why there is no
        usable answer: the detector raised, returned something unusable, or
        left malformed ``scores`` (:func:`check_scores`).
    """
    try:
        answer = detector.detect(server_round, replies, global_arrays)
        scores = getattr(detector, "scores", None)
    except Exception as err:  # a faulty detector means "no detection"
        return f"raised {type(err).__name__}: {err}"
    flagged = check_flagged(answer, replies)
    if isinstance(flagged, str):
        return flagged
    checked = check_scores(scores)
    return checked if isinstance(checked, str) else flagged
