"""A run's files: scoring the detectors' calls, writing and reading them.

Each run writes into its folder ``detection.csv`` (one row per round and
detector) and ``detection.json`` (the run's settings, per-detector summaries
from :func:`simulations.detection.metrics.summarize`, and the global model's
metrics). :func:`load_results` reads every run back; runs written before the
per-run metrics existed get them from their ``detection.csv``.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

from simulations.detection.harness import DetectionLog, DetectorCall
from simulations.detection.metrics import RoundMetrics, persistent, summarize
from simulations.report.cells import attack_order, partition_order

__all__ = [
    "CSV_FIELDS",
    "RESULTS_DIR",
    "csv_rounds",
    "load_results",
    "rescore",
    "rescore_from_csv",
    "score_calls",
    "write_outputs",
]

ROOT = Path(__file__).resolve().parents[2]
RESULTS_DIR = ROOT / "results" / "detection"

CSV_FIELDS = [
    "round",
    "detector",
    "num_replies",
    "malicious_partitions",
    "flagged_partitions",
    "flagged_nodes",
    "tp",
    "fp",
    "fn",
    "precision",
    "recall",
    "f1",
    "fp_rate",
    "correct",
    "seconds",
    "error",
    "test_acc",
    "attack_success",
    "scores",
]


def score_calls(
    calls: Sequence[DetectorCall], part_of: Mapping[int, int], malicious: set[int]
) -> list[tuple[DetectorCall, RoundMetrics]]:
    """Pair each detector call with its metrics (ground truth: partitions).

    Parameters
    ----------
    calls : Sequence[DetectorCall]
        The detectors' decisions, in node ids.
    part_of : Mapping[int, int]
        ``{node_id: partition_id}``.
    malicious : set[int]
        The malicious partition ids (empty without an attack).

    Returns
    -------
    list[tuple[DetectorCall, RoundMetrics]]
        Each call with its round's metrics; nodes that did not reply in a
        round count neither as malicious nor as benign in it.
    """
    out = []
    for call in calls:
        mal = frozenset(n for n in call.replies if part_of[n] in malicious)
        ben = frozenset(call.replies) - mal
        out.append((call, RoundMetrics(call.server_round, call.flagged, mal, ben)))
    return out


def _fmt(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{value:.6g}"


def _clean(value: Any) -> Any:
    """NaN -> None, recursively (strict JSON)."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def _partitions(nodes: Any, part_of: Mapping[int, int]) -> str:
    return " ".join(str(p) for p in sorted(part_of[n] for n in nodes))


def _csv_row(
    call: DetectorCall,
    m: RoundMetrics,
    part_of: Mapping[int, int],
    evaluation: Mapping[str, float],
) -> dict[str, Any]:
    scores = sorted(call.scores.items(), key=lambda kv: part_of.get(kv[0], -1))
    return {
        "round": call.server_round,
        "detector": call.detector,
        "num_replies": len(call.replies),
        "malicious_partitions": _partitions(m.malicious, part_of),
        "flagged_partitions": _partitions(call.flagged & set(part_of), part_of),
        "flagged_nodes": " ".join(str(n) for n in sorted(call.flagged)),
        "tp": m.tp,
        "fp": m.fp,
        "fn": m.fn,
        "precision": _fmt(m.precision),
        "recall": _fmt(m.recall),
        "f1": _fmt(m.f1),
        "fp_rate": _fmt(m.fp_rate),
        "correct": int(m.correct),
        "seconds": f"{call.seconds:.4f}",
        "error": call.error,
        "test_acc": _fmt(evaluation.get("test_acc")),
        "attack_success": _fmt(evaluation.get("attack_success")),
        "scores": json.dumps(
            {str(part_of[n]): round(s, 6) for n, s in scores if n in part_of}
        ),
    }


