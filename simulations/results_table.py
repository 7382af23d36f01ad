"""The end-of-run table printed after each run, and shown in the README.

One job: format a :class:`~simulations.schema.RunResult` as the plain-text
table :func:`simulations.results.finish_run` prints: the model before
unlearning, each method per round (its outcome, then its recovery rounds),
baseline B, then each method's ``R_rec`` and pruning rate, ``R*`` and the bound
``ceil(R* x P)``. Accuracies are percentages; ``-`` marks a missing value.
"""

from __future__ import annotations

from simulations.outcome import status_label
from simulations.schema import RunResult

__all__ = ["format_table"]


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:5.1f}"


def format_table(results: RunResult) -> str:
    """The end-of-run table: before, each method per round, baseline B."""
    labels = [f"{m}: {status_label(r)}" for m, r in results.methods.items()]
    w = max([36, *(len(label) + 2 for label in labels)])
    lines = [
        f"{'model':<{w}}{'round':>6}{'test acc %':>12}{'malicious %':>13}",
        "-" * (w + 31),
    ]
    t = results.unlearning_round
    lines.append(
        f"{'before unlearning':<{w}}{t:>6}{_pct(results.test_acc_before):>12}"
        f"{_pct(results.mal_acc_before):>13}"
    )
    for method, res in results.methods.items():
        if method == "retrain":
            continue  # baseline B: one line below
        for k, (test, mal) in enumerate(zip(res.test_acc_curve, res.mal_acc_curve)):
            label = f"{method}: " + (status_label(res) if k == 0 else f"recovery {k}")
            lines.append(f"{label:<{w}}{t + k:>6}{_pct(test):>12}{_pct(mal):>13}")
    if results.baseline_test_acc is not None:
        rounds = results.rounds_from_scratch
        label = (
            "B: retrain ("
            + ("not reached" if rounds is None else f"{rounds} rounds")
            + ")"
        )
        lines.append(
            f"{label:<{w}}{'':>6}{_pct(results.baseline_test_acc):>12}"
            f"{_pct(results.baseline_mal_acc):>13}"
        )
    lines.append("-" * (w + 31))
    for method, res in results.methods.items():
        rate = res.pruning_rate
        lines.append(
            f"{method}: R_rec = {res.recovery_rounds}"
            + ("" if rate is None else f", P = {rate:.3f}")
        )
    lines.append(
        f"R* = {results.rounds_from_scratch}, bound ceil(R* x P) = "
        f"{results.recovery_bound}"
    )
    return "\n".join(lines)
