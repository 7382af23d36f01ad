"""One run's robust figures (:mod:`~simulations.report.recovery`) from its
``results.json``, ``rounds.csv`` and ``config.yaml``."""

from __future__ import annotations

from dataclasses import dataclass

from simulations.methods import parse_method
from simulations.report.recovery import (
    Reach,
    Window,
    attack_took_hold,
    baseline_window,
    bound_held,
    near_baseline_flags,
    reach,
    recovered_flags,
)
from simulations.report.runs import Curves, Runs, recovery_window, retrain_curves
from simulations.schema import MethodResult, RunResult


@dataclass(frozen=True)
class MethodRecovery:
    """One method's robust figures in one run.

    Attributes
    ----------
    r_rec : Reach
        Test accuracy back within the tolerance of *before*.
    to_b : Reach or None
        Malicious accuracy within 2 points of B's (window mean), test back;
        None without B.
    bound : int or None
        Eq. 6, ``ceil(R* x P)``, for methods that prune (None: R* or P
        undefined, or a method that does not prune).
    bound_held : bool or None
        Whether R_rec (first hit) <= ``bound`` (None: no bound, or not run
        long enough to tell).
    stopped_early : bool or None
        Whether the method stopped before the run's ``max_recovery`` (it
        recovered and the window was not fixed); None: unknown.
    """

    r_rec: Reach
    to_b: Reach | None
    bound: int | None
    bound_held: bool | None
    stopped_early: bool | None


@dataclass(frozen=True)
class RunRecovery:
    """A run's robust figures.

    Attributes
    ----------
    baseline : Window or None
        B's window (None: no retrain rounds).
    baseline_mal : float or None
        B's malicious accuracy: the window's mean, else the recorded value.
    took_hold : bool or None
        :func:`~simulations.report.recovery.attack_took_hold` (None: no B).
    window : tuple[int, int] or None
        ``(min_recovery, max_recovery)`` of the run (None: unknown).
    methods : dict[str, MethodRecovery]
        Per method except ``retrain``.
    """

    baseline: Window | None
    baseline_mal: float | None
    took_hold: bool | None
    window: tuple[int, int] | None
    methods: dict[str, MethodRecovery]


def assess_method(
    name: str,
    method: MethodResult,
    run: RunResult,
    *,
    baseline_mal: float | None,
    window: tuple[int, int] | None,
) -> MethodRecovery:
    """:class:`MethodRecovery` of ``method`` (named ``name``) in ``run``."""
    from fedup_flwr import recovery_rounds_bound

    r_rec = reach(
        recovered_flags(method.test_acc_curve, run.test_acc_before, run.tolerance)
    )
    to_b = None
    if baseline_mal is not None:
        to_b = reach(
            near_baseline_flags(
                method.test_acc_curve,
                method.mal_acc_curve,
                before=run.test_acc_before,
                tolerance=run.tolerance,
                baseline_mal=baseline_mal,
            )
        )
    bound = None
    rate, r_star = method.pruning_rate, run.rounds_from_scratch
    if parse_method(name).prunes and rate is not None and r_star is not None:
        bound = recovery_rounds_bound(r_star, rate)
    stopped = None if window is None else r_rec.rounds_run < window[1]
    return MethodRecovery(
        r_rec=r_rec,
        to_b=to_b,
        bound=bound,
        bound_held=bound_held(r_rec.first, r_rec.rounds_run, bound),
        stopped_early=stopped,
    )


def assess_run(
    run: RunResult, curves: Curves | None, window: tuple[int, int] | None
) -> RunRecovery:
    """:class:`RunRecovery` of ``run``, given B's retrain ``curves`` (test,
    malicious, forgetting-data accuracy per retrain round; None: none
    recorded) and its recovery ``window`` (``(min_recovery, max_recovery)``;
    None: unknown).

    Raises
    ------
    ValueError
        If the curves do not match the run (e.g. R* beyond its retrain rounds).
    """
    baseline = None
    if curves is not None:
        test, mal, forget = curves
        try:
            baseline = baseline_window(
                test, mal, run.rounds_from_scratch, forget_curve=forget
            )
        except ValueError as err:
            raise ValueError(f"run {run.name!r}: {err}") from err
    base_mal = baseline.mal_mean if baseline is not None else run.baseline_mal_acc
    methods = {
        m: assess_method(m, res, run, baseline_mal=base_mal, window=window)
        for m, res in run.methods.items()
        if m != "retrain"
    }
    return RunRecovery(
        baseline=baseline,
        baseline_mal=base_mal,
        took_hold=attack_took_hold(run.mal_acc_before, base_mal),
        window=window,
        methods=methods,
    )


def assess(runs: Runs, name: str) -> RunRecovery:
    """:class:`RunRecovery` of run ``name`` of ``runs`` (its ``rounds.csv``
    and ``config.yaml`` when ``runs`` were loaded from a folder)."""
    return assess_run(
        runs[name], retrain_curves(runs, name), recovery_window(runs, name)
    )
