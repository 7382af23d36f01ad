"""Built-in detectors for FedUP, and a registry to build them by name.

Importing this package registers:

* ``"last_layer_cluster"``: :class:`LastLayerClusterDetector` (after LFighter);
* ``"cosine_outlier"``: :class:`CosineOutlierDetector` (after FL-Defender and
  FoolsGold);
* ``"krum_score"``: :class:`KrumScoreDetector` (after Krum);
* ``"flame_cluster"``: :class:`FlameClusterDetector` (after FLAME);
* ``"cosine_history"``: :class:`CosineHistoryDetector` (after FoolsGold,
  evidence accumulated over rounds);
* ``"foolsgold"``: :class:`FoolsGoldDetector` (after FoolsGold: a coordinated
  minority, alike over rounds);
* ``"oracle"``: :class:`fedup_flwr.detector.OracleDetector`.

Examples
--------
>>> from fedup_flwr.detectors import available_detectors, get_detector
>>> for name in available_detectors():
...     print(name)
cosine_history
cosine_outlier
flame_cluster
foolsgold
krum_score
last_layer_cluster
oracle
>>> get_detector("cosine_outlier", k=3.0).k
3.0
"""

from __future__ import annotations

from fedup_flwr.detectors.base import BaseDetector
from fedup_flwr.detectors.cosine_history import CosineHistoryDetector
from fedup_flwr.detectors.cosine_outlier import CosineOutlierDetector
from fedup_flwr.detectors.flame_cluster import FlameClusterDetector
from fedup_flwr.detectors.foolsgold import FoolsGoldDetector
from fedup_flwr.detectors.krum_score import KrumScoreDetector
from fedup_flwr.detectors.last_layer_cluster import LastLayerClusterDetector
from fedup_flwr.detectors.registry import (
    UnknownDetectorError,
    available_detectors,
    get_detector,
    register_detector,
)
from fedup_flwr.detectors.updates import RoundUpdates

__all__ = [
    "BaseDetector",
    "CosineHistoryDetector",
    "CosineOutlierDetector",
    "FlameClusterDetector",
    "FoolsGoldDetector",
    "KrumScoreDetector",
    "LastLayerClusterDetector",
    "RoundUpdates",
    "UnknownDetectorError",
    "available_detectors",
    "get_detector",
    "register_detector",
]
