"""`flwr run .` runs the same app as `python -m simulations.run` (one config)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import processes_with_env

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


@pytest.mark.slow
def test_flwr_run_local_simulation(tmp_path: Path) -> None:
    home = tmp_path / "flwr-home"
    env = dict(os.environ)
    env.update(
        FLWR_HOME=str(home),
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        # Offline: the app's dependencies are already installed here.
        FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION="1",
    )
    out = tmp_path / "out"
    try:
        proc = subprocess.run(
            [str(BIN / "flwr"), "run", ".", "--stream",
             "--run-config", f'overrides="+experiment=smoke output_dir={out}"',
             "--federation-config", "num-supernodes=5"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
    finally:
        # `flwr run` leaves its local SuperLink running; stop what this test started.
        for pid in processes_with_env("FLWR_HOME", str(home)):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "before unlearning" in proc.stdout
    assert f"results: {out.resolve()}" in proc.stdout  # where it wrote
    results = json.loads((out / "results.json").read_text())
    assert results["name"] == "smoke-fedup" and results["num_clients"] == 5
