"""Per-round records and the outputs of one run: rounds.csv, results.json, curves.png.

Definitions used everywhere (also in ``docs/results.md``):

- *before*: the global model after round T (the last training round) with
  every client; *after*: the model once recovered.
- ``recovery_rounds`` (R_rec): rounds after the unlearning round T until test
  accuracy is back within ``tolerance`` of *before* (0: at once); null when
  ``max_recovery`` rounds were not enough.
- ``rounds_from_scratch`` (R*): rounds a retrain from scratch with the benign
  clients needs to reach *before*'s test accuracy within ``tolerance``; null
  when ``max_retrain`` rounds were not enough.
- ``mal_rounds_to_baseline``: rounds after T until malicious accuracy is within
  2 points of baseline B's.

The keys and types of ``results.json`` are defined once, in
:class:`simulations.schema.RunResult`.
"""

from __future__ import annotations

import csv
import math
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

from fedup_flwr.similarity import similarity_range
from simulations.methods import parse_method
from simulations.outcome import ASKED_NOT_DONE, UNLEARNED, method_outcome
from simulations.plotting import integer_ticks, legend_outside, save, subplots
from simulations.results_table import format_table
from simulations.scenario import Scenario
from simulations.schema import MethodResult, RunResult

FIELDS = [
    "phase",
    "method",
    "round",
    "test_acc",
    "mal_acc",
    "attack_success",
    "forget_acc",
    "seconds",
]


class RoundLog:
    """Rows of per-round metrics, appended to a CSV file as they come."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows: list[dict[str, Any]] = []
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as fh:
            csv.DictWriter(fh, FIELDS).writeheader()

    def add(
        self,
        phase: str,
        method: str,
        server_round: int,
        *,
        test_acc: float,
        mal_acc: float,
        attack_success: float,
        forget_acc: float = 0.0,
        seconds: float,
    ) -> None:
        row = {
            "phase": phase,
            "method": method,
            "round": int(server_round),
            "test_acc": round(float(test_acc), 6),
            "mal_acc": round(float(mal_acc), 6),
            "attack_success": round(float(attack_success), 6),
            "forget_acc": round(float(forget_acc), 6),
            "seconds": round(float(seconds), 3),
        }
        if phase != "init" and server_round == 0:
            return  # Flower evaluates the starting model again; keep one row
        self.rows.append(row)
        with self.path.open("a", newline="") as fh:
            csv.DictWriter(fh, FIELDS).writerow(row)

    def restore(self, rows: list[dict[str, Any]]) -> None:
        """Replace the rows (resuming a run) and rewrite the CSV file."""
        self.rows = [dict(r) for r in rows]
        with self.path.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, FIELDS)
            writer.writeheader()
            writer.writerows(self.rows)

    def add_initial(self, metrics: dict[str, float]) -> None:
        self.add("init", "all", 0, seconds=0.0, **metrics)

    def last(self, phase: str, method: str) -> dict[str, Any]:
        for row in reversed(self.rows):
            if row["phase"] == phase and row["method"] == method:
                return dict(row)
        raise KeyError(f"no row for phase {phase!r}, method {method!r}")

    def select(self, phase: str, method: str) -> list[dict[str, Any]]:
        return [r for r in self.rows if r["phase"] == phase and r["method"] == method]


def _first(rows: list[dict[str, Any]], test: Any) -> int | None:
    for i, row in enumerate(rows):
        if test(row):
            return i
    return None


def _git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).parent,
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _hardware() -> str:
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{platform.machine()}, {os.cpu_count()} CPUs, {gpu}"


def method_results(
    rows: list[dict[str, Any]],
    before: dict[str, Any],
    baseline: dict[str, Any] | None,
    tolerance: float,
    events: list[Any],
    *,
    adaptive: dict[str, Any] | None = None,
) -> MethodResult:
    """Summarise one method's rows (round T first, then recovery rounds).

    ``adaptive`` holds the adaptive rate's settings (``p_min``, ``p_max``,
    ``gamma``, ``similarity_measure``, ``sim_min``, ``sim_max``, ``adaptive``)
    for methods that prune; None otherwise. The unlearning event, when there
    is one, says whether P actually came from Eq. 4-5 (``adaptive``).
    """
    target = before["test_acc"] - tolerance
    r_rec = _first(rows, lambda r: r["test_acc"] >= target)
    at = rows[r_rec] if r_rec is not None else rows[-1]
    to_baseline = None
    if baseline is not None:
        to_baseline = _first(
            rows,
            lambda r: (
                r["mal_acc"] <= baseline["mal_acc"] + 0.02 and r["test_acc"] >= target
            ),
        )
    event = events[0] if events else None
    recorded = dict(adaptive or {})
    if adaptive is not None and event is not None and hasattr(event, "adaptive"):
        recorded["adaptive"] = bool(event.adaptive)  # the step's, not the config's
    return MethodResult(
        test_acc_after_unlearning=rows[0]["test_acc"],
        mal_acc_after_unlearning=rows[0]["mal_acc"],
        forget_acc_after_unlearning=rows[0]["forget_acc"],
        forget_acc_after=at["forget_acc"],
        forget_acc_curve=[r["forget_acc"] for r in rows],
        test_acc_after=at["test_acc"],
        mal_acc_after=at["mal_acc"],
        recovery_rounds=r_rec,
        rounds_run=len(rows) - 1,
        test_acc_curve=[r["test_acc"] for r in rows],
        mal_acc_curve=[r["mal_acc"] for r in rows],
        mal_rounds_to_baseline=to_baseline,
        pruning_rate=None if event is None else event.rate,
        storage_mb=0.0 if event is None else event.state_bytes / 2**20,
        unlearn_seconds=0.0 if event is None else event.seconds,
        similarity=None if event is None else event.similarity,
        **recorded,
    )


def _adaptive_settings(scenario: Scenario, method: str) -> dict[str, Any] | None:
    """The adaptive rate's parameters a pruning method ran with (None: no P)."""
    if not parse_method(method).prunes:
        return None
    settings = scenario.method_settings(method)
    measure = str(settings["similarity"])
    sim_min, sim_max = similarity_range(measure)  # null in the config: these
    return {
        "p_min": float(settings["p_min"]),
        "p_max": float(settings["p_max"]),
        "gamma": float(settings["gamma"]),
        "similarity_measure": measure,
        "sim_min": sim_min if settings["sim_min"] is None else settings["sim_min"],
        "sim_max": sim_max if settings["sim_max"] is None else settings["sim_max"],
        "adaptive": settings["pruning_rate"] is None,
    }


