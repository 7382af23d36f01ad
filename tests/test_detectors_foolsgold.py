"""Tests of the foolsgold detector (and the pair history it shares).

Hand-made updates of a small "model" (a kernel, a bias and a last kernel).
Non-IID honest clients: each keeps its own direction (its data) plus fresh
noise every round, so honest updates are mutually near-orthogonal and there
is no benign majority cluster. Attackers add one shared poison direction to
their own update: a coordinated minority. IID clients all follow one task
direction with small noise.
"""

from __future__ import annotations

import doctest
import json
import tracemalloc
from collections.abc import Collection

import numpy as np
import pytest

from fedup_flwr.detectors import (
    CosineHistoryDetector,
    FoolsGoldDetector,
    available_detectors,
    get_detector,
)
from fedup_flwr.detectors import cosine_history as history_mod
from fedup_flwr.detectors import foolsgold as foolsgold_mod
from fedup_flwr.detectors.cosine_history import PairHistory
from fedup_flwr.detectors.foolsgold import coordinated_minority, group_similarity

SHAPES = [(20, 30), (20,), (10, 20)]  # kernel, bias, last kernel: 820 numbers
DIM = sum(int(np.prod(s)) for s in SHAPES)
Replies = dict[int, list[np.ndarray]]


def to_arrays(vector: np.ndarray) -> list[np.ndarray]:
    """Split a flat update into the model's arrays (float32)."""
    out, start = [], 0
    for shape in SHAPES:
        size = int(np.prod(shape))
        out.append(vector[start : start + size].astype(np.float32).reshape(shape))
        start += size
    return out


class Federation:
    """Clients whose updates follow fixed directions across rounds.

    ``alike`` is a set of honest clients with nearly the same data (one
    shared direction instead of their own), ``bad`` the attackers.
    """

    def __init__(
        self,
        n: int,
        bad: Collection[int] = (),
        *,
        seed: int = 0,
        iid: bool = False,
        alike: Collection[int] = (),
        poison: float = 1.0,
    ) -> None:
        self.rng = np.random.default_rng(seed)
        self.n, self.bad, self.iid, self.poison = n, set(bad), iid, poison
        self.own = self.rng.standard_normal((n, DIM))
        shared = self.rng.standard_normal(DIM)
        for node in alike:
            self.own[node] = shared
        self.task = self.rng.standard_normal(DIM)
        self.poison_dir = self.rng.standard_normal(DIM)
        self.glob = [np.zeros(s, dtype=np.float32) for s in SHAPES]

    def round(self, nodes: Collection[int] | None = None) -> Replies:
        """One round's replies (``global - update``) of ``nodes`` (all)."""
        replies: Replies = {}
        for node in range(self.n) if nodes is None else nodes:
            if self.iid:
                update = self.task + 0.3 * self.rng.standard_normal(DIM)
            else:
                update = self.own[node] + self.rng.standard_normal(DIM)
            if node in self.bad:
                update = update + self.poison * self.poison_dir
            update = update * self.rng.uniform(0.8, 1.2)
            replies[node] = [g - u for g, u in zip(self.glob, to_arrays(update))]
        return replies


def run(
    fed: Federation, rounds: int, det: FoolsGoldDetector | None = None
) -> tuple[FoolsGoldDetector, list[set[int]]]:
    det = FoolsGoldDetector() if det is None else det
    flagged = [det.detect(rnd, fed.round(), fed.glob) for rnd in range(rounds)]
    return det, flagged


