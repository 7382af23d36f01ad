"""The report's other sections: Figure 5, the sweep, end to end, detectors,
DoS, and the runs of the plan not made yet."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from simulations.report.assess import assess
from simulations.report.cells import (
    attack_order,
    header,
    hold_mark,
    mean_sd,
    partition_label,
    partition_order,
    pct,
    reach_cell,
    rounds,
    row,
    seeds,
)
from simulations.report.figures import (
    ABLATION_METHODS,
    fig_ablation,
    fig_sweep,
    sweep_points,
)
from simulations.report.pruning import is_adaptive
from simulations.report.runs import (
    FIGURES_DIR,
    RESULTS_DIR,
    Runs,
    cap,
    group,
    rate_limit,
    seed_groups,
)
from simulations.schema import MethodResult

ABLATION_PREFIX = "t4"  # Figure 5: the backdoor runs of Table IV, 10 (4)
ABLATION_MIX = (10, 4)
SWEEP_RUN = "sweep-p-iid-10-3"  # its seeds: sweep-p-iid-10-3-s<seed>
ORACLE_RUN = "t3-iid-10-3-s42"  # the oracle's run of the end-to-end scenario
DOS_RUN = "dos-iid-10-3"
PICKED_ROUNDS = (0, 1, 5, 10)


def _pick(curves: list[list[float]]) -> str:
    """Mean ± sd over seeds at :data:`PICKED_ROUNDS` (``–``: not run)."""
    return " / ".join(
        mean_sd([c[i] for c in curves if i < len(c)]) for i in PICKED_ROUNDS
    )


def ablation_runs(runs: Runs) -> dict[str, list[str]]:
    """Figure 5's runs: Table IV's 10 (4) mix, by partition (IID first)."""
    out: dict[str, list[str]] = {}
    for part in ("iid", "dirichlet"):
        names = group(runs, ABLATION_PREFIX).get((part, *ABLATION_MIX), [])
        if names:
            out[part] = names
    return out


def figure5(runs: Runs, figures: bool) -> list[str]:
    """Figure 5 (ablation): the figure and its curves at a few rounds, mean ±
    sd over seeds; rounds to B per seed as first hit / stays."""
    parts = ablation_runs(runs)
    if not parts:
        return ["Not run."]
    if figures:
        every = [n for names in parts.values() for n in names]
        fig_ablation(runs, every, FIGURES_DIR / "ablation.png")
    lines = ["![ablation](figures/ablation.png)", ""]
    lines += header(
        "runs", "method", "malicious acc. after 0 / 1 / 5 / 10 rounds",
        "test acc. after 0 / 1 / 5 / 10 rounds",
        "to B mal. (first / stays, per seed)",
    )  # fmt: skip
    for names in parts.values():
        mark = hold_mark([assess(runs, n).took_hold for n in names])
        label = f"{seeds(len(names))}: " + ", ".join(f"`{n}`" for n in names)
        label += f"; **{mark}**" if mark else ""
        for method in ABLATION_METHODS:
            have = [n for n in names if method in runs[n].methods]
            if not have:
                continue
            res = [runs[n].methods[method] for n in have]
            to_b = []
            for n in have:
                m = assess(runs, n).methods[method]
                to_b.append(
                    "–" if m.to_b is None else reach_cell(m.to_b, m.stopped_early)
                )
            lines.append(row(
                label, method, _pick([r.mal_acc_curve for r in res]),
                _pick([r.test_acc_curve for r in res]), " ; ".join(to_b),
            ))  # fmt: skip
    return lines


def sweep_names(runs: Runs) -> list[str]:
    """The sweep's runs: :data:`SWEEP_RUN` and its seeds."""
    return seed_groups(sorted(runs)).get(SWEEP_RUN, [])


def sweep(runs: Runs, figures: bool) -> list[str]:
    """The pruning-rate sweep: the figure and one row per P (mean ± sd over
    seeds), natural forgetting (P = 0) first."""
    names = sweep_names(runs)
    if not names:
        return ["Not run."]
    if figures:
        fig_sweep(runs, names, FIGURES_DIR / "sweep_p.png")
    mark = hold_mark([assess(runs, n).took_hold for n in names])
    lines = [f"Runs ({seeds(len(names))}): " + ", ".join(f"`{n}`" for n in names)
             + (f"; **{mark}**" if mark else "") + ".", ""]  # fmt: skip
    lines += ["![sweep](figures/sweep_p.png)", ""]
    lines += header("P", "method", "test acc. right after",
                    "malicious acc. right after", "malicious once recovered",
                    "R_rec (first / stays, per seed)")  # fmt: skip
    by_method: dict[str, list[tuple[str, MethodResult]]] = {}
    for name in names:
        res = runs[name]
        points = [(m, r) for _, m, r in sweep_points(res)]
        if "natural" in res.methods:
            points.insert(0, ("natural", res.methods["natural"]))
        for method, r in points:
            by_method.setdefault(method, []).append((name, r))

    def rate(item: tuple[str, list[tuple[str, MethodResult]]]) -> float:
        return statistics.mean(r.pruning_rate or 0.0 for _, r in item[1])

    for method, items in sorted(by_method.items(), key=rate):
        ms = [r for _, r in items]
        rates = [r.pruning_rate or 0.0 for r in ms]
        label = method
        if method == "fedup":  # kept by sweep_points: adaptive, or a P no variant has
            adaptive = all(is_adaptive(r) for r in ms)
            label = "adaptive FedUP" if adaptive else "FedUP (the run's P)"
        r_rec = []
        for name, _ in items:
            m = assess(runs, name).methods[method]
            r_rec.append(reach_cell(m.r_rec, m.stopped_early))
        lines.append(row(
            mean_sd_rate(rates), label,
            mean_sd([m.test_acc_after_unlearning for m in ms]),
            mean_sd([m.mal_acc_after_unlearning for m in ms]),
            mean_sd([m.mal_acc_after for m in ms]), " ; ".join(r_rec),
        ))  # fmt: skip
    return lines


