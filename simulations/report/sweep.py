"""A Hydra multirun's summary: ``summary.csv`` and, over P, ``sweep_p.png``."""

from __future__ import annotations

import csv
import statistics
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from simulations.plotting import integer_ticks, legend_outside, save, subplots
from simulations.schema import RunResult


def write_summary(folder: Path) -> Path:
    """Collect every ``results.json`` under ``folder`` into ``summary.csv``
    (one row per run: its folder and :meth:`RunResult.summary_fields`); draw
    ``sweep_p.png`` when the runs differ in P."""
    paths = sorted(folder.rglob("results.json"))
    runs = [RunResult.load(p) for p in paths]
    fields = RunResult.summary_fields()
    out = folder / "summary.csv"
    with out.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, ["run", *fields])
        writer.writeheader()
        for path, run in zip(paths, runs):
            data = run.to_dict()
            row = {k: data.get(k) for k in fields}  # optional keys: absent
            writer.writerow({"run": str(path.parent.relative_to(folder)), **row})
    if len({r.pruning_rate for r in runs}) > 1:
        plot_sweep(runs, folder / "sweep_p.png")
    return out


def adaptive_rate(runs: list[RunResult]) -> tuple[float, str] | None:
    """The P the adaptive rule (Eq. 4-5) picks at the runs' mean similarity.

    Uses the parameters each run recorded (``p_min``, ``p_max``, ``gamma``,
    similarity measure). Results written before schema 2 recorded none: for
    them the library's default parameters are used, as this plot always did,
    and the returned label says so.

    Returns
    -------
    tuple[float, str] or None
        P and a label naming where its parameters came from; None when no
        run recorded a similarity.

    Raises
    ------
    ValueError
        If the runs recorded different parameters (no single adaptive P).
    """
    from fedup_flwr import pruning_rate

    fed = [
        r.methods["fedup"]
        for r in runs
        if "fedup" in r.methods and r.methods["fedup"].similarity is not None
    ]
    if not fed:
        return None
    params = {(m.p_min, m.p_max, m.gamma, m.similarity_measure) for m in fed}
    if len(params) > 1:
        found = sorted(map(str, params))
        raise ValueError(
            f"the runs recorded different adaptive-rate parameters {found}; "
            "plot the runs of one setting"
        )
    ((p_min, p_max, gamma, measure),) = params
    similarity = statistics.mean(m.similarity for m in fed if m.similarity is not None)
    if p_min is None or p_max is None or gamma is None:
        return pruning_rate(similarity), "library defaults: not recorded in results"
    rate = pruning_rate(similarity, p_min=p_min, p_max=p_max, gamma=gamma)
    return rate, f"{measure or 'similarity'} {similarity:.3f}"


def plot_sweep(runs: list[RunResult], path: Path) -> None:
    """Malicious accuracy after recovery and R_rec against P (one run per P),
    with the adaptive P (see :func:`adaptive_rate`) marked."""
    points = sorted(
        (r.pruning_rate, r.methods["fedup"])
        for r in runs
        if r.pruning_rate is not None and "fedup" in r.methods
    )
    fig, axes = subplots(figsize=(7.5, 3.5))
    ax1 = axes[0][0]
    xs = [p for p, _ in points]
    ax1.plot(xs, [m.mal_acc_after for _, m in points], "bo-",
             label="malicious acc. after recovery")  # fmt: skip
    ax1.set_xlabel("pruning rate P")
    ax1.set_ylabel("malicious accuracy")
    ax2 = ax1.twinx()
    r_rec = [-1 if m.recovery_rounds is None else m.recovery_rounds for _, m in points]
    ax2.plot(xs, r_rec, "rs-", label="R_rec (-1: not reached)")
    ax2.set_ylabel("R_rec")
    integer_ticks(ax2.yaxis)
    adaptive = adaptive_rate(runs)
    if adaptive is not None:
        rate, source = adaptive
        ax1.axvline(rate, color="k", linestyle=":",
                    label=f"adaptive P = {rate:.3f} ({source})")  # fmt: skip
    legend_outside(fig, [ax1, ax2])
    save(fig, path)


class SweepSummary(Callback):
    """Writes ``summary.csv`` over a multirun's runs when the sweep ends."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        out = write_summary(Path(config.hydra.sweep.dir))
        print(f"sweep summary: {out.resolve()}")
        plot = out.parent / "sweep_p.png"
        if plot.exists():
            print(f"sweep plot: {plot.resolve()}")
