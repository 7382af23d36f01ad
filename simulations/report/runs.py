"""Loading committed runs (``results/<run>/results.json``) and reading them."""

from __future__ import annotations

import csv
import re
from pathlib import Path

from simulations.schema import MethodResult, RunResult

ROOT = Path(__file__).resolve().parents[2]
RESULTS_DIR = ROOT / "results"
DOC = ROOT / "docs" / "results.md"
NOTES_DIR = ROOT / "docs" / "notes"
FIGURES_DIR = ROOT / "docs" / "figures"

Runs = dict[str, RunResult]
Groups = dict[tuple[str, int, int], list[str]]
Curves = tuple[list[float], list[float], list[float]]
"""B's test, malicious and forgetting-data accuracy per retrain round."""
_SEED = re.compile(r"-s\d+$")


class LoadedRuns(dict[str, RunResult]):
    """``{run name: RunResult}`` of one folder, which it remembers: a run's
    ``rounds.csv`` and ``config.yaml`` are read from ``folder / name``.

    A plain dict of runs (no folder) is read from its ``results.json`` alone.
    """

    def __init__(self, runs: dict[str, RunResult], folder: Path) -> None:
        super().__init__(runs)
        self.folder = folder


def load_results(folder: Path = RESULTS_DIR) -> LoadedRuns:
    """``{run name: RunResult}`` for every finished run under ``folder``.

    Raises
    ------
    ValueError
        When a ``results.json`` does not match :class:`RunResult`.
    """
    runs = {
        path.parent.name: RunResult.load(path)
        for path in sorted(folder.glob("*/results.json"))
    }
    return LoadedRuns(runs, folder)


def run_dir(runs: Runs, name: str) -> Path | None:
    """The folder of run ``name`` (None: ``runs`` were not loaded from one)."""
    folder = getattr(runs, "folder", None)
    return None if folder is None else Path(folder) / name


def group(runs: Runs, prefix: str) -> Groups:
    """Runs named ``<prefix>-<partition>-<clients>-<malicious>[-...]``, by mix."""
    groups: Groups = {}
    for name, res in runs.items():
        if name.startswith(prefix + "-"):
            key = (res.partition, res.num_clients, res.num_malicious)
            groups.setdefault(key, []).append(name)
    return {k: sorted(v) for k, v in groups.items()}


def seed_groups(names: list[str]) -> dict[str, list[str]]:
    """``names`` by setting: a trailing ``-s<seed>`` dropped, order kept."""
    out: dict[str, list[str]] = {}
    for name in names:
        out.setdefault(_SEED.sub("", name), []).append(name)
    return out


def cap(method: MethodResult) -> int:
    """Recovery rounds ``method`` was run: a count it did not reach reads ``>cap``.

    Per method and per run (a seed group's runs and a run's methods may stop
    after different numbers of rounds).
    """
    return len(method.test_acc_curve) - 1


def read_retrain(path: Path) -> Curves | None:
    """B's test, malicious and forgetting-data accuracy per retrain round
    (index 0: round 1) from the ``retrain`` rows of a ``rounds.csv`` (None: no
    such rows)."""
    with path.open(newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["phase"] == "retrain"]
    if not rows:
        return None
    rows.sort(key=lambda r: int(r["round"]))
    test, mal, forget = (
        [float(r[key]) for r in rows] for key in ("test_acc", "mal_acc", "forget_acc")
    )
    return test, mal, forget


def retrain_curves(runs: Runs, name: str) -> Curves | None:
    """B's curves of run ``name``: from its ``rounds.csv``
    (:func:`read_retrain`), else from a ``retrain`` method in
    ``results.json``; None when neither has any."""
    folder = run_dir(runs, name)
    path = None if folder is None else folder / "rounds.csv"
    if path is not None and path.exists():
        curves = read_retrain(path)
        if curves is not None:
            return curves
    b = runs[name].methods.get("retrain")
    if b is not None and b.test_acc_curve:
        return list(b.test_acc_curve), list(b.mal_acc_curve), list(b.forget_acc_curve)
    return None


def read_setting(path: Path, key: str) -> int | None:
    """An integer setting (dotted ``key``) of a saved ``config.yaml`` (None:
    no such file or key)."""
    if not path.exists():
        return None
    from omegaconf import OmegaConf

    value = OmegaConf.select(OmegaConf.load(path), key)
    return None if value is None else int(value)


def read_window(path: Path) -> tuple[int, int] | None:
    """``(rounds.min_recovery, rounds.max_recovery)`` of a saved
    ``config.yaml`` (None: unknown). Equal values: a fixed window; else a
    method stops once recovered (after at least ``min_recovery`` rounds)."""
    low = read_setting(path, "rounds.min_recovery")
    high = read_setting(path, "rounds.max_recovery")
    return None if low is None or high is None else (low, high)


def run_setting(runs: Runs, name: str, key: str) -> int | None:
    """An integer setting of run ``name``'s ``config.yaml`` (:func:`read_setting`)."""
    folder = run_dir(runs, name)
    return None if folder is None else read_setting(folder / "config.yaml", key)


def retrain_cap(runs: Runs, name: str) -> int | None:
    """``rounds.max_retrain`` of a run: R* not reached reads ``>cap``."""
    return run_setting(runs, name, "rounds.max_retrain")


def recovery_window(runs: Runs, name: str) -> tuple[int, int] | None:
    """The recovery window of run ``name`` (:func:`read_window`)."""
    folder = run_dir(runs, name)
    return None if folder is None else read_window(folder / "config.yaml")


def rate_limit(runs: Runs, name: str) -> int | None:
    """``unlearning.rate_limit`` of a run."""
    return run_setting(runs, name, "unlearning.rate_limit")