def mean_sd_rate(rates: list[float]) -> str:
    """P with three decimals; mean ± sd when the seeds' rates differ."""
    if len(set(rates)) == 1:
        return f"{rates[0]:.3f}"
    return f"{statistics.mean(rates):.3f} ± {statistics.stdev(rates):.3f}"


def end_to_end(runs: Runs) -> list[str]:
    """Real detectors every round vs the oracle, same scenario."""
    names = [n for n in (ORACLE_RUN,) if n in runs]
    names += sorted(n for n in runs if n.startswith("e2e-"))
    if not names:
        return ["Not run."]
    lines = header(
        "run", "detector", "first unlearning round", "partitions unlearned",
        "precision / recall", "test before / after", "mal. before / after",
        "R_rec", "refused detections",
    )  # fmt: skip
    for name in names:
        r = runs[name]
        f = r.methods["fedup"]
        det = r.detection
        first: Any
        if det is None:  # the oracle run: flags the attackers in round T
            first, parts, pr, refused = (
                r.unlearning_round,
                "attackers",
                "1.00 / 1.00",
                0,
            )
        else:
            first = det.first_unlearning_round or "never"
            parts = "; ".join(str(p) for p in det.unlearned_partitions) or "–"
            prec, rec = det.precision, det.recall
            pr = f"{prec:.2f} / {rec:.2f}" if prec is not None else "– / 0.00"
            refused = len(det.refused)
        lines.append(row(
            f"`{name}`", r.detector, first, parts, pr,
            f"{pct(r.test_acc_before)} / {pct(f.test_acc_after)}",
            f"{pct(r.mal_acc_before)} / {pct(f.mal_acc_after)}",
            rounds(f.recovery_rounds, cap(f)), refused,
        ))  # fmt: skip
    return lines


def _split(settings: dict[str, Any]) -> tuple[float, str]:
    """Sort key and label of a run's partition: IID, then Dir(alpha) by
    decreasing alpha."""
    part, alpha = settings["partition"], settings["alpha"]
    return (partition_order(part, alpha), partition_label(part, alpha))


def detector_summary(folder: Path | None = None) -> list[str]:
    """Per attack, split and number of training rounds: each detector's
    run-level F1 (its flag set over the whole run), mean over the runs, for
    Fashion-MNIST / CIFAR-10; with no attack, the share of rounds in which it
    flagged anyone. Every detector found in the results gets a column."""
    from simulations import detection
    from simulations.detection.tables import ATTACK_LABEL, boost_of

    results = detection.load_results(folder or RESULTS_DIR / "detection")
    dets = sorted({d for r in results for d in r["detectors"]})
    groups: dict[tuple[str, float, tuple[float, str], int], dict[str, list[Any]]] = {}
    for r in results:
        s = r["settings"]
        # Boosting runs are their own groups: the same attack, scaled updates.
        key = (s["attack"], boost_of(s), _split(s), int(s["rounds"]))
        groups.setdefault(key, {}).setdefault(s["dataset"], []).append(r)
    order = sorted(groups, key=lambda k: (attack_order(k[0]), *k[1:]))

    def cell(runs: list[Any], det: str, metric: str) -> str:
        vals = [r["detectors"][det].get(metric) for r in runs if det in r["detectors"]]
        vals = [float(v) for v in vals if v is not None]
        return f"{statistics.mean(vals):.2f}" if vals else "–"

    lines = header("", "runs (F-MNIST / CIFAR)", *(f"`{d}`" for d in dets))
    for attack, boost, (_, split), n in order:
        by_data = groups[(attack, boost, (_, split), n)]
        fm, ci = by_data.get("fashion_mnist", []), by_data.get("cifar10", [])
        if attack == "none":
            label, metric = (
                f"no attack, {split}, {n} rounds: rounds flagged",
                ("flagged_round_rate"),
            )
        else:
            boosted = f", boost {boost:g}" if boost != 1.0 else ""
            label = f"{ATTACK_LABEL[attack]}{boosted}, {split}, {n} rounds"
            metric = "run_f1"
        lines.append(row(
            label, f"{len(fm)} / {len(ci)}",
            *(f"{cell(fm, d, metric)} / {cell(ci, d, metric)}" for d in dets),
        ))  # fmt: skip
    return lines


