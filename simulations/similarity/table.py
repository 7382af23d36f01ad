"""Tables and plot of the measured similarity and the pruning rate it gives.

    python -m simulations.similarity.table            # print the tables
    python -m simulations.similarity.table --plot docs/figures/similarity.png \
        --plot-rounds docs/figures/similarity_rounds.png

Reads the raw files of :mod:`simulations.similarity.run` (one JSON per
setting) and maps each measure's similarity at the unlearning round onto P
with Eq. 4-5 (:func:`fedup_flwr.adaptive_pruning_rate`), using the
measure's own ``(sim_min, sim_max)`` from :data:`fedup_flwr.similarity.SIM_RANGES`.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from fedup_flwr import adaptive_pruning_rate
from fedup_flwr.similarity import SIM_RANGES, available_similarities
from simulations.report.cells import partition_label

ROOT = Path(__file__).resolve().parents[2]
RAW = ROOT / "results" / "similarity"
DATASETS = ("fashion_mnist", "cifar10")
# Most IID first; IID sits at alpha = inf.
ALPHAS = (math.inf, 1.0, 0.5, 0.1)
# Measures in the order of the tables: today's first.
MEASURES = ("weights", "last_layer_updates", "kernel_updates", "model_updates")
# Grid step of the (sim_min, sim_max) search in separating_ranges.
RANGE_STEP = 0.01
PAPER = {"p_min": 0.01, "p_max": 0.15, "gamma": 5.0}


def _alpha(result: dict[str, Any]) -> float:
    return math.inf if result["partition"] == "iid" else float(result["alpha"])


def load_results(directory: Path = RAW) -> list[dict[str, Any]]:
    """Every setting's raw result, by dataset then from IID to alpha 0.1."""
    if not directory.is_dir():
        raise FileNotFoundError(f"no similarity results in {directory}")
    results = [json.loads(p.read_text()) for p in sorted(directory.glob("*.json"))]
    return sorted(
        results,
        key=lambda r: (DATASETS.index(r["dataset"]), -_alpha(r)),
    )


def rate(similarity: float, measure: str, **params: float) -> float:
    """P from Eq. 4-5 for ``similarity`` read by ``measure`` (its own range)."""
    sim_min, sim_max = SIM_RANGES[measure]
    kwargs = {**PAPER, **params}
    return adaptive_pruning_rate(similarity, sim_min=sim_min, sim_max=sim_max, **kwargs)


def _measures() -> list[str]:
    known = set(available_similarities())
    return [m for m in MEASURES if m in known]


def _partition(result: dict[str, Any]) -> str:
    return partition_label(result["partition"], result.get("alpha"))


def similarity_table(directory: Path = RAW) -> str:
    """Markdown: setting x measure, the similarity and the P it gives."""
    measures = _measures()
    head = "| dataset (model) | split | T | test acc | " + " | ".join(
        f"{m} sim / P" for m in measures
    )
    lines = [head + " |", "|" + "---|" * (4 + len(measures))]
    for r in load_results(directory):
        cells = [
            f"{r['dataset']} ({r['model']})",
            _partition(r),
            str(r["unlearning_round"]),
            f"{100 * r['test_acc']:.1f}",
        ]
        for m in measures:
            sim = r["similarity"][m]
            cells.append(f"{sim:.3f} / {100 * rate(sim, m):.1f}%")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _sim(result: dict[str, Any], measure: str, at: str) -> float:
    """The benign similarity at the unlearning round (``"T"``) or round 1."""
    if at == "T":
        return float(result["similarity"][measure])
    return float(result["rounds"][0]["benign"][measure])


def separating_ranges(
    pairs: list[tuple[float, float]], *, step: float = RANGE_STEP
) -> list[tuple[float, float]]:
    """Every ``(sim_min, sim_max)`` on a grid over [-1, 1] that separates.

    Parameters
    ----------
    pairs : list of (float, float)
        One ``(sim IID, sim Dirichlet 0.5)`` per dataset.
    step : float
        Grid step.

    Returns
    -------
    list of (float, float)
        The ranges for which Eq. 4-5 (paper's ``p_min``, ``p_max``, ``gamma``)
        give ``P(Dir 0.5) <= P(IID) / 2`` for every pair at once.
    """
    grid = [round(-1.0 + k * step, 6) for k in range(round(2.0 / step) + 1)]
    out = []
    for i, lo in enumerate(grid):
        for hi in grid[i + 1 :]:
            if all(
                adaptive_pruning_rate(d, sim_min=lo, sim_max=hi, **PAPER)
                <= 0.5 * adaptive_pruning_rate(s, sim_min=lo, sim_max=hi, **PAPER)
                for s, d in pairs
            ):
                out.append((lo, hi))
    return out


