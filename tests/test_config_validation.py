"""Every bad setting fails before Ray or any training starts, in one line.

The validator (``simulations.config.validate``) is called on composed configs
for each bad input; the entry point is run in a subprocess for a few of them,
to check the exit status, the single line and that nothing was started.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from simulations.config import ConfigError, compose, validate
from simulations.data_source import check_data

ROOT = Path(__file__).resolve().parents[1]
SMOKE = "+experiment=smoke"


def check(*overrides: str) -> None:
    validate(compose([SMOKE, *overrides]), data=False)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["unlearning.pruning_rate=2"], r"unlearning.pruning_rate must be .* \[0, 1\]"),
        (["unlearning.pruning_rate=-0.1"], r"unlearning.pruning_rate must be"),
        (["unlearning.p_min=0.2", "unlearning.p_max=0.1"], r"unlearning.p_max must be"),
        (["unlearning.gamma=0"], r"unlearning.gamma must be .* \(0, inf\)"),
        (["unlearning.rate_limit=0"], r"unlearning.rate_limit must be an integer"),
        (["fraction=0"], r"fraction must be a number in \(0, 1\], got 0"),
        (["fraction=1.5"], r"fraction must be"),
        (["test_fraction=0"], r"test_fraction must be"),
        (["tolerance=2"], r"tolerance must be a number in \(-inf, 1\]"),
        (["tolerance=abc"], r"tolerance must be a number .* got 'abc'"),
        (["num_clients=1"], r"num_clients must be an integer in \[2, inf\)"),
        (["num_clients=3.5"], r"num_clients must be an integer"),
        (["num_malicious=9"], r"num_malicious must be an integer in \[0, 4\]"),
        (["rounds.train=0"], r"rounds.train must be"),
        (["rounds.max_recovery=-1"], r"rounds.max_recovery must be"),
        (["rounds.min_recovery=5"], r"rounds.min_recovery must be .* \[0, 2\]"),
        (["train.lr=0"], r"train.lr must be"),
        (["train.batch_size=0"], r"train.batch_size must be"),
        (["partition=dirichlet", "partition.alpha=0"], r"partition.alpha must be"),
        (["unlearning.method=fedup-2"], r"unlearning method 'fedup-2'"),
        (["compare=[nope]"], r"unknown unlearning method 'nope'"),
        (["detector.name=nope"], r"unknown detector 'nope'"),
        (["detector=krum_score", "++detector.params.nope=1"], r"nope"),
        (["detector=dos", "detector.from_round=0"], r"detector.from_round must be"),
        (["attack.name=nope"], r"unknown attack 'nope'"),
        (["attack.fraction=0"], r"attack.fraction must be|fraction must be in"),
        (["attack=backdoor", "attack.position=topleft"], r"unknown position 'topleft'"),
        (["attack=backdoor", "attack.size=40"], r"attack.size=40 is larger"),
        (["attack=backdoor", "attack.target=10"], r"attack=backdoor: target"),
        (["attack.source=12"], r"attack=label_flip: source"),
        (["ray_address=auto", "ray_num_cpus=2"], r"drop ray_num_cpus=2"),
        (["ray_num_cpus=0"], r"ray_num_cpus must be"),
        (["client_resources.num_cpus=0"], r"client_resources.num_cpus must be"),
    ],
)
def test_a_bad_value_is_refused_with_what_to_do(
    overrides: list[str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        check(*overrides)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("overrides", "flagged", "clients"),
    [
        ([SMOKE, "num_malicious=3"], 3, 5),  # smoke: 5 clients
        ([SMOKE, "num_clients=4", "num_malicious=2"], 2, 4),  # exactly half
        (["+experiment=main", "num_malicious=5"], 5, 10),
    ],
)
def test_a_num_malicious_the_guard_would_refuse_fails_before_training(
    overrides: list[str], flagged: int, clients: int
) -> None:
    with pytest.raises(ConfigError, match="Theorem 1 needs a benign majority") as info:
        validate(compose(overrides), data=False)
    assert f"{flagged} flagged of {clients} clients" in str(info.value)
    assert f"at most {(clients - 1) // 2}" in str(info.value)


def test_the_guard_check_is_only_for_methods_that_go_through_it() -> None:
    # No unlearning through FedUP's guard: nothing to refuse.
    check("num_malicious=3", "unlearning.method=none", "compare=[retrain]")
    # One benign client flagged (Table V): 1 of 5 is a minority.
    check("detector=false_positive", "num_malicious=2")


@pytest.mark.parametrize(
    ("override", "key", "hint"),
    [
        ("+num_client=3", "num_client", "did you mean 'num_clients'?"),
        ("+attack.postion=center", "attack.postion", "did you mean 'position'?"),
        ("+rounds.trian=3", "rounds.trian", "did you mean 'train'?"),
        ("++unlearning.pruningrate=0.1", "unlearning.pruningrate", "pruning_rate"),
    ],
)
def test_an_unknown_key_is_refused(override: str, key: str, hint: str) -> None:
    with pytest.raises(ConfigError, match=f"unknown config key '{key}'") as info:
        check(override)
    assert hint in str(info.value)


def test_every_shipped_experiment_passes_and_detector_params_are_free() -> None:
    for experiment in ("smoke", "main", "sweep_p", "deploy"):
        validate(compose([f"+experiment={experiment}"]), data=False)
    check("detector=krum_score", "++detector.params.f=1")
    check("verbose=true")
    check("tolerance=-1.0")  # never recovered: the deployment demo's restart run


def test_missing_parquet_files_fail_with_how_to_set_the_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FEDUP_DATA_DIR", str(tmp_path))
    with pytest.raises(ConfigError, match=r"train\.parquet, test\.parquet are missing"):
        validate(compose([SMOKE]))


def test_no_data_folder_and_no_hub_fails_at_once_without_retries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FEDUP_DATA_DIR", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path))  # an empty cache
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    calls: list[tuple[str, int]] = []

    def unreachable(address: tuple[str, int], timeout: float) -> socket.socket:
        calls.append(address)
        raise OSError("no route to host")

    monkeypatch.setattr(socket, "create_connection", unreachable)
    with pytest.raises(ConfigError, match="FEDUP_DATA_DIR is not set") as info:
        validate(compose([SMOKE]))
    assert "export FEDUP_DATA_DIR=" in str(info.value)
    assert calls == [("huggingface.co", 443)]  # one try, no retries

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(RuntimeError, match="HF_HUB_OFFLINE is"):
        check_data("fashion_mnist")
    assert len(calls) == 1  # offline: the network is not touched


def test_a_dataset_in_the_hub_cache_needs_no_network(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FEDUP_DATA_DIR", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    (tmp_path / "hub" / "datasets--zalando-datasets--fashion_mnist").mkdir(parents=True)
    monkeypatch.setattr(socket, "create_connection", None)  # any call would fail
    assert check_data("fashion_mnist") == "the Hugging Face cache"


# ------------------------------------------------------------- entry point
def run(
    out: Path, *overrides: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "simulations.run", SMOKE, *overrides,
         f"hydra.run.dir={out}"],
        cwd=ROOT, env=env or dict(os.environ), capture_output=True, text=True,
        timeout=300, check=False,
    )  # fmt: skip


def assert_one_line_before_anything(
    proc: subprocess.CompletedProcess[str], out: Path
) -> str:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stdout == ""  # no round, no Ray, no Flower
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    # Written right before the simulation starts: never reached.
    assert not (out / "config.yaml").exists() and not (out / "rounds.csv").exists()
    return lines[0]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["num_malicious=3"], "Theorem 1 needs a benign majority"),
        (["+num_client=3"], "unknown config key 'num_client'"),
        (["unlearning.pruning_rate=2"], "unlearning.pruning_rate must be"),
        (["attack=backdoor", "attack.position=topleft"], "unknown position"),
    ],
)
def test_the_runner_fails_in_one_line_before_ray(
    tmp_path: Path, overrides: list[str], message: str
) -> None:
    line = assert_one_line_before_anything(run(tmp_path, *overrides), tmp_path)
    assert message in line


def test_the_runner_says_how_to_set_the_data_folder(tmp_path: Path) -> None:
    env = dict(os.environ, FEDUP_DATA_DIR=str(tmp_path / "nowhere"))
    line = assert_one_line_before_anything(run(tmp_path, env=env), tmp_path)
    assert "FEDUP_DATA_DIR" in line and "train.parquet" in line


def test_verbose_shows_the_traceback(tmp_path: Path) -> None:
    proc = run(tmp_path, "fraction=0", "verbose=true")
    assert proc.returncode != 0
    assert "Traceback" in proc.stderr and "ConfigError" in proc.stderr


def test_an_online_detector_compares_only_what_fedup_can_run() -> None:
    check("detector=cosine_outlier", "compare=[natural,fedup-0.05,retrain]")
    with pytest.raises(ConfigError, match="detector=cosine_outlier: method 'not'"):
        check("detector=cosine_outlier", "compare=[natural,not]")
