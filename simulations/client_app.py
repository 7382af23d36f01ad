"""The ClientApp: local training on a partition, attacking when the harness says so.

Only this app knows whether its partition is malicious (from the scenario
config); it never tells the server. A malicious client trains on poisoned data
and, with ``attack.boost`` above 1, scales its update before replying
(:func:`simulations.attacks.boost_update`). ``app`` is the component ``flwr run .``
loads; ``make_client_app`` builds the same app for ``python -m simulations.run``.
"""

from __future__ import annotations

import zlib
from functools import lru_cache
from typing import cast

import torch
from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from omegaconf import DictConfig

from simulations.attacks import Backdoor, LabelFlip, boost_update
from simulations.data import ImageDataset, load_partition
from simulations.models import get_arrays, get_model, set_arrays
from simulations.scenario import Scenario, compose
from simulations.training import resolve_device, train


def client_seed(seed: int, server_round: int, partition_id: int) -> int:
    """Training seed of one client in one round (same inputs, same update)."""
    return zlib.crc32(f"{seed}:{server_round}:{partition_id}".encode())


@lru_cache(maxsize=8)
def _scenario_from_overrides(overrides: str) -> Scenario:
    return Scenario(compose(overrides))


_LOCAL_DATA: dict[tuple[str, int], tuple[ImageDataset, bool]] = {}


def _local_data(scenario: Scenario, partition_id: int) -> tuple[ImageDataset, bool]:
    """The partition as tensors, decoded and poisoned once per process."""
    key = (scenario.to_yaml(), partition_id)
    if key not in _LOCAL_DATA:
        _LOCAL_DATA[key] = _prepare_local_data(scenario, partition_id)
    return _LOCAL_DATA[key]


def _prepare_local_data(
    scenario: Scenario, partition_id: int
) -> tuple[ImageDataset, bool]:
    cfg = scenario.cfg
    data = load_partition(
        cfg.dataset.name,
        partition_id,
        scenario.num_clients,
        **scenario.partition_kwargs(),
    )
    malicious = partition_id in scenario.malicious_partitions
    if not malicious or cfg.attack.name == "none":
        return data, False
    attack: LabelFlip | Backdoor = (
        scenario.label_flip()
        if cfg.attack.name == "label_flip"
        else scenario.backdoor()
    )
    x, y, _ = attack.apply(data.x, data.y)
    return ImageDataset(x, y), True


def train_handler(scenario: Scenario, msg: Message, context: Context) -> Message:
    """Train the received model on this node's partition and reply."""
    cfg = scenario.cfg
    torch.set_num_threads(max(1, int(cfg.client_resources.num_cpus)))
    pid = int(context.node_config["partition-id"])
    data, malicious = _local_data(scenario, pid)
    model = get_model(cfg.model.name, cfg.dataset.name)
    received = msg.content.array_records["arrays"].to_numpy_ndarrays()
    set_arrays(model, received)
    server_round = int(cast(int, msg.content.config_records["config"]["server-round"]))
    epochs = int(cfg.train.local_epochs)
    if malicious:
        epochs += int(cfg.attack.get("extra_epochs", 0) or 0)
    seed = client_seed(int(cfg.seed), server_round, pid)
    x, y = data.x, data.y
    scale = float(
        cast(float, msg.content.config_records["config"].get("epochs-scale", 1.0))
    )
    if scale != 1.0:
        # FedEraser's calibration: a fraction of the local epochs; below one
        # epoch, one pass over a seeded share of the data.
        scaled = epochs * scale
        if scaled >= 1:
            epochs = round(scaled)
        else:
            g = torch.Generator().manual_seed(seed)
            keep = torch.randperm(len(y), generator=g)[: max(1, round(scaled * len(y)))]
            x, y, epochs = x[keep], y[keep], 1
    result = train(
        model,
        x,
        y,
        epochs=epochs,
        batch_size=int(cfg.train.batch_size),
        lr=float(cfg.train.lr),
        device=resolve_device("auto"),
        seed=seed,
    )
    arrays = get_arrays(model)
    boost = cfg.attack.get("boost")
    if malicious and boost is not None:
        arrays = boost_update(arrays, received, float(boost))
    content = RecordDict(
        {
            "arrays": ArrayRecord(arrays),
            "metrics": MetricRecord(
                {"num-examples": len(data.y), "train-loss": float(result["loss"])}
            ),
        }
    )
    return Message(content, reply_to=msg)


def query_handler(msg: Message, context: Context) -> Message:
    """Tell the harness which partition this node holds (to map node ids)."""
    pid = int(context.node_config["partition-id"])
    return Message(
        RecordDict({"info": MetricRecord({"partition-id": pid})}), reply_to=msg
    )


def make_client_app(cfg: DictConfig | None = None) -> ClientApp:
    """Build the ClientApp for a composed config (None: from the run config)."""
    app = ClientApp()
    fixed = None if cfg is None else Scenario(cfg)

    def scenario_of(context: Context) -> Scenario:
        if fixed is not None:
            return fixed
        return _scenario_from_overrides(str(context.run_config.get("overrides", "")))

    @app.train()
    def _train(msg: Message, context: Context) -> Message:
        return train_handler(scenario_of(context), msg, context)

    @app.query()
    def _query(msg: Message, context: Context) -> Message:
        return query_handler(msg, context)

    return app


app = make_client_app()
