"""Tables II-IV: the paper's row and the measured row (seeds pooled) per mix,
and per run the robust recovery figures (:mod:`~simulations.report.recovery`)."""

from __future__ import annotations

from simulations.report.assess import MethodRecovery, RunRecovery, assess
from simulations.report.cells import (
    header,
    hold_mark,
    mean_sd,
    pct,
    reach_cell,
    rounds,
    row,
    seeds,
)
from simulations.report.paper import PART_LABEL, PaperTable
from simulations.report.recovery import B_WINDOW, MAL_MARGIN, MIN_HOLD, Window
from simulations.report.runs import Runs, cap, group, recovery_window, retrain_cap


def source_cell(runs: Runs, names: list[str]) -> str:
    """``measured, <n> seeds`` and the attack-strength mark of a row of runs."""
    mark = hold_mark([assess(runs, n).took_hold for n in names])
    return f"measured, {seeds(len(names))}" + (f"; **{mark}**" if mark else "")


def _to_b(rec: RunRecovery, method: str, rounds_run: int) -> str:
    """First round malicious accuracy is back to B's (``–`` without B)."""
    m = rec.methods[method]
    return "–" if m.to_b is None else rounds(m.to_b.first, rounds_run)


def measured_row(runs: Runs, part: str, mix: tuple[int, int], names: list[str]) -> str:
    """The measured row of one mix: mean ± sd over its seeds, counts per seed.

    Each seed's ``>k`` cell uses that seed's own recovery rounds ``k``; B's
    malicious accuracy is its window mean (:func:`assess`).
    """
    rs = [runs[n] for n in names]
    recs = [assess(runs, n) for n in names]
    fed = [r.methods["fedup"] for r in rs]
    nat = [r.methods["natural"] for r in rs if "natural" in r.methods]
    baseline = [rec.baseline_mal for rec in recs if rec.baseline_mal is not None]
    rates = [f"{100 * f.pruning_rate:.1f}" for f in fed if f.pruning_rate]
    to_b = [_to_b(rec, "fedup", cap(f)) for rec, f in zip(recs, fed)]
    to_b_nat = [
        _to_b(rec, "natural", cap(n))
        for rec, r in zip(recs, rs)
        if (n := r.methods.get("natural")) is not None
    ]
    return row(
        PART_LABEL[part],
        f"{mix[0]} ({mix[1]})",
        source_cell(runs, names),
        mean_sd([r.test_acc_before for r in rs]),
        mean_sd([f.test_acc_after for f in fed]),
        mean_sd(baseline),
        mean_sd([r.mal_acc_before for r in rs]),
        mean_sd([f.mal_acc_after for f in fed]),
        " / ".join(
            rounds(r.rounds_from_scratch, retrain_cap(runs, n))
            for r, n in zip(rs, names)
        ),
        " / ".join(rounds(f.recovery_rounds, cap(f)) for f in fed),
        " / ".join(rates),
        mean_sd([n.mal_acc_after for n in nat]),
        " / ".join(rounds(n.recovery_rounds, cap(n)) for n in nat) or "–",
        " / ".join(to_b) + " ; " + (" / ".join(to_b_nat) or "–"),
    )


def attack_table(runs: Runs, prefix: str, paper: PaperTable) -> list[str]:
    """Paper vs measured rows for an attack table (II, III, IV)."""
    lines = header(
        "split", "N (mal.)", "source", "test before", "test after", "B mal.",
        "mal. before", "mal. after", "R*", "R_rec", "P %", "natural: mal. after",
        "natural: R_rec", "rounds to B mal. (FedUP ; natural)",
    )  # fmt: skip
    groups = group(runs, prefix)
    for part in ("iid", "dirichlet"):
        for mix in sorted(paper[part]):
            pp = paper[part][mix]
            label = f"{mix[0]} ({mix[1]})"
            lines.append(row(PART_LABEL[part], label, "paper", *pp, "", "", ""))
            names = groups.get((part, mix[0], mix[1]), [])
            if names:
                lines.append(measured_row(runs, part, mix, names))
    return lines


