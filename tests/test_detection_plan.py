"""The measurement plan of issue 14: content, resuming, budget, estimate."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

from simulations.detection.plan import (
    PlannedRun,
    estimate_seconds,
    measure,
    measurement_plan,
    plan_status,
)
from simulations.scenario import CONF_DIR


def settings_of(run: PlannedRun, **changes: Any) -> dict[str, Any]:
    s = {
        "dataset": run.dataset,
        "model": {"cifar10": "lenet5", "fashion_mnist": "fmnist_cnn"}[run.dataset],
        "attack": run.attack,
        "partition": run.partition,
        "alpha": run.alpha,
        "num_clients": run.num_clients,
        "num_malicious": run.num_malicious,
        "seed": run.seed,
        "rounds": run.rounds,
    }
    return {**s, **changes}


def test_plan_covers_issue_14() -> None:
    plan = measurement_plan()
    assert len(plan) == len(set(plan))
    attacked = [r for r in plan if r.attack != "none" and r.boost == 1.0]
    # 2 datasets x 2 attacks x 3 partitions x 4 mixes x 3 seeds.
    assert len(attacked) == 2 * 2 * 3 * 4 * 3
    assert {(r.dataset, r.attack) for r in attacked} == {
        (d, a) for d in ("cifar10", "fashion_mnist") for a in ("backdoor", "label_flip")
    }
    assert {(r.partition, r.alpha) for r in plan} == {
        ("iid", None), ("dirichlet", 1.0), ("dirichlet", 0.5)
    }  # fmt: skip
    assert {(r.num_clients, r.num_malicious) for r in attacked} == {
        (10, 3), (10, 4), (20, 6), (20, 9)
    }  # fmt: skip
    assert {r.seed for r in plan} == {42, 43, 44}
    assert all(r.rounds >= 15 for r in plan)
    clean = [r for r in plan if r.attack == "none"]
    assert clean and all(r.num_malicious == 0 for r in clean)
    assert {(r.dataset, r.partition, r.alpha) for r in clean} == {
        (r.dataset, r.partition, r.alpha) for r in attacked
    }
    # Most important first: CIFAR-10 backdoors with 10 clients, seed 42.
    assert plan[0] == PlannedRun("cifar10", "backdoor", "iid", None, 10, 3, 42)
    tier = [r for r in plan if r.seed == 42 and r.num_clients == 10
            and r.attack in ("backdoor", "none") and r.boost == 1]  # fmt: skip
    first = plan[: len(tier)]
    assert all(r.seed == 42 and r.num_clients == 10 for r in first)


def test_overrides_compose_into_distinct_run_folders() -> None:
    from hydra import compose, initialize_config_dir

    import simulations.detection.runner  # noqa: F401  (registers the resolver)

    runs = [
        PlannedRun("cifar10", "backdoor", part, alpha, 10, 4, 42)
        for part, alpha in (("iid", None), ("dirichlet", 1.0), ("dirichlet", 0.5))
    ]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfgs = [compose("detection", overrides=r.overrides()) for r in runs]
    names = [str(c.name) for c in cfgs]
    assert names == [
        "cifar10-lenet5-iid-backdoor-c10-m4-r15-s42",
        "cifar10-lenet5-dirichlet1-backdoor-c10-m4-r15-s42",
        "cifar10-lenet5-dirichlet0.5-backdoor-c10-m4-r15-s42",
    ]
    assert cfgs[2].partition.alpha == 0.5 and cfgs[2].rounds.train == 15
    assert cfgs[0].detection.from_round == 1


def test_matches_only_the_same_settings() -> None:
    run = PlannedRun("cifar10", "backdoor", "dirichlet", 0.5, 10, 4, 42)
    assert run.matches(settings_of(run))
    assert not run.matches(settings_of(run, alpha=1.0))
    assert not run.matches(settings_of(run, rounds=8))
    assert not run.matches(settings_of(run, seed=43))
    iid = PlannedRun("cifar10", "backdoor", "iid", None, 10, 4, 42)
    assert iid.matches(settings_of(iid)) and not iid.matches(settings_of(run))


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now


def test_measure_skips_finished_runs_and_keeps_to_the_budget(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = FakeClock()
    started: list[list[str]] = []

    def fake_run(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        started.append(cmd)
        clock.now += 100.0  # every run takes 100 s
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr("simulations.detection.plan.time.monotonic", clock.monotonic)
    monkeypatch.setattr("simulations.detection.plan.subprocess.run", fake_run)
    plan = measurement_plan()[:4]
    finished = [{"settings": settings_of(plan[0])}]

    # 250 s: run 2 starts at 0 s, run 3 at 100 s (100 + 100 <= 250), and
    # run 4 would end after the budget (200 + 100 > 250).
    ran = measure(250 / 60, plan=plan, results=finished)
    assert ran == plan[1:3]
    assert [c[1:3] for c in started] == [["-m", "simulations.detection"]] * 2
    assert [c[3:] for c in started] == [plan[1].overrides(), plan[2].overrides()]


def test_estimate_from_finished_runs() -> None:
    run = PlannedRun("cifar10", "backdoor", "iid", None, 10, 4, 42)
    assert estimate_seconds(run, []) is None
    same = {"settings": settings_of(run, rounds=10), "run_seconds": 50.0}
    other = {"settings": settings_of(run, dataset="fashion_mnist"), "run_seconds": 1.0}
    older = {"settings": settings_of(run, rounds=8), "wall_seconds": 80.0}
    # 5 s per round (run_seconds preferred over older runs' wall_seconds).
    assert estimate_seconds(run, [same, other, older]) == pytest.approx(75.0)
    assert estimate_seconds(run, [older]) == pytest.approx(150.0)  # 10 s/round
    assert estimate_seconds(run, [other]) == pytest.approx(1.0)  # any setting
    text = plan_status([{"settings": settings_of(run), "run_seconds": 18.0}])
    assert "has 192 runs (156 attacked, of which 12 boosting, 36 without" in text
    assert "finished: 1." in text
    assert "whole plan: 1.0 h, of which 1.0 h remain" in text  # 192 x 18 s


def test_plan_has_boosting_runs_after_the_first_tier() -> None:
    plan = measurement_plan()
    boosted = [r for r in plan if r.boost != 1.0]
    # Backdoor, 2 datasets x (IID, Dirichlet(1)) x 3 seeds, 4 of 10 boosting by
    # N/M = 10/4.
    assert len(boosted) == 2 * 2 * 3
    assert {(r.attack, r.num_clients, r.num_malicious, r.boost) for r in boosted} == {
        ("backdoor", 10, 4, 2.5)
    }
    assert {(r.dataset, r.partition, r.alpha, r.seed) for r in boosted} == {
        (d, p, a, s)
        for d in ("cifar10", "fashion_mnist")
        for p, a in (("iid", None), ("dirichlet", 1.0))
        for s in (42, 43, 44)
    }
    # The same settings unboosted stay in the plan.
    assert all(PlannedRun(**{**vars(r), "boost": 1.0}) in plan for r in boosted)
    at = {r: i for i, r in enumerate(plan)}
    first_tier = [
        r for r in plan
        if r.attack in ("backdoor", "none") and r.num_clients == 10 and r.boost == 1
    ]  # fmt: skip
    assert max(at[r] for r in first_tier) < min(at[r] for r in boosted)
    # Seed by seed: before that seed's label flipping, after its 20-client runs.
    for seed in (42, 43, 44):
        mine = [at[r] for r in boosted if r.seed == seed]
        flips = [at[r] for r in plan if r.attack == "label_flip" and r.seed == seed]
        twenty = [at[r] for r in plan if r.num_clients == 20 and r.seed == seed
                  and r.attack != "label_flip"]  # fmt: skip
        assert max(twenty) < min(mine) and max(mine) < min(flips)
    assert boosted[0] == PlannedRun(
        "cifar10", "backdoor", "iid", None, 10, 4, 42, boost=2.5
    )


def test_boost_goes_into_the_overrides_only_when_boosting() -> None:
    from hydra import compose, initialize_config_dir

    import simulations.detection.runner  # noqa: F401  (registers the resolver)

    plain = PlannedRun("fashion_mnist", "backdoor", "iid", None, 10, 4, 42)
    boosted = PlannedRun("fashion_mnist", "backdoor", "iid", None, 10, 4, 42, boost=2.5)
    assert not any("boost" in o for o in plain.overrides())
    assert boosted.overrides() == [*plain.overrides(), "attack.boost=2.5"]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfgs = [compose("detection", overrides=r.overrides()) for r in (plain, boosted)]
    assert [c.attack.boost for c in cfgs] == [1.0, 2.5]


def test_matches_reads_a_missing_boost_as_unboosted() -> None:
    plain = PlannedRun("cifar10", "backdoor", "iid", None, 10, 4, 42)
    boosted = PlannedRun("cifar10", "backdoor", "iid", None, 10, 4, 42, boost=2.5)
    older = settings_of(plain)  # recorded before boosting existed: no key
    assert "boost" not in older
    assert plain.matches(older) and not boosted.matches(older)
    assert plain.matches(settings_of(plain, boost=1.0))
    assert plain.matches(settings_of(plain, boost=None))
    assert not plain.matches(settings_of(plain, boost=2.5))
    assert boosted.matches(settings_of(plain, boost=2.5))
    assert not boosted.matches(settings_of(plain, boost=2.0))


def test_boosted_runs_get_their_own_folder() -> None:
    from hydra import compose, initialize_config_dir

    import simulations.detection.runner  # noqa: F401  (registers the resolvers)

    plain = PlannedRun("cifar10", "backdoor", "iid", None, 10, 4, 42)
    boosted = PlannedRun("cifar10", "backdoor", "iid", None, 10, 4, 42, boost=2.5)
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        names = [
            str(compose("detection", overrides=r.overrides()).name)
            for r in (plain, boosted)
        ]
    assert names == [
        "cifar10-lenet5-iid-backdoor-c10-m4-r15-s42",
        "cifar10-lenet5-iid-backdoor-c10-m4-r15-s42-b2.5",
    ]
