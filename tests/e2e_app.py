"""A tiny Flower app for the end-to-end test: softmax regression on synthetic data.

Each node's ClientApp trains a 4x3 linear model with numpy; the ServerApp runs
FedUP with a scripted detector and records what happened in ``RECORD`` (the
ServerApp runs in the test's process under ``run_simulation``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
from flwr.app import (
    ArrayRecord,
    ConfigRecord,
    Context,
    Message,
    MessageType,
    MetricRecord,
    RecordDict,
)
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg

from fedup_flwr import FedUP

NUM_NODES = 10
CONNECT_TIMEOUT = 300.0  # seconds for the nodes to connect and identify
RECORD: dict[str, Any] = {}


def _data(partition: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(partition)
    x = rng.normal(size=(64, 4))
    y = (x[:, 0] > 0).astype(int) + (x[:, 1] > 0).astype(int)
    return x, y


client = ClientApp()


@client.query()
def identify(msg: Message, context: Context) -> Message:
    pid = int(context.node_config["partition-id"])
    return Message(RecordDict({"m": MetricRecord({"partition-id": pid})}), reply_to=msg)


@client.train()
def train(msg: Message, context: Context) -> Message:
    pid = int(context.node_config["partition-id"])
    w, b = msg.content["arrays"].to_numpy_ndarrays()
    x, y = _data(pid)
    for _ in range(20):
        logits = x @ w + b
        p = np.exp(logits - logits.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        p[np.arange(len(y)), y] -= 1
        w = w - 0.1 * x.T @ p / len(y)
        b = b - 0.1 * p.mean(0)
    if pid == 0 and int(msg.content["config"]["server-round"]) == 3:
        w = w.copy()
        w[0, 0] = np.nan  # a broken client
    arrays = ArrayRecord([w.astype(np.float32), b.astype(np.float32)])
    metrics = MetricRecord({"num-examples": len(y)})
    return Message(RecordDict({"arrays": arrays, "metrics": metrics}), reply_to=msg)


class ScriptedDetector:
    """Flags the nodes of given partitions in given rounds (a DoS pattern)."""

    def __init__(self, schedule: Mapping[int, int], node_of: Mapping[int, int]):
        self.schedule = schedule
        self.node_of = node_of

    def detect(self, server_round: int, replies: Mapping[int, Any], g: Any) -> set[int]:
        pid = self.schedule.get(server_round)
        return set() if pid is None else {self.node_of[pid]}


class RecordingFedUP(FedUP):
    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        msgs = list(super().configure_train(server_round, arrays, config, grid))
        rnd = server_round + self._round_offset
        RECORD["sent"][rnd] = [m.metadata.dst_node_id for m in msgs]
        return msgs


server = ServerApp()


@server.main()
def main(grid: Grid, context: Context) -> None:
    deadline = time.monotonic() + CONNECT_TIMEOUT
    nodes = list(grid.get_node_ids())
    while len(nodes) < NUM_NODES:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {len(nodes)} of {NUM_NODES} nodes connected")
        time.sleep(0.1)
        nodes = list(grid.get_node_ids())
    query = [
        Message(RecordDict(), dst_node_id=n, message_type=MessageType.QUERY)
        for n in nodes
    ]
    node_of = {
        int(r.content["m"]["partition-id"]): r.metadata.src_node_id
        for r in grid.send_and_receive(query, timeout=CONNECT_TIMEOUT)
    }
    RECORD.update(node_of=node_of, sent={}, models={})
    detector = ScriptedDetector({2: 9, 3: 8, 4: 7, 5: 6}, node_of)
    strategy = RecordingFedUP(
        FedAvg(fraction_evaluate=0.0, min_available_nodes=2),
        detector=detector,
        pruning_rate=0.25,
        rate_limit=3,
        recovery_rounds=3,
    )

    def evaluate(rnd: int, arrays: ArrayRecord) -> MetricRecord:
        RECORD["models"][rnd] = arrays.to_numpy_ndarrays()
        return MetricRecord(
            {"finite": float(all(np.isfinite(a).all() for a in RECORD["models"][rnd]))}
        )

    init = ArrayRecord([np.full((4, 3), 0.5, np.float32), np.zeros(3, np.float32)])
    result = strategy.start(grid, init, num_rounds=6, evaluate_fn=evaluate)
    RECORD.update(events=strategy.events, result=result)
