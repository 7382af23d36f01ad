"""Reports over runs: the sweep summary CSV (a Hydra callback)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

SUMMARY_FIELDS = [
    "name",
    "dataset",
    "model",
    "partition",
    "attack",
    "num_clients",
    "num_malicious",
    "method",
    "pruning_rate",
    "test_acc_before",
    "test_acc_after",
    "mal_acc_before",
    "mal_acc_after",
    "baseline_test_acc",
    "baseline_mal_acc",
    "recovery_rounds",
    "rounds_from_scratch",
    "recovery_bound",
    "storage_mb",
    "unlearn_seconds",
    "seed",
]


def write_summary(folder: Path) -> Path:
    """Collect every ``results.json`` under ``folder`` into ``summary.csv``."""
    rows: list[dict[str, Any]] = []
    for path in sorted(folder.rglob("results.json")):
        data = json.loads(path.read_text())
        row = {k: data.get(k) for k in SUMMARY_FIELDS}
        row["run"] = str(path.parent.relative_to(folder))
        rows.append(row)
    out = folder / "summary.csv"
    with out.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, ["run", *SUMMARY_FIELDS])
        writer.writeheader()
        writer.writerows(rows)
    runs = [json.loads(p.read_text()) for p in sorted(folder.rglob("results.json"))]
    if len({r.get("pruning_rate") for r in runs}) > 1:
        plot_sweep(runs, folder / "sweep_p.png")
    return out


def plot_sweep(runs: list[dict[str, Any]], path: Path) -> None:
    """Malicious accuracy after unlearning and R_rec against P (one run per P)."""
    from fedup_flwr import pruning_rate

    points = sorted(
        (r["pruning_rate"], r["methods"]["fedup"])
        for r in runs
        if r.get("pruning_rate") is not None and "fedup" in r["methods"]
    )
    plt = _plt()
    fig, ax1 = plt.subplots(figsize=(6, 3.5))
    xs = [p for p, _ in points]
    ax1.plot(xs, [m["mal_acc_after"] for _, m in points], "bo-",
             label="malicious acc. after recovery")  # fmt: skip
    ax1.set_xlabel("pruning rate P")
    ax1.set_ylabel("malicious accuracy")
    ax2 = ax1.twinx()
    r_rec = [m["recovery_rounds"] for _, m in points]
    r_rec = [-1 if r is None else r for r in r_rec]
    ax2.plot(xs, r_rec, "rs-", label="R_rec (-1: not reached)")
    ax2.set_ylabel("R_rec")
    sims = [m["similarity"] for _, m in points if m.get("similarity") is not None]
    if sims:
        adaptive = pruning_rate(sum(sims) / len(sims))
        ax1.axvline(adaptive, color="k", linestyle=":",
                    label=f"adaptive P = {adaptive:.3f}")  # fmt: skip
    ax1.legend(loc="upper right", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


class SweepSummary(Callback):
    """Writes ``summary.csv`` over a multirun's runs when the sweep ends."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        out = write_summary(Path(config.hydra.sweep.dir))
        print(f"sweep summary: {out}")


# ---------------------------------------------------------------------------
# docs/results.md, generated from results/<run>/results.json
# ---------------------------------------------------------------------------
ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "results"
DOC = ROOT / "docs" / "results.md"
NOTES_DIR = ROOT / "docs" / "notes"
FIGURES_DIR = ROOT / "docs" / "figures"

