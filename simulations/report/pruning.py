"""The report's pruning-rate sections (issue 11): the similarity measurement
and the backdoor pruning-rate sweeps.

- :func:`similarity_section`: the benign clients' similarity at the
  unlearning round under each measure and the P it gives, from the raw files
  of :mod:`simulations.similarity.run` (``results/similarity/``), with the
  tables and figures of :mod:`simulations.similarity.table` and the findings
  of ``docs/notes/similarity.md``;
- :func:`backdoor_sweeps`: one table per ``sweep-bd-<split>-<n>-<m>`` run
  (fixed P, the adaptive rate and natural forgetting from one trained model),
  B taken from the committed Table IV run of the same setting and seed when
  the sweep did not retrain.
"""

from __future__ import annotations

import math
from pathlib import Path

from simulations.methods import parse_method
from simulations.report.assess import assess
from simulations.report.cells import header, pct, reach_cell, row
from simulations.report.recovery import MAL_MARGIN, reach
from simulations.report.runs import FIGURES_DIR, NOTES_DIR, Runs
from simulations.schema import MethodResult

BD_SWEEP_PREFIX = "sweep-bd-"
B_PREFIX = "t4-"  # sweep-bd-<rest> takes B from t4-<rest> (Table IV's runs)
PICKED_ROUNDS = (0, 1, 3, 10)
SIMILARITY_NOTE = NOTES_DIR / "similarity.md"
# The parts of the similarity note the report quotes: its result paragraph
# and its "Reading" section (the note's own tables are what this section
# generates).
_RESULT_MARK = "**Result:"
_READING = "## Reading"


# --------------------------------------------------------------- similarity
def similarity_dir(runs: Runs) -> Path | None:
    """``<results folder>/similarity`` of ``runs`` (None: not loaded from a
    folder, or the folder has no similarity results)."""
    folder = getattr(runs, "folder", None)
    path = None if folder is None else Path(folder) / "similarity"
    return path if path is not None and any(path.glob("*.json")) else None


def similarity_findings(path: Path = SIMILARITY_NOTE) -> list[str]:
    """The result paragraph and the "Reading" section of the similarity note.

    Raises
    ------
    ValueError
        If the note lacks either part (the report would silently lose them).
    """
    text = path.read_text()
    start = text.find(_RESULT_MARK)
    reading = text.find(_READING)
    if start < 0 or reading < 0:
        raise ValueError(
            f"{path}: expected a paragraph starting {_RESULT_MARK!r} and a "
            f"{_READING!r} section; the report quotes both"
        )
    result = text[start:].split("\n\n", 1)[0].strip()
    body = text[reading + len(_READING) :].split("\n## ", 1)[0].strip()
    return [result, "", body]


def similarity_section(runs: Runs, figures: bool) -> list[str]:
    """Similarity at the unlearning round per measure and setting, the P of
    Eq. 4-5, whether any measure separates IID from Dirichlet(0.5), figures."""
    from simulations.similarity import table

    raw = similarity_dir(runs)
    if raw is None:
        return ["Not run."]
    if figures:
        table.plot_similarity(FIGURES_DIR / "similarity.png", raw)
        table.plot_rounds(FIGURES_DIR / "similarity_rounds.png", raw)
    results = table.load_results(raw)
    seeds = sorted({int(r["seed"]) for r in results if "seed" in r})
    seed_text = f"one seed ({seeds[0]})" if len(seeds) == 1 else f"seeds {seeds}"
    return [
        f"Raw results: `results/similarity/<dataset>-<split>.json`, {seed_text} "
        "per setting; commands in `docs/notes/similarity.md`. P from Eq. 4-5 "
        "with the paper's `p_min = 0.01`, `p_max = 0.15`, `gamma = 5` and each "
        "measure's default `(sim_min, sim_max)`.",
        "",
        table.similarity_table(raw),
        "",
        "Does P under Dirichlet(0.5) come to at most half the IID P on both "
        'datasets? ("ranges that separate": `(sim_min, sim_max)` pairs on a '
        "0.01 grid over [-1, 1] for which it does on both at once; round 1 "
        "for contrast.)",
        "",
        table.separation_table(raw),
        "",
        "![similarity against alpha](figures/similarity.png)",
        "",
        "![similarity per round](figures/similarity_rounds.png)",
        "",
        *similarity_findings(),
    ]


# ------------------------------------------------------- backdoor P sweeps
def is_adaptive(method: MethodResult) -> bool | None:
    """Whether ``method``'s P came from Eq. 4-5.

    As recorded (schema 4); for older results, whether the recorded P is the
    one Eq. 4-5 gives for the recorded similarity and parameters (the
    measure's default range). None: cannot tell.
    """
    from fedup_flwr import adaptive_pruning_rate
    from fedup_flwr.similarity import similarity_range

    if method.adaptive is not None:
        return method.adaptive
    m = method
    if m.pruning_rate is None or m.similarity is None or m.p_min is None:
        return None
    if m.p_max is None or m.gamma is None:
        return None
    lo, hi = similarity_range(m.similarity_measure or "weights")
    want = adaptive_pruning_rate(
        m.similarity, p_min=m.p_min, p_max=m.p_max, gamma=m.gamma,
        sim_min=lo if m.sim_min is None else m.sim_min,
        sim_max=hi if m.sim_max is None else m.sim_max,
    )  # fmt: skip
    return math.isclose(m.pruning_rate, want, rel_tol=1e-9, abs_tol=1e-12)


