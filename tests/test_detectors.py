"""Tests of the built-in detectors and their registry (fedup_flwr.detectors)."""

from __future__ import annotations

import doctest
import json
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

import fedup_flwr.detectors as detectors_pkg
from fedup_flwr.detector import Detector, OracleDetector
from fedup_flwr.detectors import (
    BaseDetector,
    CosineHistoryDetector,
    CosineOutlierDetector,
    FlameClusterDetector,
    KrumScoreDetector,
    LastLayerClusterDetector,
    RoundUpdates,
    available_detectors,
    get_detector,
    register_detector,
)
from fedup_flwr.detectors import base as base_mod
from fedup_flwr.detectors import cosine_outlier as cosine_mod
from fedup_flwr.detectors import krum_score as krum_mod
from fedup_flwr.detectors import last_layer_cluster as cluster_mod
from fedup_flwr.detectors import registry as registry_mod

Array = NDArray[np.float64]
Model = list[Array]

CLASSES, FEATURES = 10, 4
SOURCE, TARGET = 3, 5


def global_model() -> Model:
    """A "model" of a Linear layer: kernel (10, 4) and bias (10,)."""
    rng = np.random.default_rng(1234)
    return [rng.standard_normal((CLASSES, FEATURES)), rng.standard_normal(CLASSES)]


def honest_update() -> Model:
    """Update (global - local) of an honest node: rows SOURCE and TARGET move."""
    kernel = np.zeros((CLASSES, FEATURES))
    kernel[SOURCE] = [1.0, 0.5, -0.5, 0.2]
    kernel[TARGET] = [-0.4, 0.8, 0.3, -0.6]
    bias = np.zeros(CLASSES)
    bias[SOURCE], bias[TARGET] = 0.3, -0.2
    return [kernel, bias]


def flipper_update() -> Model:
    """A label flipper: the SOURCE and TARGET rows move the opposite way."""
    return [-a for a in honest_update()]


def noisy(update: Model, rng: np.random.Generator, scale: float) -> Model:
    return [a + scale * rng.standard_normal(a.shape) for a in update]


def replies_from(updates: Mapping[int, Model], glob: Model) -> dict[int, Model]:
    """Local models such that ``global - local`` is the given update."""
    return {
        node: [g - u for g, u in zip(glob, upd, strict=True)]
        for node, upd in updates.items()
    }


def round_with(
    honest: int,
    bad: Sequence[Model],
    *,
    seed: int = 0,
    noise: float = 0.02,
    bad_noise: float = 0.02,
) -> tuple[dict[int, Model], Model, set[int]]:
    """``honest`` noisy honest nodes (ids 0..) then the ``bad`` ones."""
    rng = np.random.default_rng(seed)
    glob = global_model()
    updates = {i: noisy(honest_update(), rng, noise) for i in range(honest)}
    bad_ids = set()
    for j, upd in enumerate(bad):
        updates[honest + j] = noisy(upd, rng, bad_noise)
        bad_ids.add(honest + j)
    return replies_from(updates, glob), glob, bad_ids


def identical_round(n: int = 6) -> tuple[dict[int, Model], Model]:
    glob = global_model()
    return replies_from({i: honest_update() for i in range(n)}, glob), glob


def assert_scores_separate(
    det: Any, flagged: set[int], replies: Mapping[int, Any]
) -> None:
    """Scores cover every node, are finite, and flagged nodes score highest."""
    assert set(det.scores) == set(replies)
    assert all(isinstance(s, float) and np.isfinite(s) for s in det.scores.values())
    unflagged = [det.scores[n] for n in replies if n not in flagged]
    assert min(det.scores[n] for n in flagged) > max(unflagged)


ALL_DETECTORS = [
    LastLayerClusterDetector,
    CosineOutlierDetector,
    KrumScoreDetector,
    FlameClusterDetector,
]


# ------------------------------------------------------------------ base rules
class _FlagAll(BaseDetector):
    """Flags every node; a node's score is its id."""

    name = "flag_all"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.seen_updates: RoundUpdates | None = None

    def _score_and_flag(
        self, server_round: int, updates: RoundUpdates
    ) -> tuple[dict[int, float], set[int]]:
        self.seen_updates = updates
        return {n: float(n) for n in updates.node_ids}, set(updates.node_ids)


