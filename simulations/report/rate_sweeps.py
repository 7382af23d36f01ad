"""The pruning-rate sweeps across seeds (issue 11): per setting, each rate's
figures as mean ± standard deviation over seeds, and where pruning pays over
exclusion alone.

A sweep run is named ``sweep-bd-<split>-<n>-<m>`` or
``sweep-lf-<dataset>-<split>-<n>-<m>``, with ``-s<seed>`` for every seed but
the first sweeps' 42. One trained model per run is unlearned in turn by
natural forgetting (exclusion alone), FedUP at fixed rates and the adaptive
rate, each followed by the same fixed recovery window. Runs of one setting
(the name without its seed) form one table; the per-seed numbers stay in the
raw ``results.json``.
"""

from __future__ import annotations

import math
import re
import statistics
from dataclasses import dataclass

from fedup_flwr.rates import DEFAULT_PRUNING_RATE
from simulations.methods import parse_method
from simulations.report.assess import RunRecovery, assess
from simulations.report.cells import (
    header,
    hold_mark,
    mean_sd,
    partition_label,
    rounds,
    row,
)
from simulations.report.pruning import baseline_source, is_adaptive
from simulations.report.recovery import MAL_MARGIN, Reach, reach
from simulations.report.runs import Runs
from simulations.schema import MethodResult, RunResult

SWEEP_PREFIXES = ("sweep-bd-", "sweep-lf-")
PICKED = (1, 3, 10)  # recovery rounds reported (round 0 is the pruned model)
# The done-when of issue 11: backdoor within 2 points of B within this many
# recovery rounds, and the default's R_rec at most this many rounds worse
# than the best fixed P.
WITHIN_ROUNDS = 2
SLACK = 1
_SEED = re.compile(r"-s(\d+)$")
NATURAL = (0, 0.0, "exclusion only (natural)")


def setting_of(name: str) -> str:
    """A sweep run's setting: its name without ``-s<seed>``."""
    return _SEED.sub("", name)


def sweep_settings(runs: Runs) -> dict[str, list[str]]:
    """``{setting: its runs}``: backdoor first, then by dataset, IID first."""
    settings: dict[str, list[str]] = {}
    for name in sorted(runs):
        if name.startswith(SWEEP_PREFIXES):
            settings.setdefault(setting_of(name), []).append(name)
    order = sorted(
        settings, key=lambda s: (s.startswith("sweep-lf-"), "dirichlet" in s, s)
    )
    return {s: sorted(settings[s], key=lambda n: runs[n].seed) for s in order}


def rate_key(name: str, method: MethodResult) -> tuple[int, float, str] | None:
    """Sort key and label of a method's rate (None: not a rate of the sweep).

    ``fedup`` and ``fedup-0.01`` at the same fixed P are one rate; the
    adaptive rate is one row per similarity measure.
    """
    if name == "natural":
        return NATURAL
    if parse_method(name).kind != "fedup":
        return None
    if is_adaptive(method):
        measure = method.similarity_measure or "weights"
        note = ", the default before issue 11" if measure == "weights" else ""
        return (2, 0.0, f"adaptive (`{measure}`{note})")
    rate = method.pruning_rate
    if rate is None:
        return None
    note = " (the default)" if math.isclose(rate, DEFAULT_PRUNING_RATE) else ""
    return (1, rate, f"P = {rate:.2f}{note}")


@dataclass(frozen=True)
class RateRun:
    """One rate in one seed's run.

    Attributes
    ----------
    rate : float
        P (0 for exclusion alone).
    test, mal : list[float]
        Test and malicious accuracy per recovery round (0: the pruned model).
    r_rec : Reach
        Test accuracy back within the run's tolerance of *before*.
    mal_to_b : Reach or None
        Malicious accuracy alone within :data:`MAL_MARGIN` of B's (None: no B).
    """

    rate: float
    test: list[float]
    mal: list[float]
    r_rec: Reach
    mal_to_b: Reach | None


