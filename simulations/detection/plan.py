"""The measurement plan of issue 14, and running it within a time budget.

Both datasets (Fashion-MNIST ``fmnist_cnn``, CIFAR-10 ``lenet5``), both
attacks (backdoor, label flipping), IID, Dirichlet(1) and Dirichlet(0.5),
3/10, 4/10, 6/20 and 9/20 attackers, three seeds, :data:`ROUNDS` training
rounds, detection from round 1; plus runs without an attack (both datasets,
the three partitions, 10 and 20 clients, three seeds); plus boosting runs
(model replacement, ``attack.boost`` = N/M = 2.5: backdoor, both datasets,
IID and Dirichlet(1), 4/10 attackers, three seeds), which measure issue 14's
"a boosting attacker is flagged in the round it boosts".

Most important first: backdoors and no-attack runs with 10 clients, seed by
seed; then, seed by seed, the backdoor and no-attack runs with 20 clients,
the boosting runs, and label flipping. So the boosting runs of seed 42 come
before any label flipping, and those of seeds 43 and 44 before label
flipping of that seed.

Each run is its own process (``python -m simulations.detection <overrides>``)
that writes its folder when it finishes; a run whose results exist is skipped
without starting anything, so :func:`measure` resumes where it stopped.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import product
from typing import Any

from simulations.detection.outputs import ROOT

__all__ = [
    "PlannedRun",
    "estimate_seconds",
    "measure",
    "measurement_plan",
    "plan_status",
]

ROUNDS = 15
SEEDS = (42, 43, 44)
MODELS = {"cifar10": "lenet5", "fashion_mnist": "fmnist_cnn"}
SPLITS: tuple[tuple[str, float | None], ...] = (
    ("iid", None),
    ("dirichlet", 1.0),
    ("dirichlet", 0.5),
)
MIXES = ((10, 3), (10, 4), (20, 6), (20, 9))
CLEAN_CLIENTS = (10, 20)
BOOST_MIX = (10, 4)
BOOST = BOOST_MIX[0] / BOOST_MIX[1]
"""The boosting runs' factor: N/M, with which the attackers' updates survive
FedAvg's averaging at full size (model replacement)."""
BOOST_SPLITS: tuple[tuple[str, float | None], ...] = (("iid", None), ("dirichlet", 1.0))


@dataclass(frozen=True)
class PlannedRun:
    """One run of the plan.

    Attributes
    ----------
    dataset, attack, partition : str
        As in ``conf/detection.yaml`` (``attack`` ``"none"``: no attack).
    alpha : float | None
        The Dirichlet concentration (``None`` for IID).
    num_clients, num_malicious, seed, rounds : int
        The mix, the seed and the number of training rounds.
    boost : float
        ``attack.boost``: the malicious clients reply
        ``global + boost * (local - global)``; 1 (the default) is no boosting.
    """

    dataset: str
    attack: str
    partition: str
    alpha: float | None
    num_clients: int
    num_malicious: int
    seed: int
    rounds: int = ROUNDS
    boost: float = 1.0

    def overrides(self) -> list[str]:
        """The Hydra overrides of ``python -m simulations.detection``."""
        out = [
            f"dataset={self.dataset}",
            f"model={MODELS[self.dataset]}",
            f"attack={self.attack}",
            f"partition={self.partition}",
        ]
        if self.alpha is not None:
            out.append(f"partition.alpha={self.alpha:g}")
        out += [
            f"num_clients={self.num_clients}",
            f"num_malicious={self.num_malicious}",
            f"rounds.train={self.rounds}",
            f"seed={self.seed}",
        ]
        if self.boost != 1.0:  # unboosted runs keep the overrides they had
            out.append(f"attack.boost={self.boost:g}")
        return out

    def matches(self, settings: Mapping[str, Any]) -> bool:
        """Whether a finished run's ``settings`` are this run's.

        A run recorded without ``boost`` (or with ``null``) was not boosted.
        """
        alpha = settings.get("alpha")
        boost = settings.get("boost")
        return (
            settings.get("dataset") == self.dataset
            and settings.get("model") == MODELS[self.dataset]
            and settings.get("attack") == self.attack
            and settings.get("partition") == self.partition
            and (alpha is None) == (self.alpha is None)
            and (alpha is None or abs(float(alpha) - float(self.alpha or 0)) < 1e-9)
            and settings.get("num_clients") == self.num_clients
            and settings.get("num_malicious") == self.num_malicious
            and settings.get("seed") == self.seed
            and settings.get("rounds") == self.rounds
            and abs(float(1.0 if boost is None else boost) - self.boost) < 1e-9
        )


def _priority(run: PlannedRun) -> tuple[int, int, int, int, int, int]:
    boosted = run.boost != 1.0
    first = run.attack in ("backdoor", "none") and run.num_clients == 10 and not boosted
    # Within a seed of the second tier: the attacks unboosted, boosting, then
    # label flipping.
    kind = ("backdoor", "none", "boost", "label_flip").index(
        "boost" if boosted else run.attack
    )
    return (
        0 if first else 1,
        SEEDS.index(run.seed) if run.seed in SEEDS else len(SEEDS),
        kind,
        0 if run.dataset == "cifar10" else 1,
        SPLITS.index((run.partition, run.alpha)),
        run.num_clients * 100 + run.num_malicious,
    )


