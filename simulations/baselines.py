"""Unlearning baselines and ablations, each as a FedUP variant or a strategy.

- ``random_prune``: the same number of weights per prunable array as FedUP,
  chosen at random (ablation).
- ``malicious_magnitude``: the same number, the largest magnitudes of the
  flagged clients' averaged weights (ablation, section VI-D4).
- ``not``: NoT (Khalil et al., weight negation): the first ``layers`` kernels
  of the global model are multiplied by -1; no pruning.
- ``federaser``: FedEraser (Liu et al., 2021): the server stores every round's
  global model and client updates; unlearning replays the stored rounds with
  the retained clients training for a fraction of their local epochs, each
  layer's new update rescaled to the norm of the stored one.

Every variant excludes the flagged clients exactly as FedUP does.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg
from numpy.typing import NDArray

from fedup_flwr import FedUP, prune_count, weighted_average
from fedup_flwr.core import is_prunable, model_nbytes, top_k_mask

Arrays = list[NDArray[Any]]


class RandomPruneFedUP(FedUP):
    """FedUP with the ranked weights replaced by random ones (same counts)."""

    def __init__(self, *args: Any, mask_seed: int = 0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.rng = np.random.default_rng(mask_seed)

    def compute_mask(
        self,
        benign_models: list[Arrays],
        benign_weights: list[int],
        malicious_models: list[Arrays],
        malicious_weights: list[int],
        rate: float,
    ) -> list[NDArray[np.bool_]]:
        """Random ``ceil(rate*size)`` weights per kernel."""
        masks = []
        for arr in self.global_arrays:
            k = prune_count(rate, arr.size) if is_prunable(arr) else 0
            masks.append(top_k_mask(self.rng.random(arr.shape), k))
        return masks


class MaliciousMagnitudeFedUP(FedUP):
    """FedUP ranking by the magnitude of the flagged clients' average."""

    def compute_mask(
        self,
        benign_models: list[Arrays],
        benign_weights: list[int],
        malicious_models: list[Arrays],
        malicious_weights: list[int],
        rate: float,
    ) -> list[NDArray[np.bool_]]:
        """Top ``ceil(rate*size)`` of ``|avg_malicious|`` per kernel."""
        avg = weighted_average(malicious_models, malicious_weights)
        return [
            top_k_mask(np.abs(a), prune_count(rate, a.size) if is_prunable(a) else 0)
            for a in avg
        ]