def rate_runs(
    run: RunResult, recovery: RunRecovery, base_mal: float | None
) -> dict[tuple[int, float, str], RateRun]:
    """Each rate of ``run`` (the first method of each key), given its
    :func:`~simulations.report.assess.assess` and B's malicious accuracy."""
    out: dict[tuple[int, float, str], RateRun] = {}
    for method, res in sorted(run.methods.items()):
        key = rate_key(method, res)
        if key is None or key in out:
            continue
        to_b = None
        if base_mal is not None:
            to_b = reach([m <= base_mal + MAL_MARGIN for m in res.mal_acc_curve])
        out[key] = RateRun(
            res.pruning_rate or 0.0,
            list(res.test_acc_curve),
            list(res.mal_acc_curve),
            recovery.methods[method].r_rec,
            to_b,
        )
    return out


@dataclass(frozen=True)
class SweepSetting:
    """One setting's runs, read once for its table and its verdict row.

    Attributes
    ----------
    name : str
        The setting (run name without its seed).
    runs : list[RunResult]
        Its runs, by seed.
    rates : list[dict]
        Per run, :func:`rate_runs`.
    baselines : list[tuple[float | None, str]]
        Per run, B's malicious accuracy and its source
        (:func:`~simulations.report.pruning.baseline_source`).
    held : str
        The attack-strength mark (``""``: the attack took hold everywhere).
    """

    name: str
    runs: list[RunResult]
    rates: list[dict[tuple[int, float, str], RateRun]]
    baselines: list[tuple[float | None, str]]
    held: str


def sweep_setting(runs: Runs, setting: str, names: list[str]) -> SweepSetting:
    """Read the runs ``names`` of ``setting`` (each run assessed once)."""
    recoveries = [assess(runs, n) for n in names]
    baselines = [baseline_source(runs, n, r) for n, r in zip(names, recoveries)]
    return SweepSetting(
        name=setting,
        runs=[runs[n] for n in names],
        rates=[
            rate_runs(runs[n], r, b)
            for n, r, (b, _) in zip(names, recoveries, baselines)
        ],
        baselines=baselines,
        held=hold_mark([r.took_hold for r in recoveries]),
    )


def _at(curves: list[list[float]], k: int) -> str:
    return mean_sd([c[k] for c in curves if k < len(c)])


def _firsts(reaches: list[Reach | None]) -> str:
    """Per seed, the first round within the mark (``–``: no B)."""
    return ", ".join(
        "–" if r is None else rounds(r.first, r.rounds_run) for r in reaches
    )


def describe(setting: SweepSetting) -> str:
    """The setting in words: data, attack, mix, seeds, before and B."""
    first, runs = setting.runs[0], setting.runs
    b_values = [v for v, _ in setting.baselines if v is not None]
    own = sum(1 for _, why in setting.baselines if why.startswith("B from this run"))
    b_text = (
        f"B (malicious): {mean_sd(b_values)}%, from {own} run(s)' own retrain"
        f" and {len(b_values) - own} Table IV run(s)"
        if b_values else "no B"
    )  # fmt: skip
    held = setting.held
    split = partition_label(first.partition, first.alpha)
    return (
        f"`{setting.name}`: {first.dataset} {first.model}, {first.attack}, "
        f"{split} {first.num_clients} ({first.num_malicious}); seeds "
        f"{', '.join(str(r.seed) for r in runs)}; before unlearning: "
        f"test {mean_sd([r.test_acc_before for r in runs])}%, malicious "
        f"{mean_sd([r.mal_acc_before for r in runs])}%; {b_text}."
        + (f" **{held}.**" if held else "")
    )


