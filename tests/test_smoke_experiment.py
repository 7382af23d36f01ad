"""The smoke experiment: the whole pipeline on Flower's Ray engine, small."""

from __future__ import annotations

import csv
import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from simulations.schema import RunResult

ROOT = Path(__file__).resolve().parents[1]


def run(*overrides: str, out: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    return subprocess.run(
        [sys.executable, "-m", "simulations.run", *overrides, f"hydra.run.dir={out}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.mark.slow
def test_smoke_experiment_writes_all_outputs(tmp_path: Path) -> None:
    methods = "natural,random_prune,malicious_magnitude,not,federaser,retrain,none"
    proc = run("+experiment=smoke", f"compare=[{methods}]", out=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    # Every key of results.json, with its type: the one schema (RunResult).
    written = RunResult.load(tmp_path / "results.json")
    assert written.methods["fedup"].gamma is not None  # the adaptive rate's settings
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["method"] == "fedup"
    assert set(results["methods"]) == {"fedup", *methods.split(",")}
    for name, res in results["methods"].items():
        assert len(res["test_acc_curve"]) >= 1, name
        assert "recovery_rounds" in res and "storage_mb" in res, name
    federaser, fedup_res = results["methods"]["federaser"], results["methods"]["fedup"]
    assert federaser["storage_mb"] > fedup_res["storage_mb"] > 0
    assert (
        results["methods"]["retrain"]["recovery_rounds"]
        == results["rounds_from_scratch"]
    )
    fedup = results["methods"]["fedup"]
    assert 0.01 <= fedup["pruning_rate"] <= 0.15  # adaptive P within [p_min, p_max]
    assert fedup["storage_mb"] > 0 and fedup["unlearn_seconds"] > 0
    # Pruning changed the model: accuracy right after unlearning differs from before.
    assert fedup["test_acc_after_unlearning"] != results["test_acc_before"]
    rows = list(csv.DictReader((tmp_path / "rounds.csv").open()))
    phases = {(r["phase"], r["method"]) for r in rows}
    assert {
        ("train", "all"),
        ("unlearn", "fedup"),
        ("unlearn", "natural"),
        ("retrain", "retrain"),
    } <= phases
    assert (tmp_path / "curves.png").stat().st_size > 10_000
    assert "R* =" in proc.stdout and "before unlearning" in proc.stdout
    assert results["status"] == "unlearned"
    assert {m: r["status"] for m, r in results["methods"].items()} == {
        "fedup": "unlearned", "natural": "unlearned", "random_prune": "unlearned",
        "malicious_magnitude": "unlearned", "not": "unlearned",
        "federaser": "unlearned", "retrain": "retrained", "none": "kept",
    }  # fmt: skip
    # Quiet progress: one line per round (partition ids), no Flower banner; the
    # output ends with the table and the folder.
    lines = proc.stdout.splitlines()
    train = [line for line in lines if line.startswith("train ")]
    assert [line.split()[2] for line in train] == ["1/3", "2/3", "3/3"]
    assert all(line.endswith("partitions 0-4") for line in train)
    assert "unlearned 0-1" in next(x for x in lines if x.startswith("unlearn fedup"))
    assert "Starting FedUP strategy" not in proc.stdout + proc.stderr
    assert "[ROUND" not in proc.stdout + proc.stderr
    assert lines[-1] == f"results: {tmp_path.resolve()}"
    assert len(lines) + len(proc.stderr.splitlines()) < 80

    # resume=true (the default) skips a finished run without starting Ray.
    again = run("+experiment=smoke", f"compare=[{methods}]", out=tmp_path)
    assert again.returncode == 0 and "skipping (resume=true)" in again.stdout


def test_bad_config_fails_before_ray(tmp_path: Path) -> None:
    proc = run("+experiment=smoke", "num_malicious=9", out=tmp_path)
    assert proc.returncode != 0
    assert "num_malicious must be an integer in [0, 4], got 9" in proc.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    "overrides",
    [
        # Table V: the detector flags one benign client.
        ("detector=false_positive", "compare=[natural]"),
        # A real detector every round; natural forgetting as its own pass
        # with the same detector.
        ("detector=last_layer_cluster", "detector.from_round=2", "compare=[natural]"),
        # Table VII: no attack, forget one client with FedEraser, NoT and FedUP.
        (
            "attack=none",
            "num_malicious=1",
            "unlearning.pruning_rate=0.3",
            "compare=[federaser,not]",
        ),
    ],
)
def test_other_scenarios_at_smoke_scale(
    tmp_path: Path, overrides: tuple[str, ...]
) -> None:
    proc = run("+experiment=smoke", "rounds.max_retrain=1", *overrides, out=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    assert 0 < results["forget_acc_before"] <= 1
    for res in results["methods"].values():
        assert 0 <= res["forget_acc_after"] <= 1
    if "detector=dos" in overrides:
        rounds = results["detection"]["unlearning_rounds"]
        assert len(rounds) >= 2
        assert all(b - a >= 2 for a, b in itertools.pairwise(rounds))
        assert results["detection"]["refused"], "the guard never refused"
        assert results["test_acc_after"] > 0.3  # accuracy stays up under the DoS
    if "detector=last_layer_cluster" in overrides:
        natural, fedup = results["methods"]["natural"], results["methods"]["fedup"]
        assert natural["pruning_rate"] == 0.0 and natural["test_acc_curve"]
        assert fedup["test_acc_curve"]
        rows = list(csv.DictReader((tmp_path / "rounds.csv").open()))
        online = {r["method"] for r in rows if r["phase"] == "online"}
        assert online == {"fedup", "natural"}
        detection = results["detection"]
        assert detection["first_unlearning_round"] is None or (
            detection["first_unlearning_round"] >= 2
        )


@pytest.mark.slow
def test_hydra_multirun_sweep_writes_summary(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "simulations.run", "-m", "+experiment=smoke",
         "unlearning.pruning_rate=0.05,0.1", "rounds.max_retrain=0", "compare=[]",
         f"hydra.sweep.dir={tmp_path}"],
        cwd=ROOT, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = list(csv.DictReader((tmp_path / "summary.csv").open()))
    assert sorted(float(r["pruning_rate"]) for r in rows) == [0.05, 0.1]
    assert (tmp_path / "sweep_p.png").exists()
    # Folders and names carry the swept values; the plot's path is printed.
    for rate in ("0.05", "0.1"):
        (folder,) = tmp_path.glob(f"*unlearning.pruning_rate={rate}")
        name = json.loads((folder / "results.json").read_text())["name"]
        assert name == f"smoke-fedup-unlearning.pruning_rate={rate}"
        assert f"results: {folder.resolve()}" in proc.stdout
    assert f"sweep plot: {(tmp_path / 'sweep_p.png').resolve()}" in proc.stdout


def test_flwr_run_writes_under_the_project_not_the_superlinks_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from simulations import server_app

    # `flwr run` imports a copy of the app from the SuperLink's folders and
    # runs it from the SuperLink's working directory.
    copy = tmp_path / "flwr-home" / "apps" / "simulations" / "server_app.py"
    monkeypatch.setattr(server_app, "__file__", str(copy))
    monkeypatch.chdir(tmp_path)
    assert server_app.project_dir() == ROOT  # installed from it (make install: -e)


def test_a_sweep_job_is_named_by_its_swept_values() -> None:
    from simulations.run import sweep_suffix

    overrides = ["+experiment=smoke", "compare=[]", "unlearning.pruning_rate=0.05",
                 "seed=3"]  # fmt: skip
    assert sweep_suffix(overrides, {"unlearning.pruning_rate"}) == (
        "unlearning.pruning_rate=0.05"
    )
    assert sweep_suffix(overrides, {"unlearning.pruning_rate", "seed"}) == (
        "unlearning.pruning_rate=0.05,seed=3"
    )
    assert sweep_suffix(overrides, set()) == ""
