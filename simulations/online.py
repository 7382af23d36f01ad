"""Detection every round (real detectors, DoS), instead of an oracle at round T.

The harness wraps a detector so that its flags count only from ``from_round``
on (it still sees every round, so detectors that accumulate history can), and
provides ``FlagEveryRound``, a detector that flags a new node every round: an
attack on the unlearning itself (section IV-D), which FedUP's rate limit and
guard must absorb. :func:`run_online` is the experiment's flow for them.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from flwr.serverapp import Grid
from numpy.typing import NDArray

from fedup_flwr import Detector, FedUP
from simulations.checkpoint import ONLINE_PREFIX
from simulations.methods import parse_method
from simulations.results import finish_run

if TYPE_CHECKING:
    from simulations.experiment import Experiment

Arrays = Sequence[NDArray[Any]]


class FromRound:
    """Ignore a detector's flags before ``from_round`` (it still sees the rounds)."""

    def __init__(self, detector: Detector, from_round: int) -> None:
        self.detector = detector
        self.from_round = int(from_round)
        self.scores: dict[int, float] = {}

    def detect(
        self, server_round: int, replies: Mapping[int, Arrays], global_arrays: Arrays
    ) -> set[int]:
        """The inner detector's flags, or nothing before ``from_round``."""
        flagged = self.detector.detect(server_round, replies, global_arrays)
        self.scores = dict(getattr(self.detector, "scores", {}) or {})
        return set(flagged) if server_round >= self.from_round else set()

    def state_dict(self) -> dict[str, Any]:
        inner = getattr(self.detector, "state_dict", None)
        return {"inner": inner() if callable(inner) else {}}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        inner = getattr(self.detector, "load_state_dict", None)
        if callable(inner):
            inner(state["inner"])


class FlagEveryRound:
    """Flags the smallest replying node id it has not flagged yet, every round."""

    def __init__(self) -> None:
        self.flagged: list[int] = []
        self.scores: dict[int, float] = {}

    def detect(
        self, server_round: int, replies: Mapping[int, Arrays], global_arrays: Arrays
    ) -> set[int]:
        """One new node per round."""
        fresh = sorted(set(replies) - set(self.flagged))
        self.scores = {n: float(n in self.flagged) for n in replies}
        if not fresh:
            return set()
        self.flagged.append(fresh[0])
        return {fresh[0]}

    def state_dict(self) -> dict[str, Any]:
        return {"flagged": list(self.flagged)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.flagged = [int(n) for n in state["flagged"]]


ONLINE_KINDS = ("fedup", "natural")
"""Methods FedUP itself runs with a detector every round (natural: P = 0)."""


def online_methods(methods: Sequence[str]) -> list[str]:
    """The methods of an online run: FedUP's kinds, in order.

    ``retrain`` (B) always runs and is not a pass of its own.

    Raises
    ------
    ValueError
        For a method that cannot run with a detector every round (the
        one-shot baselines: NoT, FedEraser, the ablations, ``none``).
    """
    out = []
    for method in methods:
        kind = parse_method(method).kind
        if kind == "retrain":
            continue
        if kind not in ONLINE_KINDS:
            raise ValueError(
                f"method {method!r} cannot run with a detector every round; "
                "compare natural or fedup-<P> there (each is a full training "
                "run with the same detector), or use the oracle for the others"
            )
        out.append(method)
    return out


def from_first_unlearning(
    rows: list[dict[str, Any]], events: Sequence[Any]
) -> list[dict[str, Any]]:
    """An online pass's rows from its first unlearning round on (its last row
    when it never unlearned): round T and the recovery rounds after it."""
    first = next((e.server_round for e in events if e.status == "unlearned"), None)
    return rows[first - 1 :] if first else rows[-1:]


def run_online(exp: Experiment, grid: Grid, wall: float) -> dict[str, Any]:
    """The online flow of an :class:`~simulations.experiment.Experiment`.

    Detection every round, FedUP fires on detection; then each comparison
    (:func:`online_methods`: natural forgetting, FedUP at another P) as its
    own pass from the initial model with its own copy of the detector; then
    baseline B. The detection record and "before" are FedUP's.

    Parameters
    ----------
    exp : Experiment
        The experiment (its steps, log and checkpoint).
    grid : Grid
        The ServerApp's Grid.
    wall : float
        ``time.perf_counter()`` when the run started.

    Returns
    -------
    dict[str, Any]
        The results (also written to the experiment's folder).
    """
    cfg = exp.cfg
    malicious = sorted(exp._node_of[p] for p in exp.scenario.malicious_partitions)
    exp._initial()
    total = int(cfg.rounds.train) + int(cfg.rounds.max_recovery)
    methods = online_methods(exp.scenario.methods)

    def label(method: str) -> str:
        # The main method logs as ("online", "fedup"), as it always has.
        return "fedup" if method == methods[0] else method

    for method in methods:
        # Each comparison is its own pass from the initial model (same seeds)
        # with a fresh copy of the detector.
        step = "online" if method == methods[0] else ONLINE_PREFIX + method

        def build(method: str = method) -> FedUP:
            settings = exp.scenario.method_settings(method)
            return FedUP(
                exp._inner(), detector=exp.scenario.make_detector(), **settings
            )

        _, strategy = exp._step(step, build, grid, lambda: exp.initial, total)
        if strategy is not None:
            exp.events[label(method)] = list(strategy.events)
            exp.checkpoint.save_events(exp.events, exp.storage)
    rows = exp.log.select("online", "fedup")
    unlearned = [e for e in exp.events.get("fedup", []) if e.status == "unlearned"]
    first = unlearned[0].server_round if unlearned else None
    before = rows[first - 2] if first and first >= 2 else rows[-1]
    exp._retrain(grid, malicious, before["test_acc"] - exp.tolerance)
    pid = exp._pid_of
    detection: dict[str, Any] = {
        "unlearning_rounds": [e.server_round for e in unlearned],
        "unlearned_partitions": [sorted(pid[n] for n in e.node_ids) for e in unlearned],
        "refused": [
            {
                "round": e.server_round,
                "partitions": sorted(pid[n] for n in e.node_ids),
            }
            for e in exp.events.get("fedup", [])
            if e.status == "refused"
        ],
        "first_unlearning_round": first,
    }
    flagged = {pid[n] for e in unlearned for n in e.node_ids}
    truth = set(exp.scenario.malicious_partitions)
    detection["precision"] = len(flagged & truth) / len(flagged) if flagged else None
    detection["recall"] = len(flagged & truth) / len(truth) if truth else None
    results = finish_run(
        exp.scenario,
        exp.out_dir,
        exp.log,
        {m: exp.events.get(label(m), []) for m in methods},
        storage=exp.storage,
        unlearning_round=first or int(cfg.rounds.train),
        wall_seconds=time.perf_counter() - wall,
        before=before,
        method_rows={
            m: from_first_unlearning(
                exp.log.select("online", label(m)), exp.events.get(label(m), [])
            )
            for m in methods
        },
        extra={"detection": detection},
    )
    exp.checkpoint.remove()
    return results
