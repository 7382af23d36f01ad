"""The README's ServerApp example runs as written on Flower's simulation engine."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import e2e_app
import pytest
from flwr.simulation import run_simulation

README = Path(__file__).resolve().parents[1] / "README.md"


def example_code() -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "README has no python example"
    return blocks[0]


@pytest.mark.slow
def test_readme_serverapp_example_runs(capsys: Any) -> None:
    namespace: dict[str, Any] = {}
    exec(compile(example_code(), str(README), "exec"), namespace)
    run_simulation(
        server_app=namespace["app"],
        client_app=e2e_app.client,
        num_supernodes=6,
        backend_config={
            "client_resources": {"num_cpus": 1, "num_gpus": 0.0},
            "init_args": {"num_cpus": 2, "include_dashboard": False},
        },
    )
    out = capsys.readouterr().out
    # The example prints FedUP's events (a list) and the final ArrayRecord.
    assert out.startswith("[") and "Array(dtype=" in out


def test_readme_example_is_short() -> None:
    lines = [
        ln
        for ln in example_code().splitlines()
        if ln.strip() and not ln.startswith(("import", "from"))
    ]
    assert len(lines) <= 14


def test_readme_wrapper_example_builds_fedup_around_dp() -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    namespace: dict[str, Any] = {}
    exec(compile(blocks[0], str(README), "exec"), namespace)
    exec(compile(blocks[1], str(README), "exec"), namespace)
    strategy = namespace["strategy"]
    assert type(strategy).__name__ == "FedUP"
    assert (
        type(strategy.strategy).__name__ == "DifferentialPrivacyServerSideFixedClipping"
    )
    assert strategy.weighted_by_key == "num-examples"