@pytest.mark.parametrize("n", [3, 4, 5, 6, 7, 8])
def test_base_caps_to_highest_scoring_fewer_than_half(n: int) -> None:
    glob = global_model()
    replies = {10 + i: glob for i in range(n)}
    flagged = _FlagAll().detect(1, replies, glob)
    keep = int(np.ceil(n / 2)) - 1
    assert len(flagged) == keep
    assert 2 * len(flagged) < n
    assert flagged == set(sorted(replies)[-keep:])  # highest ids = highest scores


def test_base_passes_global_minus_local_updates() -> None:
    glob = global_model()
    rng = np.random.default_rng(5)
    replies = {i: [g + rng.standard_normal(g.shape) for g in glob] for i in range(3)}
    det = _FlagAll()
    det.detect(1, replies, glob)
    seen = det.seen_updates
    assert seen is not None and seen.node_ids == [0, 1, 2]
    for index, g in enumerate(glob):
        stacked = seen.stack(index)
        assert stacked.dtype == np.float64
        for row, node in enumerate(seen.node_ids):
            np.testing.assert_allclose(stacked[row], (g - replies[node][index]).ravel())


def test_base_rejects_mismatched_replies() -> None:
    glob = global_model()
    with pytest.raises(ValueError, match="arrays"):
        _FlagAll().detect(1, {1: glob, 2: glob, 3: glob[:1]}, glob)
    with pytest.raises(ValueError, match="shape"):
        _FlagAll().detect(1, {1: glob, 2: glob, 3: [glob[0].T, glob[1]]}, glob)


def test_base_validates_arguments() -> None:
    with pytest.raises(ValueError):
        _FlagAll(min_replies=0)
    with pytest.raises(TypeError):
        _FlagAll(min_replies=2.5)
    with pytest.raises(TypeError):
        _FlagAll(seed="1")


def test_base_state_is_empty_by_default() -> None:
    det = LastLayerClusterDetector()
    assert det.state_dict() == {}
    det.load_state_dict({})  # accepted


# ------------------------------------------------------- rules for every detector
@pytest.mark.parametrize("cls", ALL_DETECTORS)
def test_fewer_than_three_replies_flags_nothing(cls: type[BaseDetector]) -> None:
    outlier = [10.0 * a for a in flipper_update()]
    replies, glob, _ = round_with(1, [outlier])
    det = cls()
    assert det.detect(1, replies, glob) == set()
    assert set(det.scores) == set(replies)
    assert det.state_dict() == cls().state_dict()  # nothing accumulated
    # the same outlier among enough replies is flagged ...
    four, glob, bad = round_with(3, [outlier])
    assert cls().detect(1, four, glob) == bad
    # ... unless min_replies asks for more
    strict = cls(min_replies=5)
    assert strict.detect(1, four, glob) == set()
    assert set(strict.scores) == set(four)


@pytest.mark.parametrize("cls", ALL_DETECTORS)
def test_identical_clients_are_not_flagged(cls: type[BaseDetector]) -> None:
    replies, glob = identical_round(6)
    det = cls()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. no k-means ConvergenceWarning
        assert det.detect(1, replies, glob) == set()
    assert set(det.scores) == set(replies)
    assert len(set(det.scores.values())) == 1  # all the same score


@pytest.mark.parametrize("cls", ALL_DETECTORS)
def test_deterministic_given_seed(cls: type[BaseDetector]) -> None:
    replies, glob, _ = round_with(6, [flipper_update(), flipper_update()], seed=3)
    first, second = cls(seed=7), cls(seed=7)
    flagged_a = first.detect(1, replies, glob)
    scores_a = dict(first.scores)
    flagged_b = second.detect(1, replies, glob)
    assert flagged_a == flagged_b
    assert first.scores == second.scores
    again = cls(seed=7)
    assert again.detect(1, replies, glob) == flagged_a
    assert again.scores == scores_a


@pytest.mark.parametrize("cls", [*ALL_DETECTORS, CosineHistoryDetector])
def test_detectors_satisfy_protocol(cls: type[BaseDetector]) -> None:
    assert isinstance(cls(), Detector)


# ------------------------------------------------------------ last_layer_cluster
def test_cluster_flags_minority_of_label_flippers() -> None:
    replies, glob, bad = round_with(7, [flipper_update(), flipper_update()], seed=11)
    det = LastLayerClusterDetector()
    flagged = det.detect(1, replies, glob)
    assert flagged == bad
    assert det.classes == (SOURCE, TARGET)
    assert_scores_separate(det, flagged, replies)


def test_cluster_flags_single_outlier() -> None:
    outlier = honest_update()
    outlier[0][SOURCE] *= -1.0  # only the source row moves the wrong way
    replies, glob, bad = round_with(6, [outlier], seed=2)
    det = LastLayerClusterDetector()
    flagged = det.detect(1, replies, glob)
    assert flagged == bad
    assert_scores_separate(det, flagged, replies)


