"""A refused unlearning cannot pass for a success: status, table row, exit code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from fedup_flwr import UnlearningEvent
from fedup_flwr.policy import UnlearningPolicy
from simulations.outcome import (
    EXIT_NOT_UNLEARNED,
    exit_code,
    method_outcome,
    not_done,
)
from simulations.results import RoundLog, finish_run
from simulations.results_table import format_table
from simulations.scenario import Scenario, compose
from simulations.schema import RunResult

ROOT = Path(__file__).resolve().parents[1]


def guard_refusal(flagged: int, nodes: int) -> UnlearningEvent:
    """The event FedUP records when its guard refuses (reason from the policy)."""
    policy = UnlearningPolicy()
    policy.observe(range(nodes))
    decision = policy.flag(range(flagged), dict.fromkeys(range(flagged)))  # type: ignore[arg-type]
    assert decision.refused, "the guard accepted a majority"
    return UnlearningEvent(3, decision.refused, "refused", reason=decision.reason)


def test_a_guard_refusal_is_refused_with_its_counts() -> None:
    outcome = method_outcome("fedup", [guard_refusal(3, 5)], num_clients=5)
    assert (outcome.status, outcome.flagged, outcome.nodes) == ("refused", 3, 5)
    # Refused, then unlearned later (online detection): it did unlearn.
    done = UnlearningEvent(5, [0], "unlearned", rate=0.1)
    assert method_outcome("fedup", [guard_refusal(3, 5), done], 5).status == "unlearned"


def test_statuses_of_methods_that_do_not_go_through_the_guard() -> None:
    assert method_outcome("fedup", [], 5).status == "not_flagged"
    assert method_outcome("none", [], 5).status == "kept"
    assert method_outcome("retrain", [], 5).status == "retrained"
    assert method_outcome("federaser", [], 5).status == "unlearned"
    nothing = UnlearningEvent(3, [0], "refused", reason="no array with ndim >= 2")
    outcome = method_outcome("fedup-0.1", [nothing], 5)
    assert (outcome.status, outcome.flagged, outcome.nodes) == ("refused", 1, None)


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return Scenario(compose(["+experiment=smoke", "compare=[natural]"]))


def one_shot_log(folder: Path) -> RoundLog:
    log = RoundLog(folder / "rounds.csv")
    metrics = {"mal_acc": 0.4, "attack_success": 0.0}
    log.add_initial({"test_acc": 0.1, **metrics})
    for r in (1, 2, 3):
        log.add("train", "all", r, test_acc=0.8, seconds=1.0, **metrics)
    for method in ("fedup", "natural"):
        log.add("unlearn", method, 3, test_acc=0.8, seconds=1.0, **metrics)
    return log


def test_a_refused_run_says_so_in_results_table_and_exit_code(
    scenario: Scenario, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    refused = [guard_refusal(3, 5)]
    returned = finish_run(
        scenario, tmp_path, one_shot_log(tmp_path),
        {"fedup": refused, "natural": refused},
        unlearning_round=3, wall_seconds=1.0,
    )  # fmt: skip
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved == returned and saved["status"] == "refused"
    fedup = saved["methods"]["fedup"]
    assert (fedup["status"], fedup["flagged"], fedup["nodes"]) == ("refused", 3, 5)
    # Accuracy is back at once since nothing was removed: that is no recovery.
    assert fedup["recovery_rounds"] is None and saved["recovery_rounds"] is None
    table = capsys.readouterr().out
    assert "fedup: refused (3 of 5 flagged; guard)" in table
    assert "fedup: unlearned" not in table
    run = RunResult.load(tmp_path / "results.json")
    assert exit_code(run) == EXIT_NOT_UNLEARNED
    assert not_done(run) == [
        "fedup: refused (3 of 5 flagged; guard)",
        "natural: refused (3 of 5 flagged; guard)",
    ]


def test_an_unlearned_run_exits_zero(scenario: Scenario, tmp_path: Path) -> None:
    done = [UnlearningEvent(3, [0, 1], "unlearned", rate=0.1, seconds=0.1)]
    finish_run(
        scenario, tmp_path, one_shot_log(tmp_path), {"fedup": done, "natural": done},
        unlearning_round=3, wall_seconds=1.0,
    )  # fmt: skip
    run = RunResult.load(tmp_path / "results.json")
    assert run.status == "unlearned" and run.methods["fedup"].recovery_rounds == 0
    assert exit_code(run) == 0 and not_done(run) == []
    assert "fedup: unlearned" in format_table(run)


# A detector that flags 3 of the 5 smoke clients from round 2 on: FedUP's guard
# refuses at run time (the config check cannot know what it will flag).
SCRIPT = """
import sys
from fedup_flwr.detectors import register_detector

class FlagMajority:
    def __init__(self, seed=0):
        self.scores = {}

    def detect(self, server_round, replies, global_arrays):
        return set(sorted(replies)[:3]) if server_round >= 2 else set()

register_detector("flag_majority", FlagMajority)
from simulations.run import main
sys.argv = ["run", *sys.argv[1:]]
main()
"""


@pytest.mark.slow
def test_a_runtime_refusal_exits_non_zero_with_a_visible_status(
    tmp_path: Path,
) -> None:
    script = tmp_path / "refuse.py"
    script.write_text(textwrap.dedent(SCRIPT))
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, str(script), "+experiment=smoke", "detector=flag_majority",
         "rounds.train=2", "rounds.max_recovery=0", "rounds.max_retrain=0",
         "compare=[]", f"hydra.run.dir={out}"],
        cwd=ROOT, env=dict(os.environ), capture_output=True, text=True,
        timeout=600, check=False,
    )  # fmt: skip
    assert proc.returncode == EXIT_NOT_UNLEARNED, proc.stdout + proc.stderr
    results = json.loads((out / "results.json").read_text())
    fedup = results["methods"]["fedup"]
    assert results["status"] == fedup["status"] == "refused"
    assert (fedup["flagged"], fedup["nodes"]) == (3, 5)
    assert fedup["recovery_rounds"] is None
    assert "fedup: refused (3 of 5 flagged; guard)" in proc.stdout
    assert "REFUSED to unlearn" in proc.stdout  # the round's progress line
    assert "the unlearning asked for did not happen" in proc.stderr
    assert f"results: {out.resolve()}" in proc.stdout