class NoTFedUP(FedUP):
    """NoT: negate the first ``layers`` kernels instead of pruning."""

    def __init__(self, *args: Any, layers: int = 1, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if layers < 1:
            raise ValueError(f"layers must be >= 1, got {layers}")
        self.layers = layers

    def compute_mask(
        self,
        benign_models: list[Arrays],
        benign_weights: list[int],
        malicious_models: list[Arrays],
        malicious_weights: list[int],
        rate: float,
    ) -> list[NDArray[np.bool_]]:
        """No weight is pruned."""
        return [np.zeros(a.shape, dtype=bool) for a in self.global_arrays]

    def apply_unlearning(
        self, aggregate: Arrays, mask: list[NDArray[np.bool_]]
    ) -> Arrays:
        """Multiply the first ``layers`` prunable arrays (kernels) by -1."""
        out, negated = [], 0
        for arr in aggregate:
            if is_prunable(arr) and negated < self.layers:
                out.append(-arr)
                negated += 1
            else:
                out.append(arr.copy())
        return out


@dataclass
class History:
    """What FedEraser stores: every round's global model and client updates."""

    globals: list[Arrays] = field(default_factory=list)
    updates: list[dict[int, tuple[Arrays, int]]] = field(default_factory=list)

    def nbytes(self) -> int:
        total = sum(model_nbytes(g) for g in self.globals)
        for rnd in self.updates:
            total += sum(model_nbytes(u) for u, _ in rnd.values())
        return total


class RecordingFedUP(FedUP):
    """FedUP that also records the history FedEraser needs (for the baseline)."""

    def __init__(self, *args: Any, history: History, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.history = history

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Record the round's global model and each reply's update, then aggregate."""
        replies = list(replies)
        glob = [a.copy() for a in self.global_arrays]
        updates: dict[int, tuple[Arrays, int]] = {}
        for msg in replies:
            if msg.has_error():
                continue
            try:
                arrays = msg.content.array_records["arrays"].to_numpy_ndarrays()
                num = int(msg.content.metric_records["metrics"]["num-examples"])  # type: ignore[arg-type]
            except (KeyError, TypeError, ValueError):
                continue
            if len(arrays) == len(glob):
                updates[int(msg.metadata.src_node_id)] = (
                    [a - g for a, g in zip(arrays, glob)],
                    num,
                )
        self.history.globals.append(glob)
        self.history.updates.append(updates)
        return super().aggregate_train(server_round, replies)


class FedEraserCalibration(FedAvg):
    """Inner strategy of the FedEraser replay (wrapped by FedUP for exclusion).

    Replay step ``j`` (server round ``first_round + j``) revisits stored round
    ``j * interval``: retained clients train from the calibrated global model
    for ``epoch_fraction`` of their local epochs; each layer of a client's new
    update is rescaled to the norm of its stored update for that round; the
    calibrated updates are averaged (weighted by examples) onto the model.
    """

    def __init__(
        self,
        history: History,
        *,
        first_round: int,
        epoch_fraction: float = 0.5,
        interval: int = 1,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not 0 < epoch_fraction <= 1:
            raise ValueError(f"epoch_fraction must be in (0, 1], got {epoch_fraction}")
        if interval < 1:
            raise ValueError(f"interval must be >= 1, got {interval}")
        self.history = history
        self.first_round = first_round
        self.epoch_fraction = epoch_fraction
        self.interval = interval
        self._sent: Arrays = []
        self._keys: list[str] = []

    @property
    def num_steps(self) -> int:
        """Replay rounds: one per ``interval`` stored rounds."""
        return len(range(0, len(self.history.globals), self.interval))

    def initial_arrays(self) -> ArrayRecord:
        """The stored first global model, where the replay starts."""
        return ArrayRecord(self.history.globals[0])

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """Ask for a shortened local training (``epochs-scale``)."""
        self._sent = arrays.to_numpy_ndarrays()
        self._keys = list(arrays.keys())
        config["epochs-scale"] = float(self.epoch_fraction)
        return super().configure_train(server_round, arrays, config, grid)

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Calibrated update: new directions, stored per-layer norms."""
        step = (server_round - self.first_round) * self.interval
        stored = self.history.updates[min(step, len(self.history.updates) - 1)]
        calibrated: list[Arrays] = []
        weights: list[float] = []
        for msg in replies:
            if msg.has_error():
                continue
            node = int(msg.metadata.src_node_id)
            if node not in stored:
                continue  # a client that did not train in that round
            new = [
                a - s
                for a, s in zip(
                    msg.content.array_records["arrays"].to_numpy_ndarrays(), self._sent
                )
            ]
            old, num = stored[node]
            calibrated.append(
                [
                    n * (np.linalg.norm(o) / max(float(np.linalg.norm(n)), 1e-12))
                    if n.dtype.kind == "f"
                    else o
                    for n, o in zip(new, old)
                ]
            )
            weights.append(float(num))
        if not calibrated:
            return None, None
        step_update = weighted_average(calibrated, weights)
        new_global = [
            np.asarray(s + (u if s.dtype.kind == "f" else np.rint(u))).astype(s.dtype)
            for s, u in zip(self._sent, step_update)
        ]
        record = ArrayRecord({k: Array(v) for k, v in zip(self._keys, new_global)})
        metrics = MetricRecord(
            {"federaser-step": float(step), "federaser-clients": float(len(calibrated))}
        )
        return record, metrics