def detector_quality() -> list[str]:
    """The tables of ``docs/detectors.md``, from ``results/detection/*``."""
    from simulations import detection

    results = detection.load_results(RESULTS_DIR / "detection")
    if not results:
        return ["Not run."]
    return [
        "Per run (8 or 15 rounds, 10% of the data): precision / recall / F1 / "
        "first correct round / false-positive rate, from "
        "`results/detection/<run>/detection.json` "
        "(method and discussion: [detectors.md](detectors.md)).",
        "",
        "Summary (run-level F1, mean over the runs of each group, Fashion-MNIST / "
        "CIFAR-10; with no attack, the share of rounds with a flag):",
        "",
        *detector_summary(),
        "",
        detection.build_tables(results).strip(),
    ]


def dos(runs: Runs) -> list[str]:
    """DoS on unlearning: a new client flagged every round."""
    r = runs.get(DOS_RUN)
    if r is None:
        return ["Not run."]
    det = r.detection
    if det is None:
        raise ValueError(f"{DOS_RUN}: results.json has no 'detection' record")
    curve = r.methods["fedup"].test_acc_curve
    return [
        f"- unlearning rounds: {det.unlearning_rounds} (rate limit "
        f"{rate_limit(runs, DOS_RUN)}); partitions unlearned per step: "
        f"{det.unlearned_partitions}",
        f"- detections refused by the guard: {len(det.refused)} "
        f"(rounds {[e.round for e in det.refused]})",
        f"- test accuracy before the first unlearning {pct(r.test_acc_before)}; "
        f"lowest afterwards {pct(min(curve))}; last {pct(curve[-1])}",
    ]


def attack_strength(runs: Runs) -> list[str]:
    """Every run with an attack and a B: whether the attack took hold; those
    where it did not are listed as left out of every claim."""
    checked = {
        name: assess(runs, name) for name in sorted(runs) if runs[name].attack != "none"
    }
    judged = {n: rec for n, rec in checked.items() if rec.took_hold is not None}
    failed = [n for n, rec in judged.items() if rec.took_hold is False]
    lines = [
        f"{len(judged)} runs with an attack and a baseline B were checked "
        "(malicious accuracy before unlearning more than 5 points above B's "
        "window mean); runs without B cannot be checked: "
        + (", ".join(f"`{n}`" for n in checked if n not in judged) or "none")
        + ".",
        "",
    ]
    if not failed:
        return [*lines, "The attack took hold in every checked run."]
    lines += ["The attack did not take hold in these runs; their rows are "
              "marked and they are left out of every claim:", ""]  # fmt: skip
    for name in failed:
        rec, run = judged[name], runs[name]
        lines.append(
            f"- `{name}`: malicious accuracy before unlearning "
            f"{pct(run.mal_acc_before)}%, B's {pct(rec.baseline_mal)}%"
        )
    return lines


def not_run(runs: Runs) -> list[str]:
    """The runs of the reproduction plan not done: no results yet (todo), or
    results whose recorded config differs from the plan's (stale, and how),
    each with its CPU time estimate from the committed runs of its prefix."""
    from simulations.reproduce import cost, estimates, plan, status, total_cost

    folder = getattr(runs, "folder", None)
    if folder is None:
        missing = [(r, "todo", "") for r in plan() if r.name not in runs]
        known: dict[str, tuple[float, int]] = {}
    else:
        states = [(r, status(r, Path(folder))) for r in plan()]
        missing = [(r, st.state, st.why) for r, st in states if st.state != "done"]
        known = estimates(Path(folder))
    if not missing:
        return ["Every run of `python -m simulations.reproduce --list` is done."]
    stale = sum(1 for _, state, _ in missing if state == "stale")
    costs = [cost(r.name, known) for r, _, _ in missing]
    lines = [
        f"{len(missing)} runs of the plan (`python -m simulations.reproduce "
        f"--list`) are not done: {len(missing) - stale} have no results yet and "
        f"{stale} have results from another config (stale: what differs is "
        f"said); `python -m simulations.reproduce` runs them, "
        f"{total_cost(s for s, _ in costs)} (each estimate: the median run "
        "time of the committed runs of its prefix):",
        "",
    ]
    for (r, state, why), (_, text) in zip(missing, costs, strict=True):
        detail = f"stale: {why}" if state == "stale" else " ".join(r.overrides)
        lines.append(f"- `{r.name}` ({state}, {text}): `{detail}`")
    return lines
