"""Tables V-VII: false positive, FedUP vs NoT, the benign setting; one
measured row per setting, seeds pooled (mean ± sd; per seed for counts)."""

from __future__ import annotations

from simulations.report.assess import assess
from simulations.report.cells import header, mean_sd, reach_cell, rounds, row, seeds
from simulations.report.paper import PAPER_BENIGN, PAPER_FP, PAPER_NOT, PART_LABEL
from simulations.report.runs import Runs, group, retrain_cap, seed_groups

R_REC = "R_rec (first / stays, per seed)"


def _r_rec(runs: Runs, names: list[str], method: str) -> str:
    """R_rec of ``method`` per seed, as first hit / stays."""
    cells = []
    for name in names:
        m = assess(runs, name).methods.get(method)
        if m is not None:
            cells.append(reach_cell(m.r_rec, m.stopped_early))
    return " ; ".join(cells) or "–"


def _source(names: list[str]) -> str:
    return f"measured, {seeds(len(names))} (" + ", ".join(f"`{n}`" for n in names) + ")"


def table5(runs: Runs) -> list[str]:
    """Table V: one benign client flagged by mistake (runs ``t5-*``); FedUP,
    and natural forgetting when the runs have it."""
    lines = header("split", "N (mal.)", "method", "source", "test before/after",
                   "forgetting data before/after", R_REC)  # fmt: skip
    for (part, n, m), names in sorted(group(runs, "t5").items()):
        mix = f"{n} ({m}) → {n - 1} ({m})"
        pp = PAPER_FP.get(part, {}).get((n, m))
        if pp:
            lines.append(row(PART_LABEL[part], mix, "fedup", "paper",
                             f"{pp[0]} / {pp[1]}", f"{pp[2]} / {pp[3]}",
                             pp[4]))  # fmt: skip
        for method in ("fedup", "natural"):
            have = [x for x in names if method in runs[x].methods]
            if not have:
                continue
            rs = [runs[x] for x in have]
            res = [r.methods[method] for r in rs]
            lines.append(row(
                PART_LABEL[part], mix, method, _source(have),
                f"{mean_sd([r.test_acc_before for r in rs])} / "
                f"{mean_sd([x.test_acc_after for x in res])}",
                f"{mean_sd([r.forget_acc_before for r in rs])} / "
                f"{mean_sd([x.forget_acc_after for x in res])}",
                _r_rec(runs, have, method),
            ))  # fmt: skip
    return lines


def table6(runs: Runs) -> list[str]:
    """Table VI: FedUP vs NoT under the backdoor (runs ``t4-*``), natural
    forgetting from the same runs for reference."""
    lines = header("split", "N (mal.)", "method", "source", "test before/after",
                   R_REC, "storage MB")  # fmt: skip
    for (part, n, m), names in sorted(group(runs, "t4").items()):
        for method in ("fedup", "not", "natural"):
            pp = PAPER_NOT.get(part, {}).get((n, m), {}).get(method)
            if pp:
                lines.append(row(PART_LABEL[part], f"{n} ({m})", method, "paper",
                                 f"{pp[0]} / {pp[1]}", pp[2], ""))  # fmt: skip
            have = [x for x in names if method in runs[x].methods]
            if not have:
                continue
            rs = [runs[x] for x in have]
            res = [r.methods[method] for r in rs]
            lines.append(row(
                PART_LABEL[part], f"{n} ({m})", method, _source(have),
                f"{mean_sd([r.test_acc_before for r in rs])} / "
                f"{mean_sd([x.test_acc_after for x in res])}",
                _r_rec(runs, have, method),
                " / ".join(f"{x.storage_mb:.3f}" for x in res),
            ))  # fmt: skip
    return lines


TABLE7_METHODS = ("federaser", "not", "fedup", "natural")


def _b_row(runs: Runs, names: list[str]) -> list[str]:
    """Table VII's B row: B's window means (:func:`assess`), R* per seed."""
    have = [(n, w) for n in names if (w := assess(runs, n).baseline) is not None]
    if not have:
        return []
    rs = [runs[n] for n, _ in have]
    forget = [w.forget_mean for _, w in have if w.forget_mean is not None]
    return [row(
        "B (retrain, 3-round mean)", _source([n for n, _ in have]),
        f"{mean_sd([r.test_acc_before for r in rs])} / "
        f"{mean_sd([w.test_mean for _, w in have])}",
        f"{mean_sd([r.forget_acc_before for r in rs])} / {mean_sd(forget)}",
        "R* " + " / ".join(
            rounds(r.rounds_from_scratch, retrain_cap(runs, n))
            for r, (n, _) in zip(rs, have)
        ),
        "–", "–",
    )]  # fmt: skip


def table7(runs: Runs) -> list[str]:
    """Table VII: forget one client with no attack (runs ``t7-*``); natural
    forgetting and B when the runs have them."""
    lines = header("method", "source", "test before/after",
                   "forgetting data before/after", R_REC, "storage MB",
                   "unlearning s")  # fmt: skip
    settings = seed_groups(sorted(n for n in runs if n.startswith("t7-")))
    for method in TABLE7_METHODS:
        pp = PAPER_BENIGN.get(method)
        if pp:
            lines.append(row(method, "paper", f"{pp[0]} / {pp[1]}",
                             f"{pp[2]} / {pp[3]}", pp[4], pp[5], ""))  # fmt: skip
        for names in settings.values():
            have = [x for x in names if method in runs[x].methods]
            if not have:
                continue
            rs = [runs[x] for x in have]
            res = [r.methods[method] for r in rs]
            lines.append(row(
                method, _source(have),
                f"{mean_sd([r.test_acc_before for r in rs])} / "
                f"{mean_sd([x.test_acc_after for x in res])}",
                f"{mean_sd([r.forget_acc_before for r in rs])} / "
                f"{mean_sd([x.forget_acc_after for x in res])}",
                _r_rec(runs, have, method),
                " / ".join(f"{x.storage_mb:.3f}" for x in res),
                " / ".join(f"{x.unlearn_seconds:.3f}" for x in res),
            ))  # fmt: skip
    for names in settings.values():
        lines += _b_row(runs, names)
    return lines
