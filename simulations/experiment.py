"""One scenario's phases on a Grid, each a run of Flower's round loop.

One-shot flow (an oracle or ``false_positive`` flags at round T):

1. ``train``: rounds 1 .. T-1 with every client (the attackers attack).
2. ``before``: round T with every client; its global model is "before".
3. For each method (FedUP, natural forgetting, none, ...), from the model
   after round T-1: round T again (same seeds, so the same replies) with the
   detector flagging, then recovery rounds with the remaining clients until
   test accuracy is back within the tolerance, or ``max_recovery``.
4. ``retrain`` (baseline B): from the initial model, benign clients only,
   until it reaches the "before" test accuracy within the tolerance, then
   ``rounds.retrain_after`` more rounds (so that B can be read over a window
   around R*), all within ``max_retrain``; R* is the round it first reached it.

Online flow (a real detector, every round): FedUP trains and unlearns when the
detector flags; then baseline B.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from logging import INFO
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from flwr.app import ArrayRecord, MetricRecord
from flwr.common.logger import log
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg

from fedup_flwr import FedUP, OracleDetector
from fedup_flwr.core import model_nbytes
from simulations.baselines import (
    FedEraserCalibration,
    History,
    MaliciousMagnitudeFedUP,
    NoTFedUP,
    RandomPruneFedUP,
    RecordingFedUP,
)
from simulations.checkpoint import Checkpoint, Restored, step_log
from simulations.evaluation import Evaluator
from simulations.methods import parse_method
from simulations.models import get_arrays, get_model
from simulations.online import run_online
from simulations.progress import WatchedGrid, event_note, progress_line
from simulations.results import RoundLog, finish_run
from simulations.scenario import Scenario


def retrain_finished(test_accs: Sequence[float], target: float, after: int) -> bool:
    """Whether baseline B has run ``after`` rounds past R*.

    R* is the first retrain round whose test accuracy reaches ``target``; it
    stays the first hit whatever the rounds after it do. Read from every
    retrain round so far (not from a counter), so that a resumed retrain stops
    where an uninterrupted one would.

    Parameters
    ----------
    test_accs : sequence of float
        B's test accuracy per retrain round so far (index 0: round 1).
    target : float
        The test accuracy R* is the first round to reach.
    after : int
        Rounds to run past R* (0: stop at R*).

    Returns
    -------
    bool
        True once R* was reached and ``after`` rounds followed it.

    Raises
    ------
    ValueError
        If ``after`` is negative.
    """
    if after < 0:
        raise ValueError(f"after must be >= 0 (rounds past R*), got {after}")
    r_star = next((k for k, acc in enumerate(test_accs) if acc >= target), None)
    return r_star is not None and len(test_accs) - 1 - r_star >= after


class _StepDone(Exception):
    """Raised by the evaluation hook to end a step before its last round."""


class Experiment:
    """Runs the phases of one scenario on a Grid and records every round."""

    def __init__(
        self, scenario: Scenario, out_dir: Path, *, resume: bool = False
    ) -> None:
        self.scenario = scenario
        self.cfg = scenario.cfg
        self.out_dir = out_dir
        self.log = RoundLog(out_dir / "rounds.csv")
        self.evaluator = Evaluator(scenario)
        torch.manual_seed(int(self.cfg.seed))
        model = get_model(self.cfg.model.name, self.cfg.dataset.name)
        self.initial = ArrayRecord(get_arrays(model))
        self.tolerance = float(self.cfg.tolerance)
        kinds = {parse_method(m).kind for m in scenario.methods}
        self.history: History | None = History() if "federaser" in kinds else None
        self.events: dict[str, list[Any]] = {}
        self.storage: dict[str, float] = {}
        self._node_of: dict[int, int] = {}
        self._pid_of: dict[int, int] = {}
        self.done: dict[str, ArrayRecord] = {}  # final arrays of finished steps
        self.checkpoint = Checkpoint(out_dir / "checkpoint.pkl", enabled=resume)

    # ----------------------------------------------------------- helpers
    def _apply(self, restored: Restored) -> None:
        """Continue from a checkpoint's saved progress."""
        self.done = dict(restored.done)
        self.log.restore(restored.rows)
        if self.history is not None and restored.history is not None:
            self.history = restored.history
        self.events = dict(restored.events)
        self.storage = dict(restored.storage)

    def _initial(self) -> None:
        """Evaluate and log the initial model (once: not when resuming)."""
        if self.log.rows:
            return
        metrics = self.evaluator.evaluate(self.initial.to_numpy_ndarrays())
        self.log.add_initial(metrics)
        print(progress_line("init", "all", 0, 0, metrics, 0.0, []), flush=True)

    def _inner(self) -> FedAvg:
        return FedAvg(
            fraction_train=1.0,
            fraction_evaluate=0.0,
            min_available_nodes=1,
            min_train_nodes=1,
        )

    def _retrain(self, grid: Grid, excluded: list[int], target: float) -> None:
        """Baseline B: from the initial model without ``excluded``, until
        ``rounds.retrain_after`` rounds past the first round whose test
        accuracy reaches ``target`` (R*), or ``rounds.max_retrain`` rounds."""
        rounds = int(self.cfg.rounds.max_retrain)
        if rounds <= 0:
            return
        after = int(self.cfg.rounds.get("retrain_after", 0) or 0)

        def stop(_: dict[str, float]) -> bool:
            rows = self.log.select("retrain", "retrain")
            return retrain_finished([r["test_acc"] for r in rows], target, after)

        def build() -> FedUP:
            retrain = self._strategy()
            retrain.exclude(excluded)
            return retrain

        self._step(
            "retrain",
            build,
            grid,
            lambda: self.initial,
            rounds,
            stop=stop,
        )

    def _strategy(self, **kwargs: Any) -> FedUP:
        if self.history is not None:
            return RecordingFedUP(self._inner(), history=self.history, **kwargs)
        return FedUP(self._inner(), **kwargs)

    def _method_strategy(
        self, method: str, flagged: list[int], first_round: int
    ) -> FedUP:
        """The strategy that unlearns ``flagged`` with ``method`` in ``first_round``."""
        settings = self.scenario.method_settings(method)
        method = parse_method(method).kind
        detector = None if method == "none" else OracleDetector({first_round: flagged})
        u = self.cfg.unlearning
        if method == "federaser":
            assert self.history is not None
            inner = FedEraserCalibration(
                self.history,
                first_round=first_round,
                epoch_fraction=float(u.federaser_epoch_fraction),
                interval=int(u.federaser_interval),
                fraction_train=1.0,
                fraction_evaluate=0.0,
                min_available_nodes=1,
                min_train_nodes=1,
            )
            strategy = FedUP(inner, first_round=first_round, **settings)
            strategy.exclude(flagged)  # FedEraser forgets by replaying without them
            return strategy
        variants: dict[str, type[FedUP]] = {
            "random_prune": RandomPruneFedUP,
            "malicious_magnitude": MaliciousMagnitudeFedUP,
        }
        cls = variants.get(method, FedUP)
        extra: dict[str, Any] = {}
        if method == "random_prune":
            extra["mask_seed"] = int(self.cfg.seed)
        if method == "not":
            cls = NoTFedUP
            extra["layers"] = int(u.not_layers)
        return cls(
            self._inner(),
            detector=detector,
            first_round=first_round,
            **settings,
            **extra,
        )

    def _rounds(
        self,
        step: str,
        strategy: FedUP,
        grid: Grid,
        arrays: ArrayRecord,
        num_rounds: int,
        stop: Callable[[dict[str, float]], bool] | None = None,
        min_rounds: int = 0,
        of: int | None = None,
    ) -> ArrayRecord:
        """Run a step's rounds in one ``start``; the evaluation hook logs each
        round, checkpoints it, and ends the step early once ``stop`` holds.
        ``of``: the phase's last round in the progress lines (None: the step's)."""
        phase, method = step_log(step)
        first = strategy.next_round
        progress = self.checkpoint.resume_step(step, self._node_of)
        if progress is not None:
            strategy.load_state_dict(progress.state)
            strategy.next_round = progress.next_round
            arrays, first = progress.arrays, progress.first
        last_round = first + num_rounds - 1
        watched = WatchedGrid(grid)
        latest = [arrays]
        started = [time.perf_counter()]

        def hook(server_round: int, record: ArrayRecord) -> MetricRecord | None:
            if server_round == 0:
                return None  # the starting model, already evaluated
            metrics = self.evaluator.evaluate(record.to_numpy_ndarrays())
            seconds, started[0] = time.perf_counter() - started[0], time.perf_counter()
            self.log.add(phase, method, server_round, seconds=seconds, **metrics)
            latest[0] = record
            note = event_note(strategy.events, server_round, self._pid_of)
            trained = [self._pid_of.get(n, n) for n in watched.take_trained()]
            print(
                progress_line(
                    phase, method, server_round, of or last_round, metrics, seconds,
                    trained, note,
                ),
                flush=True,
            )  # fmt: skip
            self.checkpoint.save_round(
                step, first, record, strategy, self.log.rows, self.history,
                self._pid_of, next_round=server_round + 1,
            )  # fmt: skip
            done = server_round + 1 - first
            if (
                stop is not None
                and done > min_rounds
                and stop(self.log.last(phase, method))
            ):
                raise _StepDone  # Flower's loop has no early stop
            return MetricRecord(dict(metrics.items()))

        remaining = last_round + 1 - strategy.next_round
        if remaining > 0:
            try:
                strategy.start(
                    cast(Grid, watched), arrays, num_rounds=remaining, evaluate_fn=hook,
                    timeout=3600,
                )  # fmt: skip
            except _StepDone:
                pass
        arrays = latest[0]
        self.checkpoint.save_step(
            step, arrays, self.log.rows, self.history, self._pid_of
        )
        self.done[step] = arrays
        return arrays

    def _step(
        self,
        step: str,
        build: Callable[[], FedUP],
        grid: Grid,
        start: Callable[[], ArrayRecord],
        num_rounds: int,
        **kwargs: Any,
    ) -> tuple[ArrayRecord, FedUP | None]:
        """Run a step unless the checkpoint says it is done."""
        if step in self.done:
            return self.done[step], None
        strategy = build()
        return self._rounds(
            step, strategy, grid, start(), num_rounds, **kwargs
        ), strategy

    # ------------------------------------------------------------ phases
    def run(self, grid: Grid, node_of: dict[int, int]) -> dict[str, Any]:
        """Run every phase; return the results (also written to ``out_dir``).

        Parameters
        ----------
        grid : Grid
            The Grid of the ServerApp.
        node_of : dict[int, int]
            The node id of every partition id (see ``identify_nodes``).
        """
        cfg = self.cfg
        wall = time.perf_counter()
        self._node_of = dict(node_of)
        self._pid_of = {n: p for p, n in self._node_of.items()}
        flagged = sorted(self._node_of[p] for p in self.scenario.flagged_partitions)
        last = int(cfg.rounds.train)
        restored = self.checkpoint.load(self._node_of)
        if restored is not None:
            self._apply(restored)
        if self.scenario.online:
            return run_online(self, grid, wall)

        self._initial()
        trained, _ = self._step(
            "train", self._strategy, grid, lambda: self.initial, last - 1, of=last
        )
        self._step(
            "before",
            lambda: self._strategy(first_round=last),
            grid,
            lambda: trained,
            1,
        )
        before = self.log.last("train", "all")
        log(INFO, "Before unlearning: %s", before)

        target = before["test_acc"] - self.tolerance
        min_rounds = int(cfg.rounds.get("min_recovery", 0) or 0)
        for method in self.scenario.methods:
            kind = parse_method(method).kind
            if kind == "retrain":
                continue  # baseline B below
            rounds = 1 + int(cfg.rounds.max_recovery)
            start: Callable[[], ArrayRecord] = lambda: trained  # noqa: E731
            if kind == "federaser":
                assert self.history is not None
                calibration = FedEraserCalibration(
                    self.history,
                    first_round=last,
                    interval=int(cfg.unlearning.federaser_interval),
                )
                start, rounds = calibration.initial_arrays, calibration.num_steps
                self.storage[method] = self.history.nbytes() / 2**20
            started = time.perf_counter()
            _, strategy = self._step(
                method,
                lambda m=method: self._method_strategy(m, flagged, last),  # type: ignore[misc]
                grid,
                start,
                rounds,
                stop=lambda m: m["test_acc"] >= target,
                min_rounds=min_rounds,
            )
            if strategy is not None:
                self.events[method] = list(strategy.events)  # refusals too
                self.checkpoint.save_events(self.events, self.storage)
            if kind == "federaser" and strategy is not None:
                self.storage[f"{method}_seconds"] = time.perf_counter() - started
                self.checkpoint.save_events(self.events, self.storage)
            if kind == "not":
                # NoT needs only the global model (our subclass of FedUP keeps
                # FedUP's bookkeeping, which NoT itself does not need).
                self.storage[method] = model_nbytes(trained.to_numpy_ndarrays()) / 2**20
                self.storage[f"{method}_seconds"] = next(
                    (e.seconds for e in self.events[method] if e.status == "unlearned"),
                    0.0,
                )

        self.history = None  # B is not part of FedEraser's history
        self._retrain(grid, flagged, target)
        results = finish_run(
            self.scenario,
            self.out_dir,
            self.log,
            self.events,
            storage=self.storage,
            unlearning_round=last,
            wall_seconds=time.perf_counter() - wall,
        )
        finals: dict[str, Any] = {
            f"{step}/{i}": a
            for step, rec in self.done.items()
            for i, a in enumerate(rec.to_numpy_ndarrays())
        }
        np.savez(self.out_dir / "final_arrays.npz", **finals)
        self.checkpoint.remove()
        return results
