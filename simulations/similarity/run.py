"""Measure the benign clients' similarity in the 8 settings of issue 11.

    python -m simulations.similarity.run                      # every missing one
    python -m simulations.similarity.run --only fashion_mnist-iid
    python -m simulations.similarity.run --set fraction=0.1   # smaller budget

Each setting is Fashion-MNIST ``fmnist_cnn`` (label flipping, 3 of 10 clients
attack) or CIFAR-10 ``lenet5`` (backdoor, 4 of 10), with the committed
scenarios' training settings (``simulations.reproduce``), IID or Dirichlet
alpha in {1, 0.5, 0.1}. It trains ``rounds.train`` FedAvg rounds with every
client and records each similarity measure of the benign replies every round;
the last round is the unlearning round T of those scenarios. Every setting runs
in its own process and writes ``<out>/<name>.json`` when it finishes; a setting
whose file exists is skipped, so a killed batch continues where it stopped.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "results" / "similarity"

PARTITIONS: dict[str, tuple[str, ...]] = {
    "iid": ("partition=iid",),
    "dir1": ("partition=dirichlet", "partition.alpha=1.0"),
    "dir0.5": ("partition=dirichlet", "partition.alpha=0.5"),
    "dir0.1": ("partition=dirichlet", "partition.alpha=0.1"),
}


def _datasets() -> dict[str, tuple[str, ...]]:
    from simulations.reproduce import CIFAR_BD, FMNIST_LF

    return {
        "fashion_mnist": (*FMNIST_LF, "num_malicious=3"),
        "cifar10": (*CIFAR_BD, "num_malicious=4"),
    }


def settings() -> dict[str, tuple[str, ...]]:
    """Setting name to Hydra overrides, IID and alpha 0.5 first (the criterion)."""
    order = ("iid", "dir0.5", "dir1", "dir0.1")
    out: dict[str, tuple[str, ...]] = {}
    for part in order:
        for dataset, overrides in _datasets().items():
            out[f"{dataset}-{part}"] = (
                *overrides,
                *PARTITIONS[part],
                "num_clients=10",
                "seed=42",
                "compare=[]",
            )
    return out


def run_one(name: str, extra: list[str], out_dir: Path) -> dict[str, Any]:
    """Run one setting in this process and write ``<out_dir>/<name>.json``."""
    from flwr.simulation import run_simulation

    from simulations.client_app import make_client_app
    from simulations.results import _git_commit, _hardware
    from simulations.run import backend_config
    from simulations.scenario import Scenario, compose
    from simulations.similarity.app import make_similarity_app

    overrides = [*settings()[name], *extra]
    cfg = compose(overrides)
    scenario = Scenario(cfg)
    random.seed(int(cfg.seed))  # FedAvg samples nodes with `random`
    captured: dict[str, Any] = {}
    wall = time.perf_counter()
    run_simulation(
        server_app=make_similarity_app(scenario, captured.update),
        client_app=make_client_app(cfg),
        num_supernodes=scenario.num_clients,
        backend_config=backend_config(cfg),
    )
    if not captured:
        raise RuntimeError(f"{name}: the simulation ended without results")
    records = captured.pop("records")
    last = records[-1]
    result = {
        "name": name,
        **scenario.setting(),
        "seed": int(cfg.seed),
        "fraction": float(cfg.fraction),
        "local_epochs": int(cfg.train.local_epochs),
        "lr": float(cfg.train.lr),
        "batch_size": int(cfg.train.batch_size),
        "test_fraction": float(cfg.test_fraction),
        "rounds_train": int(cfg.rounds.train),
        "unlearning_round": int(last["round"]),
        "overrides": overrides,
        "budget_overrides": list(extra),
        "similarity": last["benign"],
        "similarity_all_clients": last["all"],
        "rounds": records,
        **captured,
        "wall_seconds": round(time.perf_counter() - wall, 1),
        "commit": _git_commit(),
        "hardware": _hardware(),
        "command": "python -m simulations.similarity.run --only "
        + name
        + "".join(f" --set {e}" for e in extra),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=1) + "\n")
    tmp.replace(path)
    return result


def main(argv: list[str] | None = None) -> None:
    """Run every selected setting without a result, one process each."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", default=[], help="setting name")
    parser.add_argument(
        "--set", action="append", default=[], help="extra Hydra override (budget)"
    )
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--list", action="store_true")
    parser.add_argument("--inline", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    names = list(settings())
    unknown = [n for n in args.only if n not in names]
    if unknown:
        parser.error(f"unknown setting(s) {unknown}; use one of {names}")
    chosen = args.only or names
    if args.list:
        print("\n".join(chosen))
        return
    if args.inline:
        for name in chosen:
            run_one(name, args.set, args.out)
        return
    for name in chosen:
        if (args.out / f"{name}.json").exists():
            print(f"{name}: done, skipping")
            continue
        cmd = [sys.executable, "-m", "simulations.similarity.run", "--inline"]
        cmd += ["--only", name, "--out", str(args.out)]
        cmd += [f"--set={e}" for e in args.set]
        print(f"{name}: running", flush=True)
        started = time.perf_counter()
        code = subprocess.run(cmd, cwd=ROOT, check=False).returncode
        print(f"{name}: exit {code} after {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
