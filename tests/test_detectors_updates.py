"""Tests of RoundUpdates: the lazily computed updates every detector reads."""

from __future__ import annotations

import doctest
import tracemalloc

import numpy as np
import pytest

from fedup_flwr.detectors import get_detector
from fedup_flwr.detectors import updates as updates_mod
from fedup_flwr.detectors.updates import RoundUpdates, last_kernel_index


def float32_model(rng: np.random.Generator) -> list[np.ndarray]:
    """A small CNN-like layout: kernels, biases and an integer counter."""
    return [
        rng.standard_normal((8, 3, 3, 3)).astype(np.float32),
        rng.standard_normal(8).astype(np.float32),
        np.array(5, dtype=np.int64),  # like BatchNorm's num_batches_tracked
        rng.standard_normal((10, 72)).astype(np.float32),
        rng.standard_normal(10).astype(np.float32),
    ]


def replies_for(
    glob: list[np.ndarray], n: int, rng: np.random.Generator
) -> dict[int, list[np.ndarray]]:
    return {
        100 + 3 * i: [
            (a + rng.standard_normal(a.shape)).astype(a.dtype)
            if a.dtype.kind == "f"
            else a + i
            for a in glob
        ]
        for i in range(n)
    }


def dense_updates(
    replies: dict[int, list[np.ndarray]], glob: list[np.ndarray], indices: list[int]
) -> np.ndarray:
    """The reference: every update flattened in float64, one row per node."""
    return np.stack(
        [
            np.concatenate(
                [
                    (glob[i].astype(np.float64) - replies[node][i]).ravel()
                    for i in indices
                ]
            )
            for node in sorted(replies)
        ]
    )


def test_node_order_dtype_and_floating_arrays() -> None:
    rng = np.random.default_rng(0)
    glob = float32_model(rng)
    replies = replies_for(glob, 4, rng)
    updates = RoundUpdates(replies, glob)
    assert updates.node_ids == sorted(replies)
    assert len(updates) == 4
    assert updates.dtype == np.float32  # never widened for a float32 model
    assert updates.floating == [0, 1, 3, 4]  # the integer counter is skipped
    float64 = RoundUpdates(replies, [a.astype(np.float64) for a in glob])
    assert float64.dtype == np.float64  # nor narrowed for a float64 one


def test_stack_is_global_minus_local() -> None:
    rng = np.random.default_rng(1)
    glob = float32_model(rng)
    replies = replies_for(glob, 3, rng)
    updates = RoundUpdates(replies, glob)
    stacked = updates.stack(3)
    assert stacked.shape == (3, 720) and stacked.dtype == np.float32
    np.testing.assert_allclose(stacked, dense_updates(replies, glob, [3]), rtol=1e-6)


@pytest.mark.parametrize("n", [2, 5, 40])
def test_gram_matches_dense_inner_products(
    n: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # small chunks, so that chunks straddle array boundaries
    monkeypatch.setattr(updates_mod, "MIN_CHUNK_COLUMNS", 7)
    rng = np.random.default_rng(n)
    glob = [a.astype(np.float64) for a in float32_model(rng)]
    replies = replies_for(glob, n, rng)
    updates = RoundUpdates(replies, glob)
    dense = dense_updates(replies, glob, updates.floating)
    gram = dense @ dense.T
    np.testing.assert_allclose(updates.gram(), gram, rtol=1e-10)
    np.testing.assert_allclose(updates.norms(), np.linalg.norm(dense, axis=1))
    norms = np.linalg.norm(dense, axis=1)
    np.testing.assert_allclose(
        updates.cosine_similarities(), gram / np.outer(norms, norms), atol=1e-12
    )
    squared = ((dense[:, None, :] - dense[None, :, :]) ** 2).sum(axis=2)
    np.testing.assert_allclose(updates.squared_distances(), squared, rtol=1e-9)
    only_last = dense_updates(replies, glob, [3, 4])
    np.testing.assert_allclose(updates.gram([3, 4]), only_last @ only_last.T)


def test_zero_update_has_cosine_zero() -> None:
    glob = [np.ones((2, 3), dtype=np.float32)]
    replies = {1: [np.ones((2, 3))], 2: [np.zeros((2, 3))], 3: [-np.ones((2, 3))]}
    cosines = RoundUpdates(replies, glob).cosine_similarities()
    assert cosines[0].tolist() == [0.0, 0.0, 0.0]
    assert cosines[1, 2] == pytest.approx(1.0)


def test_rejects_mismatched_replies() -> None:
    glob = [np.zeros((2, 2)), np.zeros(2)]
    with pytest.raises(ValueError, match="arrays"):
        RoundUpdates({1: [np.zeros((2, 2))]}, glob)
    with pytest.raises(ValueError, match="shape"):
        RoundUpdates({1: [np.zeros((2, 2)), np.zeros(3)]}, glob)


def test_last_kernel_index_uses_prunable_arrays() -> None:
    from fedup_flwr import core

    arrays = [np.zeros((3, 2)), np.zeros(3), np.zeros((10, 3, 2)), np.zeros(10)]
    assert core.last_kernel_index(arrays) == 2
    assert core.last_kernel_index([np.zeros(3), np.zeros(())]) is None
    # One definition: the detectors' import is the core function.
    assert last_kernel_index is core.last_kernel_index


@pytest.mark.parametrize(
    "name",
    [
        "flame_cluster",
        "cosine_history",
        "foolsgold",
        "krum_score",
        "cosine_outlier",
        "last_layer_cluster",
    ],
)
def test_detectors_allocate_at_most_one_model_copy(name: str) -> None:
    """Peak memory of detect beyond the replies, on 12 float32 replies.

    The model (150k floats, a small last layer as in real classifiers) is
    large enough for the fixed costs (a minimum chunk width, HDBSCAN's
    ``n x n`` arrays) to stay below one copy.
    """
    rng = np.random.default_rng(3)
    glob = [
        rng.standard_normal((256, 64, 3, 3)).astype(np.float32),
        rng.standard_normal(256).astype(np.float32),
        rng.standard_normal((10, 256)).astype(np.float32),
        rng.standard_normal(10).astype(np.float32),
    ]
    replies = replies_for(glob, 12, rng)
    copy = sum(a.nbytes for a in glob)
    get_detector(name).detect(1, replies, glob)  # lazy imports are not per round
    detector = get_detector(name)
    tracemalloc.start()
    try:
        detector.detect(1, replies, glob)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak <= copy


def test_module_docstring_examples() -> None:
    result = doctest.testmod(updates_mod)
    assert result.failed == 0 and result.attempted >= 3