def method_label(name: str, method: MethodResult) -> str:
    """What a method of a P sweep did, in words."""
    parsed = parse_method(name)
    if parsed.kind != "fedup":
        return f"{name} (exclusion only)" if name == "natural" else name
    if parsed.rate is not None:
        return f"{name} (fixed P)"
    measure = method.similarity_measure or "weights"
    adaptive = is_adaptive(method)
    if adaptive and method.adaptive is None and name == "fedup":
        return f"fedup (adaptive, `{measure}`: the default before issue 11)"
    if adaptive:
        return f"{name} (adaptive, `{measure}`)"
    return f"{name} (fixed P)" if adaptive is False else name


def backdoor_sweep_names(runs: Runs) -> list[str]:
    """The ``sweep-bd-*`` runs, IID first."""
    return sorted(
        (n for n in runs if n.startswith(BD_SWEEP_PREFIX)),
        key=lambda n: ("dirichlet" in n, n),
    )


def baseline_source(runs: Runs, name: str) -> tuple[float | None, str]:
    """B's malicious accuracy for sweep run ``name``, and where it comes from.

    The run's own retrain when it has one; else the Table IV run
    ``t4-<rest>`` of the same setting and seed (the same trained model's
    setting: the sweep ran with ``rounds.max_retrain=0``). ``(None, why)``
    when neither exists or the settings differ.
    """
    own = assess(runs, name).baseline_mal
    if own is not None:
        return own, "B from this run's own retrain"
    ref = B_PREFIX + name.removeprefix(BD_SWEEP_PREFIX)
    if ref not in runs:
        return None, f"no B: no retrain in this run and no `{ref}`"
    run, other = runs[name], runs[ref]
    same = (run.seed, run.dataset, run.model, run.partition, run.alpha) == (
        other.seed, other.dataset, other.model, other.partition, other.alpha,
    ) and (run.num_clients, run.num_malicious) == (
        other.num_clients, other.num_malicious,
    )  # fmt: skip
    if not same:
        return None, f"no B: `{ref}` is not the same setting and seed"
    value = assess(runs, ref).baseline_mal
    if value is None:
        return None, f"no B: `{ref}` has none"
    return value, (
        f"B from `{ref}` (same setting and seed; this run did not retrain): "
        f"malicious accuracy {pct(value)}%"
    )


def _at(curve: list[float], k: int) -> str:
    return pct(curve[k]) if k < len(curve) else "–"


def backdoor_sweep_table(runs: Runs, name: str) -> list[str]:
    """One sweep run: per method P, the pruned model's accuracy, accuracies
    after 1, 3 and 10 rounds, R_rec and the rounds to B's malicious accuracy."""
    run = runs[name]
    base_mal, source = baseline_source(runs, name)
    recovery = assess(runs, name).methods
    lines = [
        f"`{name}`: {run.dataset} {run.model}, {run.attack}, {run.partition} "
        f"{run.num_clients} ({run.num_malicious}), seed {run.seed}, one trained "
        f"model; before unlearning: test {pct(run.test_acc_before)}%, malicious "
        f"{pct(run.mal_acc_before)}%. {source}.",
        "",
        *header(
            "method", "P", "test acc. after 0 (pruned) / 1 / 3 / 10",
            "malicious acc. after 0 / 1 / 3 / 10", "R_rec (first / stays)",
            f"mal. within {100 * MAL_MARGIN:.0f} pts of B (first / stays)",
        ),
    ]  # fmt: skip
    methods = [(m, r) for m, r in run.methods.items() if m != "retrain"]
    methods.sort(key=lambda item: (item[1].pruning_rate or 0.0, item[0]))
    for m, res in methods:
        to_b = "–"
        if base_mal is not None:
            flags = [mal <= base_mal + MAL_MARGIN for mal in res.mal_acc_curve]
            to_b = reach_cell(reach(flags))
        rate = res.pruning_rate
        lines.append(row(
            method_label(m, res),
            "–" if rate is None else f"{rate:.3f}",
            " / ".join(_at(res.test_acc_curve, k) for k in PICKED_ROUNDS),
            " / ".join(_at(res.mal_acc_curve, k) for k in PICKED_ROUNDS),
            reach_cell(recovery[m].r_rec, recovery[m].stopped_early),
            to_b,
        ))  # fmt: skip
    return lines


def backdoor_sweeps(runs: Runs) -> list[str]:
    """Every ``sweep-bd-*`` run's table (``Not run.`` when there is none)."""
    names = backdoor_sweep_names(runs)
    if not names:
        return ["Not run."]
    out: list[str] = []
    for name in names:
        out += [*backdoor_sweep_table(runs, name), ""]
    return out[:-1]