def test_cluster_uses_whole_layer_for_two_outputs() -> None:
    rng = np.random.default_rng(4)
    glob = [rng.standard_normal((2, 4)), rng.standard_normal(2)]
    step = np.array([[1.0, -0.5, 0.2, 0.7], [-1.0, 0.5, -0.2, -0.7]])
    updates = {
        i: [step + 0.02 * rng.standard_normal((2, 4)), np.zeros(2)] for i in range(5)
    }
    updates[5] = [-step, np.zeros(2)]
    det = LastLayerClusterDetector()
    assert det.detect(1, replies_from(updates, glob), glob) == {5}
    assert det.classes == (0, 1)


def test_cluster_honest_noise_is_not_flagged_unless_guard_disabled() -> None:
    replies, glob, _ = round_with(8, [], seed=9, noise=0.05)
    guarded = LastLayerClusterDetector()
    assert guarded.detect(1, replies, glob) == set()
    assert set(guarded.scores) == set(replies)
    # LFighter itself always drops one cluster:
    plain = LastLayerClusterDetector(max_centroid_similarity=None)
    flagged = plain.detect(1, replies, glob)
    assert flagged
    assert 2 * len(flagged) < len(replies)


def test_cluster_never_flags_half() -> None:
    rng = np.random.default_rng(21)
    glob = global_model()
    updates: dict[int, Model] = {}
    for i in (0, 1):  # a dense pair pointing one way
        updates[i] = noisy(flipper_update(), rng, 0.001)
    for i in (2, 3):  # a loose pair pointing the other way
        upd = honest_update()
        upd[0][[SOURCE, TARGET]] += 0.35 * rng.standard_normal((2, FEATURES))
        updates[i] = upd
    replies = replies_from(updates, glob)

    raw_det = LastLayerClusterDetector()
    _, raw = raw_det._score_and_flag(1, RoundUpdates(replies, glob))
    assert raw == {0, 1}  # the raw LFighter decision flags half

    det = LastLayerClusterDetector()
    flagged = det.detect(1, replies, glob)
    assert len(flagged) == 1 and flagged <= {0, 1}
    (kept,) = flagged
    assert det.scores[kept] >= det.scores[({0, 1} - flagged).pop()]


def test_cluster_validates_arguments() -> None:
    with pytest.raises(ValueError):
        LastLayerClusterDetector(max_centroid_similarity=1.5)
    with pytest.raises(ValueError):
        LastLayerClusterDetector(n_init=0)


def test_cluster_model_without_kernel_flags_nothing() -> None:
    glob = [np.zeros(5)]
    replies = {i: [np.full(5, float(i))] for i in range(5)}
    det = LastLayerClusterDetector()
    assert det.detect(1, replies, glob) == set()
    assert set(det.scores) == set(replies)


# ---------------------------------------------------------------- cosine_outlier
def test_cosine_flags_obvious_outlier() -> None:
    replies, glob, bad = round_with(6, [flipper_update()], seed=5)
    det = CosineOutlierDetector()
    flagged = det.detect(1, replies, glob)
    assert flagged == bad
    assert_scores_separate(det, flagged, replies)
    (outlier,) = bad
    assert det.scores[outlier] > 1.5  # cosine distance to the median, near 2


def test_cosine_never_flags_half() -> None:
    glob = global_model()
    base = honest_update()
    rng = np.random.default_rng(8)
    updates = {0: base, 1: base, 2: noisy(base, rng, 0.3), 3: noisy(base, rng, 0.9)}
    replies = replies_from(updates, glob)
    _, raw = CosineOutlierDetector(k=0.0)._score_and_flag(
        1, RoundUpdates(replies, glob)
    )
    assert raw == {2, 3}  # with k = 0 the raw decision flags half

    det = CosineOutlierDetector(k=0.0)
    flagged = det.detect(1, replies, glob)
    assert flagged == {3}  # the highest-scoring of the two
    assert det.scores[3] > det.scores[2] > det.scores[0] == det.scores[1]


