"""The online flow's pure parts: which methods run a pass, and their rows."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from simulations.checkpoint import step_log
from simulations.online import from_first_unlearning, online_methods


def test_online_methods_keep_fedup_kinds_in_order() -> None:
    assert online_methods(["fedup", "natural", "fedup-0.05", "retrain"]) == [
        "fedup", "natural", "fedup-0.05",
    ]  # fmt: skip


@pytest.mark.parametrize("method", ["not", "federaser", "random_prune", "none"])
def test_online_methods_refuse_one_shot_baselines(method: str) -> None:
    with pytest.raises(ValueError, match=f"'{method}' cannot run with a detector"):
        online_methods(["fedup", method])


def test_rows_start_at_the_first_unlearning() -> None:
    rows = [{"round": r} for r in range(1, 8)]
    events = [SimpleNamespace(server_round=3, status="refused"),
              SimpleNamespace(server_round=5, status="unlearned"),
              SimpleNamespace(server_round=7, status="unlearned")]  # fmt: skip
    assert [r["round"] for r in from_first_unlearning(rows, events)] == [5, 6, 7]
    # Never unlearned: the last round only.
    assert from_first_unlearning(rows, events[:1]) == [{"round": 7}]


def test_steps_log_under_their_phase_and_method() -> None:
    assert step_log("online") == ("online", "fedup")
    assert step_log("online-natural") == ("online", "natural")
    assert step_log("train") == ("train", "all")
    assert step_log("natural") == ("unlearn", "natural")
