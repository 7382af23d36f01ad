"""The separability measurement: Gram recording, the per-round values, the file."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from fedup_flwr.detectors.updates import cosine_from_gram
from simulations.detection.harness import RoundGram, round_gram
from simulations.detection.separability import (
    RESULTS_DIR,
    SEPARABILITY_END,
    SEPARABILITY_START,
    accumulated_auc,
    build_separability,
    load_grams,
    outlier_auc,
    round_separability,
    write_grams,
    write_separability,
)
from simulations.detection.tables import DOC_PATH

GLOBAL = [
    np.zeros((2, 2), dtype=np.float32),
    np.zeros(2, dtype=np.float32),
    np.zeros((3, 2), dtype=np.float32),
    np.array([5], dtype=np.int64),
]


def model(a: float, b: float, c: float) -> list[np.ndarray]:
    return [
        np.full((2, 2), a, np.float32),
        np.full(2, b, np.float32),
        np.full((3, 2), c, np.float32),
        np.array([9], np.int64),  # an integer buffer is no weight: not counted
    ]


def test_round_gram_whole_model_and_last_kernel() -> None:
    gram = round_gram({7: model(1, 2, 3), 3: model(0, 1, -1)}, GLOBAL)
    assert gram.nodes == (3, 7)
    # Node 3: 4*0 + 2*1 + 6*1 = 8; node 7: 4 + 8 + 54 = 66; cross 0 + 4 - 18.
    np.testing.assert_allclose(gram.model, [[8, -14], [-14, 66]])
    # Last kernel only (the (3, 2) array): 6, 54, -18.
    np.testing.assert_allclose(gram.last_layer, [[6, -18], [-18, 54]])


def test_cosine_from_gram_handles_a_zero_update() -> None:
    cos = cosine_from_gram(np.array([[4.0, 0.0, -2.0], [0, 0, 0], [-2, 0, 1]]))
    np.testing.assert_allclose(cos, [[1, 0, -1], [0, 0, 0], [-1, 0, 1]])


def benign_line(labels: np.ndarray) -> np.ndarray:
    return 0.1 + 0.5 * labels


def test_label_skew_explains_benign_pairs_and_attackers_stand_out() -> None:
    rng = np.random.default_rng(0)
    n = 12
    hist = rng.dirichlet(np.ones(10), size=n)
    labels = cosine_from_gram(hist @ hist.T)
    noise = rng.normal(0, 0.01, (n, n))
    cos = benign_line(labels) + (noise + noise.T) / 2
    mal = [True, True, True] + [False] * 9
    quiet = round_separability(cos, mal, labels)
    assert quiet.r2_bb > 0.8  # the line explains the benign pairs
    assert abs(quiet.excess_z) < 4  # the attackers are no more alike than that
    for i in range(3):
        for j in range(3):
            if i != j:
                cos[i, j] += 0.3  # a shared trigger direction
    loud = round_separability(cos, mal, labels)
    assert loud.excess_z > 10
    assert loud.pair_precision == 1.0 and loud.chance == pytest.approx(3 / 66)
    assert loud.cos_mm > loud.cos_mb
    assert loud.r2_bb == pytest.approx(quiet.r2_bb)  # benign pairs unchanged


def test_no_label_spread_and_no_attack_give_nan() -> None:
    cos = np.eye(4) + 0.2
    same = np.ones((4, 4))
    out = round_separability(cos, [False] * 4, same)
    assert math.isnan(out.r2_bb) and math.isnan(out.excess_z)
    assert math.isnan(out.pair_precision) and math.isnan(out.cos_mm)
    assert out.chance == 0.0 and out.cos_bb == pytest.approx(0.2)


def test_shapes_must_agree() -> None:
    with pytest.raises(ValueError, match="must both be"):
        round_separability(np.eye(3), [True, False], np.eye(3))


def test_write_then_load_maps_nodes_to_partitions(tmp_path: Path) -> None:
    # Partition p has node 100 + p; rows come sorted by node id.
    nodes = (100, 101, 102, 103)
    units = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    gram = (units @ units.T).tolist()
    grams = {1: RoundGram(nodes, gram, gram)}
    counts = {0: [5, 0], 1: [4, 1], 2: [0, 5], 3: [1, 4]}
    path = write_grams(tmp_path, grams, {p: 100 + p for p in range(4)}, counts, [0, 1])
    rows = load_grams(path)
    assert [r["round"] for r in rows] == [1]
    # Partitions 0 and 1 (the attackers) are the most alike pair.
    assert rows[0]["pair_precision"] == 1.0
    assert rows[0]["cos_mm"] == pytest.approx(cosine_from_gram(np.array(gram))[0, 1])
    with pytest.raises(ValueError, match="which"):
        load_grams(path, which="bias")


def test_write_refuses_an_unknown_node(tmp_path: Path) -> None:
    grams = {2: RoundGram((1, 9), [[1, 0], [0, 1]], [[1, 0], [0, 1]])}
    with pytest.raises(ValueError, match=r"nodes \[9\] have no partition"):
        write_grams(tmp_path, grams, {0: 1}, {0: [1]}, [])


def fake_run(
    root: Path, name: str, partition: str, alpha: float | None, poisoned: float = 0.1
) -> None:
    run = root / name
    run.mkdir(parents=True)
    settings = {
        "dataset": "cifar10",
        "attack": "backdoor",
        "partition": partition,
        "alpha": alpha,
        "num_malicious": 2,
        "num_clients": 4,
        "boost": 1.0,
        "seed": 42,
    }
    result = {
        "settings": settings,
        "command": f"python -m simulations.detection {name}",
    }
    (run / "detection.json").write_text(json.dumps(result))
    (run / "config.yaml").write_text(
        f"attack:\n  name: backdoor\n  fraction: {poisoned}\n"
    )
    units = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    gram = (units @ units.T).tolist()
    counts = {0: [5, 0], 1: [4, 1], 2: [0, 5], 3: [1, 4]}
    grams = {r: RoundGram((10, 11, 12, 13), gram, gram) for r in (1, 2)}
    write_grams(run, grams, {p: 10 + p for p in range(4)}, counts, [0, 1])


def test_table_groups_runs_by_setting_and_says_how_to_reproduce(
    tmp_path: Path,
) -> None:
    root = tmp_path / "separability"
    fake_run(root, "b", "dirichlet", 1.0)
    fake_run(root, "a", "iid", None)
    fake_run(root, "c", "iid", None)
    fake_run(root, "d", "iid", None, poisoned=0.5)
    text = build_separability(root)
    rows = [line for line in text.splitlines() if line.startswith("| CIFAR-10")]
    # Two tables (whole update, last layer), IID before Dir(1), seeds pooled,
    # a stronger attack in its own row after them.
    assert len(rows) == 6
    assert rows[2].startswith("| CIFAR-10 | backdoor, 50% poisoned | IID, 2/4 | 1 |")
    assert rows[0].startswith("| CIFAR-10 | backdoor, 10% poisoned | IID, 2/4 | 2 |")
    assert rows[1].startswith("| CIFAR-10 | backdoor, 10% poisoned | Dir(1), 2/4 | 1 |")
    # The attackers' pair is the most alike, in every round of every run.
    assert "| 1.00 (0.17) |" in rows[0]
    assert (
        "python -m simulations.detection a hydra.run.dir=results/separability/a" in text
    )


def test_table_without_runs_says_so(tmp_path: Path) -> None:
    assert "No run recorded" in build_separability(tmp_path)


def test_cli_writes_the_separability_block(monkeypatch: pytest.MonkeyPatch) -> None:
    import simulations.detection.cli as cli_module

    calls: list[bool] = []
    monkeypatch.setattr(
        cli_module, "write_separability", lambda: calls.append(True) or "table"
    )
    cli_module.cli(["separability"])
    assert calls == [True]


def test_write_keeps_the_page_around_the_markers(tmp_path: Path) -> None:
    root = tmp_path / "separability"
    fake_run(root, "a", "iid", None)
    doc = tmp_path / "detectors.md"
    doc.write_text(f"intro\n{SEPARABILITY_START}\nold\n{SEPARABILITY_END}\noutro\n")
    generated = write_separability(root, doc)
    text = doc.read_text()
    assert (
        text == f"intro\n{SEPARABILITY_START}\n{generated}{SEPARABILITY_END}\noutro\n"
    )


def test_committed_page_matches_committed_runs() -> None:
    # docs/detectors.md shows exactly what the committed runs give.
    text = DOC_PATH.read_text()
    block = text.split(SEPARABILITY_START + "\n", 1)[1].split(SEPARABILITY_END)[0]
    assert block == build_separability(RESULTS_DIR)
    assert "No run recorded" not in block


def test_resume_refuses_to_skip_a_run_without_its_grams(tmp_path: Path) -> None:
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from simulations.detection.runner import run_detection
    from simulations.scenario import CONF_DIR

    if GlobalHydra.instance().is_initialized():
        GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(
            "detection",
            overrides=[
                "num_clients=4",
                "num_malicious=1",
                "detection.detectors=[krum_score]",
            ],
        )
    (tmp_path / "detection.json").write_text(json.dumps({"name": "old"}))
    # Without record_gram the finished run is skipped, as before.
    assert run_detection(cfg, tmp_path, "cmd") == {"name": "old"}
    cfg.record_gram = True
    with pytest.raises(RuntimeError, match="record_gram=true needs the run itself"):
        run_detection(cfg, tmp_path, "cmd")


def test_accumulated_auc_averages_each_node_over_its_rounds() -> None:
    # Attacker 0 is below both benign nodes only on average over the rounds.
    rounds = [
        {"malicious": [0], "scores": {0: 0.5, 1: 0.4, 2: 0.9}},
        {"malicious": [0], "scores": {0: 0.1, 1: 0.6, 2: math.nan}},
    ]
    assert accumulated_auc(rounds, "scores") == 1.0
    assert outlier_auc(np.array([0.5, 0.4, 0.9]), [True, False, False]) == 0.5
    assert math.isnan(accumulated_auc([], "scores"))
