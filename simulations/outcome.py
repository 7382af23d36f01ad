"""What each method's unlearning came to, so that no outcome reads as another.

A refused unlearning (FedUP's guard: Theorem 1 needs a benign majority) must
not look like a success: its status is ``refused`` with the flagged and
counted nodes, its ``recovery_rounds`` null (0 would read as instant
recovery), its row in the printed table says so, and the scenario runner exits
non-zero (:func:`exit_code`).

Statuses
--------
``unlearned``
    An unlearning step happened (FedUP and the methods built on it), or the
    method forgets by other means (FedEraser's replay without the flagged).
``refused``
    FedUP recorded a refusal and no unlearning: the guard refused, or the model
    had nothing to prune.
``not_flagged``
    The detector flagged nobody, so nothing was unlearned.
``kept``
    Method ``none``: the flagged clients keep training (nothing asked).
``retrained``
    Baseline B.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from simulations.methods import parse_method
from simulations.schema import MethodResult, RunResult

UNLEARNED = "unlearned"
REFUSED = "refused"
NOT_FLAGGED = "not_flagged"
KEPT = "kept"
RETRAINED = "retrained"
ASKED_NOT_DONE = (REFUSED, NOT_FLAGGED)
"""Statuses of a method that was asked to unlearn and did not."""

EXIT_NOT_UNLEARNED = 3
"""Exit status of the scenario runner when an unlearning asked for did not happen."""

# policy.UnlearningPolicy.flag's reason: "<flagged> flagged of <nodes> nodes ...".
_GUARD_REASON = re.compile(r"(\d+) flagged of (\d+) nodes")


@dataclass(frozen=True)
class Outcome:
    """One method's status, and the guard's counts when it refused.

    Attributes
    ----------
    status : str
        One of the statuses of this module.
    flagged, nodes : int | None
        When refused by the guard: clients flagged (with those already
        excluded), and the nodes it counted.
    reason : str
        Why it was refused (empty otherwise).
    """

    status: str
    flagged: int | None = None
    nodes: int | None = None
    reason: str = ""


def method_outcome(method: str, events: Sequence[Any], num_clients: int) -> Outcome:
    """The outcome of ``method`` from FedUP's events of its run.

    Parameters
    ----------
    method : str
        The method's name (see :mod:`simulations.methods`).
    events : Sequence[UnlearningEvent]
        Every event FedUP recorded (``unlearned`` and ``refused``).
    num_clients : int
        The federation's size, when a refusal does not say what the guard
        counted.

    Returns
    -------
    Outcome
        Its status; a refusal's counts.
    """
    kind = parse_method(method).kind
    if kind == "retrain":
        return Outcome(RETRAINED)
    if kind == "none":
        return Outcome(KEPT)
    if kind == "federaser" or any(e.status == UNLEARNED for e in events):
        return Outcome(UNLEARNED)
    refused = [e for e in events if e.status == REFUSED]
    if not refused:
        return Outcome(NOT_FLAGGED)
    last = refused[-1]
    match = _GUARD_REASON.search(last.reason)
    if match is None:  # e.g. nothing to prune: the nodes are excluded anyway
        return Outcome(REFUSED, len(last.node_ids), None, last.reason)
    return Outcome(REFUSED, int(match[1]), int(match[2]), last.reason)


def status_label(result: MethodResult) -> str:
    """How the table names a method's round T.

    E.g. ``unlearned``, or ``refused (3 of 5 flagged; guard)``.
    """
    if result.status == REFUSED:
        if result.nodes is not None:
            return f"refused ({result.flagged} of {result.nodes} flagged; guard)"
        return "refused (nothing to prune)"
    if result.status == NOT_FLAGGED:
        return "not unlearned (nobody flagged)"
    if result.status == KEPT:
        return "kept (no unlearning)"
    return "unlearned"


def not_done(results: RunResult) -> list[str]:
    """Methods asked to unlearn whose unlearning did not happen, with why.

    Returns
    -------
    list[str]
        ``"<method>: <label>"`` for each, in the run's order.
    """
    return [
        f"{name}: {status_label(res)}"
        for name, res in results.methods.items()
        if res.status in ASKED_NOT_DONE
    ]


def exit_code(results: RunResult) -> int:
    """0, or :data:`EXIT_NOT_UNLEARNED` when an unlearning asked for did not happen."""
    return EXIT_NOT_UNLEARNED if not_done(results) else 0
