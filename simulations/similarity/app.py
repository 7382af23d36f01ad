"""A ServerApp that trains one setting with FedAvg and records the similarity.

Each training round, :class:`SimilarityFedAvg` keeps the arrays it sent and,
before aggregating, computes every measure of :mod:`fedup_flwr.similarity` on
the benign clients' replies (and, for reference, on all replies), as FedUP
would see them in the unlearning round. The attackers attack as in the
committed scenarios; nothing is unlearned.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from logging import INFO
from typing import Any

import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord
from flwr.common.logger import log
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg
from numpy.typing import NDArray

from fedup_flwr.similarity import available_similarities, get_similarity
from simulations.models import get_arrays, get_model
from simulations.scenario import Scenario
from simulations.server_app import identify_nodes

Arrays = list[NDArray[Any]]


def measure_all(models: list[Arrays], sent: Arrays) -> dict[str, float]:
    """Every registered similarity of ``models`` (None when fewer than two)."""
    if len(models) < 2:
        return {}
    return {
        name: get_similarity(name)(models, sent) for name in available_similarities()
    }


class SimilarityFedAvg(FedAvg):
    """FedAvg that records the clients' similarity each training round.

    Parameters
    ----------
    benign_nodes : set of int
        Node ids of the benign clients (known to the harness only).
    **kwargs
        Forwarded to :class:`flwr.serverapp.strategy.FedAvg`.

    Attributes
    ----------
    records : list of dict
        One per round: ``round``, ``benign`` and ``all`` (measure name to
        similarity), ``num_benign``, ``num_replies``.
    """

    def __init__(self, benign_nodes: set[int], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.benign_nodes = set(benign_nodes)
        self.records: list[dict[str, Any]] = []
        self._sent: dict[int, Arrays] = {}

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """Keep the arrays sent this round, then configure as FedAvg does."""
        self._sent = {server_round: arrays.to_numpy_ndarrays()}
        return super().configure_train(server_round, arrays, config, grid)

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Record the similarity of the replies, then aggregate as FedAvg does."""
        replies = list(replies)
        sent = self._sent[server_round]
        models: dict[int, Arrays] = {
            int(m.metadata.src_node_id): m.content["arrays"].to_numpy_ndarrays()  # type: ignore[union-attr]
            for m in replies
            if not m.has_error()
        }
        benign = [models[n] for n in sorted(models) if n in self.benign_nodes]
        record = {
            "round": server_round,
            "num_benign": len(benign),
            "num_replies": len(models),
            "benign": measure_all(benign, sent),
            "all": measure_all(list(models.values()), sent),
        }
        self.records.append(record)
        log(INFO, "similarity, round %s: %s", server_round, record["benign"])
        return super().aggregate_train(server_round, replies)


def make_similarity_app(
    scenario: Scenario, on_done: Callable[[dict[str, Any]], None]
) -> ServerApp:
    """A ServerApp that trains ``scenario`` for ``rounds.train`` rounds.

    ``on_done`` receives ``records`` (per round), ``test_acc`` of the final
    global model and ``seconds``.
    """
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        cfg = scenario.cfg
        started = time.perf_counter()
        node_of = identify_nodes(grid, scenario.num_clients)
        malicious = set(scenario.malicious_partitions)
        benign = {n for p, n in node_of.items() if p not in malicious}
        torch.manual_seed(int(cfg.seed))  # the same initial model as the scenario
        initial = ArrayRecord(get_arrays(get_model(cfg.model.name, cfg.dataset.name)))
        strategy = SimilarityFedAvg(
            benign,
            fraction_train=1.0,
            fraction_evaluate=0.0,
            min_available_nodes=1,
            min_train_nodes=1,
        )
        result = strategy.start(
            grid, initial, num_rounds=int(cfg.rounds.train), timeout=3600
        )
        from simulations.evaluation import Evaluator

        final = result.arrays.to_numpy_ndarrays()
        metrics = Evaluator(scenario).evaluate(final)
        on_done(
            {
                "records": strategy.records,
                "test_acc": float(metrics["test_acc"]),
                "mal_acc": float(metrics["mal_acc"]),
                "seconds": time.perf_counter() - started,
            }
        )

    return app
