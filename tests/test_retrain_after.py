"""``rounds.retrain_after``: baseline B runs that many rounds past R*.

B's round loop is faked (no Ray): the fake logs each retrain round of a given
test-accuracy curve, then asks the experiment's stop rule, as
``Experiment._rounds`` does after every round.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from omegaconf import OmegaConf

from simulations.config import ConfigError, compose, validate
from simulations.experiment import Experiment, retrain_finished
from simulations.report.recovery import baseline_window
from simulations.results import RoundLog

TARGET = 0.5
# R* = round 3 (first >= 0.5); round 4 falls back below the mark.
CURVE = [0.2, 0.4, 0.5, 0.45, 0.6, 0.7, 0.8, 0.9]


@pytest.mark.parametrize(
    ("accs", "after", "done"),
    [
        ([], 0, False),
        ([0.2, 0.4], 0, False),  # R* not reached
        ([0.2, 0.5], 0, True),  # R* = 2, stop at once
        ([0.2, 0.5], 1, False),  # R* = 2, one round to go
        ([0.2, 0.5, 0.3], 1, True),  # R* stays the first hit though round 3 fell
        ([0.2, 0.5, 0.3], 2, False),
        ([0.6], 0, True),
    ],
)
def test_retrain_finished_counts_rounds_past_the_first_hit(
    accs: list[float], after: int, done: bool
) -> None:
    assert retrain_finished(accs, TARGET, after) is done


def test_retrain_finished_refuses_a_negative_count() -> None:
    with pytest.raises(ValueError, match="after must be >= 0"):
        retrain_finished([0.6], TARGET, -1)


def _retrain_rounds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, after: int, cap: int
) -> list[float]:
    """B's logged test accuracies with ``retrain_after=after``, ``max_retrain=cap``."""
    exp = Experiment.__new__(Experiment)  # no scenario, no Ray: _retrain only
    exp.cfg = OmegaConf.create({"rounds": {"max_retrain": cap, "retrain_after": after}})
    exp.log = RoundLog(tmp_path / "rounds.csv")

    def step(name: str, build: Any, grid: Any, start: Any, num_rounds: int,
             *, stop: Any) -> tuple[None, None]:  # fmt: skip
        assert name == "retrain"
        for rnd in range(1, num_rounds + 1):
            exp.log.add("retrain", "retrain", rnd, test_acc=CURVE[rnd - 1],
                        mal_acc=0.0, attack_success=0.0, seconds=0.0)  # fmt: skip
            if stop(exp.log.last("retrain", "retrain")):
                break
        return None, None

    monkeypatch.setattr(exp, "_step", step)
    exp._retrain(None, [], TARGET)  # type: ignore[arg-type]
    return [r["test_acc"] for r in exp.log.select("retrain", "retrain")]


def test_default_stops_at_r_star(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _retrain_rounds(tmp_path, monkeypatch, after=0, cap=8) == CURVE[:3]


def test_retrain_after_runs_past_r_star_so_the_window_has_r_star_plus_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    accs = _retrain_rounds(tmp_path, monkeypatch, after=1, cap=8)
    assert accs == CURVE[:4]  # round 4 ran although it fell below the mark
    window = baseline_window(accs, [0.0] * len(accs), r_star=3)
    assert window is not None and window.rounds == (2, 3, 4)
    assert _retrain_rounds(tmp_path, monkeypatch, after=3, cap=8) == CURVE[:6]


def test_retrain_after_stays_within_max_retrain(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _retrain_rounds(tmp_path, monkeypatch, after=4, cap=5) == CURVE[:5]


def test_no_retrain_when_max_retrain_is_zero(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _retrain_rounds(tmp_path, monkeypatch, after=1, cap=0) == []


def test_config_default_is_zero_and_validated() -> None:
    cfg = compose(["+experiment=smoke"])
    assert cfg.rounds.retrain_after == 0
    assert compose([]).rounds.retrain_after == 0
    validate(compose(["+experiment=smoke", "rounds.retrain_after=2"]), data=False)


@pytest.mark.parametrize("value", ["-1", "1.5", "abc", "true"])
def test_a_bad_retrain_after_is_refused(value: str) -> None:
    with pytest.raises(
        ConfigError, match=r"rounds.retrain_after must be an integer in \[0, inf\)"
    ) as info:
        validate(
            compose(["+experiment=smoke", f"rounds.retrain_after={value}"]), data=False
        )
    assert "\n" not in str(info.value)
