"""Tables and plot of the measured similarity and the pruning rate it gives.

    python -m simulations.similarity.table            # print the tables
    python -m simulations.similarity.table --plot docs/figures/similarity.png \
        --plot-rounds docs/figures/similarity_rounds.png

Reads the raw files of :mod:`simulations.similarity.run` (one JSON per
setting) and maps each measure's similarity at the unlearning round onto P
with Eq. 4-5 (:func:`fedup_flwr.core.adaptive_pruning_rate`), using the
measure's own ``(sim_min, sim_max)`` from :data:`fedup_flwr.similarity.SIM_RANGES`.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path
from typing import Any

from fedup_flwr.core import adaptive_pruning_rate
from fedup_flwr.similarity import SIM_RANGES, available_similarities

ROOT = Path(__file__).resolve().parents[2]
RAW = ROOT / "results" / "similarity"
DATASETS = ("fashion_mnist", "cifar10")
# Most IID first; IID sits at alpha = inf.
ALPHAS = (math.inf, 1.0, 0.5, 0.1)
# Measures in the order of the tables: today's first.
MEASURES = ("weights", "last_layer_updates", "kernel_updates", "model_updates")
# Rounds at the end of a run over which the round-to-round noise is measured.
NOISE_ROUNDS = 5
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
    alpha = _alpha(result)
    return "IID" if alpha == math.inf else f"Dir({alpha:g})"


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


def separation(directory: Path = RAW) -> dict[str, dict[str, dict[str, float]]]:
    """Per measure and dataset: the IID and Dirichlet(0.5) similarity and P.

    Returns ``{measure: {dataset: {"gap", "noise", "p_iid", "p_dir05",
    "ratio"}}}`` where ``gap`` is ``sim(IID) - sim(Dir 0.5)`` at the
    unlearning round, ``noise`` the standard deviation of the IID run's value
    over its last :data:`NOISE_ROUNDS` rounds (how much it moves from round to
    round) and ``ratio`` is ``P(Dir 0.5) / P(IID)``; datasets missing either
    run are left out.
    """
    by = {(r["dataset"], _alpha(r)): r for r in load_results(directory)}
    out: dict[str, dict[str, dict[str, float]]] = {}
    for m in _measures():
        out[m] = {}
        for d in DATASETS:
            iid, dir05 = by.get((d, math.inf)), by.get((d, 0.5))
            if iid is None or dir05 is None:
                continue
            s_iid, s_d = iid["similarity"][m], dir05["similarity"][m]
            p_iid, p_d = rate(s_iid, m), rate(s_d, m)
            tail = [x["benign"][m] for x in iid["rounds"][-NOISE_ROUNDS:]]
            out[m][d] = {
                "gap": s_iid - s_d,
                "noise": float(statistics.pstdev(tail)),
                "p_iid": p_iid,
                "p_dir05": p_d,
                "ratio": p_d / p_iid,
            }
    return out


def separation_table(directory: Path = RAW) -> str:
    """Markdown: per measure, whether P(Dir 0.5) <= P(IID) / 2 on both datasets.

    ``sim gap`` is ``sim(IID) - sim(Dir 0.5)`` with, in brackets, the IID
    value's round-to-round noise. Only a gap above twice the noise on both
    datasets leaves room for a ``sim_min``/``sim_max`` that separates reliably
    ("could any range?"); otherwise any increasing map of the similarity
    gives Dirichlet(0.5) about the IID P, or more.
    """
    sep = separation(directory)
    head = "| measure | sim_min, sim_max | "
    for d in DATASETS:
        head += f"{d}: sim gap (noise) | {d}: P IID / Dir(0.5) | "
    lines = [
        head + "P(Dir 0.5) <= P(IID) / 2 on both | could any range? |",
        "|---|---|" + "---|" * (2 * len(DATASETS) + 2),
    ]
    for m, per in sep.items():
        lo, hi = SIM_RANGES[m]
        cells = []
        for d in DATASETS:
            if d in per:
                v = per[d]
                gap = f"{v['gap']:+.3f} ({v['noise']:.3f})"
                rates = f"{100 * v['p_iid']:.1f}% / {100 * v['p_dir05']:.1f}%"
                cells += [gap, rates]
            else:
                cells += ["n/a", "n/a"]
        done = len(per) == len(DATASETS)
        ok = done and all(v["ratio"] <= 0.5 for v in per.values())
        could = done and all(v["gap"] > 2 * v["noise"] for v in per.values())
        lines.append(
            f"| `{m}` | {lo:g}, {hi:g} | "
            + " | ".join(cells)
            + f" | {'yes' if ok else 'no'} | {'yes' if could else 'no'} |"
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
