"""Tests of flame_cluster and cosine_history on hand-made updates.

A round's updates (``global - local``) are built as in a non-IID federation:
every benign update is a shared task direction, plus the direction of one of
three label groups, plus a larger individual part, scaled by a norm drawn in
``[0.8, 1.2]``; pairwise cosine similarities come out near 0.25-0.45, as on
real CIFAR-10 client models. Attackers pursue another objective (a shared
poison direction, less of the task): a coordinated minority. A boosting
attacker sends a benign-looking update scaled by ``N / M``.
"""

from __future__ import annotations

import doctest
import json
from collections.abc import Collection
from typing import Any

import numpy as np
import pytest

from fedup_flwr.detectors import (
    CosineHistoryDetector,
    FlameClusterDetector,
    RoundUpdates,
    available_detectors,
    get_detector,
)
from fedup_flwr.detectors import cosine_history as history_mod
from fedup_flwr.detectors import flame_cluster as flame_mod

DIM = 4000
SHAPE = (40, 100)
Replies = dict[int, list[np.ndarray]]


def make_round(
    rng: np.random.Generator,
    n: int,
    bad: Collection[int] = (),
    *,
    boost: float | None = None,
    directions: dict[str, np.ndarray] | None = None,
) -> tuple[Replies, list[np.ndarray]]:
    """One round's replies (float32) and the global arrays (zeros).

    ``bad`` nodes add a shared poison direction (or, with ``boost``, send a
    benign update scaled by ``boost``). ``directions`` fixes the task, group
    and poison directions across rounds (drawn here when ``None``).
    """
    if directions is None:
        directions = new_directions(rng)
    task, groups, poison = (
        directions["task"],
        directions["groups"],
        directions["poison"],
    )
    glob = [np.zeros(SHAPE, dtype=np.float32)]
    replies: Replies = {}
    for node in range(n):
        own = 0.8 * groups[node % 3] + 1.5 * rng.standard_normal(DIM)
        if node in bad and boost is None:
            update = 0.3 * task + own + poison
        else:
            update = task + own
        update = update * rng.uniform(0.8, 1.2)
        if node in bad and boost is not None:
            update = boost * update
        replies[node] = [(-update).astype(np.float32).reshape(SHAPE)]
    return replies, glob


