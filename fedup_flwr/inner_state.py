"""Keep an inner strategy's server-side state in step with FedUP's pruning.

Some of Flower's strategies keep state between rounds that FedUP's pruning
would not reach: ``FedAvgM`` keeps its own copy of the global model
(``current_arrays``, set once) and a momentum (``momentum_vector``);
``FedAdam``, ``FedYogi`` and ``FedAdagrad`` keep a first moment (``m_t``).
Left alone, they bring pruned weights back in the next round while the event
says "unlearned". After each round FedUP hands the inner strategies the model
it returned (:func:`sync_current_arrays`), and after an unlearning it zeroes
their momentum at the pruned weights (:func:`forget_pruned`). Second moments
(``v_t``) only scale steps and are kept.

Strategies whose model is not an array model FedUP can prune (Flower's
XGBoost strategies aggregate serialised trees) are refused up front
(:func:`check_inner_strategy`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord
from flwr.serverapp.strategy import FedXgbBagging, FedXgbCyclic, Strategy
from numpy.typing import NDArray

__all__ = [
    "UNPRUNABLE",
    "check_inner_strategy",
    "forget_pruned",
    "strategy_chain",
    "sync_current_arrays",
]

#: Inner strategies FedUP refuses: their model is serialised trees, not arrays.
UNPRUNABLE: tuple[type[Strategy], ...] = (FedXgbBagging, FedXgbCyclic)
#: Momentum-like state, zeroed at pruned weights (list by position or dict by name).
MOMENTA = ("momentum_vector", "m_t")


def strategy_chain(strategy: Any) -> Iterator[Any]:
    """The strategy, then every strategy it wraps (``.strategy``), once each."""
    seen: set[int] = set()
    while strategy is not None and id(strategy) not in seen:
        yield strategy
        seen.add(id(strategy))
        strategy = getattr(strategy, "strategy", None)


def check_inner_strategy(strategy: Strategy) -> None:
    """Raise TypeError when FedUP cannot prune what ``strategy`` aggregates.

    Parameters
    ----------
    strategy : Strategy
        FedUP's inner strategy (wrappers are looked through).

    Raises
    ------
    TypeError
        A strategy in the chain is one of :data:`UNPRUNABLE`.
    """
    for inner in strategy_chain(strategy):
        if isinstance(inner, UNPRUNABLE):
            raise TypeError(
                f"FedUP cannot unlearn with {type(inner).__name__}: it aggregates "
                "serialised XGBoost trees, which have no weights to prune; use "
                "an array-model strategy (FedAvg, FedAvgM, FedAdam, ...)"
            )


def sync_current_arrays(strategy: Strategy, arrays: ArrayRecord) -> None:
    """Give every inner strategy that keeps a model (``current_arrays``) FedUP's.

    Parameters
    ----------
    strategy : Strategy
        FedUP's inner strategy.
    arrays : ArrayRecord
        The global model FedUP returned for the round (or kept).
    """
    for inner in strategy_chain(strategy):
        # FedAvgM sets its copy once and then follows its own aggregates;
        # the others reset theirs in configure_train, which this matches.
        if isinstance(getattr(inner, "current_arrays", None), ArrayRecord):
            # A copy: QFedAvg empties the record it reads (keep_input=False).
            inner.current_arrays = ArrayRecord(
                {k: Array(np.array(a.numpy())) for k, a in arrays.items()}
            )


def forget_pruned(
    strategy: Strategy, keys: Sequence[str], mask: Sequence[NDArray[np.bool_]]
) -> list[str]:
    """Zero the inner strategies' momentum at the pruned weights.

    Parameters
    ----------
    strategy : Strategy
        FedUP's inner strategy.
    keys : Sequence[str]
        The arrays' names, in the mask's order.
    mask : Sequence[NDArray[np.bool_]]
        The unlearning mask (True = pruned).

    Returns
    -------
    list[str]
        ``Class.attribute`` of every state changed (for the log).
    """
    changed = []
    for inner in strategy_chain(strategy):
        for name in MOMENTA:
            state = getattr(inner, name, None)
            if isinstance(state, list) and len(state) == len(mask):
                setattr(inner, name, [_zeroed(v, m) for v, m in zip(state, mask)])
            elif isinstance(state, dict) and set(state) == set(keys):
                by_key = dict(zip(keys, mask))
                setattr(
                    inner, name, {k: _zeroed(v, by_key[k]) for k, v in state.items()}
                )
            else:
                continue
            changed.append(f"{type(inner).__name__}.{name}")
    return changed


def _zeroed(value: NDArray[Any], mask: NDArray[np.bool_]) -> NDArray[Any]:
    value = np.asarray(value)
    if value.shape != mask.shape or not mask.any():
        return value
    return np.where(mask, np.zeros((), value.dtype), value)
