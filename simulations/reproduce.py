"""The runs behind ``docs/results.md``, in priority order, resumable.

    python -m simulations.reproduce --list
    python -m simulations.reproduce                # every run without results.json
    python -m simulations.reproduce --only t3-     # runs whose name starts so

Each run is ``python -m simulations.run <overrides>`` into
``results/<name>/``; a run whose ``results.json`` exists is skipped, so a killed
batch continues where it stopped. ``python -m simulations.report`` then builds
the tables from the committed results.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from simulations.config import registry_detectors

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results"

# Fashion-MNIST label flipping (Table III): the paper's model and optimiser, a
# stratified 20% of the training set and 15 training rounds (CPU budget).
FMNIST_LF = (
    "dataset=fashion_mnist",
    "model=fmnist_cnn",
    "attack=label_flip",
    "train.local_epochs=1",
    "fraction=0.2",
    "test_fraction=0.5",
    "rounds.train=15",
    "rounds.max_recovery=6",
    "rounds.max_retrain=30",
)
# CIFAR-10 backdoor (Tables IV-VI, Fig. 5) with LeNet-5 instead of ResNet-18
# (no GPU here), 60% of the training set, 3 local epochs, 20 rounds.
CIFAR_BD = (
    "dataset=cifar10",
    "model=lenet5",
    "attack=backdoor",
    "train.local_epochs=3",
    "fraction=0.6",
    "test_fraction=0.5",
    "rounds.train=20",
    "rounds.max_recovery=6",
    "rounds.max_retrain=25",
)
# CIFAR-10 label flipping (Table II) with LeNet-5 instead of the paper's CNN.
CIFAR_LF = (
    "dataset=cifar10",
    "model=lenet5",
    "attack=label_flip",
    "train.local_epochs=1",
    "fraction=0.6",
    "test_fraction=0.5",
    "rounds.train=20",
    "rounds.max_recovery=6",
    "rounds.max_retrain=30",
)
ABLATION = (
    "compare=[natural,random_prune,malicious_magnitude,not]",
    "rounds.min_recovery=10",
    "rounds.max_recovery=10",
)
# Table VII: no attack; forget one client (partition 0) with FedUP (P = 0.3),
# FedEraser and NoT; LeNet-5, 30% of CIFAR-10, 5 local epochs, 10 rounds.
BENIGN = (
    "dataset=cifar10",
    "model=lenet5",
    "attack=none",
    "train.local_epochs=5",
    "fraction=0.3",
    "test_fraction=0.5",
    "rounds.train=10",
    "rounds.max_recovery=10",
    "rounds.max_retrain=0",
    "unlearning.pruning_rate=0.3",
    "compare=[federaser,not]",
)
SWEEP = (
    "compare=[natural,fedup-0.01,fedup-0.05,fedup-0.1,fedup-0.15,fedup-0.2,fedup-0.3]"
)


@dataclass(frozen=True)
class Run:
    """One run: a name (its folder under results/) and its Hydra overrides."""

    name: str
    overrides: tuple[str, ...]


def _mix(clients: int, malicious: int) -> tuple[str, ...]:
    return (f"num_clients={clients}", f"num_malicious={malicious}")


def _part(partition: str) -> tuple[str, ...]:
    return (f"partition={partition}",)


# Run first (the CPU budget of a session runs out long before the plan does).
PRIORITY = [
    "t3-iid-10-3-s42",
    "t3-dirichlet-10-3-s42",
    "sweep-p-iid-10-3",
    "t4-iid-10-4",
    "t7-benign-iid-10",
    "e2e-last_layer_cluster-iid-10-3",
    "dos-iid-10-3",
    "t5-iid-10-4-fp",
    "t3-iid-20-9-s42",
    "t3-dirichlet-20-9-s42",
    "t3-iid-10-3-s1",
    "t3-dirichlet-10-3-s1",
    "t4-dirichlet-10-4",
    "e2e-cosine_outlier-iid-10-3",
    "e2e-krum_score-iid-10-3",
    "t3strong-iid-10-3",
    "t3strong-dirichlet-10-3",
]


def plan() -> list[Run]:
    """All runs, most important first."""
    runs = _all_runs()
    rank = {name: i for i, name in enumerate(PRIORITY)}
    return sorted(runs, key=lambda r: rank.get(r.name, len(rank)))


def _all_runs() -> list[Run]:
    runs: list[Run] = []
    parts = ("iid", "dirichlet")
    for p in parts:
        runs.append(
            Run(
                f"t3-{p}-10-3-s42",
                FMNIST_LF + _mix(10, 3) + _part(p) + ("compare=[natural]",),
            )
        )
    runs.append(
        Run("sweep-p-iid-10-3", FMNIST_LF + _mix(10, 3) + _part("iid") + (SWEEP,))
    )
    for p in parts:
        runs.append(Run(f"t4-{p}-10-4", CIFAR_BD + _mix(10, 4) + _part(p) + ABLATION))
    runs.append(Run("t7-benign-iid-10", (*BENIGN, *_mix(10, 1), *_part("iid"))))
    for p in parts:
        runs.append(
            Run(
                f"t5-{p}-10-4-fp",
                CIFAR_BD
                + _mix(10, 4)
                + _part(p)
                + ("detector=false_positive", "compare=[]", "rounds.max_retrain=0"),
            )
        )
    # Issue 5 end to end: every registered detector, every round from round 3,
    # beside the oracle run t3-iid-10-3-s42; and a DoS detector against the
    # rate limit.
    for det in registry_detectors():
        runs.append(
            Run(
                f"e2e-{det}-iid-10-3",
                (*FMNIST_LF, *_mix(10, 3), *_part("iid"), f"detector={det}"),
            )
        )
    runs.append(
        Run(
            "dos-iid-10-3",
            (
                *FMNIST_LF,
                *_mix(10, 3),
                *_part("iid"),
                "detector=dos",
                "unlearning.rate_limit=5",
                "rounds.max_retrain=0",
            ),
        )
    )
    for clients, mal in ((5, 2), (10, 4), (20, 6), (20, 9)):
        for p in parts:
            runs.append(
                Run(
                    f"t3-{p}-{clients}-{mal}-s42",
                    FMNIST_LF + _mix(clients, mal) + _part(p) + ("compare=[natural]",),
                )
            )
    for p in parts:
        runs.append(
            Run(
                f"t2-{p}-10-3",
                CIFAR_LF + _mix(10, 3) + _part(p) + ("compare=[natural]",),
            )
        )
    for seed in (1, 2):
        for clients, mal in ((10, 3), (20, 9)):
            for p in parts:
                runs.append(
                    Run(
                        f"t3-{p}-{clients}-{mal}-s{seed}",
                        FMNIST_LF
                        + _mix(clients, mal)
                        + _part(p)
                        + ("compare=[natural]", f"seed={seed}"),
                    )
                )
    for p in parts:
        runs.append(
            Run(
                f"t3strong-{p}-10-3",
                FMNIST_LF
                + _mix(10, 3)
                + _part(p)
                + ("compare=[natural]", "attack.extra_epochs=4"),
            )
        )
    for clients, mal in ((5, 2), (20, 9)):
        for p in parts:
            runs.append(
                Run(
                    f"t4-{p}-{clients}-{mal}",
                    CIFAR_BD
                    + _mix(clients, mal)
                    + _part(p)
                    + ("compare=[natural,not]",),
                )
            )
    return runs


def run_one(run: Run) -> bool:
    """Run ``run`` unless its results exist; True when it succeeded or existed."""
    folder = RESULTS / run.name
    if (folder / "results.json").exists():
        return True
    print(f"{run.name}: starting", flush=True)
    folder.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "simulations.run",
        *run.overrides,
        f"name={run.name}",
        f"hydra.run.dir={folder}",
        "resume=true",  # continue from the checkpoint of a killed run
    ]
    (folder / "command.txt").write_text(
        "python -m simulations.run " + " ".join(cmd[3:-2]) + "\n"
    )
    started = time.time()
    with (folder / "run.log").open("w") as log:
        proc = subprocess.run(
            cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, check=False
        )
    print(
        f"{run.name}: {'ok' if proc.returncode == 0 else 'FAILED'} "
        f"in {time.time() - started:.0f}s; results and run.log in {folder.resolve()}",
        flush=True,
    )
    return proc.returncode == 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--list", action="store_true", help="print the plan")
    parser.add_argument("--only", default="", help="run names starting with this")
    args = parser.parse_args()
    runs = [r for r in plan() if r.name.startswith(args.only)]
    if args.list:
        for r in runs:
            done = (RESULTS / r.name / "results.json").exists()
            print(f"{'done' if done else 'todo'}  {r.name}: {' '.join(r.overrides)}")
        return
    for r in runs:
        run_one(r)


if __name__ == "__main__":
    main()
