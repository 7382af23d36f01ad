"""FedUP: unlearning malicious clients by pruning, as a Flower strategy.

The pure numpy core (:mod:`fedup_flwr.core`) imports without Flower; the
strategy :class:`FedUP` is loaded lazily so that ``import fedup_flwr`` works in
numpy-only environments.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fedup_flwr.core import (
    apply_mask,
    last_layer_similarity,
    prune_count,
    pruning_rate,
    recovery_rounds_bound,
    unlearning_mask,
    weighted_average,
)
from fedup_flwr.detector import Detector, OracleDetector

if TYPE_CHECKING:
    from fedup_flwr.strategy import FedUP, UnlearningEvent

__all__ = [
    "Detector",
    "FedUP",
    "OracleDetector",
    "UnlearningEvent",
    "apply_mask",
    "last_layer_similarity",
    "prune_count",
    "pruning_rate",
    "recovery_rounds_bound",
    "unlearning_mask",
    "weighted_average",
]

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name in ("FedUP", "UnlearningEvent"):
        from fedup_flwr import strategy

        return getattr(strategy, name)
    raise AttributeError(f"module 'fedup_flwr' has no attribute {name!r}")
