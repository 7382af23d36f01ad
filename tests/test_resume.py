"""A run killed in the middle of recovery resumes from its checkpoint and ends
with the same global arrays as an uninterrupted run with the same seed; the
checkpoint gives back what it saved, mapped to the new run's node ids."""

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
from flwr.app import ArrayRecord
from flwr.serverapp.strategy import FedAvg

from fedup_flwr import FedUP, UnlearningEvent
from simulations.checkpoint import Checkpoint

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


def test_checkpoint_returns_progress_in_new_node_ids(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.pkl"
    pid_of = {100: 0, 101: 1}  # first run: node id -> partition id
    node_of = {0: 200, 1: 201}  # restarted run: partition id -> node id
    arrays = ArrayRecord([np.arange(4.0).reshape(2, 2)])
    rows = [{"phase": "train", "method": "all", "round": 1}]
    strategy = FedUP(FedAvg())
    strategy.exclude([101])
    strategy.next_round = 5
    event = UnlearningEvent(server_round=4, node_ids=[101], status="unlearned")
    strategy.events.append(event)
    saving = Checkpoint(path, enabled=False)  # always writes
    saving.save_step("train", arrays, rows, None, pid_of)
    saving.save_round("fedup", 4, arrays, strategy, rows, None, pid_of)
    saving.save_events({"fedup": [event]}, {"not": 1.5})

    assert Checkpoint(path, enabled=False).load(node_of) is None  # resume=false
    loading = Checkpoint(path, enabled=True)
    restored = loading.load(node_of)
    assert restored is not None
    assert sorted(restored.done) == ["train"] and restored.rows == rows
    np.testing.assert_array_equal(
        restored.done["train"].to_numpy_ndarrays()[0], np.arange(4.0).reshape(2, 2)
    )
    assert restored.events["fedup"][0].node_ids == [101]  # as the run reported
    assert restored.storage == {"not": 1.5} and restored.history is None
    assert loading.resume_step("train", node_of) is None  # finished, not current
    progress = loading.resume_step("fedup", node_of)
    assert progress is not None
    assert (progress.first, progress.next_round) == (4, 5)
    assert progress.state["excluded"] == [201]
    assert progress.state["events"][0]["node_ids"] == [201]
    resumed = FedUP(FedAvg())
    resumed.load_state_dict(progress.state)
    assert resumed.excluded == {201}


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
