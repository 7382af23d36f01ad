"""How FedUP runs rounds: the grid without excluded nodes, and recovery rounds.

After an unlearning in round r, rounds up to r + ``recovery_rounds`` must run
so that the pruned model recovers. ``FedUP.start`` runs Flower's round loop,
then starts it again from the last global model for the rounds the recovery
still requires (``FedUP.rounds_required``), numbering them on; :func:`run_rounds`
is that logic.

Flower's own wrappers never override ``start``. Hence:

* Supported: wrappers *inside* FedUP, e.g.
  ``FedUP(DifferentialPrivacyServerSideFixedClipping(FedAvg(), ...))``. FedUP
  validates the replies, runs the detector and holds the clients' models as
  sent; the wrapper clips and noises the aggregate of the benign replies; FedUP
  prunes that aggregate.
* Not supported: ``Wrapper(FedUP(...))``. The wrapper's ``start`` calls FedUP's
  hooks, so exclusion, detection and unlearning still happen, but no extra
  recovery round runs. FedUP then logs a WARNING (:func:`warn_outstanding`)
  every round in which recovery or a deferred unlearning is outstanding. To
  finish, set ``fedup.next_round = fedup.last_round + 1`` and run the wrapper
  for ``fedup.rounds_required()`` more rounds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from logging import INFO, WARNING
from typing import TYPE_CHECKING, Any

from flwr.app import ArrayRecord, ConfigRecord, MetricRecord
from flwr.common.logger import log
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Result

from fedup_flwr.policy import UnlearningPolicy

if TYPE_CHECKING:
    from fedup_flwr.strategy import FedUP

__all__ = [
    "EvaluateFn",
    "ExcludingGrid",
    "inner_attr",
    "run_rounds",
    "warn_outstanding",
]

EvaluateFn = Callable[[int, ArrayRecord], MetricRecord | None]
Loop = Callable[..., Result]


class ExcludingGrid:
    """A view of a Grid whose ``get_node_ids`` hides excluded nodes.

    Inner strategies sample from ``grid.get_node_ids()``, so excluded nodes are
    never sampled without copying any sampling code.

    Parameters
    ----------
    grid : Grid
        The real grid; everything but ``get_node_ids`` is forwarded to it.
    excluded : set[int]
        The excluded nodes (read at each call, so later exclusions count).
    """

    def __init__(self, grid: Grid, excluded: set[int]) -> None:
        self._grid = grid
        self._excluded = excluded

    def get_node_ids(self) -> Iterable[int]:
        """The grid's node ids without the excluded ones."""
        return [n for n in self._grid.get_node_ids() if n not in self._excluded]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._grid, name)


def inner_attr(strategy: Any, name: str, default: Any) -> Any:
    """An attribute of a strategy or of the first strategy it wraps that has it.

    Flower's wrappers (e.g. the DP strategies) keep the wrapped strategy in
    ``.strategy`` and do not copy settings such as ``weighted_by_key``.
    """
    seen: set[int] = set()
    while strategy is not None and id(strategy) not in seen:
        if hasattr(strategy, name):
            return getattr(strategy, name)
        seen.add(id(strategy))
        strategy = getattr(strategy, "strategy", None)
    return default


def run_rounds(
    fedup: FedUP,
    loop: Loop,
    grid: Grid,
    initial_arrays: ArrayRecord,
    num_rounds: int,
    *,
    timeout: float,
    train_config: ConfigRecord | None,
    evaluate_config: ConfigRecord | None,
    evaluate_fn: EvaluateFn | None,
) -> Result:
    """Run ``loop`` (Flower's ``Strategy.start``) plus the recovery rounds.

    Rounds are numbered from ``fedup.next_round``; after the loop, while
    ``fedup.rounds_required(last)`` is positive (recovery outstanding, or a
    deferred unlearning and its recovery), the loop runs again from the last
    global model for that many rounds; it stops adding rounds when a deferred
    unlearning did not happen in the rounds added for it. ``fedup.next_round``
    ends one past the last round run.

    Returns
    -------
    Result
        All rounds' metrics under FedUP's round numbers, and the final arrays.
    """
    offset = fedup.next_round - 1
    result = Result(arrays=initial_arrays)
    more = loop(
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
    policy = fedup.policy
    waited_for: tuple[list[int], int | None] | None = None
    while (extra := fedup.rounds_required(done)) > 0:
        pending = sorted(policy.pending)
        if pending and waited_for == (pending, policy.last_unlearning):
            # The rounds added for it ran without a valid benign reply; do not
            # extend the run forever.
            log(
                WARNING,
                "FedUP: the deferred unlearning of nodes %s did not happen in "
                "the rounds added for it (no valid benign reply); not adding more",
                pending,
            )
            break
        waited_for = (pending, policy.last_unlearning) if pending else None
        if pending:
            log(
                INFO,
                "FedUP: %d extra rounds (%d to %d) for the deferred unlearning of "
                "nodes %s (due in round %s) and its recovery",
                extra,
                done + 1,
                done + extra,
                pending,
                policy.unlearning_round(done),
            )
        else:
            log(
                INFO,
                "FedUP: %d extra recovery rounds (%d to %d) after the "
                "unlearning in round %s",
                extra,
                done + 1,
                done + extra,
                policy.last_unlearning,
            )
        fedup.next_round = done + 1
        more = loop(
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
    fedup.next_round = done + 1
    return result


def warn_outstanding(
    policy: UnlearningPolicy, server_round: int, *, wrapped: bool
) -> None:
    """Log a WARNING if a run ending after ``server_round`` leaves work undone.

    Parameters
    ----------
    policy : UnlearningPolicy
        FedUP's policy.
    server_round : int
        The last round run so far.
    wrapped : bool
        True when FedUP does not run the loop itself (a wrapper around it, or
        hooks called by hand), so missing recovery rounds are not added.
    """
    if policy.pending:
        log(
            WARNING,
            "FedUP: round %s: nodes %s are excluded but not yet unlearned "
            "(the rate limit defers it to round %s); a run ending now leaves "
            "them in the model",
            server_round,
            sorted(policy.pending),
            policy.deferred_until(server_round + 1) or server_round + 1,
        )
    missing = policy.rounds_required(server_round)
    if wrapped and missing > 0:
        log(
            WARNING,
            "FedUP: round %s: %d recovery rounds are still required; FedUP is "
            "not running the loop itself (wrapped or driven by hand), so it "
            "cannot add them: run fedup.rounds_required() more rounds (see the "
            "FedUP docstring, Notes)",
            server_round,
            missing,
        )


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
