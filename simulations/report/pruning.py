"""The report's pruning-rate sections (issue 11): the similarity measurement
and what the pruning-rate sweeps need from a run.

- :func:`similarity_section`: the benign clients' similarity at the
  unlearning round under each measure and the P it gives, from the raw files
  of :mod:`simulations.similarity.run` (``results/similarity/``), with the
  tables and figures of :mod:`simulations.similarity.table` and the findings
  of ``docs/notes/similarity.md``;
- :func:`is_adaptive` and :func:`baseline_source`, which the sweeps across
  seeds (:mod:`~simulations.report.rate_sweeps`) read: whether a method's P
  came from Eq. 4-5, and B taken from the committed Table IV run of the same
  setting and seed when a backdoor sweep did not retrain.
"""

from __future__ import annotations

import math
from pathlib import Path

from simulations.report.assess import RunRecovery, assess
from simulations.report.cells import pct
from simulations.report.runs import FIGURES_DIR, NOTES_DIR, Runs
from simulations.schema import MethodResult

BD_SWEEP_PREFIX = "sweep-bd-"
B_PREFIX = "t4-"  # sweep-bd-<rest> takes B from t4-<rest> (Table IV's runs)
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


# --------------------------------------------------------- P sweeps' runs
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


def baseline_source(
    runs: Runs, name: str, recovery: RunRecovery | None = None
) -> tuple[float | None, str]:
    """B's malicious accuracy for sweep run ``name``, and where it comes from.

    The run's own retrain when it has one; else the Table IV run
    ``t4-<rest>`` of the same setting and seed (the same trained model's
    setting: the sweep ran with ``rounds.max_retrain=0``). ``(None, why)``
    when neither exists or the settings differ. ``recovery``: the run's
    :func:`~simulations.report.assess.assess`, when the caller has it.
    """
    own = (recovery or assess(runs, name)).baseline_mal
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