# ------------------------------------------------------------- the scores
def test_group_similarity_by_hand() -> None:
    s = np.array(
        [
            [1.0, 0.9, 0.6, 0.0],
            [0.9, 1.0, 0.3, np.nan],
            [0.6, 0.3, 1.0, -0.5],
            [0.0, np.nan, -0.5, 1.0],
        ]
    )
    scores, partners = group_similarity(s, pardon=False)
    np.testing.assert_allclose(scores, [0.9, 0.9, 0.6, 0.0])
    assert partners[:, 0].tolist() == [1, 0, 0, 0]
    # pardoning: v = (0.9, 0.9, 0.6, 0.0); s_20 = 0.6 * 0.6 / 0.9 = 0.4, and
    # node 3 (v = 0, nothing to pardon) keeps its scores
    scores, partners = group_similarity(s)
    np.testing.assert_allclose(scores, [0.9, 0.9, 0.4, 0.0])
    # groups of three: the second closest; node 1 never met node 3, so its
    # second closest is node 2 (0.3 * 0.9 / 0.9 = 0.3, v_1 not smaller)
    scores, partners = group_similarity(s, group=3, pardon=False)
    np.testing.assert_allclose(scores, [0.6, 0.3, 0.3, -0.5])
    assert partners.tolist() == [[1, 2], [0, 2], [0, 1], [0, 2]]
    # a group larger than the nodes scores nobody
    scores, partners = group_similarity(s, group=5)
    assert np.isneginf(scores).all() and (partners == -1).all()


def test_coordinated_minority_needs_a_partner_beyond_the_threshold() -> None:
    s = np.full((9, 9), 0.05)
    s[7, 8] = s[8, 7] = 0.6  # a pair alike
    s[6, 0] = s[0, 6] = 0.12  # a loose pair, within the threshold
    s[5, 7] = s[7, 5] = 0.5  # node 5 leans to node 7, the pair's member
    excess, counts, partners = coordinated_minority(s, k=3.0, min_gap=0.1, pardon=False)
    # median 0.12 and MAD 0.07 * 1.4826: threshold 0.12 + 3 * 0.1038 = 0.431
    assert excess[7] == pytest.approx(0.6 - 0.43134, abs=1e-4)
    assert counts.tolist() == [False] * 5 + [True, False, True, True]
    assert partners[5, 0] == 7
    # pardoned, node 5's 0.5 becomes 0.5 * 0.5 / 0.6: below the threshold
    _, counts, _ = coordinated_minority(s, k=3.0, min_gap=0.1)
    assert counts.tolist() == [False] * 7 + [True, True]
    # a lone node scoring high whose partner does not is no group
    lone = np.full((6, 6), 0.05)
    lone[0, 1:] = lone[1:, 0] = 0.0
    lone[5, 0] = lone[0, 5] = 0.9
    lone[5, 1] = lone[1, 5] = 0.0  # node 5: close to node 0 only
    lone[0, 4] = lone[4, 0] = 0.0
    _, counts, _ = coordinated_minority(lone, k=3.0, min_gap=0.1)
    assert counts.tolist() == [True, False, False, False, False, True]
    lone[0, 5] = lone[5, 0] = np.nan  # never met: no pair
    _, counts, _ = coordinated_minority(lone, k=3.0, min_gap=0.1)
    assert not counts.any()


# ------------------------------------------------------------------- the detector
@pytest.mark.parametrize(
    ("n", "bad"), [(10, {7, 8, 9}), (10, {6, 7, 8, 9}), (20, set(range(14, 20)))]
)
def test_flags_coordinated_minority_after_min_rounds(n: int, bad: set[int]) -> None:
    for seed in range(3):
        det, flagged = run(Federation(n, bad, seed=seed), 6)
        assert flagged[:2] == [set(), set()], seed  # fewer than min_rounds=3
        assert flagged[2:] == [bad] * 4, seed
        assert min(det.scores[b] for b in bad) > 0.0
        assert max(det.scores[g] for g in range(n) if g not in bad) < 0.0
        assert set(det.partners[min(bad)]) <= bad


def test_min_rounds_delays_flagging() -> None:
    bad = {6, 7, 8, 9}
    _, flagged = run(Federation(10, bad, seed=4), 6, FoolsGoldDetector(min_rounds=5))
    assert flagged[:4] == [set()] * 4 and flagged[4:] == [bad] * 2
    _, flagged = run(Federation(10, bad, seed=4), 2, FoolsGoldDetector(min_rounds=1))
    assert flagged == [bad] * 2