def measurement_plan() -> list[PlannedRun]:
    """Every run of the plan, most important first (see the module docs)."""
    runs = [
        PlannedRun(dataset, attack, part, alpha, clients, mal, seed)
        for dataset, attack, (part, alpha), (clients, mal), seed in product(
            MODELS, ("backdoor", "label_flip"), SPLITS, MIXES, SEEDS
        )
    ]
    runs += [
        PlannedRun(dataset, "none", part, alpha, clients, 0, seed)
        for dataset, (part, alpha), clients, seed in product(
            MODELS, SPLITS, CLEAN_CLIENTS, SEEDS
        )
    ]
    runs += [
        PlannedRun(dataset, "backdoor", part, alpha, *BOOST_MIX, seed, boost=BOOST)
        for dataset, (part, alpha), seed in product(MODELS, BOOST_SPLITS, SEEDS)
    ]
    return sorted(runs, key=_priority)


def _is_done(run: PlannedRun, results: Sequence[Mapping[str, Any]]) -> bool:
    return any(run.matches(r["settings"]) for r in results)


def estimate_seconds(
    run: PlannedRun, results: Sequence[Mapping[str, Any]]
) -> float | None:
    """A run's expected duration, from the finished runs' seconds per round.

    Uses the finished runs of the same dataset and number of clients (else of
    any setting): their mean ``run_seconds`` (the whole run, Ray's start
    included) per training round, or where no such run has it, their mean
    ``wall_seconds`` (inside the ServerApp: older runs), times
    ``run.rounds``. ``None`` without finished runs.
    """

    def rates(runs: Sequence[Mapping[str, Any]], key: str) -> list[float]:
        return [
            float(r[key]) / int(r["settings"]["rounds"])
            for r in runs
            if r.get(key) and r["settings"].get("rounds")
        ]

    same = [
        r
        for r in results
        if r["settings"]["dataset"] == run.dataset
        and r["settings"]["num_clients"] == run.num_clients
    ]
    for runs in (same, results):
        for key in ("run_seconds", "wall_seconds"):
            found = rates(runs, key)
            if found:
                return sum(found) / len(found) * run.rounds
    return None


def plan_status(results: Sequence[Mapping[str, Any]]) -> str:
    """One paragraph: runs planned, finished, and the time the rest needs."""
    plan = measurement_plan()
    todo = [run for run in plan if not _is_done(run, results)]
    estimates = [estimate_seconds(run, results) for run in plan]
    known = [e for e in estimates if e is not None]
    left = [estimate_seconds(run, results) for run in todo]
    text = (
        f"The plan (`simulations/detection/plan.py`) has {len(plan)} runs "
        f"({sum(r.attack != 'none' for r in plan)} attacked, of which "
        f"{sum(r.boost != 1.0 for r in plan)} boosting, "
        f"{sum(r.attack == 'none' for r in plan)} without an attack), "
        f"{ROUNDS} rounds each; finished: {len(plan) - len(todo)}."
    )
    if len(known) == len(plan):
        text += (
            f" Estimated time for the whole plan: {sum(known) / 3600:.1f} h, "
            f"of which {sum(e or 0.0 for e in left) / 3600:.1f} h remain, one "
            "run at a time on the machine that ran the finished runs (each "
            "run's seconds per round, from the finished runs of the same "
            "dataset and client count, times its rounds; see "
            "`estimate_seconds`)."
        )
    return text


def measure(
    budget_minutes: float = 60.0,
    plan: Sequence[PlannedRun] | None = None,
    results: Sequence[Mapping[str, Any]] = (),
) -> list[PlannedRun]:
    """Run the plan one run at a time, within a time budget.

    Runs whose settings are in ``results`` are skipped at no cost. A run is
    started only while the elapsed time plus the longest run so far fits in
    ``budget_minutes``. Each run is a ``python -m simulations.detection``
    process that writes its results when it finishes.

    Parameters
    ----------
    budget_minutes : float (default: 60)
        The time budget.
    plan : Sequence[PlannedRun] or None
        The runs (default: :func:`measurement_plan`).
    results : Sequence[Mapping[str, Any]]
        The finished runs (:func:`~simulations.detection.outputs.load_results`).

    Returns
    -------
    list[PlannedRun]
        The runs started.
    """
    started = time.monotonic()
    longest = 0.0
    ran: list[PlannedRun] = []
    for run in measurement_plan() if plan is None else plan:
        overrides = " ".join(run.overrides())
        if _is_done(run, results):
            print(f"[done] {overrides}", flush=True)
            continue
        if time.monotonic() - started + longest > budget_minutes * 60:
            print(f"[budget reached; not run] {overrides}", flush=True)
            continue
        t0 = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", "simulations.detection", *run.overrides()],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        seconds = time.monotonic() - t0
        longest = max(longest, seconds)
        ran.append(run)
        print(f"[rc={proc.returncode} {seconds:.0f}s] {overrides}", flush=True)
        if proc.returncode != 0:
            print(proc.stdout[-2000:] + proc.stderr[-3000:], flush=True)
    return ran
