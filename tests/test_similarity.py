"""Similarity measures of fedup_flwr.similarity on hand-made arrays."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from fedup_flwr.similarity import (
    SIM_RANGES,
    SIMILARITIES,
    available_similarities,
    get_similarity,
    kernel_update_similarity,
    last_layer_update_similarity,
    mean_pairwise_cosine,
    model_update_similarity,
    similarity_range,
    weights_similarity,
)

NAMES = ("weights", "last_layer_updates", "model_updates", "kernel_updates")
UPDATES = ("last_layer_updates", "model_updates", "kernel_updates")


def _model(kernel: list[float], bias: float = 0.0) -> list[np.ndarray]:
    """A first layer (kernel + bias), a last 1 x d kernel, a bias and a counter."""
    return [
        np.full((2, 2), bias, np.float32),
        np.full(2, bias, np.float32),
        np.asarray([kernel], np.float32),
        np.zeros(1, np.float32),
        np.asarray(7, np.int64),  # like BatchNorm's num_batches_tracked
    ]


GLOBAL = _model([0.0, 0.0, 0.0])


def test_registry_names() -> None:
    assert available_similarities() == tuple(sorted(NAMES))
    assert get_similarity("weights") is weights_similarity
    assert get_similarity("last_layer_updates") is last_layer_update_similarity
    assert get_similarity("model_updates") is model_update_similarity
    assert get_similarity("kernel_updates") is kernel_update_similarity
    assert set(SIMILARITIES) == set(NAMES)


def test_registry_rejects_unknown_names() -> None:
    with pytest.raises(ValueError, match="unknown similarity 'cosine'"):
        get_similarity("cosine")
    with pytest.raises(TypeError, match="must be a str"):
        get_similarity(3)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", NAMES)
def test_identical_clients_give_one(name: str) -> None:
    client = _model([1.0, 2.0, -3.0], bias=0.5)
    assert get_similarity(name)([client, client, client], GLOBAL) == pytest.approx(1.0)


@pytest.mark.parametrize("name", UPDATES)
def test_orthogonal_updates_give_zero(name: str) -> None:
    start = _model([1.0, 1.0, 1.0])
    a = _model([2.0, 1.0, 1.0])  # update (1, 0, 0)
    b = _model([1.0, 3.0, 1.0])  # update (0, 2, 0)
    c = _model([1.0, 1.0, 0.0])  # update (0, 0, -1)
    assert get_similarity(name)([a, b, c], start) == pytest.approx(0.0, abs=1e-12)


def test_weights_see_the_shared_model_updates_do_not() -> None:
    # Two clients move a large shared last layer in opposite directions: their
    # weights stay almost parallel, their updates are opposite.
    start = _model([10.0, 10.0, 10.0])
    a = _model([11.0, 10.0, 10.0])
    b = _model([9.0, 10.0, 10.0])
    assert weights_similarity([a, b]) > 0.99
    for name in UPDATES:
        assert get_similarity(name)([a, b], start) == pytest.approx(-1.0)


def test_mean_is_over_all_pairs() -> None:
    # pairs: (a, b) = 1, (a, c) = 0, (b, c) = 0 -> mean 1/3
    a, b, c = _model([1.0, 0.0, 0.0]), _model([2.0, 0.0, 0.0]), _model([0, 1.0, 0])
    assert last_layer_update_similarity([a, b, c], GLOBAL) == pytest.approx(1 / 3)
    assert mean_pairwise_cosine(np.array([[1.0, 0], [2.0, 0], [0, 1.0]])) == (
        pytest.approx(1 / 3)
    )


def test_model_updates_use_every_floating_array() -> None:
    # The last layers agree; the first layers' updates are opposite and larger.
    a = _model([1.0, 0.0, 0.0], bias=2.0)
    b = _model([1.0, 0.0, 0.0], bias=-2.0)
    assert last_layer_update_similarity([a, b], GLOBAL) == pytest.approx(1.0)
    # |first layers|^2 = 6 * 4 = 24 per client, last kernel 1: (1 - 24) / 25
    assert model_update_similarity([a, b], GLOBAL) == pytest.approx(-23 / 25)
    # kernels only: |first kernel|^2 = 4 * 4 = 16, last kernel 1: (1 - 16) / 17
    assert kernel_update_similarity([a, b], GLOBAL) == pytest.approx(-15 / 17)


def test_kernel_updates_leave_out_drifting_buffers() -> None:
    # Opposite kernel updates, plus a large 1-d buffer (a running variance)
    # that every client moves alike: it dominates model_updates only.
    a, b = _model([1.0, 0.0, 0.0]), _model([-1.0, 0.0, 0.0])
    a[3] = b[3] = np.full(1, 100.0, np.float32)
    assert model_update_similarity([a, b], GLOBAL) > 0.99
    assert kernel_update_similarity([a, b], GLOBAL) == pytest.approx(-1.0)


def test_model_updates_blockwise_matches_float64(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import fedup_flwr.similarity as sim

    rng = np.random.default_rng(0)
    start: list[np.ndarray] = [
        rng.normal(size=(5, 7)).astype(np.float32),
        rng.normal(size=3),
    ]
    models = [
        [a + rng.normal(size=a.shape).astype(a.dtype) for a in start] for _ in range(4)
    ]
    updates = np.stack(
        [np.concatenate([(m[i] - start[i]).ravel() for i in range(2)]) for m in models]
    )
    expected = mean_pairwise_cosine(updates)
    monkeypatch.setattr(sim, "_BLOCK", 4)  # many blocks per array
    assert model_update_similarity(models, start) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_zero_vector_counts_as_zero_similarity(name: str) -> None:
    # Documented: a client that sends the global model back (zero update) or a
    # zero last layer has cosine 0 to every other client, not NaN.
    a = _model([1.0, 2.0, 3.0], bias=1.0)
    zero = _model([0.0, 0.0, 0.0])
    value = get_similarity(name)([a, a, zero], GLOBAL)
    assert math.isfinite(value)
    assert value == pytest.approx(1 / 3)  # pairs: (a, a) = 1, two pairs with zero = 0


def test_weights_ignore_the_global_model() -> None:
    a, b = _model([1.0, 0.0, 0.0]), _model([1.0, 1.0, 0.0])
    assert weights_similarity([a, b]) == weights_similarity([a, b], GLOBAL)
    assert weights_similarity([a, b]) == pytest.approx(1 / math.sqrt(2))


@pytest.mark.parametrize("name", UPDATES)
def test_updates_need_the_global_model(name: str) -> None:
    a = _model([1.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="pass global_model"):
        get_similarity(name)([a, a], None)


@pytest.mark.parametrize("name", NAMES)
def test_bad_input(name: str) -> None:
    measure = get_similarity(name)
    a = _model([1.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="at least two models"):
        measure([a], GLOBAL)
    with pytest.raises(TypeError, match="sequence of models"):
        measure(np.zeros((2, 3)), GLOBAL)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="has 4 arrays but models\\[0\\] has 5"):
        measure([a, a[:4]], GLOBAL)
    with pytest.raises(ValueError, match="array 2 has shape \\(1, 2\\)"):
        measure([a, _model([1.0, 0.0])], GLOBAL)
    nan = _model([1.0, float("nan"), 0.0])
    with pytest.raises(ValueError, match="models\\[1\\] contains NaN or Inf"):
        measure([a, nan], GLOBAL)


@pytest.mark.parametrize("name", UPDATES)
def test_global_model_layout_is_checked(name: str) -> None:
    a = _model([1.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="global_model: array 2 has shape"):
        get_similarity(name)([a, a], _model([0.0, 0.0]))


@pytest.mark.parametrize("name", ["weights", "last_layer_updates", "kernel_updates"])
def test_last_layer_needs_a_kernel(name: str) -> None:
    flat = [np.ones(3, np.float32)]
    with pytest.raises(ValueError, match="no array with ndim >= 2"):
        get_similarity(name)([flat, flat], [np.zeros(3, np.float32)])


def test_model_updates_need_a_float_array() -> None:
    counter = [np.asarray([3], np.int64)]
    with pytest.raises(ValueError, match="no floating-point array"):
        model_update_similarity([counter, counter], counter)


def test_mean_pairwise_cosine_bad_input() -> None:
    with pytest.raises(ValueError, match="at least two rows"):
        mean_pairwise_cosine(np.ones((1, 3)))
    with pytest.raises(ValueError, match="at least two rows"):
        mean_pairwise_cosine(np.ones(3))
    with pytest.raises(TypeError, match="real numbers"):
        mean_pairwise_cosine(np.array([["a", "b"], ["c", "d"]]))


# ------------------------------------------- the measurement runner's strategy
def test_recording_fedavg_measures_benign_replies_and_aggregates() -> None:
    from conftest import (
        NODES,
        FakeGrid,
        client_model,
        fedavg,
        global_model,
        make_reply,
        run_round,
        set_task_identity,
    )

    from simulations.similarity.app import SimilarityFedAvg

    set_task_identity()
    strategy = SimilarityFedAvg(
        {1, 2, 3, 4}, fraction_evaluate=0.0, min_available_nodes=1, min_train_nodes=1
    )
    arrays, _ = run_round(strategy, 1)
    (record,) = strategy.records
    benign = [client_model(n) for n in (1, 2, 3, 4)]
    every = [client_model(n) for n in NODES]
    assert record["round"] == 1
    assert (record["num_benign"], record["num_replies"]) == (4, 6)
    for name in NAMES:
        measure = get_similarity(name)
        assert record["benign"][name] == pytest.approx(measure(benign, global_model()))
        assert record["all"][name] == pytest.approx(measure(every, global_model()))
    # FedAvg's aggregate is unchanged by the recording.
    for got, want in zip(arrays.to_numpy_ndarrays(), fedavg(NODES)):
        np.testing.assert_allclose(got, want, rtol=1e-5)

    # An error reply is left out; one benign reply left: nothing to measure.
    def reply(node: int, rnd: int, msg: object) -> object:
        if node in (2, 3, 4):
            return make_reply(node, error="crashed")
        return make_reply(node, client_model(node), 10)

    run_round(strategy, 2, FakeGrid(reply=reply))
    assert strategy.records[1]["num_benign"] == 1
    assert strategy.records[1]["benign"] == {}


def test_every_measure_has_a_range() -> None:
    assert set(SIM_RANGES) == set(available_similarities())
    for name in available_similarities():
        lo, hi = similarity_range(name)
        assert -1.0 <= lo < hi <= 1.0
    assert similarity_range("weights") == (0.5, 1.0)  # the paper's
    with pytest.raises(ValueError, match="unknown similarity"):
        similarity_range("nope")


# ------------------------------------------------- tables from the raw files
def _raw(tmp: Path, dataset: str, alpha: float | None, sims: dict[str, float]) -> None:
    rounds = [{"round": r, "benign": sims, "all": sims} for r in (1, 2)]
    result = {
        "dataset": dataset,
        "model": "m",
        "partition": "iid" if alpha is None else "dirichlet",
        "alpha": alpha,
        "unlearning_round": 2,
        "test_acc": 0.5,
        "similarity": sims,
        "rounds": rounds,
    }
    name = f"{dataset}-{'iid' if alpha is None else alpha}.json"
    (tmp / name).write_text(json.dumps(result))


def test_tables_map_similarity_to_rate(tmp_path: Path) -> None:
    from fedup_flwr import adaptive_pruning_rate
    from simulations.similarity import table

    high = dict.fromkeys(available_similarities(), 1.0)
    low = dict.fromkeys(available_similarities(), 0.5)
    for d in ("fashion_mnist", "cifar10"):
        _raw(tmp_path, d, None, high)
        _raw(tmp_path, d, 0.5, low)
    order = [(r["dataset"], r["alpha"]) for r in table.load_results(tmp_path)]
    assert order[:2] == [("fashion_mnist", None), ("fashion_mnist", 0.5)]
    sep = table.separation(tmp_path)
    for m in available_similarities():
        lo, hi = SIM_RANGES[m]
        p_low = adaptive_pruning_rate(0.5, sim_min=lo, sim_max=hi)
        assert sep[m]["cifar10"]["p_iid"] == pytest.approx(0.15)
        assert sep[m]["cifar10"]["p_dir05"] == pytest.approx(p_low)
        assert sep[m]["cifar10"]["sim_dir05"] == 0.5
    with pytest.raises(ValueError, match="at must be"):
        table.separation(tmp_path, at="2")
    # weights: 0.5 is sim_min, P = p_min = 1%: separates with the default range
    rows = table.separation_table(tmp_path).splitlines()
    weights = next(r for r in rows if r.startswith("| `weights` | T |"))
    assert "| 1.000 / 0.500 | 15.0% / 1.0% |" in weights
    assert "| yes | " in weights
    text = table.similarity_table(tmp_path)
    assert "| fashion_mnist (m) | Dir(0.5) | 2 | 50.0 | 0.500 / 1.0% |" in text
    table.plot_similarity(tmp_path / "s.png", tmp_path)
    table.plot_rounds(tmp_path / "r.png", tmp_path)
    assert (tmp_path / "s.png").stat().st_size > 0
    assert (tmp_path / "r.png").stat().st_size > 0


def test_separating_ranges() -> None:
    from fedup_flwr import adaptive_pruning_rate
    from simulations.similarity.table import separating_ranges

    found = separating_ranges([(0.9, 0.6), (0.8, 0.5)], step=0.05)
    assert found and (0.5, 0.9) in found
    for lo, hi in found:
        for s_iid, s_dir in [(0.9, 0.6), (0.8, 0.5)]:
            p_iid = adaptive_pruning_rate(s_iid, sim_min=lo, sim_max=hi)
            assert adaptive_pruning_rate(s_dir, sim_min=lo, sim_max=hi) <= p_iid / 2
    # Non-IID as similar as IID on one dataset: no increasing map separates.
    assert separating_ranges([(0.9, 0.6), (0.5, 0.5)], step=0.05) == []