def test_cosine_accumulates_and_state_round_trip() -> None:
    glob = global_model()
    rng = np.random.default_rng(13)
    det = CosineOutlierDetector()
    for rnd in (1, 2, 3):
        updates = {i: noisy(honest_update(), rng, 0.02) for i in range(6)}
        updates[3] = noisy(flipper_update(), rng, 0.02)
        assert det.detect(rnd, replies_from(updates, glob), glob) == {3}
    state = json.loads(json.dumps(det.state_dict()))  # JSON-friendly
    assert state["nodes"] == [0, 1, 2, 3, 4, 5]
    assert state["counts"] == [3] * 6

    # round 4: everybody identical; only the history of node 3 is suspicious
    replies4, _ = identical_round(6)
    restored = CosineOutlierDetector()
    restored.load_state_dict(state)
    flagged_restored = restored.detect(4, replies4, glob)
    flagged_original = det.detect(4, replies4, glob)
    assert flagged_original == {3}
    assert flagged_restored == flagged_original
    assert restored.scores == pytest.approx(det.scores)
    state_r, state_o = restored.state_dict(), det.state_dict()
    assert state_r["nodes"] == state_o["nodes"]
    assert state_r["counts"] == state_o["counts"] == [4] * 6
    assert state_r["sums"] == pytest.approx(state_o["sums"])
    similarity = restored.accumulated_similarity(3)
    assert similarity is not None and similarity < -0.4  # (3 * -1 + 1) / 4

    fresh = CosineOutlierDetector()
    assert fresh.detect(4, replies4, glob) == set()  # history is what flags 3


def test_cosine_too_few_replies_reports_accumulated_scores() -> None:
    replies, glob, _ = round_with(5, [flipper_update()], seed=6)
    det = CosineOutlierDetector()
    det.detect(1, replies, glob)
    before = det.state_dict()
    two = {n: replies[n] for n in (0, 5)}
    assert det.detect(2, two, glob) == set()
    assert det.state_dict() == before
    assert det.scores[5] > 1.5 and det.scores[0] < 0.1


def test_cosine_load_state_rejects_bad_state() -> None:
    det = CosineOutlierDetector()
    with pytest.raises(ValueError):
        det.load_state_dict({"nodes": [1, 2], "sums": [0.5], "counts": [1, 1]})
    with pytest.raises(ValueError):
        det.load_state_dict({"nodes": [1], "sums": [0.5], "counts": [0]})
    det.load_state_dict({"nodes": [1], "sums": [0.5], "counts": [2]})
    assert det.accumulated_similarity(1) == 0.25
    det.load_state_dict({})
    assert det.accumulated_similarity(1) is None


def test_cosine_validates_arguments() -> None:
    with pytest.raises(ValueError):
        CosineOutlierDetector(k=-1.0)
    with pytest.raises(ValueError):
        CosineOutlierDetector(atol=float("nan"))


# -------------------------------------------------------------------- krum_score
def brute_force_krum(vectors: Array, f: int) -> Array:
    n = len(vectors)
    out = np.empty(n)
    for i in range(n):
        d = sorted(
            float(np.sum((vectors[i] - vectors[j]) ** 2)) for j in range(n) if j != i
        )
        out[i] = sum(d[: n - f - 2])
    return out


def test_krum_scores_match_definition() -> None:
    replies, glob, _ = round_with(5, [flipper_update()], seed=17, noise=0.3)
    det = KrumScoreDetector(f=1)
    det.detect(1, replies, glob)
    nodes = sorted(replies)
    vectors = np.stack(
        [
            np.concatenate(
                [(g - loc).ravel() for g, loc in zip(glob, replies[n], strict=True)]
            )
            for n in nodes
        ]
    )
    expected = brute_force_krum(vectors, 1)
    np.testing.assert_allclose([det.scores[n] for n in nodes], expected, rtol=1e-9)


def test_krum_flags_obvious_outlier() -> None:
    replies, glob, bad = round_with(5, [[3.0 * a for a in honest_update()]], seed=4)
    det = KrumScoreDetector()
    flagged = det.detect(1, replies, glob)
    assert flagged == bad
    assert_scores_separate(det, flagged, replies)


def test_krum_never_flags_half() -> None:
    outliers = [[s * a for a in honest_update()] for s in (-4.0, 6.0, 9.0)]
    replies, glob, bad = round_with(3, outliers, seed=12)
    _, raw = KrumScoreDetector(f=3)._score_and_flag(1, RoundUpdates(replies, glob))
    assert raw == bad  # f = 3 of 6: the raw decision flags half

    det = KrumScoreDetector(f=3)
    flagged = det.detect(1, replies, glob)
    assert len(flagged) == 2 and flagged <= bad
    dropped = (bad - flagged).pop()
    assert all(det.scores[n] >= det.scores[dropped] for n in flagged)


