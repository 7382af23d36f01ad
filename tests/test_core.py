"""Pure-function tests for fedup_flwr.core on hand-computable arrays."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fedup_flwr import (
    adaptive_pruning_rate,
    apply_mask,
    is_prunable,
    last_layer_similarity,
    prunable_flags,
    prune_count,
    pruning_rate,
    recovery_rounds_bound,
    top_k_mask,
    unlearning_mask,
    weighted_average,
)


def model(k: float, b: float = 0.0) -> list[np.ndarray]:
    return [np.full((2, 2), k, dtype=np.float32), np.full(2, b, dtype=np.float32)]


# ------------------------------------------------------------ unlearning_mask
def test_mask_selects_largest_score_per_array() -> None:
    glob = [np.array([[1.0, 1.0], [1.0, 1.0]]), np.array([1.0, 1.0])]
    benign = [[np.zeros((2, 2)), np.zeros(2)]]
    # Differences 1, 2, 3, 4: the weight with difference 4 scores highest.
    malicious = [[np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([9.0, 9.0])]]
    mask = unlearning_mask(benign, malicious, glob, 0.25)
    assert mask[0].tolist() == [[False, False], [False, True]]
    assert not mask[1].any()  # biases are not prunable by default


def test_mask_scales_by_global_magnitude() -> None:
    # Equal differences; the global weight's magnitude decides.
    glob = [np.array([[0.1, -5.0], [2.0, 0.0]])]
    mask = unlearning_mask([[np.zeros((2, 2))]], [[np.ones((2, 2))]], glob, 0.5)
    assert mask[0].tolist() == [[False, True], [True, False]]


def test_mask_uses_weighted_averages() -> None:
    glob = [np.ones((1, 2))]
    # Benign average weighted 3:1 -> [0.75, 0.25]; malicious is [1, 0].
    # Differences 0.25 and 0.25 unweighted would tie; weighted they differ:
    benign = [[np.array([[1.0, 0.0]])], [np.array([[0.0, 1.0]])]]
    malicious = [[np.array([[1.0, 1.0]])]]
    weighted = unlearning_mask(benign, malicious, glob, 0.5, benign_weights=[3, 1])
    assert weighted[0].tolist() == [[False, True]]
    weighted = unlearning_mask(benign, malicious, glob, 0.5, benign_weights=[1, 3])
    assert weighted[0].tolist() == [[True, False]]


def test_mask_averages_malicious_group() -> None:
    glob = [np.ones((1, 2))]
    malicious = [[np.array([[4.0, 0.0]])], [np.array([[0.0, 2.0]])]]  # avg [2, 1]
    mask = unlearning_mask([[np.zeros((1, 2))]], malicious, glob, 0.5)
    assert mask[0].tolist() == [[True, False]]


def test_prunable_override() -> None:
    m = model(1.0, 1.0)
    mask = unlearning_mask([m], [model(2.0, 3.0)], m, 1.0, prunable=[False, True])
    assert not mask[0].any() and mask[1].all()


def test_rate_zero_prunes_nothing_and_one_everything() -> None:
    m = model(1.0)
    assert not any(x.any() for x in unlearning_mask([m], [model(2.0)], m, 0.0))
    full = unlearning_mask([m], [model(2.0)], m, 1.0)
    assert full[0].all() and not full[1].any()


def test_inputs_are_not_modified() -> None:
    glob, ben, mal = model(1.0), model(0.5), model(2.0)
    copies = [[a.copy() for a in m] for m in (glob, ben, mal)]
    unlearning_mask([ben], [mal], glob, 0.5)
    for original, copy in zip((glob, ben, mal), copies):
        for a, b in zip(original, copy):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("rate", [-0.1, 1.5, float("nan")])
def test_bad_rate(rate: float) -> None:
    with pytest.raises(ValueError, match="rate must be in"):
        unlearning_mask([model(0)], [model(1)], model(1), rate)


def test_empty_groups() -> None:
    with pytest.raises(ValueError, match="benign_models is empty"):
        unlearning_mask([], [model(1)], model(1), 0.1)
    with pytest.raises(ValueError, match="malicious_models is empty"):
        unlearning_mask([model(1)], [], model(1), 0.1)


def test_layout_mismatch() -> None:
    with pytest.raises(ValueError, match="has 1 arrays"):
        unlearning_mask([model(0)[:1]], [model(1)], model(1), 0.1)
    bad = [np.zeros((3, 2)), np.zeros(2)]
    with pytest.raises(ValueError, match=r"shape \(3, 2\)"):
        unlearning_mask([model(0)], [bad], model(1), 0.1)


def test_bad_weights() -> None:
    with pytest.raises(ValueError, match="1 entries for 2 models"):
        unlearning_mask(
            [model(0), model(1)], [model(1)], model(1), 0.1, benign_weights=[1]
        )
    with pytest.raises(ValueError, match="positive"):
        unlearning_mask([model(0)], [model(1)], model(1), 0.1, malicious_weights=[0])


@pytest.mark.parametrize("bad", [np.nan, np.inf])
@pytest.mark.parametrize("where", ["benign", "malicious", "global"])
def test_non_finite_inputs(bad: float, where: str) -> None:
    ben, mal, glob = model(0), model(1), model(1)
    target = {"benign": ben, "malicious": mal, "global": glob}[where]
    target[0][0, 0] = bad
    with pytest.raises(ValueError, match="NaN or Inf"):
        unlearning_mask([ben], [mal], glob, 0.1)


def test_prunable_wrong_length() -> None:
    with pytest.raises(ValueError, match="prunable has 1 flags"):
        unlearning_mask([model(0)], [model(1)], model(1), 0.1, prunable=[True])


shapes = st.lists(
    hnp.array_shapes(min_dims=1, max_dims=3, max_side=6), min_size=1, max_size=4
)


@settings(max_examples=60, deadline=None)
@given(shapes=shapes, rate=st.floats(0, 1), seed=st.integers(0, 2**16))
def test_mask_properties(shapes: list[tuple[int, ...]], rate: float, seed: int) -> None:
    rng = np.random.default_rng(seed)

    def rand() -> list[np.ndarray]:
        return [rng.normal(size=s).astype(np.float32) for s in shapes]

    glob = rand()
    mask = unlearning_mask([rand(), rand()], [rand()], glob, rate)
    assert len(mask) == len(glob)
    for m, g in zip(mask, glob):
        assert m.shape == g.shape and m.dtype == np.bool_
        expected = prune_count(rate, g.size) if g.ndim >= 2 else 0
        assert int(m.sum()) == expected
    pruned = apply_mask(glob, mask)
    for p, m, g in zip(pruned, mask, glob):
        assert np.all(p[m] == 0) and np.array_equal(p[~m], g[~m])


def test_prune_count_reads_rate_as_decimal() -> None:
    assert prune_count(0.1, 30) == 3  # 0.1 * 30 is 3.0000000000000004 in binary
    assert prune_count(0.1, 31) == 4
    assert prune_count(0.0, 10) == 0 and prune_count(1.0, 7) == 7
    assert prune_count(0.15, 1000) == math.ceil(150)


# ----------------------------------------------------------------- apply_mask
def test_apply_mask_zeroes_and_copies() -> None:
    m = model(3.0, 1.0)
    mask = [np.array([[True, False], [False, True]]), np.array([False, False])]
    out = apply_mask(m, mask)
    assert out[0].tolist() == [[0, 3], [3, 0]] and out[1].tolist() == [1, 1]
    assert m[0].tolist() == [[3, 3], [3, 3]]  # input untouched
    assert out[0].dtype == np.float32


def test_apply_mask_validates() -> None:
    with pytest.raises(ValueError, match="mask has 1 arrays"):
        apply_mask(model(1), [np.zeros((2, 2), bool)])
    with pytest.raises(ValueError, match="shape"):
        apply_mask(model(1), [np.zeros((2, 3), bool), np.zeros(2, bool)])
    with pytest.raises(ValueError, match="must be bool"):
        apply_mask(model(1), [np.zeros((2, 2)), np.zeros(2, bool)])


# ------------------------------------------------------ adaptive_pruning_rate
def test_adaptive_pruning_rate_endpoints_and_paper_values() -> None:
    assert adaptive_pruning_rate(0.5) == pytest.approx(0.01)
    assert adaptive_pruning_rate(1.0) == pytest.approx(0.15)
    assert adaptive_pruning_rate(0.2) == pytest.approx(0.01)  # z clipped to 0
    # Section V-B's similarities: SIM 0.99 (z=0.98) and 0.89 (z=0.78). Eq. 5 gives
    # 13.7% and 5.0%; the paper's text rounds the first to "about 10%".
    assert adaptive_pruning_rate(0.99) == pytest.approx(0.14 * 0.98**5 + 0.01)
    assert adaptive_pruning_rate(0.89) == pytest.approx(0.14 * 0.78**5 + 0.01)


def test_adaptive_pruning_rate_is_monotone_and_parametrised() -> None:
    values = [adaptive_pruning_rate(s) for s in np.linspace(0.5, 1.0, 11)]
    assert values == sorted(values)
    assert adaptive_pruning_rate(0.75, gamma=1.0) == pytest.approx(0.01 + 0.14 * 0.5)
    assert adaptive_pruning_rate(0.75, p_min=0.1, p_max=0.1) == pytest.approx(0.1)
    assert adaptive_pruning_rate(
        0.5, sim_min=0.0, sim_max=1.0, gamma=1
    ) == pytest.approx(0.08)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"p_min": 0.2, "p_max": 0.1},
        {"gamma": 0},
        {"sim_min": 1.0, "sim_max": 0.5},
        {"p_max": 2.0},
    ],
)
def test_adaptive_pruning_rate_bad_params(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        adaptive_pruning_rate(0.9, **kwargs)


def test_adaptive_pruning_rate_nan_similarity() -> None:
    with pytest.raises(ValueError, match="finite"):
        adaptive_pruning_rate(float("nan"))


def test_pruning_rate_is_a_deprecated_alias() -> None:
    with pytest.warns(DeprecationWarning, match="adaptive_pruning_rate"):
        old = pruning_rate(0.9, gamma=2.0)
    assert old == adaptive_pruning_rate(0.9, gamma=2.0)
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="finite"):
        pruning_rate(float("nan"))


# ------------------------------------------------------------------ similarity
def test_last_layer_similarity_uses_last_kernel() -> None:
    a = [np.array([[1.0, 0.0]]), np.array([[1.0, 0.0]]), np.array([5.0])]
    b = [np.array([[0.0, 1.0]]), np.array([[0.0, 1.0]]), np.array([-5.0])]
    c = [np.array([[1.0, 0.0]]), np.array([[1.0, 1.0]]), np.array([0.0])]
    assert last_layer_similarity([a, a]) == pytest.approx(1.0)
    assert last_layer_similarity([a, b]) == pytest.approx(0.0)
    # pairs: (a,b)=0, (a,c)=1/sqrt2, (b,c)=1/sqrt2
    assert last_layer_similarity([a, b, c]) == pytest.approx(2 / (3 * math.sqrt(2)))


def test_last_layer_similarity_validates() -> None:
    with pytest.raises(ValueError, match="at least two"):
        last_layer_similarity([model(1)])
    with pytest.raises(ValueError, match="no array with ndim >= 2"):
        last_layer_similarity([[np.ones(2)], [np.ones(2)]])
    with pytest.raises(ValueError, match="NaN or Inf"):
        last_layer_similarity([model(1), model(np.nan)])


# ---------------------------------------------------------------------- bound
def test_recovery_rounds_bound() -> None:
    assert recovery_rounds_bound(34, 0.1) == 4
    assert recovery_rounds_bound(10, 0.3) == 3
    assert recovery_rounds_bound(0, 0.5) == 0
    with pytest.raises(ValueError):
        recovery_rounds_bound(-1, 0.1)
    with pytest.raises(ValueError):
        recovery_rounds_bound(5, 1.2)


def test_weighted_average_overflow_is_reported() -> None:
    big = [np.full((2, 2), 3e38, dtype=np.float32)]
    with pytest.raises(ValueError, match="overflowed"):
        weighted_average([big, big])


def test_weighted_average_blocks_match_numpy() -> None:
    rng = np.random.default_rng(0)
    models = [[rng.normal(size=(300, 500)).astype(np.float32)] for _ in range(3)]
    w = [1.0, 2.0, 5.0]
    got = weighted_average(models, w)[0]
    want = sum(wi * m[0].astype(np.float64) for wi, m in zip(w, models)) / 8
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_apply_mask_keeps_zero_dim_arrays() -> None:
    out = apply_mask(
        [np.array(5, np.int64), np.array(2.0)], [np.array(False), np.array(True)]
    )
    assert isinstance(out[0], np.ndarray) and out[0].shape == () and int(out[0]) == 5
    assert isinstance(out[1], np.ndarray) and float(out[1]) == 0.0


# ---------------------------------------------------------------- prunable
def test_prunable_means_two_or_more_dimensions() -> None:
    kernel, conv = np.zeros((3, 2)), np.zeros((4, 3, 3, 3))
    bias, scalar = np.zeros(3), np.array(5, np.int64)
    assert is_prunable(kernel) and is_prunable(conv)
    assert not is_prunable(bias) and not is_prunable(scalar)
    assert prunable_flags([kernel, bias, conv, scalar]) == [True, False, True, False]
    # unlearning_mask's default is exactly these flags.
    glob = [np.ones((2, 2)), np.ones(2), np.ones((1, 2, 2))]
    mask = unlearning_mask([[np.zeros_like(a) for a in glob]], [glob], glob, 1.0)
    assert [bool(m.any()) for m in mask] == prunable_flags(glob)


# ------------------------------------------------------------------ top_k_mask
def test_top_k_mask_picks_largest_and_breaks_ties_by_lowest_index() -> None:
    score = np.array([3.0, 1.0, 3.0, 2.0, 3.0])
    assert top_k_mask(score, 1).tolist() == [True, False, False, False, False]
    assert top_k_mask(score, 2).tolist() == [True, False, True, False, False]
    assert top_k_mask(score, 4).tolist() == [True, False, True, True, True]
    # Any shape; ties in C order (row by row).
    grid = np.array([[1, 5], [5, 0]])
    assert top_k_mask(grid, 1).tolist() == [[False, True], [False, False]]
    assert top_k_mask(np.zeros(4), 2).tolist() == [True, True, False, False]


def test_top_k_mask_edges_and_bad_input() -> None:
    score = np.arange(6.0).reshape(2, 3)
    assert not top_k_mask(score, 0).any()
    assert top_k_mask(score, 6).all() and top_k_mask(score, 6).shape == (2, 3)
    for k in (-1, 7, 1.5):
        with pytest.raises(ValueError, match="k must be an integer"):
            top_k_mask(score, k)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="NaN"):
        top_k_mask(np.array([1.0, np.nan]), 1)


@settings(max_examples=50, deadline=None)
@given(
    score=hnp.arrays(np.float64, st.integers(1, 40), elements=st.integers(-3, 3)),
    data=st.data(),
)
def test_top_k_mask_matches_a_stable_sort(
    score: np.ndarray, data: st.DataObject
) -> None:
    k = data.draw(st.integers(0, score.size))
    # Reference: stable sort by descending score keeps the lowest index first.
    order = np.argsort(-score, kind="stable")[:k]
    want = np.zeros(score.size, bool)
    want[order] = True
    np.testing.assert_array_equal(top_k_mask(score, k), want)