ROBUST_DEFINITIONS = (
    "**Robust figures** (the per-run table under each attack table, computed "
    "from `rounds.csv`). **B**: mean test / "
    f"malicious accuracy over the retrain rounds within {B_WINDOW // 2} of R* "
    "(of B's best round when R* was not reached, said so), with the spread "
    "(max − min) of its malicious accuracy; a retrain that stopped at R* has "
    "no round after it, so its window is shorter. **R_rec** and **to B mal.** "
    "(malicious accuracy within "
    f"{100 * MAL_MARGIN:.0f} points of B's while test accuracy is back) read "
    "*first hit / stays*: the first recovery round within the mark, and the "
    "first round from which it stays within the mark to the end of the "
    "window; `>k`: outside the mark at the end of the k-round window; `≥k`: "
    f"within from round k on but seen for fewer than {MIN_HOLD} rounds after "
    "it (too short to tell: the method stopped early once recovered, or the "
    "window ended). **Eq. 6**: ⌈R*·P⌉ and whether FedUP's first-hit R_rec "
    "stayed within it. **attack**: *did not take hold* when malicious "
    "accuracy before unlearning is within 5 points of B's; such runs are left "
    "out of every claim."
)


def window_cell(window: tuple[int, int] | None) -> str:
    """A run's recovery window: fixed, or until recovered."""
    if window is None:
        return "–"
    low, high = window
    if low == high:
        return f"fixed {high}"
    return f"until recovered, ≤{high}" + (f" (≥{low})" if low else "")


def baseline_cell(window: Window | None) -> str:
    """B's window mean test / malicious accuracy, its rounds and spread."""
    if window is None:
        return "–"
    first, last = window.rounds[0], window.rounds[-1]
    span = f"round {first}" if first == last else f"rounds {first}-{last}"
    where = (
        f"R* = {window.centre}"
        if window.at_r_star
        else f"best round {window.centre}, R* not reached"
    )
    return (
        f"{pct(window.test_mean)} / {pct(window.mal_mean)} "
        f"(spread {pct(window.mal_spread)}; {span} around {where})"
    )


def bound_cell(m: MethodRecovery | None) -> str:
    """Eq. 6's bound and whether it held."""
    if m is None or m.bound is None:
        return "–"
    held = {True: "held", False: "**not held**", None: "cannot tell"}[m.bound_held]
    return f"{m.bound} ({held})"


def _reach_cells(rec: RunRecovery, method: str) -> list[str]:
    m = rec.methods.get(method)
    if m is None:
        return ["–", "–"]
    to_b = "–" if m.to_b is None else reach_cell(m.to_b, m.stopped_early)
    return [reach_cell(m.r_rec, m.stopped_early), to_b]


def hold_cell(took_hold: bool | None) -> str:
    """The attack-strength check of one run."""
    return {True: "took hold", False: "**did not take hold**", None: "–"}[took_hold]


def robust_table(runs: Runs, prefix: str) -> list[str]:
    """One row per run of an attack table: B's window, Eq. 6, R_rec and
    rounds to B as first hit / stays, and the attack-strength check."""
    names = sorted(n for g in group(runs, prefix).values() for n in g)
    if not names:
        return []
    lines = ["Per run (robust definitions: see the top of this page):", ""]
    lines += header(
        "run", "recovery window", "attack", "B test / mal.", "Eq. 6 (FedUP)",
        "FedUP: R_rec", "FedUP: to B mal.", "natural: R_rec",
        "natural: to B mal.",
    )  # fmt: skip
    for name in names:
        rec = assess(runs, name)
        lines.append(row(
            f"`{name}`", window_cell(recovery_window(runs, name)),
            hold_cell(rec.took_hold), baseline_cell(rec.baseline),
            bound_cell(rec.methods.get("fedup")), *_reach_cells(rec, "fedup"),
            *_reach_cells(rec, "natural"),
        ))  # fmt: skip
    return lines
