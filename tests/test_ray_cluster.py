"""`ray_address` joins a running Ray cluster instead of starting a local Ray."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest
from conftest import processes_with_env
from omegaconf import DictConfig, OmegaConf

from simulations.run import backend_config

ROOT = Path(__file__).resolve().parents[1]
RAY = Path(sys.executable).parent / "ray"
MARKER = "FEDUP_TEST_RAY_HEAD"  # env var that tags every process of the head


def settings(**overrides: object) -> DictConfig:
    base = {
        "ray_num_cpus": None,
        "ray_address": None,
        "client_resources": {"num_cpus": 1, "num_gpus": 0.0},
    }
    cfg = OmegaConf.create({**base, **overrides})
    assert isinstance(cfg, DictConfig)
    return cfg


def test_no_address_starts_a_local_ray() -> None:
    init = backend_config(settings(ray_num_cpus=2))["init_args"]
    assert init["num_cpus"] == 2 and "address" not in init


def test_address_joins_a_cluster() -> None:
    init = backend_config(settings(ray_address="auto"))["init_args"]
    assert init["address"] == "auto" and "num_cpus" not in init


def test_address_with_num_cpus_is_refused() -> None:
    cfg = settings(ray_address="10.0.0.1:6379", ray_num_cpus=2)
    with pytest.raises(ValueError, match="ray_num_cpus"):
        backend_config(cfg)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for_head(head: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    """Until `ray start` says the head is up; fail with its log otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if "Ray runtime started" in log.read_text(errors="replace"):
            return
        if head.poll() is not None:
            break
        time.sleep(0.5)
    pytest.fail(f"the Ray head did not start:\n{log.read_text()[-3000:]}")


def stop_head(head: subprocess.Popen[bytes], tag: str) -> list[int]:
    """Stop the head and every process it started, by PID; return survivors."""
    if head.poll() is None:
        head.send_signal(signal.SIGTERM)  # `ray start --block` then stops its node
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            head.kill()
            head.wait(timeout=30)
    deadline = time.monotonic() + 30
    while (left := processes_with_env(MARKER, tag)) and time.monotonic() < deadline:
        time.sleep(0.5)
    for pid in left:  # whatever ignored SIGTERM
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    time.sleep(1)
    return processes_with_env(MARKER, tag)


@pytest.mark.slow
def test_smoke_scenario_runs_on_a_started_ray_head(tmp_path: Path) -> None:
    port = free_port()
    tag = uuid.uuid4().hex
    # Short: Ray's socket paths under it must stay below 108 characters.
    ray_tmp = Path(tempfile.mkdtemp(prefix="fedup-ray-"))
    env = dict(os.environ, **{MARKER: tag, "RAY_USAGE_STATS_ENABLED": "0"})
    log = tmp_path / "ray-head.log"
    with log.open("wb") as out:
        # The workers inherit this environment, FEDUP_DATA_DIR included.
        head = subprocess.Popen(
            [
                *(str(RAY), "start", "--head", "--block"),
                *("--node-ip-address=127.0.0.1", f"--port={port}", "--num-cpus=2"),
                *("--include-dashboard=false", f"--temp-dir={ray_tmp}"),
                "--disable-usage-stats",
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for_head(head, log, timeout=180)
        run_dir = tmp_path / "run"
        proc = subprocess.run(
            [
                *(sys.executable, "-m", "simulations.run", "+experiment=smoke"),
                *(f"ray_address=127.0.0.1:{port}", f"hydra.run.dir={run_dir}"),
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        results = json.loads((run_dir / "results.json").read_text())
        assert results["num_clients"] == 5 and "fedup" in results["methods"]
        # The clients ran on this head: its session has the actors' logs.
        logs = next(ray_tmp.glob("session_2*")) / "logs"
        assert list(logs.glob("worker-*.out")), sorted(p.name for p in logs.iterdir())
        assert head.poll() is None  # the run joined the head; it did not end it
    finally:
        survivors = stop_head(head, tag)
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert not survivors, f"Ray processes left running: {survivors}"
