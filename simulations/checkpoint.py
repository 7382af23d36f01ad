"""Per-round checkpoints of a scenario, so a killed run resumes where it stopped.

After every round the experiment writes its progress (finished steps and their
final arrays, the current step's arrays and FedUP state, the per-round rows,
FedEraser's history) to ``checkpoint.pkl``: written to a temporary file, then
renamed, so a kill never leaves a half-written checkpoint.

Node ids change when a simulation restarts, so every node id in the saved
state is stored as the node's partition id and mapped back on resume.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from flwr.app import ArrayRecord

from fedup_flwr import FedUP, UnlearningEvent
from simulations.baselines import History
from simulations.results import RoundLog

if TYPE_CHECKING:
    from simulations.server_app import Experiment

# Which (phase, method) rows a step writes; method steps write ("unlearn", m).
STEP_LOG = {
    "train": ("train", "all"),
    "before": ("train", "all"),
    "retrain": ("retrain", "retrain"),
    "online": ("online", "fedup"),
}

Mapping_ = dict[int, int]


def _map_nodes(state: dict[str, Any], fn: Callable[[int], int]) -> dict[str, Any]:
    """Map every node id in a ``FedUP.state_dict()`` through ``fn``."""
    out = dict(state)
    out["excluded"] = [fn(n) for n in state["excluded"]]
    out["seen"] = [fn(n) for n in state["seen"]]
    out["pending"] = {fn(int(n)): v for n, v in state["pending"].items()}
    out["events"] = [
        {**e, "node_ids": [fn(n) for n in e["node_ids"]]} for e in state["events"]
    ]
    if "detector" in state and "schedule" in state["detector"]:
        out["detector"] = {
            "schedule": {
                r: [fn(n) for n in nodes]
                for r, nodes in state["detector"]["schedule"].items()
            }
        }
    return out


def _map_history(history: History | None, fn: Callable[[int], int]) -> History | None:
    if history is None:
        return None
    return History(
        globals=history.globals,
        updates=[{fn(n): u for n, u in rnd.items()} for rnd in history.updates],
    )


def _to_numpy(arrays: ArrayRecord) -> tuple[list[str], list[np.ndarray]]:
    return list(arrays.keys()), arrays.to_numpy_ndarrays()


def _to_record(saved: tuple[list[str], list[np.ndarray]]) -> ArrayRecord:
    from flwr.app import Array

    keys, values = saved
    return ArrayRecord({k: Array(v) for k, v in zip(keys, values)})


class Checkpoint:
    """Reads and writes one scenario's ``checkpoint.pkl``.

    Parameters
    ----------
    path : Path
        The file.
    enabled : bool
        Load an existing checkpoint (``resume=true``); checkpoints are always
        written, so a killed run can be resumed later.
    """

    def __init__(self, path: Path, *, enabled: bool) -> None:
        self.path = path
        self.enabled = enabled
        self.data: dict[str, Any] = {
            "done": {},
            "current": None,
            "rows": [],
            "history": None,
            "events": {},
            "storage": {},
        }
        self.done: dict[str, ArrayRecord] = {}

    # ------------------------------------------------------------- loading
    def restore(self, log: RoundLog, experiment: Experiment) -> None:
        """Load the checkpoint into ``log`` and ``experiment`` when resuming."""
        if not (self.enabled and self.path.exists()):
            return
        with self.path.open("rb") as fh:
            self.data = pickle.load(fh)
        node_of = experiment._node_of
        self.done = {k: _to_record(v) for k, v in self.data["done"].items()}
        log.restore(self.data["rows"])
        if experiment.history is not None and self.data["history"] is not None:
            experiment.history = _map_history(self.data["history"], node_of.__getitem__)
        experiment.events = {
            m: [UnlearningEvent(**e) for e in evs]
            for m, evs in self.data["events"].items()
        }
        experiment.storage = dict(self.data["storage"])
        print(
            f"resuming from {self.path} (steps done: {sorted(self.done)})", flush=True
        )

    def resume_step(
        self,
        step: str,
        strategy: FedUP,
        pid_of: Mapping_,
        node_of: Mapping_,
    ) -> tuple[ArrayRecord, int] | None:
        """Restore ``strategy`` if ``step`` was interrupted.

        Returns the step's last arrays and its first round, or None.
        """
        current = self.data["current"]
        if current is None or current["step"] != step:
            return None
        strategy.load_state_dict(_map_nodes(current["state"], node_of.__getitem__))
        strategy.next_round = int(current["next_round"])
        return _to_record(current["arrays"]), int(current["first"])

    # ------------------------------------------------------------- writing
    def _write(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        with tmp.open("wb") as fh:
            pickle.dump(self.data, fh, protocol=pickle.HIGHEST_PROTOCOL)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)

    def _common(self, log: RoundLog, history: History | None, pid_of: Mapping_) -> None:
        self.data["rows"] = list(log.rows)
        self.data["history"] = _map_history(history, pid_of.__getitem__)

    def save_round(
        self,
        step: str,
        first: int,
        arrays: ArrayRecord,
        strategy: FedUP,
        log: RoundLog,
        history: History | None,
        pid_of: Mapping_,
    ) -> None:
        """After a round of ``step``: its arrays and FedUP's state."""
        self._common(log, history, pid_of)
        self.data["current"] = {
            "step": step,
            "first": first,
            "next_round": strategy.next_round,
            "arrays": _to_numpy(arrays),
            "state": _map_nodes(strategy.state_dict(), pid_of.__getitem__),
        }
        self._write()

    def save_step(
        self,
        step: str,
        arrays: ArrayRecord,
        log: RoundLog,
        history: History | None,
        pid_of: Mapping_,
    ) -> None:
        """``step`` is finished; keep its final arrays."""
        self._common(log, history, pid_of)
        self.data["done"][step] = _to_numpy(arrays)
        self.done[step] = arrays
        self.data["current"] = None
        self._write()

    def save_events(
        self, events: dict[str, list[Any]], storage: dict[str, float]
    ) -> None:
        """Unlearning events and storage figures of finished methods."""
        self.data["events"] = {m: [asdict(e) for e in evs] for m, evs in events.items()}
        self.data["storage"] = dict(storage)
        self._write()

    def remove(self) -> None:
        """The run finished: its results replace the checkpoint."""
        self.path.unlink(missing_ok=True)