def test_krum_undefined_f_flags_nothing() -> None:
    replies, glob, _ = round_with(3, [[5.0 * a for a in honest_update()]], seed=1)
    det = KrumScoreDetector(f=2)  # n - f - 2 = 0
    assert det.detect(1, replies, glob) == set()
    assert set(det.scores) == set(replies)
    assert KrumScoreDetector(f=1).detect(1, replies, glob) == {3}


def test_krum_f_zero_only_scores() -> None:
    replies, glob, _ = round_with(5, [[5.0 * a for a in honest_update()]], seed=1)
    det = KrumScoreDetector(f=0)
    assert det.detect(1, replies, glob) == set()
    assert max(det.scores, key=det.scores.__getitem__) == 5


def test_krum_tie_at_boundary_not_broken() -> None:
    glob = global_model()
    far = [8.0 * a for a in honest_update()]
    updates = {
        0: honest_update(),
        1: honest_update(),
        2: honest_update(),
        3: far,
        4: far,
    }
    det = KrumScoreDetector(f=1)  # two equally far nodes, only one may be flagged
    assert det.detect(1, replies_from(updates, glob), glob) == set()
    assert det.scores[3] == det.scores[4] > det.scores[0]


def test_krum_validates_f() -> None:
    with pytest.raises(ValueError):
        KrumScoreDetector(f=-1)
    with pytest.raises(TypeError):
        KrumScoreDetector(f=1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        KrumScoreDetector(f=True)


# ---------------------------------------------------------------------- registry
def test_registry_has_builtins() -> None:
    names = available_detectors()
    assert {"last_layer_cluster", "cosine_outlier", "krum_score", "oracle"} <= set(
        names
    )
    assert names == sorted(names)
    assert isinstance(get_detector("last_layer_cluster"), LastLayerClusterDetector)
    assert isinstance(get_detector("cosine_outlier"), CosineOutlierDetector)
    krum = get_detector("krum_score", f=2, seed=3)
    assert isinstance(krum, KrumScoreDetector) and krum.f == 2 and krum.seed == 3
    oracle = get_detector("oracle", schedule={2: [7]})
    assert isinstance(oracle, OracleDetector)
    assert oracle.detect(2, {7: [], 8: [], 9: []}, []) == {7}


def test_registry_rejects_duplicates(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry_mod, "_REGISTRY", dict(registry_mod._REGISTRY))
    with pytest.raises(ValueError, match="already registered"):
        register_detector("krum_score", KrumScoreDetector)

    @register_detector("test_only_detector")
    class Mine(KrumScoreDetector):
        pass

    assert isinstance(get_detector("test_only_detector"), Mine)
    with pytest.raises(ValueError, match="already registered"):

        @register_detector("test_only_detector")
        class Again(KrumScoreDetector):
            pass

    assert isinstance(get_detector("test_only_detector"), Mine)  # unchanged
    with pytest.raises(ValueError):
        register_detector("  ", Mine)


def test_registry_unknown_name_lists_available() -> None:
    with pytest.raises(KeyError) as key_err:
        get_detector("no_such_detector")
    message = str(key_err.value)
    assert "no_such_detector" in message
    for name in available_detectors():
        assert name in message
    with pytest.raises(ValueError):
        get_detector("no_such_detector")


def test_module_docstring_examples() -> None:
    for module in (
        detectors_pkg,
        registry_mod,
        base_mod,
        cluster_mod,
        cosine_mod,
        krum_mod,
    ):
        result = doctest.testmod(module)
        assert result.failed == 0, module.__name__
    total = sum(
        doctest.testmod(m).attempted for m in (cluster_mod, cosine_mod, krum_mod)
    )
    assert total >= 3


def test_mad_threshold_on_hand_made_values() -> None:
    # median 3, |deviations| 2 1 0 1 97 -> median 1 -> MAD 1.4826.
    values = np.array([1.0, 2.0, 3.0, 4.0, 100.0])
    assert base_mod.mad_threshold(values, k=2.0) == pytest.approx(3 + 2 * 1.4826)
    # All equal: MAD 0, so the floors decide.
    same = np.full(4, 0.5)
    assert base_mod.mad_threshold(same, k=3.0) == 0.5
    assert base_mod.mad_threshold(same, k=3.0, floor=0.1) == pytest.approx(0.6)
    assert base_mod.mad_threshold(same, k=3.0, rel_floor=0.5) == pytest.approx(0.75)
    with pytest.raises(ValueError, match="at least one value"):
        base_mod.mad_threshold(np.array([]), k=1.0)
