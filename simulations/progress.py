"""Quiet progress: one line per round, Flower's and Ray's own logs on request.

Each round prints one line: phase, round k/N, test and malicious accuracy,
seconds, the partitions that trained (partition ids, not node ids), and the
unlearning step of that round if any, e.g.::

    unlearn fedup      round   3/5   test 0.6310  malicious 0.4557    5.2s
    partitions 2-4  unlearned 0,1 (P=0.125)

(one line, wrapped here).

Flower's INFO logs (strategy banners, per-round summaries) and Ray's worker
logs show only with ``verbose=true`` (:func:`quiet_logs`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from flwr.app import Message, MessageType

# Known warnings that say nothing to a user of the harness (each printed once
# per strategy or run): the harness evaluates centrally, and calls
# run_simulation on purpose (python -m simulations.run).
_NOISE = ("fraction_evaluate is set to 0.0", "DEPRECATED FEATURE")


class _DropNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        return not any(text in message for text in _NOISE)


_FILTER = _DropNoise()


def quiet_logs(verbose: bool) -> None:
    """Show Flower's INFO logs only when ``verbose``; warnings always.

    Parameters
    ----------
    verbose : bool
        True: Flower logs everything (its banners and per-round summaries).
    """
    logger = logging.getLogger("flwr")
    logger.setLevel(logging.INFO if verbose else logging.WARNING)
    if verbose:
        logger.removeFilter(_FILTER)
    else:
        logger.addFilter(_FILTER)
        # Ray's tip about accelerator variables, printed at every start.
        os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")


class WatchedGrid:
    """A Grid that remembers which nodes replied to the last training messages.

    Parameters
    ----------
    grid : Grid
        The real grid; everything but ``send_and_receive`` is forwarded.
    """

    def __init__(self, grid: Any) -> None:
        self._grid = grid
        self.trained: list[int] = []

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        """Forward to the grid; note the nodes that replied to a training message."""
        messages = list(messages)
        replies = list(self._grid.send_and_receive(messages, timeout=timeout))
        if any(m.metadata.message_type == MessageType.TRAIN for m in messages):
            self.trained = [
                int(r.metadata.src_node_id) for r in replies if not r.has_error()
            ]
        return replies

    def take_trained(self) -> list[int]:
        """The nodes of the last training round, forgotten once read."""
        trained, self.trained = self.trained, []
        return trained

    def __getattr__(self, name: str) -> Any:
        return getattr(self._grid, name)


def compact(ids: Iterable[int]) -> str:
    """Sorted ids with runs folded, e.g. ``0,2-4`` (``-`` for none)."""
    values = sorted(set(ids))
    if not values:
        return "-"
    parts: list[str] = []
    start = prev = values[0]
    for v in [*values[1:], None]:
        if v is not None and v == prev + 1:
            prev = v
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if v is not None:
            start = prev = v
    return ",".join(parts)


def event_note(
    events: Sequence[Any], server_round: int, pid_of: Mapping[int, int]
) -> str:
    """What FedUP did in ``server_round`` (unlearned, refused), or ``""``."""
    notes = []
    for e in events:
        if e.server_round != server_round:
            continue
        parts = compact(pid_of.get(n, n) for n in e.node_ids)
        if e.status == "unlearned":
            notes.append(f"unlearned {parts} (P={e.rate:.3f})")
        else:
            notes.append(f"REFUSED to unlearn {parts} ({e.reason})")
    return ("  " + "; ".join(notes)) if notes else ""


def progress_line(
    phase: str,
    method: str,
    server_round: int,
    last_round: int,
    metrics: Mapping[str, float],
    seconds: float,
    partitions: Iterable[int],
    note: str = "",
) -> str:
    """One round's line (see the module docstring); round 0: the initial model."""
    label = phase if method in ("all", phase) else f"{phase} {method}"
    where = (
        f"round {server_round:>3}/{last_round:<3}" if server_round else "initial model"
    )
    return (
        f"{label:<18} {where} "
        f"test {metrics['test_acc']:.4f}  malicious {metrics['mal_acc']:.4f}  "
        f"{seconds:5.1f}s  partitions {compact(partitions)}{note}"
    )
