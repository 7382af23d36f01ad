"""Seconds per training round through Flower + Ray vs a bare PyTorch loop.

The default scenario's clients (``+experiment=main``: CIFAR-10, LeNet-5, 10
clients, 3 local epochs, batch 32, the configured data fraction): the same
samples trained (1) by Flower's simulation engine with the Ray backend, one
round after another, and (2) by a plain loop over the clients in one process.
Prints both, and their ratio after the first (warm-up) Flower round.

Run: ``make bench-sim`` (or ``python bench/bench_sim.py --rounds 4``).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Iterable
from typing import Any

import torch
from flwr.app import ArrayRecord, Context, Message, MetricRecord
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg
from flwr.simulation import run_simulation

from simulations.client_app import _local_data, client_seed, make_client_app
from simulations.models import get_arrays, get_model
from simulations.run import backend_config
from simulations.scenario import Scenario, compose
from simulations.training import train


class TimedFedAvg(FedAvg):
    """FedAvg that records the wall time from configure_train to aggregate_train."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.started = 0.0
        self.seconds: list[float] = []

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: Any,
                        grid: Grid) -> Iterable[Message]:  # fmt: skip
        self.started = time.perf_counter()
        return super().configure_train(server_round, arrays, config, grid)

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        out = super().aggregate_train(server_round, replies)
        self.seconds.append(time.perf_counter() - self.started)
        return out


def flower_rounds(scenario: Scenario, rounds: int) -> list[float]:
    cfg = scenario.cfg
    strategy = TimedFedAvg(
        fraction_evaluate=0.0, min_available_nodes=scenario.num_clients
    )
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        torch.manual_seed(int(cfg.seed))
        initial = ArrayRecord(get_arrays(get_model(cfg.model.name, cfg.dataset.name)))
        strategy.start(grid, initial, num_rounds=rounds)

    run_simulation(app, make_client_app(cfg), scenario.num_clients,
                   backend_config=backend_config(cfg))  # fmt: skip
    return strategy.seconds


def bare_round(scenario: Scenario, server_round: int) -> float:
    """One round's local training of every client, in this process."""
    cfg = scenario.cfg
    torch.manual_seed(int(cfg.seed))
    initial = get_model(cfg.model.name, cfg.dataset.name).state_dict()
    data = [_local_data(scenario, pid)[0] for pid in range(scenario.num_clients)]
    started = time.perf_counter()
    for pid, part in enumerate(data):
        model = get_model(cfg.model.name, cfg.dataset.name)
        model.load_state_dict(initial)
        train(model, part.x, part.y, epochs=int(cfg.train.local_epochs),
              batch_size=int(cfg.train.batch_size), lr=float(cfg.train.lr),
              seed=client_seed(int(cfg.seed), server_round, pid))  # fmt: skip
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--overrides", default="+experiment=main")
    args = parser.parse_args()
    scenario = Scenario(compose(args.overrides))
    cfg = scenario.cfg
    samples = sum(
        len(_local_data(scenario, p)[0].y) for p in range(scenario.num_clients)
    )
    torch.set_num_threads(os.cpu_count() or 1)
    bare = [bare_round(scenario, r) for r in (1, 2)]
    flower = flower_rounds(scenario, args.rounds)
    steady = statistics.median(flower[1:]) if len(flower) > 1 else flower[0]
    cpus, version = os.cpu_count(), torch.__version__
    print(f"machine: {platform.machine()}, {cpus} CPUs, torch {version}")
    print(f"scenario: {args.overrides}: {cfg.dataset.name}, {cfg.model.name}, "
          f"{scenario.num_clients} clients, {samples} samples x "
          f"{cfg.train.local_epochs} epochs, batch {cfg.train.batch_size}")  # fmt: skip
    print(f"bare PyTorch loop, one process ({torch.get_num_threads()} threads): "
          f"{min(bare):.1f} s per round")  # fmt: skip
    print("Flower + Ray, seconds per round: " + ", ".join(f"{s:.1f}" for s in flower))
    print(
        f"ratio Flower/bare after the first round: {steady / min(bare):.2f} "
        "(target <= 1.3)"
    )


if __name__ == "__main__":
    main()