@pytest.mark.parametrize("n", [10, 20])
def test_honest_non_iid_rounds_flag_nobody(n: int) -> None:
    for seed in range(3):
        det, flagged = run(Federation(n, seed=10 + seed), 8)
        assert flagged == [set()] * 8, seed
        assert set(det.scores) == set(range(n))


def test_iid_clients_without_attack_flag_nobody() -> None:
    for seed in range(3):
        det, flagged = run(Federation(10, seed=20 + seed, iid=True), 6)
        assert flagged == [set()] * 6, seed
        assert max(det.scores.values()) < 0.0


def test_half_or_more_alike_is_never_flagged() -> None:
    for bad in ({5, 6, 7, 8, 9}, {3, 4, 5, 6, 7, 8, 9}):
        det, flagged = run(Federation(10, bad, seed=3), 6)
        assert flagged == [set()] * 6
        assert max(det.scores.values()) < 0.0


def test_group_of_three_spares_an_honest_pair() -> None:
    # honest clients 0 and 1 have nearly the same data; 9, 10, 11 attack
    fed = Federation(12, {9, 10, 11}, seed=6, alike={0, 1})
    _, flagged = run(fed, 5, FoolsGoldDetector(group=2))
    assert flagged[-1] == {0, 1, 9, 10, 11}  # a pair is a group of two
    assert all({0, 1} <= f for f in flagged[2:])
    fed = Federation(12, {9, 10, 11}, seed=6, alike={0, 1})
    _, flagged = run(fed, 5)
    assert flagged[2:] == [{9, 10, 11}] * 3
    # two attackers are a group of two, not of three
    assert run(Federation(10, {8, 9}, seed=6), 5)[1] == [set()] * 5
    det = FoolsGoldDetector(group=2)
    assert run(Federation(10, {8, 9}, seed=6), 5, det)[1][2:] == [{8, 9}] * 3


def test_a_newcomer_waits_min_rounds_and_hides_nobody() -> None:
    fed = Federation(10, {6, 7, 8, 9}, seed=8)
    det = FoolsGoldDetector()
    flagged = [det.detect(rnd, fed.round(range(9)), fed.glob) for rnd in range(3)]
    assert flagged == [set(), set(), {6, 7, 8}]  # attacker 9 away
    for rnd in (3, 4):  # 9 joins; fewer than min_rounds rounds with the others
        assert det.detect(rnd, fed.round(), fed.glob) == {6, 7, 8}
        assert set(det.partners[9]) <= {6, 7, 8}
        assert det.scores[9] > 0.0  # scored on its short history already
    assert det.rounds_seen(9) == 2 and det.rounds_seen(8) == 5
    assert det.detect(5, fed.round(), fed.glob) == {6, 7, 8, 9}


def test_state_dict_round_trip_continues_identically() -> None:
    fed = Federation(10, {6, 7, 8, 9}, seed=5)
    rounds = [fed.round() for _ in range(5)]
    det = FoolsGoldDetector()
    for rnd in (0, 1):
        det.detect(rnd, rounds[rnd], fed.glob)
    state = json.loads(json.dumps(det.state_dict()))  # JSON-friendly
    assert set(state) == {"nodes", "sums", "pair_counts", "rounds"}
    assert state["rounds"] == [2] * 10
    restored = FoolsGoldDetector()
    restored.load_state_dict(state)
    for rnd in (2, 3, 4):
        expected = det.detect(rnd, rounds[rnd], fed.glob)
        assert restored.detect(rnd, rounds[rnd], fed.glob) == expected == {6, 7, 8, 9}
        assert restored.scores == pytest.approx(det.scores, abs=1e-12)
    assert restored.state_dict()["pair_counts"] == det.state_dict()["pair_counts"]
    np.testing.assert_allclose(
        restored.state_dict()["sums"], det.state_dict()["sums"], rtol=1e-12
    )
    # the state is cosine_history's: either detector loads the other's
    history = CosineHistoryDetector()
    history.load_state_dict(state)
    assert history.state_dict() == state
    with pytest.raises(ValueError, match="repeat"):
        restored.load_state_dict({**state, "nodes": [0] * 10})
    restored.load_state_dict({})
    assert restored.state_dict()["nodes"] == []
    assert restored.detect(5, rounds[4], fed.glob) == set()  # no history left


