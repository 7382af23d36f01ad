"""FedUP's pruning rate: the fixed default, and the adaptive rate per measure.

Each test runs one real round of FedUP on hand-made replies whose
similarities are known in closed form (see ``_reply``), so the expected P is
computed by hand from Eq. 4-5, never read back from the library.
"""

from __future__ import annotations

import inspect
import logging
import math
from dataclasses import asdict
from typing import Any

import numpy as np
import pytest
from conftest import FakeGrid, make_reply, run_round, set_task_identity
from flwr.app import ArrayRecord, Message

from fedup_flwr import DEFAULT_PRUNING_RATE, FedUP, OracleDetector
from fedup_flwr.rates import RateChoice
from fedup_flwr.similarity import SIM_RANGES
from fedup_flwr.unlearning import choose_rate

# Global model: a first kernel, its bias, the last kernel, its bias.
GLOBAL = [
    np.ones((2, 2), np.float32),
    np.zeros(2, np.float32),
    np.array([[1.0, 0.0]], np.float32),
    np.zeros(1, np.float32),
]
# Updates (reply minus GLOBAL) of the two benign nodes, array by array.
UPDATES = {
    1: [[[1, 0], [0, 0]], [1, 0], [[1, 0]], [0]],
    2: [[[1, 0], [0, 0]], [0, 1], [[1, 1]], [0]],
}
# The four measures on these replies, by hand:
# weights: last kernels (2, 0) and (2, 1): 4 / (2 * sqrt 5);
# last_layer_updates: (1, 0) and (1, 1): 1 / sqrt 2;
# kernel_updates: (1,0,0,0, 1,0) and (1,0,0,0, 1,1): 2 / (sqrt 2 * sqrt 3);
# model_updates: (1,0,0,0, 1,0, 1,0, 0) and (1,0,0,0, 0,1, 1,1, 0): 2 / (sqrt 3 * 2).
HAND = {
    "weights": 2 / math.sqrt(5),
    "last_layer_updates": 1 / math.sqrt(2),
    "kernel_updates": 2 / math.sqrt(6),
    "model_updates": 1 / math.sqrt(3),
}
MALICIOUS = 3
BROKEN = 4  # replies NaN: rejected, so it is present but sends no benign model


@pytest.fixture(autouse=True)
def _task_identity() -> None:
    set_task_identity()


def _reply(node: int, rnd: int, msg: Message) -> Message:
    if node == BROKEN:
        arrays = [np.full_like(g, np.nan) for g in GLOBAL]
    elif node == MALICIOUS:
        arrays = [g - 5.0 for g in GLOBAL]
    else:
        arrays = [g + np.asarray(u, np.float32) for g, u in zip(GLOBAL, UPDATES[node])]
    return make_reply(node, arrays, 10)


def _round(strategy: FedUP, nodes: list[int]) -> dict[str, Any]:
    grid = FakeGrid(nodes=nodes, reply=_reply)
    _, metrics = run_round(strategy, 1, grid, ArrayRecord(GLOBAL))
    return dict(metrics)


def _eq5(
    sim: float,
    lo: float,
    hi: float,
    p_min: float = 0.01,
    p_max: float = 0.15,
    gamma: float = 5.0,
) -> float:
    z = min(max((sim - lo) / (hi - lo), 0.0), 1.0)
    return float((p_max - p_min) * z**gamma + p_min)


def test_default_is_the_fixed_constant() -> None:
    default = inspect.signature(FedUP).parameters["pruning_rate"].default
    assert default == DEFAULT_PRUNING_RATE
    strategy = FedUP(detector=OracleDetector({1: [MALICIOUS]}))
    assert strategy.pruning_rate == DEFAULT_PRUNING_RATE
    metrics = _round(strategy, [1, 2, MALICIOUS])
    (event,) = strategy.events
    assert event.rate == DEFAULT_PRUNING_RATE and not event.adaptive
    # The similarity is measured anyway (where the adaptive P would be) ...
    assert event.similarity_measure == "weights"
    assert event.similarity == pytest.approx(HAND["weights"], rel=1e-6)
    # ... but Eq. 4-5's parameters are not recorded: they were not used.
    assert (event.p_min, event.p_max, event.gamma) == (None, None, None)
    assert (event.sim_min, event.sim_max) == (None, None)
    assert metrics["fedup-pruning-rate"] == DEFAULT_PRUNING_RATE
    assert metrics["fedup-adaptive"] == 0.0
    assert metrics["fedup-similarity-weights"] == pytest.approx(HAND["weights"])
    assert "fedup-p-min" not in metrics