def separation(
    directory: Path = RAW, *, at: str = "T"
) -> dict[str, dict[str, dict[str, float]]]:
    """Per measure and dataset: the IID and Dirichlet(0.5) similarity and P.

    Parameters
    ----------
    directory : Path
        Folder of the raw files.
    at : {"T", "1"}
        The unlearning round (what FedUP sees) or the first round.

    Returns
    -------
    dict
        ``{measure: {dataset: {"sim_iid", "sim_dir05", "p_iid", "p_dir05",
        "ratio"}}}`` with P from the measure's default range and ``ratio`` =
        ``P(Dir 0.5) / P(IID)``; datasets missing either run are left out.
    """
    if at not in ("T", "1"):
        raise ValueError(f"at must be 'T' or '1', got {at!r}")
    by = {(r["dataset"], _alpha(r)): r for r in load_results(directory)}
    out: dict[str, dict[str, dict[str, float]]] = {}
    for m in _measures():
        out[m] = {}
        for d in DATASETS:
            iid, dir05 = by.get((d, math.inf)), by.get((d, 0.5))
            if iid is None or dir05 is None:
                continue
            s_iid, s_d = _sim(iid, m, at), _sim(dir05, m, at)
            p_iid, p_d = rate(s_iid, m), rate(s_d, m)
            out[m][d] = {
                "sim_iid": s_iid,
                "sim_dir05": s_d,
                "p_iid": p_iid,
                "p_dir05": p_d,
                "ratio": p_d / p_iid,
            }
    return out


def separation_table(directory: Path = RAW) -> str:
    """Markdown: per measure and round, does P(Dir 0.5) <= P(IID) / 2 on both?

    Rows for the unlearning round T (what FedUP sees) and, for contrast, round
    1. "default range" uses :data:`fedup_flwr.similarity.SIM_RANGES`; "ranges
    that separate" counts the ``(sim_min, sim_max)`` on a grid of step
    :data:`RANGE_STEP` over [-1, 1] that separate on both datasets at once.
    """
    head = "| measure | round | "
    for d in DATASETS:
        head += f"{d}: sim IID / Dir(0.5) | {d}: P IID / Dir(0.5) | "
    lines = [
        head + "separates, default range | ranges that separate (e.g.) |",
        "|---|---|" + "---|" * (2 * len(DATASETS) + 2),
    ]
    for at in ("T", "1"):
        for m, per in separation(directory, at=at).items():
            cells = []
            for d in DATASETS:
                if d in per:
                    v = per[d]
                    cells.append(f"{v['sim_iid']:.3f} / {v['sim_dir05']:.3f}")
                    cells.append(f"{100 * v['p_iid']:.1f}% / {100 * v['p_dir05']:.1f}%")
                else:
                    cells += ["n/a", "n/a"]
            done = len(per) == len(DATASETS)
            ok = done and all(v["ratio"] <= 0.5 for v in per.values())
            found = (
                separating_ranges(
                    [(v["sim_iid"], v["sim_dir05"]) for v in per.values()]
                )
                if done
                else []
            )
            count = str(len(found))
            if found:
                lo, hi = found[len(found) // 2]
                count += f" ({lo:g}, {hi:g})"
            lines.append(
                f"| `{m}` | {at} | "
                + " | ".join(cells)
                + f" | {'yes' if ok else 'no'} | {count} |"
            )
    return "\n".join(lines)


def plot_similarity(path: Path, directory: Path = RAW) -> None:
    """Similarity (top) and P (bottom) against alpha, one column per dataset."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = load_results(directory)
    measures = _measures()
    fig, axes = plt.subplots(2, len(DATASETS), figsize=(10, 7), sharex=True)
    iid_x = 10.0  # where IID (alpha = inf) is drawn on the log axis
    for col, d in enumerate(DATASETS):
        rows = [r for r in results if r["dataset"] == d]
        xs = [iid_x if _alpha(r) == math.inf else _alpha(r) for r in rows]
        for m in measures:
            sims = [r["similarity"][m] for r in rows]
            axes[0][col].plot(xs, sims, marker="o", label=m)
            axes[1][col].plot(xs, [100 * rate(s, m) for s in sims], marker="o", label=m)
        model = rows[0]["model"] if rows else ""
        axes[0][col].set_title(f"{d} ({model})")
        axes[0][col].set_ylabel("mean pairwise cosine (benign)")
        axes[1][col].set_ylabel("P from Eq. 4-5 (%)")
        axes[1][col].set_xlabel("Dirichlet alpha (IID at right)")
        for ax in (axes[0][col], axes[1][col]):
            ax.set_xscale("log")
            ax.set_xticks([0.1, 0.5, 1.0, iid_x], ["0.1", "0.5", "1", "IID"])
            ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_rounds(path: Path, directory: Path = RAW) -> None:
    """Benign similarity per round, one panel per dataset and measure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = load_results(directory)
    measures = _measures()
    fig, axes = plt.subplots(
        len(DATASETS), len(measures), figsize=(3.2 * len(measures), 6), squeeze=False
    )
    for row, d in enumerate(DATASETS):
        for col, m in enumerate(measures):
            ax = axes[row][col]
            for r in (r for r in results if r["dataset"] == d):
                rounds = [x["round"] for x in r["rounds"]]
                ax.plot(
                    rounds, [x["benign"][m] for x in r["rounds"]], label=_partition(r)
                )
            ax.set_title(f"{d}: {m}", fontsize=9)
            ax.set_xlabel("round")
            ax.grid(alpha=0.3)
        axes[row][0].set_ylabel("mean pairwise cosine (benign)")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    """Print both tables; with ``--plot``, write the figure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw", type=Path, default=RAW)
    parser.add_argument("--plot", type=Path, default=None)
    parser.add_argument("--plot-rounds", type=Path, default=None)
    args = parser.parse_args(argv)
    print(similarity_table(args.raw))
    print()
    print(separation_table(args.raw))
    if args.plot is not None:
        plot_similarity(args.plot, args.raw)
    if args.plot_rounds is not None:
        plot_rounds(args.plot_rounds, args.raw)


if __name__ == "__main__":
    main()