# The paper's numbers (percent; rounds), typed from its Tables II-VII for the
# side-by-side comparison: (test before, test after, B malicious, malicious
# before, malicious after, R*, R_rec, P_opt) per mix, IID and non-IID.
PAPER_LF_FMNIST = {
    "iid": {
        (5, 2): (84, 88, 4, 73, 5, 22, 1, 10),
        (10, 3): (85, 87, 4, 65, 3, 34, 1, 10),
        (10, 4): (84, 88, 5, 72, 3, 19, 1, 10),
        (20, 6): (86, 88, 6, 58, 8, 51, 1, 10),
        (20, 9): (83, 82, 5, 69, 6, 35, 1, 11),
    },
    "dirichlet": {
        (5, 2): (83, 82, 21, 54, 20, 19, 2, 6),
        (10, 3): (89, 88, 9, 22, 7, 36, 1, 5),
        (10, 4): (86, 87, 11, 36, 12, 19, 1, 5),
        (20, 6): (90, 89, 5, 16, 4, 64, 2, 5),
        (20, 9): (89, 88, 5, 24, 6, 41, 2, 5),
    },
}
PAPER_LF_CIFAR = {
    "iid": {
        (5, 2): (78, 79, 4, 57, 5, 24, 1, 10),
        (10, 3): (79, 77, 3, 51, 2, 26, 1, 11),
        (10, 4): (78, 78, 4, 59, 3, 27, 1, 11),
        (20, 6): (80, 78, 4, 60, 5, 42, 2, 11),
        (20, 9): (79, 79, 5, 42, 4, 67, 2, 10),
    },
    "dirichlet": {
        (5, 2): (79, 80, 4, 44, 4, 32, 1, 5),
        (10, 3): (78, 78, 8, 30, 6, 37, 2, 4),
        (10, 4): (77, 77, 10, 23, 9, 43, 2, 4),
        (20, 6): (79, 77, 11, 37, 11, 75, 4, 3),
        (20, 9): (79, 79, 7, 29, 8, 66, 2, 3),
    },
}
PAPER_BD_CIFAR = {
    "iid": {
        (5, 2): (75, 75, 1, 88, 2, 33, 2, 10),
        (10, 3): (76, 75, 3, 81, 4, 31, 2, 10),
        (10, 4): (75, 73, 1, 89, 2, 26, 1, 10),
        (20, 6): (75, 73, 3, 83, 4, 46, 3, 10),
        (20, 9): (75, 74, 2, 93, 3, 37, 3, 12),
    },
    "dirichlet": {
        (5, 2): (75, 73, 4, 93, 5, 40, 2, 5),
        (10, 3): (75, 74, 2, 82, 2, 32, 2, 4),
        (10, 4): (74, 73, 3, 90, 3, 23, 1, 5),
        (20, 6): (73, 73, 2, 73, 3, 56, 2, 3),
        (20, 9): (73, 71, 2, 90, 3, 47, 2, 3),
    },
}
# Table V: (test before, test after, forgetting before, forgetting after, R_rec)
PAPER_FP = {
    "iid": {(10, 4): (76, 76, 99, 86, 2), (20, 9): (75, 74, 98, 83, 3)},
    "dirichlet": {(10, 4): (75, 74, 91, 80, 2), (20, 9): (75, 73, 87, 82, 5)},
}
# Table VI: method -> (test before, test after, R_rec) per mix, IID and non-IID.
PAPER_NOT = {
    "iid": {
        (5, 2): {"fedup": (75, 75, 2), "not": (75, 75, 10)},
        (10, 4): {"fedup": (75, 75, 1), "not": (75, 75, 6)},
        (20, 9): {"fedup": (75, 74, 3), "not": (75, 73, 10)},
    },
    "dirichlet": {
        (5, 2): {"fedup": (75, 73, 2), "not": (75, 71, 20)},
        (10, 4): {"fedup": (74, 73, 1), "not": (74, 72, 20)},
        (20, 9): {"fedup": (71, 71, 2), "not": (71, 71, 12)},
    },
}
# Table VII: method -> (test before, test after, forget before, forget after,
# R_rec, storage MB).
PAPER_BENIGN = {
    "federaser": (56, 56, 76, 56, 20, 54),
    "not": (56, 50, 74, 50, 20, 0.2),
    "fedup": (56, 56, 74, 56, 3, 2.7),
}
PART_LABEL = {"iid": "IID", "dirichlet": "Dirichlet(1)"}


def load_results(folder: Path = RESULTS_DIR) -> dict[str, dict[str, Any]]:
    """``{run name: results.json}`` for every finished run under ``folder``."""
    runs: dict[str, dict[str, Any]] = {}
    for path in sorted(folder.glob("*/results.json")):
        runs[path.parent.name] = json.loads(path.read_text())
    return runs


