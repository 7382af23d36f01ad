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
    return out


class SweepSummary(Callback):
    """Writes ``summary.csv`` over a multirun's runs when the sweep ends."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        out = write_summary(Path(config.hydra.sweep.dir))
        print(f"sweep summary: {out}")
