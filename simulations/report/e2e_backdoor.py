"""End to end without an oracle, under the backdoor (issue 14).

An ``e2e-bd-*`` run trains with a real detector every round; FedUP unlearns
whatever it flags, and natural forgetting (exclusion alone) runs as its own
pass with its own copy of the same detector (:mod:`simulations.online`). Its
reference is FedUP with an oracle at the end of training: any committed
one-shot run of the same setting and seed (data, model, split, mix, data
fraction, local epochs) with the oracle and a method at the default fixed P
(a pruning-rate sweep or an ``e2e-bd-oracle-*`` run). Accuracies are read 1, 3
and 10 rounds after each run's own (first) unlearning round.
"""

from __future__ import annotations

import math

from fedup_flwr.rates import DEFAULT_PRUNING_RATE
from simulations.report.cells import header, pct, row
from simulations.report.pruning import is_adaptive
from simulations.report.runs import Runs
from simulations.schema import MethodResult, RunResult

PREFIX = "e2e-bd-"
PICKED = (1, 3, 10)
MARGIN = 0.03  # issue 14: backdoor after 3 rounds within 3 points of the oracle


def _same_setting(a: RunResult, b: RunResult) -> bool:
    keys = ("dataset", "model", "partition", "alpha", "attack", "num_clients",
            "num_malicious", "seed", "fraction", "local_epochs")  # fmt: skip
    return all(getattr(a, k) == getattr(b, k) for k in keys)


def default_method(run: RunResult) -> MethodResult | None:
    """The run's FedUP at the default fixed P (None: it has none)."""
    for res in run.methods.values():
        rate = res.pruning_rate
        if rate is None or is_adaptive(res) or not res.test_acc_curve:
            continue
        if math.isclose(rate, DEFAULT_PRUNING_RATE):
            return res
    return None


def oracle_reference(runs: Runs, name: str) -> tuple[str, MethodResult] | None:
    """An oracle run of the same setting and seed with FedUP at the default
    P: ``(its name, that method)``; ``e2e-bd-oracle-*`` runs first."""
    run = runs[name]
    names = sorted(runs, key=lambda n: (not n.startswith(PREFIX + "oracle-"), n))
    for other in names:
        ref = runs[other]
        if other == name or ref.detector != "oracle" or ref.detection is not None:
            continue
        if _same_setting(run, ref) and (method := default_method(ref)):
            return other, method
    return None


def _at(curve: list[float], k: int) -> str:
    return pct(curve[k]) if k < len(curve) else "–"


def _curve(method: MethodResult | None, which: str) -> str:
    if method is None:
        return "–"
    curve = method.mal_acc_curve if which == "mal" else method.test_acc_curve
    return " / ".join(_at(curve, k) for k in PICKED)


def e2e_runs(runs: Runs) -> list[str]:
    """The runs with a real detector (``e2e-bd-*`` but the oracle ones)."""
    return sorted(
        n for n in runs
        if n.startswith(PREFIX) and runs[n].detection is not None
    )  # fmt: skip


def e2e_backdoor(runs: Runs) -> list[str]:
    """One row per run: who was unlearned and when, and the backdoor and
    test accuracy after 1 / 3 / 10 rounds for FedUP and natural forgetting
    with the detector, and for FedUP with the oracle."""
    names = e2e_runs(runs)
    if not names:
        return ["Not run."]
    lines = header(
        "run", "detector", "first unlearning round", "partitions unlearned",
        "benign excluded", "refused", "backdoor +1 / +3 / +10: FedUP + detector",
        "natural + detector", "FedUP + oracle", "test +1 / +3 / +10: FedUP + "
        "detector", "FedUP + oracle",
        f"backdoor +3 within {100 * MARGIN:.0f} pts of the oracle",
    )  # fmt: skip
    for name in names:
        run = runs[name]
        det = run.detection
        assert det is not None  # e2e_runs keeps only runs with a detection
        fedup, natural = run.methods.get("fedup"), run.methods.get("natural")
        ref = oracle_reference(runs, name)
        oracle = ref[1] if ref else None
        truth = set(range(run.num_malicious))
        unlearned = {p for step in det.unlearned_partitions for p in step}
        within = "–"
        ours = fedup.mal_acc_curve if fedup is not None else []
        theirs = oracle.mal_acc_curve if oracle is not None else []
        never = det.first_unlearning_round is None
        if never:
            # Nothing unlearned: the backdoor is the trained model's, for good.
            ours = [run.mal_acc_before] * (PICKED[-1] + 1)
            mal_cell = f"never unlearned: {pct(run.mal_acc_before)} at the end"
            test_cell = f"never unlearned: {pct(run.test_acc_before)} at the end"
            natural_cell = "–"
        else:
            mal_cell, test_cell = _curve(fedup, "mal"), _curve(fedup, "test")
            natural_cell = _curve(natural, "mal")
        if len(ours) > 3 and len(theirs) > 3:
            within = "yes" if ours[3] <= theirs[3] + MARGIN else "no"
            within += " (nothing unlearned)" if never else ""
        lines.append(row(
            f"`{name}`" + (f" (oracle: `{ref[0]}`)" if ref else " (no oracle run)"),
            run.detector, det.first_unlearning_round or "never",
            "; ".join(str(p) for p in det.unlearned_partitions) or "–",
            len(unlearned - truth), len(det.refused),
            mal_cell, natural_cell, _curve(oracle, "mal"),
            test_cell, _curve(oracle, "test"), within,
        ))  # fmt: skip
    return lines
