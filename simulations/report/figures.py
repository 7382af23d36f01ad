"""The report's figures: Figure 5's ablation grid and the pruning-rate sweep.

A run whose attack did not take hold
(:func:`~simulations.report.recovery.attack_took_hold`) says so in its title.
"""

from __future__ import annotations

import statistics
from pathlib import Path

from simulations.methods import parse_method
from simulations.plotting import integer_ticks, legend_outside, save, subplots
from simulations.report.assess import assess
from simulations.report.cells import ATTACK_NOT_HELD
from simulations.report.pruning import is_adaptive
from simulations.report.runs import Runs, cap
from simulations.schema import MethodResult, RunResult

ABLATION_METHODS = ["natural", "random_prune", "malicious_magnitude", "fedup"]


def title_mark(runs: Runs, name: str) -> str:
    """`` (attack did not take hold)`` for such a run, else ``""``."""
    return f" ({ATTACK_NOT_HELD})" if assess(runs, name).took_hold is False else ""


def fig_ablation(runs: Runs, names: list[str], path: Path) -> None:
    """Test and malicious accuracy per recovery round, one row per run and one
    column per method of Figure 5, B's malicious accuracy (window mean) as a
    line."""
    fig, axes = subplots(
        len(names), len(ABLATION_METHODS), figsize=(14, 3.2 * len(names) + 0.5)
    )
    for i, name in enumerate(names):
        res = runs[name]
        base = assess(runs, name).baseline_mal
        mark = title_mark(runs, name)
        for j, method in enumerate(ABLATION_METHODS):
            ax = axes[i][j]
            m = res.methods.get(method)
            if m is None:
                ax.set_visible(False)
                continue
            x = list(range(len(m.test_acc_curve)))
            ax.plot(x, m.test_acc_curve, "r-", label="test")
            ax.plot(x, m.mal_acc_curve, "b-", label="malicious")
            if base is not None:
                ax.axhline(base, color="g", label="B malicious")
            ax.set_ylim(-0.02, 1.02)
            ax.set_title(f"{method}: {name}{mark}", fontsize=8)
            ax.set_xlabel("recovery round")
            integer_ticks(ax.xaxis)
    legend_outside(fig, [ax for r in axes for ax in r], where="lower center")
    save(fig, path)


def sweep_points(res: RunResult) -> list[tuple[float, str, MethodResult]]:
    """``(P, method name, result)`` of every FedUP variant (adaptive and
    ``fedup-<P>``) that unlearned, by P.

    The run's own ``fedup`` is left out when its P is fixed and a
    ``fedup-<P>`` variant of the run has the same P: it is the same pruning
    (the shipped default is a fixed P = 1%, which the sweeps also run).
    """
    points = sorted(
        (m.pruning_rate, name, m)
        for name, m in res.methods.items()
        if parse_method(name).kind == "fedup" and m.pruning_rate is not None
    )
    fixed = {p for p, name, _ in points if name != "fedup"}
    return [
        (p, name, m)
        for p, name, m in points
        if name != "fedup" or is_adaptive(m) or p not in fixed
    ]


def _mean(values: list[float]) -> float:
    return statistics.mean(values)


def fig_sweep(runs: Runs, names: list[str], path: Path) -> None:
    """Malicious accuracy and R_rec against P (``fedup-<P>`` variants, means
    over the seeds ``names``), the adaptive P marked; R_rec not reached is
    drawn at its cap + 1."""
    by_method: dict[str, list[MethodResult]] = {}
    for name in names:
        for _, method, m in sweep_points(runs[name]):
            by_method.setdefault(method, []).append(m)
    points = sorted(
        ((_mean([m.pruning_rate or 0.0 for m in ms]), ms) for ms in by_method.values()),
        key=lambda point: point[0],
    )
    xs = [p for p, _ in points]
    fig, axes = subplots(figsize=(7.5, 3.5))
    ax1 = axes[0][0]
    ax1.plot(xs, [_mean([m.mal_acc_after_unlearning for m in ms]) for _, ms in points],
             "bo-", label="malicious acc. right after unlearning")  # fmt: skip
    ax1.plot(xs, [_mean([m.mal_acc_after for m in ms]) for _, ms in points], "b^--",
             label="malicious acc. once recovered")  # fmt: skip
    ax1.set_xlabel("pruning rate P")
    ax1.set_ylabel("malicious accuracy")
    ax2 = ax1.twinx()
    r_rec = [
        _mean([cap(m) + 1 if m.recovery_rounds is None else m.recovery_rounds
               for m in ms])
        for _, ms in points
    ]  # fmt: skip
    ax2.plot(xs, r_rec, "rs-", label="R_rec, first hit (not reached: rounds run + 1)")
    ax2.set_ylabel("R_rec (rounds)")
    integer_ticks(ax2.yaxis)
    own = [runs[n].methods["fedup"] for n in names]
    adaptive = [
        m.pruning_rate for m in own if is_adaptive(m) and m.pruning_rate is not None
    ]
    if adaptive and len(adaptive) == len(own):
        rate = _mean(adaptive)
        ax1.axvline(rate, color="k", linestyle=":",
                    label=f"adaptive P = {rate:.3f}")  # fmt: skip
    marks = {title_mark(runs, n) for n in names} - {""}
    seeds = f"mean of {len(names)} seeds" if len(names) > 1 else "1 seed"
    ax1.set_title(f"{seeds}{''.join(marks)}", fontsize=9)
    legend_outside(fig, [ax1, ax2])
    save(fig, path)
