"""Per-round checkpoints of a scenario, so a killed run resumes where it stopped.

After every round the experiment writes its progress (finished steps and their
final arrays, the current step's arrays and FedUP state, the per-round rows,
FedEraser's history) to ``checkpoint.pkl``: written to a temporary file, then
renamed, so a kill never leaves a half-written checkpoint.

Node ids change when a simulation restarts, so every node id in the saved
state is stored as the node's partition id and mapped back on resume.

The checkpoint only reads and writes: :meth:`Checkpoint.load` and
:meth:`Checkpoint.resume_step` return what was saved (:class:`Restored`,
:class:`StepProgress`), and the experiment applies it.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from flwr.app import ArrayRecord

from fedup_flwr import FedUP, UnlearningEvent
from simulations.baselines import History

# Which (phase, method) rows a step writes; method steps write ("unlearn", m).
STEP_LOG = {
    "train": ("train", "all"),
    "before": ("train", "all"),
    "retrain": ("retrain", "retrain"),
    "online": ("online", "fedup"),
}
ONLINE_PREFIX = "online-"  # online-<method>: a comparison's online pass


def step_log(step: str) -> tuple[str, str]:
    """The ``(phase, method)`` a step's rounds are logged under: the named
    steps of :data:`STEP_LOG`, ``online-<method>`` (a comparison run with the
    same detector every round), else a one-shot method's ``unlearn`` rows."""
    if step in STEP_LOG:
        return STEP_LOG[step]
    if step.startswith(ONLINE_PREFIX):
        return ("online", step.removeprefix(ONLINE_PREFIX))
    return ("unlearn", step)


Mapping_ = dict[int, int]
Rows = list[dict[str, Any]]


@dataclass(frozen=True)
class Restored:
    """A run's saved progress, node ids mapped to this run's nodes.

    Attributes
    ----------
    done : dict[str, ArrayRecord]
        The final arrays of every finished step.
    rows : list[dict[str, Any]]
        The per-round rows logged so far.
    history : History | None
        FedEraser's history, if it was recorded.
    events : dict[str, list[UnlearningEvent]]
        Unlearning events of the finished methods.
    storage : dict[str, float]
        Storage and time figures of the finished methods.
    """

    done: dict[str, ArrayRecord]
    rows: Rows
    history: History | None
    events: dict[str, list[UnlearningEvent]]
    storage: dict[str, float]


@dataclass(frozen=True)
class StepProgress:
    """Where an interrupted step stopped, to continue it.

    Attributes
    ----------
    arrays : ArrayRecord
        The global arrays after its last finished round.
    first : int
        The step's first server round.
    next_round : int
        The strategy's next round.
    state : dict[str, Any]
        The strategy's ``state_dict()``, node ids mapped to this run's nodes.
    """

    arrays: ArrayRecord
    first: int
    next_round: int
    state: dict[str, Any]


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

    # ------------------------------------------------------------- loading
    def load(self, node_of: Mapping_) -> Restored | None:
        """The saved progress when resuming (``enabled`` and a file), else None.

        Parameters
        ----------
        node_of : dict[int, int]
            This run's node id of every partition id.
        """
        if not (self.enabled and self.path.exists()):
            return None
        with self.path.open("rb") as fh:
            self.data = pickle.load(fh)
        print(
            f"resuming from {self.path} (steps done: {sorted(self.data['done'])})",
            flush=True,
        )
        return Restored(
            done={k: _to_record(v) for k, v in self.data["done"].items()},
            rows=[dict(r) for r in self.data["rows"]],
            history=_map_history(self.data["history"], node_of.__getitem__),
            events={
                m: [UnlearningEvent(**e) for e in evs]
                for m, evs in self.data["events"].items()
            },
            storage=dict(self.data["storage"]),
        )

    def resume_step(self, step: str, node_of: Mapping_) -> StepProgress | None:
        """Where ``step`` stopped if it was interrupted, else None."""
        current = self.data["current"]
        if current is None or current["step"] != step:
            return None
        return StepProgress(
            arrays=_to_record(current["arrays"]),
            first=int(current["first"]),
            next_round=int(current["next_round"]),
            state=_map_nodes(current["state"], node_of.__getitem__),
        )

    # ------------------------------------------------------------- writing
    def _write(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        with tmp.open("wb") as fh:
            pickle.dump(self.data, fh, protocol=pickle.HIGHEST_PROTOCOL)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)

    def _common(self, rows: Rows, history: History | None, pid_of: Mapping_) -> None:
        self.data["rows"] = list(rows)
        self.data["history"] = _map_history(history, pid_of.__getitem__)

    def save_round(
        self,
        step: str,
        first: int,
        arrays: ArrayRecord,
        strategy: FedUP,
        rows: Rows,
        history: History | None,
        pid_of: Mapping_,
        *,
        next_round: int | None = None,
    ) -> None:
        """After a round of ``step``: its arrays, FedUP's state, the rows.

        ``next_round`` is the round to resume at (None: the strategy's
        ``next_round``, right when its ``start`` returned); saving from inside
        ``start`` (the evaluation hook) gives it, as FedUP advances
        ``next_round`` only when ``start`` returns.
        """
        self._common(rows, history, pid_of)
        self.data["current"] = {
            "step": step,
            "first": first,
            "next_round": strategy.next_round if next_round is None else next_round,
            "arrays": _to_numpy(arrays),
            "state": _map_nodes(strategy.state_dict(), pid_of.__getitem__),
        }
        self._write()

    def save_step(
        self,
        step: str,
        arrays: ArrayRecord,
        rows: Rows,
        history: History | None,
        pid_of: Mapping_,
    ) -> None:
        """``step`` is finished; keep its final arrays."""
        self._common(rows, history, pid_of)
        self.data["done"][step] = _to_numpy(arrays)
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
