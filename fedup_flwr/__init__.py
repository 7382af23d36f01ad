"""FedUP: unlearning malicious clients by pruning, as a Flower strategy.

The pure numpy core (:mod:`fedup_flwr.core`), the unlearning policy
(:mod:`fedup_flwr.policy`) and the events (:mod:`fedup_flwr.events`) import
without Flower; the strategy :class:`FedUP` is loaded lazily so that
``import fedup_flwr`` works in numpy-only environments.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fedup_flwr.core import (
    adaptive_pruning_rate,
    apply_mask,
    is_prunable,
    last_layer_similarity,
    prunable_flags,
    prune_count,
    pruning_rate,
    recovery_rounds_bound,
    top_k_mask,
    unlearning_mask,
    weighted_average,
)
from fedup_flwr.detector import Detector, OracleDetector
from fedup_flwr.events import UnlearningEvent
from fedup_flwr.policy import UnlearningPolicy
from fedup_flwr.rates import DEFAULT_PRUNING_RATE

if TYPE_CHECKING:
    from fedup_flwr.strategy import FedUP

__all__ = [
    "DEFAULT_PRUNING_RATE",
    "Detector",
    "FedUP",
    "OracleDetector",
    "UnlearningEvent",
    "UnlearningPolicy",
    "adaptive_pruning_rate",
    "apply_mask",
    "is_prunable",
    "last_layer_similarity",
    "prunable_flags",
    "prune_count",
    "pruning_rate",
    "recovery_rounds_bound",
    "top_k_mask",
    "unlearning_mask",
    "weighted_average",
]

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name == "FedUP":
        from fedup_flwr.strategy import FedUP

        return FedUP
    raise AttributeError(f"module 'fedup_flwr' has no attribute {name!r}")