def finish_run(
    scenario: Scenario,
    out_dir: Path,
    log: RoundLog,
    events: dict[str, list[Any]],
    *,
    storage: dict[str, float] | None = None,
    unlearning_round: int,
    wall_seconds: float,
    before: dict[str, Any] | None = None,
    method_rows: dict[str, list[dict[str, Any]]] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write results.json and curves.png, print the table; return the results.

    ``before`` and ``method_rows`` default to the one-shot flow's rows (the
    last training round, and each method's ``unlearn`` rows). ``extra`` holds
    optional keys of :class:`~simulations.schema.RunResult` (``detection``),
    checked by the schema like the rest. The returned dict is
    :meth:`RunResult.to_dict` of what was written.

    Raises
    ------
    ValueError
        If ``extra`` holds a key or value the schema does not define.
    """
    cfg = scenario.cfg
    before = before if before is not None else log.last("train", "all")
    method_rows = method_rows or {}
    retrain_rows = log.select("retrain", "retrain")
    target = before["test_acc"] - float(cfg.tolerance)
    r_star_idx = _first(retrain_rows, lambda r: r["test_acc"] >= target)
    baseline = None
    if retrain_rows:
        baseline = retrain_rows[r_star_idx if r_star_idx is not None else -1]
    r_star = None if r_star_idx is None else r_star_idx + 1
    storage = storage or {}
    methods: dict[str, MethodResult] = {}
    for m in scenario.methods:
        rows = retrain_rows if m == "retrain" else log.select("unlearn", m)
        rows = method_rows.get(m, rows)
        if not rows:
            continue
        outcome = method_outcome(m, events.get(m, []), scenario.num_clients)
        res = method_results(
            rows,
            before,
            baseline,
            float(cfg.tolerance),
            [e for e in events.get(m, []) if e.status == UNLEARNED],
            adaptive=_adaptive_settings(scenario, m),
        )
        res.status, res.flagged, res.nodes = (
            outcome.status,
            outcome.flagged,
            outcome.nodes,
        )
        if outcome.status in ASKED_NOT_DONE:
            res.recovery_rounds = None  # not 0: nothing was unlearned to recover from
        if m == "retrain":
            res.recovery_rounds = r_star
        if m in storage:
            res.storage_mb = storage[m]
            res.unlearn_seconds = storage.get(f"{m}_seconds", 0.0)
        methods[m] = res
    main = methods[scenario.methods[0]]
    rate = main.pruning_rate
    bound = None
    if r_star is not None and rate is not None:
        from fedup_flwr import recovery_rounds_bound

        bound = recovery_rounds_bound(r_star, rate)
    results = RunResult(
        name=str(cfg.name),
        **scenario.setting(),
        method=scenario.methods[0],
        pruning_rate=rate,
        test_acc_before=before["test_acc"],
        mal_acc_before=before["mal_acc"],
        forget_acc_before=before["forget_acc"],
        detector=str(cfg.detector.name),
        test_acc_after=main.test_acc_after,
        mal_acc_after=main.mal_acc_after,
        baseline_test_acc=None if baseline is None else baseline["test_acc"],
        baseline_mal_acc=None if baseline is None else baseline["mal_acc"],
        recovery_rounds=main.recovery_rounds,
        rounds_from_scratch=r_star,
        recovery_bound=bound,
        storage_mb=main.storage_mb,
        unlearn_seconds=main.unlearn_seconds,
        seed=int(cfg.seed),
        unlearning_round=unlearning_round,
        tolerance=float(cfg.tolerance),
        fraction=float(cfg.fraction),
        local_epochs=int(cfg.train.local_epochs),
        methods=methods,
        wall_seconds=round(wall_seconds, 1),
        commit=_git_commit(),
        hardware=_hardware(),
        status=main.status,
    )
    # Through the schema's own check, so a writer cannot save what no reader loads.
    data = {**results.to_dict(), **(extra or {})}
    results = RunResult.from_dict(data, source="finish_run")
    results.save(out_dir / "results.json")
    plot_curves(log, results, out_dir / "curves.png")
    print(format_table(results))
    return results.to_dict()


def plot_curves(log: RoundLog, results: RunResult, path: Path) -> None:
    """Test and malicious accuracy per round; B as lines; round T marked.

    Whole-round ticks; one legend, right of both plots.
    """
    fig, axes = subplots(1, 2, figsize=(12, 4), sharex=True)
    train = (
        log.select("init", "all")
        + log.select("train", "all")
        + log.select("online", "fedup")  # online detection: one curve
    )
    t = results.unlearning_round
    for ax, key, title in (
        (axes[0][0], "test_acc", "test accuracy"),
        (axes[0][1], "mal_acc", "malicious accuracy"),
    ):
        ax.plot(
            [r["round"] for r in train],
            [r[key] for r in train],
            "k-",
            label="training (all clients)",
        )
        for method in results.methods:
            rows = log.select("unlearn", method)
            ax.plot(
                [t - 1] + [r["round"] for r in rows],
                [train[-2][key] if len(train) > 1 else math.nan]
                + [r[key] for r in rows],
                marker=".",
                label=method,
            )
        base = (
            results.baseline_test_acc if key == "test_acc" else results.baseline_mal_acc
        )
        if base is not None:
            ax.axhline(
                base,
                color="grey",
                linestyle="--",
                label=f"B (retrain, R*={results.rounds_from_scratch})",
            )
        ax.axvline(t, color="red", linestyle=":", label=f"unlearning (round {t})")
        ax.set_title(title)
        ax.set_xlabel("round")
        ax.set_ylim(-0.02, 1.02)
        integer_ticks(ax.xaxis)
    legend_outside(fig, list(axes[0]), fontsize=8)
    fig.suptitle(results.name)
    save(fig, path, dpi=110)
