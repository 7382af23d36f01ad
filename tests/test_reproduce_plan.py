"""The reproduction plan (``simulations/reproduce.py``): its invariants one by
one, and done / todo / stale on a temporary results folder (never
``results/``)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from omegaconf import OmegaConf

from simulations import reproduce
from simulations.config import compose, validate
from simulations.report.runs import seed_groups
from simulations.reproduce import (
    MIXES,
    PARTITIONS,
    SEEDS,
    WINDOW,
    Run,
    plan,
    setting,
    status,
)

# Run-name prefixes of the measured rows: Tables II-VII, Figure 5 (t4 10 (4)),
# the sweep; Table III (and its stronger attack) too.
MEASURED = ("t2-", "t3-", "t3strong-", "t4-", "t5-", "t7-", "sweep-p-")
COMMITTED_NAMES = {  # names of committed seed-42 runs the plan keeps
    "t2-iid-10-3", "t3-iid-10-3-s42", "t4-iid-10-4", "t4-dirichlet-10-4",
    "t5-iid-10-4-fp", "t7-benign-iid-10", "sweep-p-iid-10-3", "t3strong-iid-10-3",
    "dos-iid-10-3", "e2e-krum_score-iid-10-3",
}  # fmt: skip


@pytest.fixture(scope="module")
def runs() -> list[Run]:
    return plan()


def _by_name(runs: list[Run]) -> dict[str, Run]:
    return {r.name: r for r in runs}


def _int(run: Run, key: str) -> int:
    value = setting(run.overrides, key)
    assert value is not None, (run.name, key)
    return int(value)


def _compare(run: Run) -> list[str]:
    value = setting(run.overrides, "compare") or "[]"
    return [m for m in value.strip("[]").split(",") if m]


def test_merge_keeps_one_value_per_key_the_last() -> None:
    assert reproduce.merge(["a=1", "b=2"], ["a=3", "c=4"]) == ("a=3", "b=2", "c=4")


def test_every_run_has_the_fixed_window_and_each_key_once(runs: list[Run]) -> None:
    for r in runs:
        assert _int(r, "rounds.min_recovery") == WINDOW == 10, r.name
        assert _int(r, "rounds.max_recovery") == WINDOW, r.name
        keys = [o.split("=", 1)[0] for o in r.overrides]
        assert len(keys) == len(set(keys)), r.name


def test_every_run_that_retrains_runs_one_round_past_r_star(runs: list[Run]) -> None:
    retrains = [r for r in runs if _int(r, "rounds.max_retrain") > 0]
    assert retrains
    for r in retrains:
        assert setting(r.overrides, "rounds.retrain_after") == "1", r.name
    for r in runs:
        if _int(r, "rounds.max_retrain") == 0:
            assert setting(r.overrides, "rounds.retrain_after") is None, r.name


def test_names_are_unique_and_carry_their_seed(runs: list[Run]) -> None:
    names = [r.name for r in runs]
    assert len(names) == len(set(names))
    for r in runs:
        seed = _int(r, "seed")
        if seed == 42 and not r.name.startswith(("t3-", "sweep-lf-")):
            assert not r.name.endswith("-s42"), r.name
        else:
            assert r.name.endswith(f"-s{seed}"), r.name


def test_committed_names_stay_seed_42_runs(runs: list[Run]) -> None:
    by_name = _by_name(runs)
    for name in COMMITTED_NAMES:
        assert _int(by_name[name], "seed") == 42, name
    assert _int(by_name["t4-iid-10-4-s1"], "seed") == 1
    assert _int(by_name["t5-iid-10-4-fp-s2"], "seed") == 2


def test_rate_sweeps_and_full_data_table_iv_are_planned(runs: list[Run]) -> None:
    by_name = _by_name(runs)
    for p in PARTITIONS:
        for name in (f"sweep-bd-{p}-10-4", f"sweep-lf-fmnist-{p}-10-3-s42",
                     f"sweep-lf-cifar10-{p}-10-3-s2"):  # fmt: skip
            assert {"natural", "fedup-0.01", "fedup-adaptive"} <= set(
                _compare(by_name[name])
            )
    for split in ("iid", "dirichlet0.5"):  # the strong backdoor, three seeds
        for name in (
            f"sweep-bd-fmnist-{split}-10-4",
            f"sweep-bd-fmnist-{split}-10-4-s2",
        ):
            assert setting(by_name[name].overrides, "attack") == "backdoor"
            assert setting(by_name[name].overrides, "dataset") == "fashion_mnist"
            assert {"natural", "fedup-0.01", "fedup-adaptive"} <= set(
                _compare(by_name[name])
            )
    for p in PARTITIONS:
        full = by_name[f"t4full-{p}-10-4"]
        assert setting(full.overrides, "fraction") == "1.0"
        assert setting(full.overrides, "attack") == "backdoor"


def test_three_seeds_for_every_measured_row(runs: list[Run]) -> None:
    measured = sorted(r.name for r in runs if r.name.startswith(MEASURED))
    groups = seed_groups(measured)
    assert len(groups) == 4 * len(MIXES) * len(PARTITIONS) + 2 + 1 + 1  # +t3strong
    by_name = _by_name(runs)
    for setting_name, names in groups.items():
        assert sorted(_int(by_name[n], "seed") for n in names) == sorted(SEEDS), (
            setting_name
        )
        # The seeds of a setting differ in their seed only.
        shapes = {tuple(o for o in by_name[n].overrides if not o.startswith("seed="))
                  for n in names}  # fmt: skip
        assert len(shapes) == 1, setting_name


@pytest.mark.parametrize("table", ["t2", "t3", "t4", "t5"])
def test_every_mix_of_the_attack_tables_is_planned(runs: list[Run], table: str) -> None:
    have = {
        (setting(r.overrides, "partition"), _int(r, "num_clients"),
         _int(r, "num_malicious"))
        for r in runs if r.name.startswith(f"{table}-")
    }  # fmt: skip
    want = {(p, n, m) for p in ("iid", "dirichlet") for n, m in
            [(5, 2), (10, 3), (10, 4), (20, 6), (20, 9)]}  # fmt: skip
    assert have == want


def test_natural_in_tables_v_to_vii_and_the_sweep(runs: list[Run]) -> None:
    for prefix in ("t4-", "t5-", "t7-", "sweep-p-"):  # t4: Table VI's runs
        have = [r for r in runs if r.name.startswith(prefix)]
        assert have, prefix
        for r in have:
            assert "natural" in _compare(r), r.name


def test_table_vi_runs_carry_not_and_figure_5_its_ablations(runs: list[Run]) -> None:
    for r in runs:
        if r.name.startswith("t4-"):
            assert "not" in _compare(r), r.name
            if "-10-4" in r.name:
                assert {"random_prune", "malicious_magnitude"} <= set(_compare(r))


def test_table_vii_retrains_with_every_method(runs: list[Run]) -> None:
    t7 = [r for r in runs if r.name.startswith("t7-")]
    assert len(t7) == 3
    for r in t7:
        assert _int(r, "rounds.max_retrain") > 0
        assert setting(r.overrides, "rounds.retrain_after") == "1"
        assert {"natural", "federaser", "not"} <= set(_compare(r))


def test_order_is_seed_by_seed_main_mixes_first(runs: list[Run]) -> None:
    seeds = [_int(r, "seed") for r in runs]
    assert seeds == sorted(seeds, key=SEEDS.index)  # all of 42, then 1, then 2
    first = [r.name for r in runs[:10]]
    assert first == [
        "t2-iid-10-3", "t3-iid-10-3-s42", "t2-dirichlet-10-3",
        "t3-dirichlet-10-3-s42", "t4-iid-10-4", "t5-iid-10-4-fp",
        "t4-dirichlet-10-4", "t5-dirichlet-10-4-fp", "t7-benign-iid-10",
        "sweep-bd-iid-10-4",
    ]  # fmt: skip
    seed1 = [r.name for r in runs if r.name.endswith("-s1")]
    assert seed1[0] == "t2-iid-10-3-s1"


def test_one_run_per_setting_composes_and_validates(runs: list[Run]) -> None:
    # One seed of each distinct shape (every table and variant), without data.
    shapes: dict[str, Run] = {}
    for r in runs:
        shapes.setdefault(reproduce.prefix_of(r.name) + str(_compare(r)), r)
    for r in shapes.values():
        cfg = compose(list(r.overrides))
        validate(cfg, data=False)
        assert cfg.rounds.retrain_after == (1 if cfg.rounds.max_retrain > 0 else 0)


def test_window_option_changes_every_run() -> None:
    for r in plan(5):
        assert setting(r.overrides, "rounds.min_recovery") == "5", r.name
        assert setting(r.overrides, "rounds.max_recovery") == "5", r.name
    with pytest.raises(ValueError, match="window must be >= 0"):
        plan(-1)


# ---------------------------------------------------------------- status
def _commit(folder: Path, overrides: tuple[str, ...], *, seconds: float = 60.0) -> None:
    """A finished run in ``folder``: ``results.json`` and the config it
    recorded (composed from ``overrides``, as the run writes it)."""
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps({"wall_seconds": seconds}))
    (folder / "config.yaml").write_text(OmegaConf.to_yaml(compose(list(overrides))))


@pytest.fixture(scope="module")
def main_run(runs: list[Run]) -> Run:
    return _by_name(runs)["t3-iid-10-3-s42"]


def test_a_run_without_results_is_todo(tmp_path: Path, main_run: Run) -> None:
    assert status(main_run, tmp_path, tmp_path / "staging").state == "todo"


def test_a_run_with_the_plans_config_is_done(tmp_path: Path, main_run: Run) -> None:
    _commit(tmp_path / main_run.name, main_run.overrides)
    state = status(main_run, tmp_path, tmp_path / "staging")
    assert (state.state, state.why) == ("done", "")


def test_a_run_with_another_window_is_stale_and_says_what_differs(
    tmp_path: Path, main_run: Run
) -> None:
    old = reproduce.merge(
        main_run.overrides, ["rounds.min_recovery=0", "rounds.max_recovery=6"]
    )
    _commit(tmp_path / main_run.name, old)
    state = status(main_run, tmp_path, tmp_path / "staging")
    assert state.state == "stale"
    assert state.why == "rounds.min_recovery: 0 → 10; rounds.max_recovery: 6 → 10"
    # The same results are done for a plan with their window.
    assert status(Run(main_run.name, old), tmp_path).state == "done"


def test_a_run_recorded_before_retrain_after_existed_is_stale(
    tmp_path: Path, main_run: Run
) -> None:
    _commit(tmp_path / main_run.name, main_run.overrides)
    config = tmp_path / main_run.name / "config.yaml"
    text = config.read_text().replace("  retrain_after: 1\n", "")
    assert text != config.read_text()
    config.write_text(text)
    state = status(main_run, tmp_path, tmp_path / "staging")
    assert (state.state, state.why) == ("stale", "rounds.retrain_after: absent → 1")


def test_a_checkpoint_resumes_only_with_the_plans_config(
    tmp_path: Path, main_run: Run
) -> None:
    folder = tmp_path / main_run.name
    _commit(folder, main_run.overrides)
    (folder / "results.json").unlink()  # a run killed after its start
    (folder / "checkpoint.pkl").write_bytes(b"")
    state = status(main_run, tmp_path)
    assert (state.state, state.resume) == ("todo", True)
    other = Run(main_run.name, reproduce.merge(main_run.overrides, ["seed=7"]))
    state = status(other, tmp_path)
    assert (state.state, state.resume) == ("todo", False)
    assert "starts over" in state.why


def test_list_prints_states_estimates_and_differences(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    main_run: Run,
) -> None:  # fmt: skip
    results = tmp_path / "results"
    _commit(results / main_run.name, main_run.overrides, seconds=120.0)
    _commit(results / "t3-iid-20-9-s1", main_run.overrides, seconds=240.0)
    monkeypatch.setattr(reproduce, "RESULTS", results)
    monkeypatch.setattr(reproduce, "STAGING", tmp_path / "staging")
    reproduce.main(["--list", "--only", "t3-iid-"])
    lines = capsys.readouterr().out.splitlines()
    first = next(x for x in lines if " t3-iid-10-3-s42 " in x)
    # Median of 120 s and 240 s over the two committed t3 runs.
    assert first.startswith("done   t3-iid-10-3-s42 [~3 min: median of 2 t3 runs]")
    stale = lines.index(next(x for x in lines if " t3-iid-20-9-s1 " in x))
    assert lines[stale].startswith("stale  ")
    assert (
        lines[stale + 1].strip()
        == "num_clients: 10 → 20; num_malicious: 3 → 9; seed: 42 → 1"
    )
    assert lines[-1].startswith("15 runs: 1 done, 13 todo, 1 stale")  # 5 mixes × 3
    # Another window: the done run is stale now, and every command says so.
    reproduce.main(["--list", "--only", "t3-iid-10-3", "--window", "5"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("stale  t3-iid-10-3-s42")
    assert (
        lines[1].strip() == "rounds.min_recovery: 10 → 5; rounds.max_recovery: 10 → 5"
    )
    assert all("rounds.min_recovery=5 rounds.max_recovery=5" in x
               for x in lines if x.startswith(("todo", "stale", "done")))  # fmt: skip


def test_no_estimate_without_committed_runs_of_the_prefix(tmp_path: Path) -> None:
    lines = reproduce.listing(plan()[:1], tmp_path, tmp_path / "staging")
    assert "[~" not in lines[0]
    assert lines[-1].endswith("(1 runs without an estimate)")


# ---------------------------------------------------------------- running
def _fake_simulation(calls: list[list[str]], write: dict[str, str]) -> Any:
    """Stands in for ``subprocess.run`` of ``simulations.run``: records the
    command and writes ``write`` into its ``hydra.run.dir``."""

    def fake(cmd: list[str], **_: Any) -> Any:
        calls.append(cmd)
        out = Path(
            next(c for c in cmd if c.startswith("hydra.run.dir=")).split("=", 1)[1]
        )
        for name, text in write.items():
            (out / name).write_text(text)

        class Done:
            returncode = 0

        return Done()

    return fake


def test_a_done_run_is_not_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, main_run: Run
) -> None:
    _commit(tmp_path / main_run.name, main_run.overrides)
    calls: list[list[str]] = []
    monkeypatch.setattr(subprocess, "run", _fake_simulation(calls, {}))
    assert reproduce.run_one(main_run, tmp_path, tmp_path / "staging")
    assert calls == []


def test_a_stale_run_replaces_its_results_only_once_finished(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, main_run: Run
) -> None:
    results, staging = tmp_path / "results", tmp_path / "staging"
    old = reproduce.merge(main_run.overrides, ["rounds.max_recovery=6"])
    _commit(results / main_run.name, old)
    new_config = OmegaConf.to_yaml(compose(list(main_run.overrides)))
    calls: list[list[str]] = []
    written = {"results.json": '{"new": true}', "config.yaml": new_config,
               "rounds.csv": "new\n", "checkpoint.pkl": ""}  # fmt: skip
    monkeypatch.setattr(subprocess, "run", _fake_simulation(calls, written))
    assert reproduce.run_one(main_run, results, staging)
    (cmd,) = calls
    assert cmd[:3] == [sys.executable, "-m", "simulations.run"]
    assert f"hydra.run.dir={staging / main_run.name}" in cmd  # not the results
    assert "resume=false" in cmd  # runs over nothing; no checkpoint of its own
    folder = results / main_run.name
    assert json.loads((folder / "results.json").read_text()) == {"new": True}
    assert (folder / "rounds.csv").read_text() == "new\n"
    assert not (folder / "checkpoint.pkl").exists()
    assert not staging.joinpath(main_run.name).exists()
    assert status(main_run, results, staging).state == "done"


def test_a_failed_stale_run_leaves_the_old_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, main_run: Run
) -> None:
    results, staging = tmp_path / "results", tmp_path / "staging"
    _commit(results / main_run.name, reproduce.merge(main_run.overrides, ["seed=7"]))
    before = (results / main_run.name / "results.json").read_text()

    def fail(cmd: list[str], **_: Any) -> Any:
        class Failed:
            returncode = 1

        return Failed()

    monkeypatch.setattr(subprocess, "run", fail)
    assert not reproduce.run_one(main_run, results, staging)
    assert (results / main_run.name / "results.json").read_text() == before
    assert status(main_run, results, staging).state == "stale"


def test_end_to_end_backdoor_runs_have_their_oracle(runs: list[Run]) -> None:
    from simulations.reproduce import E2E_BD_DETECTOR

    by_name = _by_name(runs)
    detector = [r for r in runs if r.name.startswith(f"e2e-bd-{E2E_BD_DETECTOR}-")]
    assert len(detector) == 5 * len(SEEDS)
    for r in detector:
        assert setting(r.overrides, "detector") == E2E_BD_DETECTOR
        assert set(_compare(r)) == {"natural"}
        oracle = r.name.replace(E2E_BD_DETECTOR, "oracle")
        if "cifar10-iid" in r.name or "cifar10-dirichlet-" in r.name:
            assert oracle not in by_name  # the rate sweep of the setting is it
        else:
            assert setting(by_name[oracle].overrides, "detector") is None
    fmnist = by_name[f"e2e-bd-{E2E_BD_DETECTOR}-fmnist-dirichlet0.5-10-4"]
    assert setting(fmnist.overrides, "attack") == "backdoor"
    assert setting(fmnist.overrides, "partition.alpha") == "0.5"
