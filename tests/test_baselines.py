"""Baselines and ablations on hand-computable arrays."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_reply
from flwr.app import ArrayRecord, ConfigRecord
from flwr.supercore.task_identity import TaskIdentity

from fedup_flwr import prune_count
from simulations.baselines import (
    FedEraserCalibration,
    History,
    MaliciousMagnitudeFedUP,
    NoTFedUP,
    RandomPruneFedUP,
)


@pytest.fixture(autouse=True)
def _task_identity() -> None:
    TaskIdentity.run_id = 1
    TaskIdentity.node_id = 0
    TaskIdentity.task_id = 0


def arrays(k: float) -> list[np.ndarray]:
    return [np.full((4, 5), k, np.float32), np.full(4, k, np.float32)]


def test_random_prune_counts_match_fedup_and_vary_with_seed() -> None:
    a = RandomPruneFedUP(mask_seed=0)
    a._global_arrays = arrays(1.0)
    m1 = a.compute_mask([arrays(0)], [1], [arrays(2)], [1], 0.3)
    assert [int(m.sum()) for m in m1] == [prune_count(0.3, 20), 0]
    m2 = a.compute_mask([arrays(0)], [1], [arrays(2)], [1], 0.3)
    assert not np.array_equal(m1[0], m2[0])  # fresh draws
    b = RandomPruneFedUP(mask_seed=0)
    b._global_arrays = arrays(1.0)
    np.testing.assert_array_equal(b.compute_mask([], [], [], [], 0.3)[0], m1[0])


def test_malicious_magnitude_ranks_flagged_average() -> None:
    s = MaliciousMagnitudeFedUP()
    mal = [np.zeros((1, 4), np.float32), np.zeros(1, np.float32)]
    mal[0][0] = [0.1, -5.0, 2.0, 0.3]
    mask = s.compute_mask([], [], [mal, mal], [1, 3], 0.5)
    assert mask[0].tolist() == [[False, True, True, False]] and not mask[1].any()


def test_not_negates_first_kernels_only() -> None:
    s = NoTFedUP(layers=1)
    model = [np.ones((2, 2)), np.ones(2), np.ones((2, 2))]
    out = s.apply_unlearning(model, [np.zeros((2, 2), bool)] * 3)
    assert out[0].tolist() == [[-1, -1], [-1, -1]]
    assert out[1].tolist() == [1, 1] and out[2].tolist() == [[1, 1], [1, 1]]
    assert NoTFedUP(layers=2).apply_unlearning(model, [])[2].sum() == -4
    with pytest.raises(ValueError):
        NoTFedUP(layers=0)


def test_federaser_calibration_rescales_to_stored_norms() -> None:
    history = History()
    g0 = [np.zeros((1, 2), np.float32)]
    history.globals.append(g0)
    # Stored updates of nodes 1 and 2 in round 1: norms 5 and 1; node 3 was forgotten.
    history.updates.append(
        {
            1: ([np.array([[3.0, 4.0]], np.float32)], 10),
            2: ([np.array([[0.0, 1.0]], np.float32)], 30),
            3: ([np.array([[9.0, 9.0]], np.float32)], 10),
        }
    )
    assert history.nbytes() == 4 * 2 * 4
    cal = FedEraserCalibration(history, first_round=7, epoch_fraction=0.5)
    assert cal.num_steps == 1
    start = ArrayRecord([np.ones((1, 2), np.float32)])

    class Grid:
        def get_node_ids(self) -> list[int]:
            return [1, 2]

    msgs = list(cal.configure_train(7, start, ConfigRecord(), Grid()))  # type: ignore[arg-type]
    assert msgs[0].content["config"]["epochs-scale"] == 0.5
    # New updates point along x for node 1 and along -y for node 2.
    replies = [
        make_reply(1, [np.array([[3.0, 1.0]], np.float32)], 10),
        make_reply(2, [np.array([[1.0, 0.5]], np.float32)], 30),
    ]
    arrays_out, _ = cal.aggregate_train(7, replies)
    got = arrays_out.to_numpy_ndarrays()[0]
    # node 1: (2, 0) rescaled to norm 5 -> (5, 0); node 2: (0, -0.5) -> (0, -1)
    expected = (
        np.array([[1.0, 1.0]])
        + (10 * np.array([[5.0, 0.0]]) + 30 * np.array([[0.0, -1.0]])) / 40
    )
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    with pytest.raises(ValueError):
        FedEraserCalibration(history, first_round=1, epoch_fraction=0.0)