def new_directions(rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {
        "task": rng.standard_normal(DIM),
        "groups": rng.standard_normal((3, DIM)),
        "poison": rng.standard_normal(DIM),
    }


ATTACKS = [(10, {7, 8, 9}), (10, {6, 7, 8, 9}), (20, set(range(14, 20)))]


# ----------------------------------------------------------------- flame_cluster
@pytest.mark.parametrize(("n", "bad"), ATTACKS)
def test_flame_flags_coordinated_minority(n: int, bad: set[int]) -> None:
    exact = 0
    for seed in range(6):
        det = FlameClusterDetector()
        flagged = det.detect(1, *make_round(np.random.default_rng(seed), n, bad))
        assert flagged <= bad, f"seed {seed}: benign flagged"
        exact += flagged == bad
        assert min(det.scores[b] for b in bad) > max(
            det.scores[g] for g in range(n) if g not in bad
        )
    assert exact >= 5  # of 6 seeds


@pytest.mark.parametrize("n", [10, 20])
def test_flame_honest_rounds_flag_nobody(n: int) -> None:
    for seed in range(15):
        det = FlameClusterDetector()
        replies, glob = make_round(np.random.default_rng(100 + seed), n)
        assert det.detect(1, replies, glob) == set(), f"seed {seed}"
        assert set(det.scores) == set(replies)
        assert len(det.cluster) > n // 2


@pytest.mark.parametrize(("n", "bad"), [(10, {6, 7, 8, 9}), (20, set(range(11, 20)))])
def test_flame_flags_boosting_attackers_in_the_round(n: int, bad: set[int]) -> None:
    boost = n / len(bad)  # N / M, as model replacement scales its update
    for seed in range(6):
        replies, glob = make_round(np.random.default_rng(seed), n, bad, boost=boost)
        assert FlameClusterDetector().detect(1, replies, glob) == bad, seed
        # their directions are benign: without the norm test nobody is flagged
        no_norm = FlameClusterDetector(norm_ratio=None)
        assert not no_norm.detect(1, replies, glob) & bad


def test_flame_never_flags_half() -> None:
    bad = {5, 6, 7, 8, 9}
    replies, glob = make_round(np.random.default_rng(3), 10, bad, boost=3.0)
    # a norm bound just above the median: the raw decision flags the five
    # nodes above the median norm, the boosted ones
    loose = FlameClusterDetector(norm_ratio=1.0001)
    _, raw = loose._score_and_flag(1, RoundUpdates(replies, glob))
    assert raw == bad
    flagged = loose.detect(1, replies, glob)
    assert len(flagged) == 4 and flagged <= bad
    dropped = (bad - flagged).pop()
    assert all(loose.scores[n] >= loose.scores[dropped] for n in flagged)
    # half of the nodes pursuing another objective is no minority
    for seed in range(4):
        replies, glob = make_round(np.random.default_rng(seed), 10, bad)
        assert len(FlameClusterDetector().detect(1, replies, glob)) < 5


def test_flame_identical_and_zero_updates_flag_nobody() -> None:
    glob = [np.zeros(SHAPE, dtype=np.float32)]
    same = np.random.default_rng(0).standard_normal(SHAPE).astype(np.float32)
    assert (
        FlameClusterDetector().detect(1, {i: [same] for i in range(6)}, glob) == set()
    )
    assert FlameClusterDetector().detect(1, {i: glob for i in range(6)}, glob) == set()


@pytest.mark.parametrize("cls", [FlameClusterDetector, CosineHistoryDetector])
def test_one_or_two_replies_are_scored_not_flagged(cls: type[Any]) -> None:
    rng = np.random.default_rng(2)
    det = cls(min_replies=1)
    for rnd, n in enumerate((1, 2, 1, 2), start=1):
        replies, glob = make_round(rng, n)
        assert det.detect(rnd, replies, glob) == set()
        assert set(det.scores) == set(replies)


def test_flame_validates_arguments() -> None:
    with pytest.raises(ValueError):
        FlameClusterDetector(k=-1.0)
    with pytest.raises(ValueError):
        FlameClusterDetector(min_gap=float("nan"))
    with pytest.raises(ValueError):
        FlameClusterDetector(norm_ratio=1.0)
    assert FlameClusterDetector(norm_ratio=None).norm_ratio is None


# ---------------------------------------------------------------- cosine_history
def history_run(
    rounds: int, n: int, bad_per_round: dict[int, set[int]], *, seed: int = 0
) -> tuple[CosineHistoryDetector, list[set[int]]]:
    """Rounds with fixed directions; ``bad_per_round[r]`` attack in round r."""
    rng = np.random.default_rng(seed)
    directions = new_directions(rng)
    det = CosineHistoryDetector()
    flagged = []
    for rnd in range(1, rounds + 1):
        replies, glob = make_round(
            rng, n, bad_per_round.get(rnd, set()), directions=directions
        )
        flagged.append(det.detect(rnd, replies, glob))
    return det, flagged


@pytest.mark.parametrize(("n", "bad"), ATTACKS)
def test_history_flags_consistent_minority_after_min_rounds(
    n: int, bad: set[int]
) -> None:
    det, flagged = history_run(6, n, dict.fromkeys(range(1, 7), bad))
    assert flagged[0] == flagged[1] == set()  # fewer than min_rounds=3 rounds
    assert flagged[2:] == [bad] * 4
    assert det.rounds_seen(min(bad)) == 6 and det.rounds_seen(999) == 0


def test_history_honest_rounds_flag_nobody() -> None:
    for seed in range(3):
        det, flagged = history_run(8, 10, {}, seed=seed)
        assert flagged == [set()] * 8
        assert set(det.scores) == set(range(10))


def test_history_ignores_a_one_round_outlier() -> None:
    # node 9 attacks in round 2 only; its history over six rounds is benign
    _, flagged = history_run(6, 10, {2: {9}})
    assert all(9 not in f for f in flagged)
    assert flagged == [set()] * 6


def test_history_never_flags_half() -> None:
    bad = {5, 6, 7, 8, 9}
    _, flagged = history_run(5, 10, dict.fromkeys(range(1, 6), bad))
    assert all(len(f) < 5 for f in flagged)


def test_history_state_round_trip() -> None:
    bad = {7, 8, 9}
    rng = np.random.default_rng(5)
    directions = new_directions(rng)
    rounds = [make_round(rng, 10, bad, directions=directions) for _ in range(4)]
    det = CosineHistoryDetector()
    for rnd in (1, 2):
        det.detect(rnd, *rounds[rnd - 1])
    state = json.loads(json.dumps(det.state_dict()))  # JSON-friendly
    assert state["nodes"] == list(range(10)) and state["rounds"] == [2] * 10

    restored = CosineHistoryDetector()
    restored.load_state_dict(state)
    for rnd in (3, 4):
        assert restored.detect(rnd, *rounds[rnd - 1]) == bad
        assert det.detect(rnd, *rounds[rnd - 1]) == bad
        assert restored.scores == pytest.approx(det.scores)
    mine, theirs = restored.state_dict(), det.state_dict()
    for key in ("nodes", "pair_counts", "rounds"):
        assert mine[key] == theirs[key]
    np.testing.assert_allclose(mine["sums"], theirs["sums"], rtol=1e-12)
    fresh = CosineHistoryDetector()
    assert fresh.detect(3, *rounds[2]) == set()  # no history: min_rounds unmet
    restored.load_state_dict({})
    assert restored.state_dict()["nodes"] == []


def test_history_new_nodes_join_and_few_replies_keep_state() -> None:
    rng = np.random.default_rng(9)
    directions = new_directions(rng)
    det = CosineHistoryDetector()
    replies, glob = make_round(rng, 8, directions=directions)
    det.detect(1, replies, glob)
    replies, glob = make_round(rng, 10, directions=directions)  # 8, 9 join
    det.detect(2, replies, glob)
    assert det.rounds_seen(0) == 2 and det.rounds_seen(9) == 1
    before = det.state_dict()
    two = {n: replies[n] for n in (0, 9)}
    assert det.detect(3, two, glob) == set()
    assert det.state_dict() == before
    assert set(det.scores) == {0, 9}


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"nodes": [1, 1]}, "repeat"),
        ({"sums": [[0.0]]}, "x 2"),
        ({"rounds": [1]}, "rounds"),
        ({"pair_counts": [[1, -1], [-1, 1]]}, ">= 0"),
        ({"pair_counts": [[1, 1], [0, 1]]}, "symmetric"),
        ({"pair_counts": [[1, 2], [2, 2]]}, "exceeds"),
        ({"sums": [[1.0, 5.0], [5.0, 1.0]]}, "at most"),
        ({"sums": [[1.0, float("nan")], [float("nan"), 1.0]]}, "finite"),
    ],
)
def test_history_load_state_rejects_bad_state(
    change: dict[str, Any], match: str
) -> None:
    good: dict[str, Any] = {
        "nodes": [1, 2],
        "sums": [[1.0, 0.5], [0.5, 1.0]],
        "pair_counts": [[1, 1], [1, 1]],
        "rounds": [1, 1],
    }
    det = CosineHistoryDetector()
    det.load_state_dict(good)
    with pytest.raises(ValueError, match=match):
        det.load_state_dict({**good, **change})
    assert det.state_dict()["sums"] == good["sums"]  # unchanged on error


def test_history_validates_arguments() -> None:
    with pytest.raises(ValueError):
        CosineHistoryDetector(min_rounds=0)
    with pytest.raises(TypeError):
        CosineHistoryDetector(min_rounds=2.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        CosineHistoryDetector(k=-0.1)
    with pytest.raises(ValueError):
        CosineHistoryDetector(min_gap=-1.0)


# ---------------------------------------------------------------------- registry
def test_registry_knows_the_new_detectors() -> None:
    assert {"flame_cluster", "cosine_history"} <= set(available_detectors())
    flame = get_detector("flame_cluster", norm_ratio=2.5)
    assert isinstance(flame, FlameClusterDetector) and flame.norm_ratio == 2.5
    history = get_detector("cosine_history", min_rounds=4)
    assert isinstance(history, CosineHistoryDetector) and history.min_rounds == 4


def test_module_docstring_examples() -> None:
    for module in (flame_mod, history_mod):
        result = doctest.testmod(module)
        assert result.failed == 0, module.__name__
        assert result.attempted >= 3
