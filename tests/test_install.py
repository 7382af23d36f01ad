"""`pip install fedup-flwr` is light: the strategy imports without torch or Ray."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Run inside the fresh venv: import the library, use it once, list what is there.
PROBE = """
import importlib.metadata, importlib.util, json
import numpy as np
from fedup_flwr import FedUP
from fedup_flwr.core import apply_mask, unlearning_mask
from fedup_flwr.detectors import available_detectors, get_detector

model = [np.ones((4, 3), np.float32), np.zeros(3, np.float32)]
mask = unlearning_mask([model], [[a + 1 for a in model]], model, 0.5)
print(json.dumps({
    "strategy": type(FedUP()).__name__,
    "pruned": int(sum(m.sum() for m in mask)),
    "zeroed": float(apply_mask(model, mask)[0].sum()),
    "detectors": sorted(available_detectors()),
    "detector": type(get_detector("cosine_outlier")).__name__,
    "missing": [m for m in ("torch", "torchvision", "ray", "hydra", "matplotlib",
                            "flwr_datasets") if importlib.util.find_spec(m) is None],
    "dists": sorted(d.metadata["Name"].lower().replace("_", "-")
              for d in importlib.metadata.distributions()),
}))
"""

# What only the `simulation` extra may bring.
HEAVY = {"torch", "torchvision", "ray", "hydra-core", "matplotlib", "flwr-datasets"}


def build_wheel(dest: Path) -> Path:
    """The project's wheel, built from a copy of the sources (no stale build/)."""
    src = dest / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("fedup_flwr", "simulations"):
        shutil.copytree(ROOT / name, src / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    # No build isolation: this venv's setuptools, nothing downloaded to build.
    subprocess.run(
        [
            *(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps"),
            *("--no-build-isolation", "-w", str(dest / "dist"), str(src)),
        ],
        check=True,
        timeout=300,
    )
    (wheel,) = (dest / "dist").glob("fedup_flwr-*.whl")
    return wheel


@pytest.mark.slow
def test_wheel_installs_and_imports_without_torch(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    try:
        check_light_install(build_wheel(tmp_path), venv, tmp_path)
    finally:
        shutil.rmtree(venv, ignore_errors=True)  # about 0.5 GB


def check_light_install(wheel: Path, venv: Path, tmp_path: Path) -> None:
    """Install ``wheel`` into a new ``venv``; use the library there, torch absent."""
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(venv)],
        check=True,
        timeout=120,
    )
    python = venv / "bin" / "python"
    # Nothing of the project's venv may leak in (Flower's Ray backend sets
    # PYTHONPATH in the test process).
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONNOUSERSITE"] = "1"
    # This venv's pip installs into the fresh one (no pip bootstrap there);
    # flwr, numpy and scikit-learn come from the package index or pip's cache;
    # --no-compile: byte-compiling every installed module took half the time.
    install = subprocess.run(
        [
            *(sys.executable, "-m", "pip", "--python", str(python)),
            *("install", "-q", "--no-compile", str(wheel)),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    probe = subprocess.run(
        [str(python), "-c", PROBE],
        env=env,
        cwd=tmp_path,  # not the checkout: import the installed package
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert probe.returncode == 0, probe.stderr[-3000:]
    found = json.loads(probe.stdout.strip().splitlines()[-1])
    assert found["strategy"] == "FedUP"
    assert found["pruned"] > 0 and found["zeroed"] < 12.0
    assert "cosine_outlier" in found["detectors"]
    assert found["detector"]
    assert sorted(found["missing"]) == sorted(
        ["torch", "torchvision", "ray", "hydra", "matplotlib", "flwr_datasets"]
    )
    assert {"fedup-flwr", "flwr", "numpy", "scikit-learn"} <= set(found["dists"])
    assert not HEAVY & set(found["dists"])
    no_torch = subprocess.run(
        [str(python), "-c", "import torch"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert no_torch.returncode != 0
    assert "No module named 'torch'" in no_torch.stderr