def write_outputs(
    out_dir: Path,
    record: DetectionLog,
    node_of: Mapping[int, int],
    *,
    malicious: set[int],
    detectors: Mapping[str, Any],
    from_round: int,
    header: Mapping[str, Any],
) -> dict[str, Any]:
    """Score the run and write ``detection.csv`` and ``detection.json``.

    Parameters
    ----------
    out_dir : Path
        The run's folder.
    record : DetectionLog
        What the strategy saw.
    node_of : Mapping[int, int]
        ``{partition_id: node_id}``.
    malicious : set[int]
        The malicious partitions (empty without an attack).
    detectors : Mapping[str, Any]
        The detectors measured, by name (their ``repr`` is stored).
    from_round : int
        The first round of the means and of the run's flag sets.
    header : Mapping[str, Any]
        Fields written first (``name``, ``settings``, ``command``,
        ``wall_seconds``, ...).

    Returns
    -------
    dict[str, Any]
        The content of ``detection.json``.
    """
    part_of = {node: part for part, node in node_of.items()}
    scored = score_calls(record.calls, part_of, malicious)
    with (out_dir / "detection.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_FIELDS)
        writer.writeheader()
        for call, m in scored:
            ev = record.evaluations.get(call.server_round, {})
            writer.writerow(_csv_row(call, m, part_of, ev))
    summaries: dict[str, Any] = {}
    for name in detectors:
        mine = [(c, m) for c, m in scored if c.detector == name]
        summary = summarize([m for _, m in mine], from_round)
        summary["run_flagged_partitions"] = sorted(
            {part_of[n] for c, _ in mine if c.server_round >= from_round
             for n in c.flagged if n in part_of}
        )  # fmt: skip
        summary["errors"] = sum(1 for c, _ in mine if c.error)
        seconds = [c.seconds for c, _ in mine]
        summary["mean_seconds"] = sum(seconds) / len(seconds) if seconds else None
        summaries[name] = summary
    last = max(record.evaluations) if record.evaluations else None
    result = {
        **header,
        "from_round": from_round,
        "malicious_partitions": sorted(malicious),
        "node_of_partition": {str(p): n for p, n in sorted(node_of.items())},
        "detectors": summaries,
        "detector_params": {name: repr(det) for name, det in detectors.items()},
        "initial": record.evaluations.get(0, {}),
        "final": {} if last is None else record.evaluations[last],
        "evaluations": {str(r): ev for r, ev in sorted(record.evaluations.items())},
    }
    result = cast(dict[str, Any], _clean(result))
    (out_dir / "detection.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def _split(cell: str) -> frozenset[int]:
    return frozenset(int(p) for p in cell.split())


def csv_rounds(
    result: Mapping[str, Any], csv_path: Path
) -> dict[str, list[RoundMetrics]]:
    """Every detector's rounds, read back from a run's ``detection.csv``.

    The CSV stores partitions, not the set of nodes that replied, so this
    needs every partition to have replied in every round (as in the runs of
    this harness, which trains with every client); rounds where some did not
    make it raise.

    Parameters
    ----------
    result : Mapping[str, Any]
        The run's ``detection.json`` (for ``node_of_partition``).
    csv_path : Path
        Its ``detection.csv``.

    Returns
    -------
    dict[str, list[RoundMetrics]]
        ``{detector: rounds}``, in round order.

    Raises
    ------
    ValueError
        If a round of the CSV lacks replies.
    """
    everyone = frozenset(int(p) for p in result["node_of_partition"])
    rounds: dict[str, list[RoundMetrics]] = {}
    with csv_path.open(newline="") as fh:
        for row in csv.DictReader(fh):
            if int(row["num_replies"]) != len(everyone):
                raise ValueError(
                    f"{csv_path}: round {row['round']} has {row['num_replies']} "
                    f"replies of {len(everyone)}; cannot rebuild who replied"
                )
            mal = _split(row["malicious_partitions"])
            rounds.setdefault(row["detector"], []).append(
                RoundMetrics(
                    int(row["round"]),
                    _split(row["flagged_partitions"]),
                    mal,
                    everyone - mal,
                )
            )
    for rs in rounds.values():
        rs.sort(key=lambda m: m.server_round)
    return rounds


def rescore(
    rounds: Mapping[str, Sequence[RoundMetrics]],
    from_round: int = 1,
    *,
    window: int = 1,
    votes: int = 1,
) -> dict[str, dict[str, Any]]:
    """Summarize every detector's rounds, optionally under a persistence rule.

    Parameters
    ----------
    rounds : Mapping[str, Sequence[RoundMetrics]]
        ``{detector: rounds}`` in round order (:func:`csv_rounds`).
    from_round : int (default: 1)
        The first round measured (see :func:`summarize`).
    window, votes : int (default: 1, 1)
        Score the flags a :func:`~simulations.detection.metrics.persistent`
        rule keeps (flagged in ``votes`` of the last ``window`` rounds)
        instead of the detector's own; the default keeps every flag.

    Returns
    -------
    dict[str, dict[str, Any]]
        ``{detector: summary}`` as :func:`summarize` returns it.
    """
    out: dict[str, dict[str, Any]] = {}
    for name, rs in rounds.items():
        kept = persistent([m.flagged for m in rs], window=window, votes=votes)
        filtered = [replace(m, flagged=f) for m, f in zip(rs, kept, strict=True)]
        out[name] = summarize(filtered, from_round)
    return out


def rescore_from_csv(
    result: Mapping[str, Any], csv_path: Path
) -> dict[str, dict[str, Any]]:
    """Recompute every detector's summary from a run's ``detection.csv``.

    :func:`csv_rounds` then :func:`rescore`, from the run's ``from_round``;
    raises :class:`ValueError` as :func:`csv_rounds` does.
    """
    from_round = int(result.get("from_round", 1))
    return rescore(csv_rounds(result, csv_path), from_round)


def _with_run_metrics(result: dict[str, Any], folder: Path) -> dict[str, Any]:
    """Add the summaries' missing keys (older runs) from ``detection.csv``."""
    detectors = result.get("detectors", {})
    if all("run_f1" in d and "exact_rounds" in d for d in detectors.values()):
        return result
    csv_path = folder / "detection.csv"
    if not csv_path.exists():
        return result
    try:
        rescored = rescore_from_csv(result, csv_path)
    except ValueError:
        return result  # the tables show the missing per-run metrics as "–"
    for name, summary in detectors.items():
        for key, value in rescored.get(name, {}).items():
            summary.setdefault(key, value)
    return result


def load_results(results_dir: Path = RESULTS_DIR) -> list[dict[str, Any]]:
    """Read every ``<results_dir>/*/detection.json``, sorted by setting.

    Parameters
    ----------
    results_dir : Path (default: ``results/detection``)
        The folder of run folders.

    Returns
    -------
    list[dict[str, Any]]
        The runs, sorted by dataset, attack, partition, mix, rounds and seed;
        summaries written before the per-run metrics existed are completed
        from the run's ``detection.csv``.
    """
    out = [
        _with_run_metrics(json.loads(p.read_text()), p.parent)
        for p in results_dir.glob("*/detection.json")
    ]

    def key(r: dict[str, Any]) -> tuple[Any, ...]:
        s = r["settings"]
        return (
            s["dataset"] != "fashion_mnist",
            attack_order(s["attack"]),
            s["attack"],
            s.get("rounds", 0),
            partition_order(s["partition"], s.get("alpha")),
            s["num_clients"],
            s["num_malicious"],
            s["seed"],
        )

    return sorted(out, key=key)
