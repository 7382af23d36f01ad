"""A run killed in the middle of recovery resumes from its checkpoint and ends
with the same global arrays as an uninterrupted run with the same seed."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
OVERRIDES = [
    "+experiment=smoke",
    "compare=[natural]",
    "rounds.max_recovery=3",
    "rounds.min_recovery=3",
    "rounds.max_retrain=2",
]


def command(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "simulations.run", *OVERRIDES, *extra,
            f"hydra.run.dir={out}"]  # fmt: skip


def rows(out: Path) -> list[dict[str, str]]:
    path = out / "rounds.csv"
    if not path.exists():
        return []
    with path.open() as fh:
        return list(csv.DictReader(fh))


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_arrays(tmp_path: Path) -> None:
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    done = subprocess.run(command(whole, "resume=false"), cwd=ROOT,
                          capture_output=True, timeout=600, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]

    # Kill the second run once FedUP's first recovery round (round 4) is logged.
    proc = subprocess.Popen(command(killed, "resume=false"), cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 600
        while not any(
            r["method"] == "fedup" and r["round"] == "4" for r in rows(killed)
        ):
            assert proc.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.2)
    finally:
        kill_group(proc)
    assert (killed / "checkpoint.pkl").exists()
    assert not (killed / "results.json").exists()

    resumed = subprocess.run(command(killed, "resume=true"), cwd=ROOT,
                             capture_output=True, text=True, timeout=600,
                             check=False)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming from" in resumed.stdout
    assert not (killed / "checkpoint.pkl").exists()

    a = np.load(whole / "final_arrays.npz")
    b = np.load(killed / "final_arrays.npz")
    assert sorted(a.files) == sorted(b.files)
    assert any(k.startswith("fedup/") for k in a.files)
    for key in a.files:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)

    def strip(rs: list[dict[str, str]]) -> list[tuple[str, ...]]:
        return [
            (r["phase"], r["method"], r["round"], r["test_acc"], r["mal_acc"])
            for r in rs
        ]

    assert strip(rows(whole)) == strip(rows(killed))