@pytest.mark.parametrize("name", sorted(HAND))
def test_adaptive_rate_per_measure(name: str) -> None:
    strategy = FedUP(
        detector=OracleDetector({1: [MALICIOUS]}), pruning_rate=None, similarity=name
    )
    metrics = _round(strategy, [1, 2, MALICIOUS])
    (event,) = strategy.events
    lo, hi = SIM_RANGES[name]
    assert event.adaptive and event.similarity_measure == name
    assert event.similarity == pytest.approx(HAND[name], rel=1e-6)
    assert event.rate == pytest.approx(_eq5(HAND[name], lo, hi), rel=1e-6)
    assert (event.sim_min, event.sim_max) == (lo, hi)
    assert (event.p_min, event.p_max, event.gamma) == (0.01, 0.15, 5.0)
    assert metrics["fedup-adaptive"] == 1.0
    assert metrics[f"fedup-similarity-{name}"] == pytest.approx(HAND[name])
    assert metrics["fedup-pruning-rate"] == pytest.approx(event.rate)
    assert (metrics["fedup-sim-min"], metrics["fedup-sim-max"]) == (lo, hi)
    assert (metrics["fedup-p-min"], metrics["fedup-p-max"]) == (0.01, 0.15)
    assert metrics["fedup-gamma"] == 5.0


def test_adaptive_rate_uses_the_given_range_and_parameters() -> None:
    strategy = FedUP(
        detector=OracleDetector({1: [MALICIOUS]}),
        pruning_rate=None,
        p_min=0.02,
        p_max=0.3,
        gamma=2.0,
        similarity="last_layer_updates",
        sim_min=0.5,
        sim_max=0.9,
    )
    _round(strategy, [1, 2, MALICIOUS])
    (event,) = strategy.events
    want = _eq5(HAND["last_layer_updates"], 0.5, 0.9, 0.02, 0.3, 2.0)
    assert event.rate == pytest.approx(want, rel=1e-6)
    assert (event.sim_min, event.sim_max, event.gamma) == (0.5, 0.9, 2.0)


def test_one_benign_reply_falls_back_to_the_default(
    caplog: pytest.LogCaptureFixture,
) -> None:
    strategy = FedUP(detector=OracleDetector({1: [MALICIOUS]}), pruning_rate=None)
    with caplog.at_level(logging.WARNING, logger="flwr"):
        metrics = _round(strategy, [1, BROKEN, MALICIOUS])
    assert metrics["fedup-rejected-replies"] == 1
    (event,) = strategy.events
    assert event.status == "unlearned"
    assert event.rate == DEFAULT_PRUNING_RATE and not event.adaptive
    assert event.similarity is None
    assert "using the default fixed P" in caplog.text


def test_measure_that_cannot_read_the_model_falls_back() -> None:
    # No kernel: the last-layer measure is undefined, not a crash.
    flat = [np.ones(3, np.float32)]
    choice = choose_rate(
        [flat, flat],
        flat,
        pruning_rate=None,
        similarity="weights",
        sim_min=0.5,
        sim_max=1.0,
        p_min=0.01,
        p_max=0.15,
        gamma=5.0,
    )
    assert choice == RateChoice(DEFAULT_PRUNING_RATE, False, "weights", None)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"similarity": "cosine"}, ValueError, "unknown similarity 'cosine'"),
        ({"similarity": 3}, TypeError, "must be a str"),
        ({"sim_min": 0.9, "sim_max": 0.5}, ValueError, "sim_min < sim_max"),
        ({"sim_max": float("nan")}, ValueError, "sim_min < sim_max"),
        ({"pruning_rate": 1.5}, ValueError, "pruning_rate must be in"),
    ],
)
def test_bad_settings_fail_at_construction(
    kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        FedUP(**kwargs)


def test_events_keep_how_the_rate_was_chosen_across_a_restart() -> None:
    strategy = FedUP(
        detector=OracleDetector({1: [MALICIOUS]}),
        pruning_rate=None,
        similarity="kernel_updates",
    )
    _round(strategy, [1, 2, MALICIOUS])
    restored = FedUP(pruning_rate=None, similarity="kernel_updates")
    restored.load_state_dict(strategy.state_dict())
    assert restored.events == strategy.events
    # A state saved before these fields existed still loads.
    old = strategy.state_dict()
    keep = ("server_round", "node_ids", "status", "rate", "similarity")
    old["events"] = [{k: e[k] for k in keep} for e in old["events"]]
    restored.load_state_dict(old)
    (event,) = restored.events
    assert not event.adaptive and event.similarity_measure == ""
    assert asdict(event)["rate"] == strategy.events[0].rate