def test_few_replies_are_scored_from_history_and_not_accumulated() -> None:
    fed = Federation(10, {6, 7, 8, 9}, seed=2)
    det, _ = run(fed, 4, FoolsGoldDetector(min_replies=4))
    before = det.state_dict()
    assert det.detect(9, fed.round([0, 7, 8]), fed.glob) == set()
    assert det.state_dict() == before
    assert set(det.scores) == {0, 7, 8}
    assert det.scores[7] > det.scores[0]  # scored from the history
    replies = fed.round([0, 7, 8])
    replies[42] = replies.pop(8)  # a newcomer
    assert det.detect(10, replies, fed.glob) == set()
    assert det.scores == {0: 0.0, 7: 0.0, 42: 0.0}  # too few known for a group


def test_allocates_at_most_one_model_copy() -> None:
    rng = np.random.default_rng(3)
    glob = [
        rng.standard_normal((256, 64, 3, 3)).astype(np.float32),
        rng.standard_normal(256).astype(np.float32),
        rng.standard_normal((10, 256)).astype(np.float32),
    ]
    replies: Replies = {}
    for node in range(12):
        noise = [0.01 * rng.standard_normal(g.shape) for g in glob]
        replies[node] = [(g + e).astype(np.float32) for g, e in zip(glob, noise)]
    det = FoolsGoldDetector()
    det.detect(1, replies, glob)
    tracemalloc.start()
    try:
        det.detect(2, replies, glob)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak <= sum(a.nbytes for a in glob)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"k": -1.0}, ValueError, "k must be"),
        ({"k": float("inf")}, ValueError, "k must be"),
        ({"min_gap": float("nan")}, ValueError, "min_gap must be"),
        ({"min_gap": -0.1}, ValueError, "min_gap must be"),
        ({"group": 1}, ValueError, "group must be at least 2"),
        ({"group": 2.5}, TypeError, "group must be an int"),
        ({"min_rounds": 0}, ValueError, "min_rounds must be at least 1"),
        ({"min_rounds": True}, TypeError, "min_rounds must be an int"),
        ({"pardon": "yes"}, TypeError, "pardon must be a bool"),
        ({"min_replies": 0}, ValueError, "min_replies"),
    ],
)
def test_validates_arguments(
    kwargs: dict[str, object], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        FoolsGoldDetector(**kwargs)  # type: ignore[arg-type]


def test_registered_and_built_by_name() -> None:
    assert "foolsgold" in available_detectors()
    det = get_detector("foolsgold", group=2, min_gap=0.2, seed=4)
    assert isinstance(det, FoolsGoldDetector)
    assert (det.group, det.min_gap, det.seed, det.name) == (2, 0.2, 4, "foolsgold")
    assert "group=2" in repr(det)


def test_pair_history_by_hand() -> None:
    history = PairHistory()
    assert history.add([3, 1], np.array([[1.0, 0.2], [0.2, 1.0]])) == [0, 1]
    assert history.add([1, 5], np.array([[1.0, -0.4], [-0.4, 1.0]])) == [1, 2]
    assert history.add([3, 1], np.array([[1.0, 0.6], [0.6, 1.0]])) == [0, 1]
    assert history.nodes == [3, 1, 5] and history.rounds.tolist() == [2, 3, 1]
    mean = history.mean(history.rows([1, 3, 5]))
    np.testing.assert_allclose(
        mean, [[1.0, 0.4, -0.4], [0.4, 1.0, np.nan], [-0.4, np.nan, 1.0]]
    )
    with pytest.raises(ValueError):
        history.rows([7])


def test_module_docstring_examples() -> None:
    for module in (foolsgold_mod, history_mod):
        result = doctest.testmod(module)
        assert result.failed == 0, module.__name__
    assert doctest.testmod(foolsgold_mod).attempted >= 10