def _p(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


def _r(value: int | None, cap: int | None = None) -> str:
    if value is None:
        return "–" if cap is None else f">{cap}"
    return str(value)


def _row(*cells: Any) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _header(*cells: str) -> list[str]:
    return [_row(*cells), "|" + "---|" * len(cells)]


def _mean_sd(values: list[float]) -> str:
    import statistics

    if not values:
        return "–"
    if len(values) == 1:
        return f"{100 * values[0]:.1f}"
    mean, sd = statistics.mean(values), statistics.stdev(values)
    return f"{100 * mean:.1f} ± {100 * sd:.1f}"


def _note(name: str) -> str:
    path = NOTES_DIR / f"{name}.md"
    return path.read_text().strip() + "\n" if path.exists() else ""


Groups = dict[tuple[str, int, int], list[str]]


def _group(runs: dict[str, dict[str, Any]], prefix: str) -> Groups:
    """Runs named ``<prefix>-<partition>-<clients>-<malicious>[-...]``."""
    groups: Groups = {}
    for name, res in runs.items():
        if not name.startswith(prefix + "-"):
            continue
        key = (
            str(res["partition"]),
            int(res["num_clients"]),
            int(res["num_malicious"]),
        )
        groups.setdefault(key, []).append(name)
    return {k: sorted(v) for k, v in groups.items()}


def rounds_to_baseline(run: dict[str, Any], method: dict[str, Any]) -> int | None:
    """Recovery rounds until malicious accuracy is within 2 points of B's while
    test accuracy is back within the tolerance (a collapsed model does not count).
    """
    base = run.get("baseline_mal_acc")
    if base is None:
        return None
    target = run["test_acc_before"] - run.get("tolerance", 0.01)
    for k, (test, mal) in enumerate(
        zip(method["test_acc_curve"], method["mal_acc_curve"])
    ):
        if mal <= base + 0.02 and test >= target:
            return k
    return None


def _cap(res: dict[str, Any]) -> int:
    """Most recovery rounds any method of a run was given."""
    return max(len(m["test_acc_curve"]) - 1 for m in res["methods"].values())


def _run_setting(name: str, key: str) -> int | None:
    """An integer setting (dotted ``key``) of a run's saved ``config.yaml``."""
    cfg = RESULTS_DIR / name / "config.yaml"
    if not cfg.exists():
        return None
    from omegaconf import OmegaConf

    return int(OmegaConf.select(OmegaConf.load(cfg), key))


def _retrain_cap(name: str) -> int | None:
    return _run_setting(name, "rounds.max_retrain")


PaperTable = dict[str, dict[tuple[int, int], tuple[Any, ...]]]


def _measured_row(
    runs: dict[str, dict[str, Any]], part: str, mix: tuple[int, int], names: list[str]
) -> str:
    rs = [runs[n] for n in names]
    fed = [r["methods"]["fedup"] for r in rs]
    nat = [r["methods"]["natural"] for r in rs if "natural" in r["methods"]]
    cap = _cap(rs[0])
    baseline = [r["baseline_mal_acc"] for r in rs if r["baseline_mal_acc"] is not None]
    rates = [f"{100 * f['pruning_rate']:.1f}" for f in fed if f["pruning_rate"]]
    to_b = [_r(rounds_to_baseline(r, f), cap) for r, f in zip(rs, fed)]
    to_b_nat = [
        _r(rounds_to_baseline(r, r["methods"]["natural"]), cap)
        for r in rs
        if "natural" in r["methods"]
    ]
    return _row(
        PART_LABEL[part],
        f"{mix[0]} ({mix[1]})",
        f"measured ×{len(rs)}",
        _mean_sd([r["test_acc_before"] for r in rs]),
        _mean_sd([f["test_acc_after"] for f in fed]),
        _mean_sd(baseline),
        _mean_sd([r["mal_acc_before"] for r in rs]),
        _mean_sd([f["mal_acc_after"] for f in fed]),
        " / ".join(
            _r(r["rounds_from_scratch"], _retrain_cap(n)) for r, n in zip(rs, names)
        ),
        " / ".join(_r(f["recovery_rounds"], cap) for f in fed),
        " / ".join(rates),
        _mean_sd([n["mal_acc_after"] for n in nat]),
        " / ".join(_r(n["recovery_rounds"], cap) for n in nat) or "–",
        " / ".join(to_b) + " ; " + (" / ".join(to_b_nat) or "–"),
    )


def attack_table(
    runs: dict[str, dict[str, Any]], prefix: str, paper: PaperTable
) -> list[str]:
    """Paper vs measured rows for an attack table (II, III, IV)."""
    lines = _header(
        "split", "N (mal.)", "source", "test before", "test after", "B mal.",
        "mal. before", "mal. after", "R*", "R_rec", "P %", "natural: mal. after",
        "natural: R_rec", "rounds to B mal. (FedUP ; natural)",
    )  # fmt: skip
    groups = _group(runs, prefix)
    for part in ("iid", "dirichlet"):
        for mix in sorted(paper[part]):
            pp = paper[part][mix]
            label = f"{mix[0]} ({mix[1]})"
            lines.append(_row(PART_LABEL[part], label, "paper", *pp, "", "", ""))
            names = groups.get((part, mix[0], mix[1]), [])
            if names:
                lines.append(_measured_row(runs, part, mix, names))
    return lines


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _fig_ablation(
    runs: dict[str, dict[str, Any]], names: list[str], path: Path
) -> None:
    plt = _plt()
    methods = ["natural", "random_prune", "malicious_magnitude", "fedup"]
    fig, axes = plt.subplots(
        len(names), len(methods), figsize=(14, 3.2 * len(names)), squeeze=False
    )
    for row, name in enumerate(names):
        res = runs[name]
        for col, method in enumerate(methods):
            ax = axes[row][col]
            m = res["methods"].get(method)
            if m is None:
                ax.set_visible(False)
                continue
            x = list(range(len(m["test_acc_curve"])))
            ax.plot(x, m["test_acc_curve"], "r-", label="test")
            ax.plot(x, m["mal_acc_curve"], "b-", label="malicious")
            if res["baseline_mal_acc"] is not None:
                ax.axhline(res["baseline_mal_acc"], color="g", label="B malicious")
            ax.set_ylim(-0.02, 1.02)
            ax.set_title(f"{method} ({PART_LABEL[res['partition']]})", fontsize=9)
            ax.set_xlabel("recovery round")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _sweep_points(res: dict[str, Any]) -> list[tuple[float, str, dict[str, Any]]]:
    return sorted(
        (m["pruning_rate"], name, m)
        for name, m in res["methods"].items()
        if name.startswith("fedup") and m["pruning_rate"] is not None
    )


def _fig_sweep(res: dict[str, Any], path: Path) -> None:
    plt = _plt()
    points = _sweep_points(res)
    cap = _cap(res)
    xs = [p for p, _, _ in points]
    fig, ax1 = plt.subplots(figsize=(6, 3.5))
    ax1.plot(xs, [m["mal_acc_after_unlearning"] for *_, m in points], "bo-",
             label="malicious acc. right after unlearning")  # fmt: skip
    ax1.plot(xs, [m["mal_acc_after"] for *_, m in points], "b^--",
             label="malicious acc. once recovered")  # fmt: skip
    ax1.set_xlabel("pruning rate P")
    ax1.set_ylabel("malicious accuracy")
    ax2 = ax1.twinx()
    r_rec = [cap + 1 if m["recovery_rounds"] is None else m["recovery_rounds"]
             for *_, m in points]  # fmt: skip
    ax2.plot(xs, r_rec, "rs-", label="R_rec")
    ax2.set_ylabel("R_rec (rounds)")
    adaptive = res["methods"]["fedup"]["pruning_rate"]
    ax1.axvline(
        adaptive, color="k", linestyle=":", label=f"adaptive P = {adaptive:.3f}"
    )
    ax1.legend(loc="upper right", fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _table5(runs: dict[str, dict[str, Any]]) -> list[str]:
    lines = _header("split", "N (mal.)", "source", "test before/after",
                    "forgetting data before/after", "R_rec")  # fmt: skip
    for (part, n, m), names in sorted(_group(runs, "t5").items()):
        mix = f"{n} ({m}) → {n - 1} ({m})"
        pp = PAPER_FP.get(part, {}).get((n, m))
        if pp:
            lines.append(_row(PART_LABEL[part], mix, "paper", f"{pp[0]} / {pp[1]}",
                              f"{pp[2]} / {pp[3]}", pp[4]))  # fmt: skip
        for name in names:
            r = runs[name]
            f = r["methods"]["fedup"]
            lines.append(_row(
                PART_LABEL[part], mix, f"measured (`{name}`)",
                f"{_p(r['test_acc_before'])} / {_p(f['test_acc_after'])}",
                f"{_p(r['forget_acc_before'])} / {_p(f['forget_acc_after'])}",
                _r(f["recovery_rounds"], _cap(r)),
            ))  # fmt: skip
    return lines


def _table6(runs: dict[str, dict[str, Any]]) -> list[str]:
    lines = _header("split", "N (mal.)", "method", "source", "test before/after",
                    "R_rec", "storage MB")  # fmt: skip
    for (part, n, m), names in sorted(_group(runs, "t4").items()):
        for method in ("fedup", "not"):
            pp = PAPER_NOT.get(part, {}).get((n, m), {}).get(method)
            if pp:
                lines.append(_row(PART_LABEL[part], f"{n} ({m})", method, "paper",
                                  f"{pp[0]} / {pp[1]}", pp[2], ""))  # fmt: skip
            for name in names:
                r = runs[name]
                res = r["methods"].get(method)
                if res is None:
                    continue
                lines.append(_row(
                    PART_LABEL[part], f"{n} ({m})", method, f"measured (`{name}`)",
                    f"{_p(r['test_acc_before'])} / {_p(res['test_acc_after'])}",
                    _r(res["recovery_rounds"], _cap(r)), f"{res['storage_mb']:.3f}",
                ))  # fmt: skip
    return lines


def _table7(runs: dict[str, dict[str, Any]]) -> list[str]:
    lines = _header("method", "source", "test before/after",
                    "forgetting data before/after", "R_rec", "storage MB",
                    "unlearning s")  # fmt: skip
    for method in ("federaser", "not", "fedup"):
        pp = PAPER_BENIGN[method]
        lines.append(_row(method, "paper", f"{pp[0]} / {pp[1]}", f"{pp[2]} / {pp[3]}",
                          pp[4], pp[5], ""))  # fmt: skip
        for name in sorted(n for n in runs if n.startswith("t7-")):
            r = runs[name]
            res = r["methods"].get(method)
            if res is None:
                continue
            lines.append(_row(
                method, f"measured (`{name}`)",
                f"{_p(r['test_acc_before'])} / {_p(res['test_acc_after'])}",
                f"{_p(r['forget_acc_before'])} / {_p(res['forget_acc_after'])}",
                _r(res["recovery_rounds"], _cap(r)), f"{res['storage_mb']:.3f}",
                f"{res['unlearn_seconds']:.3f}",
            ))  # fmt: skip
    return lines


def _pick(curve: list[float]) -> str:
    return " / ".join(_p(curve[i]) if i < len(curve) else "–" for i in (0, 1, 5, 10))


def _figure5(runs: dict[str, dict[str, Any]], figures: bool) -> list[str]:
    names: list[str] = [n for n in ("t4-iid-10-4", "t4-dirichlet-10-4") if n in runs]
    if not names:
        return ["Not run."]
    if figures:
        _fig_ablation(runs, names, FIGURES_DIR / "ablation.png")
    lines = ["![ablation](figures/ablation.png)", ""]
    lines += _header(
        "run", "method", "malicious acc. after 0 / 1 / 5 / 10 rounds",
        "test acc. after 0 / 1 / 5 / 10 rounds", "rounds to B mal.",
    )  # fmt: skip
    for name in names:
        r = runs[name]
        for method in ("natural", "random_prune", "malicious_magnitude", "fedup"):
            res = r["methods"].get(method)
            if res is not None:
                lines.append(_row(
                    f"`{name}`", method, _pick(res["mal_acc_curve"]),
                    _pick(res["test_acc_curve"]),
                    _r(rounds_to_baseline(r, res), _cap(r)),
                ))  # fmt: skip
    return lines


def _sweep(runs: dict[str, dict[str, Any]], figures: bool) -> list[str]:
    res = runs.get("sweep-p-iid-10-3")
    if res is None:
        return ["Not run."]
    if figures:
        _fig_sweep(res, FIGURES_DIR / "sweep_p.png")
    lines = ["![sweep](figures/sweep_p.png)", ""]
    lines += _header("P", "method", "test acc. right after",
                     "malicious acc. right after", "malicious once recovered",
                     "R_rec")  # fmt: skip
    for rate, name, m in _sweep_points(res):
        lines.append(_row(
            f"{rate:.3f}", "adaptive FedUP" if name == "fedup" else name,
            _p(m["test_acc_after_unlearning"]), _p(m["mal_acc_after_unlearning"]),
            _p(m["mal_acc_after"]), _r(m["recovery_rounds"], _cap(res)),
        ))  # fmt: skip
    return lines


def _end_to_end(runs: dict[str, dict[str, Any]]) -> list[str]:
    """Real detectors every round vs the oracle, same scenario."""
    names = [n for n in ("t3-iid-10-3-s42",) if n in runs]
    names += sorted(n for n in runs if n.startswith("e2e-"))
    if not names:
        return ["Not run."]
    lines = _header(
        "run", "detector", "first unlearning round", "partitions unlearned",
        "precision / recall", "test before / after", "mal. before / after",
        "R_rec", "refused detections",
    )  # fmt: skip
    for name in names:
        r = runs[name]
        f = r["methods"]["fedup"]
        det = r.get("detection")
        if det is None:  # the oracle run: flags the attackers in round T
            first, parts, pr, refused = (
                r.get("unlearning_round", "–"),
                "attackers",
                "1.00 / 1.00",
                0,
            )
        else:
            first = det["first_unlearning_round"] or "never"
            parts = "; ".join(str(p) for p in det["unlearned_partitions"]) or "–"
            prec, rec = det["precision"], det["recall"]
            pr = f"{prec:.2f} / {rec:.2f}" if prec is not None else "– / 0.00"
            refused = len(det["refused"])
        lines.append(_row(
            f"`{name}`", r.get("detector", "oracle"), first, parts, pr,
            f"{_p(r['test_acc_before'])} / {_p(f['test_acc_after'])}",
            f"{_p(r['mal_acc_before'])} / {_p(f['mal_acc_after'])}",
            _r(f["recovery_rounds"], _cap(r)), refused,
        ))  # fmt: skip
    return lines


def detector_summary(folder: Path | None = None) -> list[str]:
    """Mean F1 per attack, split and dataset; FP rate with no attack (README)."""
    import statistics

    folder = folder or RESULTS_DIR / "detection"
    groups: dict[tuple[str, str, str, str], list[dict[str, Any]]] = {}
    for path in sorted(folder.glob("*/detection.json")):
        data = json.loads(path.read_text())
        name = path.parent.name
        dataset = "fm" if name.startswith("fashion") else "ci"
        split = "iid" if "-iid-" in name else "dir"
        attack = next((a for a in ("label_flip", "backdoor") if a in name), "none")
        for det, stats in data.get("detectors", {}).items():
            groups.setdefault((attack, split, dataset, det), []).append(stats)
    dets = ["last_layer_cluster", "cosine_outlier", "krum_score"]

    def cell(attack: str, split: str, key: str, det: str) -> str:
        values = []
        for dataset in ("fm", "ci"):
            stats = groups.get((attack, split, dataset, det), [])
            vals = [s.get(key) or 0.0 for s in stats]
            values.append(f"{statistics.mean(vals):.2f}" if vals else "–")
        return " / ".join(values)

    lines = _header("", *(f"`{d}`" for d in dets))
    rows = [
        ("label flipping, IID (F-MNIST / CIFAR)", "label_flip", "iid", "f1"),
        ("label flipping, Dirichlet", "label_flip", "dir", "f1"),
        ("backdoor, IID", "backdoor", "iid", "f1"),
        ("backdoor, Dirichlet", "backdoor", "dir", "f1"),
        ("no attack: FP rate (F-MNIST / CIFAR)", "none", "iid", "fp_rate"),
    ]
    for label, attack, split, key in rows:
        cells = []
        for det_ in dets:
            cells.append(cell(attack, split, key, det_))
        lines.append(_row(label, *cells))
    return lines


def _detector_quality() -> list[str]:
    """The tables of ``docs/detectors.md``, from ``results/detection/*``."""
    from simulations import detection

    results = detection.load_results(RESULTS_DIR / "detection")
    if not results:
        return ["Not run."]
    return [
        "Per run (one seed, 8 rounds, 10% of the data): precision / recall / F1 / "
        "first correct round / false-positive rate, from "
        "`results/detection/<run>/detection.json` "
        "(method and discussion: [detectors.md](detectors.md)).",
        "",
        "Summary (mean F1 over the runs of each group; FP rate with no attack):",
        "",
        *detector_summary(),
        "",
        detection.build_tables(results).strip(),
    ]


def _dos(runs: dict[str, dict[str, Any]]) -> list[str]:
    r = runs.get("dos-iid-10-3")
    if r is None:
        return ["Not run."]
    det = r["detection"]
    curve = r["methods"]["fedup"]["test_acc_curve"]
    return [
        f"- unlearning rounds: {det['unlearning_rounds']} (rate limit "
        f"{_rate_limit('dos-iid-10-3')}); partitions unlearned per step: "
        f"{det['unlearned_partitions']}",
        f"- detections refused by the guard: {len(det['refused'])} "
        f"(rounds {[e['round'] for e in det['refused']]})",
        f"- test accuracy before the first unlearning {_p(r['test_acc_before'])}; "
        f"lowest afterwards {_p(min(curve))}; last {_p(curve[-1])}",
    ]


def _rate_limit(name: str) -> int | None:
    return _run_setting(name, "unlearning.rate_limit")


def _not_run(runs: dict[str, dict[str, Any]]) -> list[str]:
    from simulations.reproduce import plan

    missing = [r for r in plan() if r.name not in runs]
    if not missing:
        return ["Every run of `python -m simulations.reproduce --list` is done."]
    lines = [
        f"{len(missing)} runs of the plan (`python -m simulations.reproduce --list`) "
        "have no results yet; `python -m simulations.reproduce` runs them:",
        "",
    ]
    return lines + [f"- `{r.name}`: `{' '.join(r.overrides)}`" for r in missing]


SECTIONS = [
    ("t2", "Table II: CIFAR-10, label flipping (dog → cat)", PAPER_LF_CIFAR, "table2"),
    ("t3", "Table III: Fashion-MNIST, label flipping (shirt → T-shirt)",
     PAPER_LF_FMNIST, "table3"),
    ("t3strong", "Table III, stronger attack (attackers train 5 local epochs)",
     PAPER_LF_FMNIST, "table3strong"),
    ("t4", "Table IV: CIFAR-10, backdoor (3×3 white square → class 0)",
     PAPER_BD_CIFAR, "table4"),
]  # fmt: skip


def build_report(runs: dict[str, dict[str, Any]], *, figures: bool = True) -> str:
    """The Markdown of ``docs/results.md`` for ``runs``."""
    hardware = ", ".join(sorted({r["hardware"] for r in runs.values()})) or "–"
    commits = ", ".join(sorted({r["commit"] for r in runs.values()})) or "–"
    out: list[str] = [
        "# Results: the paper's tables, reproduced",
        "",
        "Generated by `python -m simulations.report` from "
        "`results/<run>/results.json`; "
        "do not edit by hand (the notes under each table come from `docs/notes/`). "
        "Each run's command is in `results/<run>/command.txt`, its per-round metrics "
        "in `rounds.csv`, its plot in `curves.png`; `python -m simulations.reproduce` "
        "re-runs any that are missing.",
        "",
        f"Hardware: {hardware}. Commits: {commits}.",
        "",
        _note("definitions"),
    ]
    for prefix, title, paper, note in SECTIONS:
        names = sorted(n for group in _group(runs, prefix).values() for n in group)
        out += [f"## {title}", "", *attack_table(runs, prefix, paper), ""]
        out += ["Runs: " + (", ".join(f"`{n}`" for n in names) or "none") + ".", ""]
        out.append(_note(note))
    out += ["## Table V: false positive (one benign client flagged)", ""]
    out += [*_table5(runs), "", _note("table5")]
    out += ["## Table VI: FedUP vs NoT under the backdoor", ""]
    out += [*_table6(runs), "", _note("table6")]
    out += ["## Table VII: benign setting (forget one client; no attack)", ""]
    out += [*_table7(runs), "", _note("table7")]
    out += ["## Figure 5: ablation (10 recovery rounds)", ""]
    out += [*_figure5(runs, figures), "", _note("figure5")]
    out += ["## Pruning-rate sweep", "", *_sweep(runs, figures), "", _note("sweep")]
    out += ["## End to end with real detectors (issue 5)", ""]
    out += [*_end_to_end(runs), "", _note("end_to_end")]
    out += ["## Detector quality (issue 5)", ""]
    out += [*_detector_quality(), "", _note("detectors")]
    out += ["## DoS on unlearning: a new client flagged every round", ""]
    out += [*_dos(runs), "", _note("dos")]
    out += ["## Runs not made", "", *_not_run(runs), "", _note("not_run")]
    return "\n".join(out).rstrip() + "\n"


def main() -> None:
    """Rebuild ``docs/results.md`` (and its figures) from ``results/``."""
    text = build_report(load_results())
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(text)
    print(f"wrote {DOC}")


if __name__ == "__main__":
    main()
