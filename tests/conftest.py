"""Shared test helpers: real Flower Messages built without a running SuperLink."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flwr.app import (
    ArrayRecord,
    Error,
    Message,
    Metadata,
    MetricRecord,
    RecordDict,
)

# The datasets beside the checkout (../shared/data), unless FEDUP_DATA_DIR is set.
_CANDIDATES = [
    Path(__file__).resolve().parents[1].parent / "shared" / "data",
]
if "FEDUP_DATA_DIR" not in os.environ:
    for _folder in _CANDIDATES:
        if _folder.is_dir():
            os.environ["FEDUP_DATA_DIR"] = str(_folder)
            break


def _metadata(src: int, dst: int, message_type: str = "train") -> Metadata:
    return Metadata(
        run_id=1,
        message_id=f"m{src}",
        src_node_id=src,
        dst_node_id=dst,
        reply_to_message_id="",
        group_id="",
        created_at=time.time(),
        ttl=3600.0,
        message_type=message_type,
    )


def make_reply(
    node_id: int,
    arrays: list[np.ndarray] | None = None,
    num_examples: Any = 10,
    *,
    metrics: dict[str, Any] | None = None,
    record: RecordDict | None = None,
    error: str | None = None,
    message_type: str = "train",
) -> Message:
    """A reply from ``node_id`` as the SuperLink would deliver it."""
    meta = _metadata(node_id, 0, message_type)
    if error is not None:
        return Message(Error(code=1, reason=error), metadata=meta)
    if record is None:
        m = {"num-examples": num_examples} if metrics is None else metrics
        content: dict[str, Any] = {"metrics": MetricRecord(m)}
        if arrays is not None:
            content["arrays"] = ArrayRecord(arrays)
        record = RecordDict(content)
    return Message(record, metadata=meta)


@pytest.fixture
def reply_factory() -> Any:
    return make_reply


# ---------------------------------------------- an in-process Grid for strategies
# Shared by the strategy tests (test_strategy, test_hostile, test_hardening).
NODES = [1, 2, 3, 4, 5, 6]


def set_task_identity() -> None:
    """Set the run id Flower reads when it builds instruction messages.

    A ServerApp sets it; tests that call a strategy's hooks directly must.
    """
    from flwr.supercore.task_identity import TaskIdentity

    TaskIdentity.run_id = 1
    TaskIdentity.node_id = 0
    TaskIdentity.task_id = 0


def global_model() -> list[np.ndarray]:
    """A 4x5 kernel and a bias, both float32."""
    rng = np.random.default_rng(0)
    return [
        rng.normal(size=(4, 5)).astype(np.float32) + 3.0,
        np.zeros(4, dtype=np.float32),
    ]


def client_model(node: int) -> list[np.ndarray]:
    """The model node ``node`` trains; nodes 5 and 6 "attack" (shifted by 2)."""
    rng = np.random.default_rng(node)
    shift = 2.0 if node in (5, 6) else 0.0
    return [
        a + rng.normal(scale=0.1, size=a.shape).astype(np.float32) + shift
        for a in global_model()
    ]


def fedavg(nodes: Any) -> list[np.ndarray]:
    """FedAvg of :func:`client_model` for ``nodes``, weighted 10 * node."""
    w = np.array([10.0 * n for n in nodes])
    models = [client_model(n) for n in nodes]
    return [sum(wi * m[i] for wi, m in zip(w, models)) / w.sum() for i in range(2)]


class FakeGrid:
    """An in-process Grid: each node trains by returning client_model(node)."""

    def __init__(self, nodes: Any = NODES, reply: Any = None) -> None:
        self.nodes = list(nodes)
        self.trained: list[tuple[int, int]] = []  # (round, node)
        self.evaluated: list[int] = []
        self.reply = reply or (
            lambda node, rnd, msg: make_reply(node, client_model(node), 10 * node)
        )

    def get_node_ids(self) -> Any:
        return list(self.nodes)

    def send_and_receive(self, messages: Any, timeout: float | None = None) -> Any:
        out = []
        for msg in messages:
            node = msg.metadata.dst_node_id
            config = msg.content["config"]
            if msg.metadata.message_type == "train":
                self.trained.append((int(config["server-round"]), node))
                out.append(self.reply(node, int(config["server-round"]), msg))
            else:
                self.evaluated.append(node)
                out.append(
                    make_reply(
                        node,
                        None,
                        10,
                        message_type="evaluate",
                        metrics={"num-examples": 10, "acc": 0.5},
                    )
                )
        return out


def run_round(
    strategy: Any, rnd: int, grid: Any = None, arrays: ArrayRecord | None = None
) -> tuple[Any, Any]:
    """One training round of ``strategy`` on ``grid`` (a fresh FakeGrid)."""
    from flwr.app import ConfigRecord

    grid = grid or FakeGrid()
    arrays = arrays or ArrayRecord(global_model())
    msgs = list(strategy.configure_train(rnd, arrays, ConfigRecord(), grid))
    replies = grid.send_and_receive(msgs)
    return strategy.aggregate_train(rnd, replies)


# ------------------------------------------------- processes started by a test
def processes_with_env(key: str, value: str) -> list[int]:
    """PIDs of this user's processes started with ``key=value`` in their env.

    Tests that start servers (``flwr run``, a Ray head) tag them with an
    environment variable and stop exactly those, never by process name.
    """
    found = []
    needle = f"{key}={value}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:
            continue
    return found