def setting_table(setting: SweepSetting) -> list[str]:
    """One setting: per rate, mean ± sd over seeds of the pruned model's and
    later accuracies; per seed, R_rec and the round malicious accuracy is
    first within 2 points of B."""
    per_seed = setting.rates
    keys = sorted({k for seed in per_seed for k in seed})
    lines = [
        describe(setting),
        "",
        *header(
            "rate", "seeds", "test: pruned", "test +1", "test +3", "test +10",
            "mal.: pruned", "mal. +1", "mal. +3", "mal. +10",
            "R_rec first (per seed)",
            f"mal. within {100 * MAL_MARGIN:.0f} pts of B, first (per seed)",
        ),
    ]  # fmt: skip
    for key in keys:
        found = [seed[key] for seed in per_seed if key in seed]
        tests, mals = [r.test for r in found], [r.mal for r in found]
        lines.append(row(
            key[2], len(found), _at(tests, 0), *(_at(tests, k) for k in PICKED),
            _at(mals, 0), *(_at(mals, k) for k in PICKED),
            _firsts([r.r_rec for r in found]), _firsts([r.mal_to_b for r in found]),
        ))  # fmt: skip
    return lines


def _delta(a: list[list[float]], b: list[list[float]], k: int) -> str:
    """Mean over seeds of ``a[k] - b[k]`` in points, signed."""
    diffs = [x[k] - y[k] for x, y in zip(a, b) if k < len(x) and k < len(y)]
    return "–" if not diffs else f"{100 * statistics.mean(diffs):+.1f}"


def _first(reach_: Reach | None) -> float:
    return math.inf if reach_ is None or reach_.first is None else reach_.first


def verdict_row(setting: SweepSetting) -> str | None:
    """Where pruning pays, one setting: the default P against exclusion alone
    (paired by seed) and against the best fixed P (None: either missing)."""
    default = next(
        (k for seed in setting.rates for k in seed if k[0] == 1
         and math.isclose(k[1], DEFAULT_PRUNING_RATE)), None,
    )  # fmt: skip
    if default is None:
        return None
    pairs = [s for s in setting.rates if NATURAL in s and default in s]
    if not pairs:
        return None
    ours, alone = [s[default] for s in pairs], [s[NATURAL] for s in pairs]
    slow = sum(
        1 for s in pairs
        if _first(s[default].r_rec)
        > min(_first(r.r_rec) for k, r in s.items() if k[0] == 1) + SLACK
    )  # fmt: skip
    gone = [
        r.mal_to_b is not None and _first(r.mal_to_b) <= WITHIN_ROUNDS
        for r in ours
    ]  # fmt: skip
    held = setting.held
    return row(
        f"`{setting.name}`" + (f" ({held})" if held else ""),
        len(pairs),
        " / ".join(
            _delta([r.mal for r in alone], [r.mal for r in ours], k) for k in PICKED
        ),
        " / ".join(
            _delta([r.test for r in ours], [r.test for r in alone], k) for k in PICKED
        ),
        mean_sd([r.test[0] for r in ours]),
        f"{sum(gone)} of {len(gone)}",
        f"{len(pairs) - slow} of {len(pairs)}",
    )


def rate_sweeps(runs: Runs) -> list[str]:
    """The verdict table, then one table per setting (``Not run.``: none)."""
    settings = sweep_settings(runs)
    if not settings:
        return ["Not run."]
    p = f"{DEFAULT_PRUNING_RATE:.2f}"
    read = [sweep_setting(runs, s, names) for s, names in settings.items()]
    verdicts = [v for setting in read if (v := verdict_row(setting))]
    out = [
        f"**Where pruning pays** (the default P = {p} against exclusion alone, "
        "paired by seed; points, mean over seeds):",
        "",
        *header(
            "setting", "seeds",
            "malicious acc. removed beyond exclusion, after 1 / 3 / 10",
            "test acc. gained over exclusion, after 1 / 3 / 10",
            "pruned model's test acc.",
            f"mal. within {100 * MAL_MARGIN:.0f} pts of B within "
            f"{WITHIN_ROUNDS} rounds",
            f"R_rec within {SLACK} round of the best fixed P",
        ),
        *verdicts,
        "",
    ]  # fmt: skip
    for setting in read:
        out += [*setting_table(setting), ""]
    return out[:-1]
