"""Detector quality on Flower's Ray simulation engine.

One scenario (``conf/detection.yaml``): FedAvg trains with **every** client
for ``rounds.train`` rounds (the malicious partitions attack), and in every
round every registered detector except ``oracle`` sees the same validated
replies (``{node_id: arrays}``) and the global arrays sent that round. The
detectors get no ground truth; the harness maps node ids to partitions and
scores their decisions.

Modules, one job each:

* :mod:`~simulations.detection.metrics`: per-round and per-run metrics (their
  definitions are there);
* :mod:`~simulations.detection.harness`: the measuring strategy
  (:class:`DetectingFedAvg`);
* :mod:`~simulations.detection.outputs`: scoring, ``detection.csv`` /
  ``detection.json``, reading runs back;
* :mod:`~simulations.detection.runner`: one run (Hydra config, Ray);
* :mod:`~simulations.detection.plan`: the measurement plan, run in a budget;
* :mod:`~simulations.detection.tables`: the tables of ``docs/detectors.md``;
* :mod:`~simulations.detection.cli`: ``python -m simulations.detection``.
"""

from simulations.detection.harness import DetectingFedAvg, DetectionLog, DetectorCall
from simulations.detection.metrics import (
    RoundMetrics,
    RunMetrics,
    run_metrics,
    summarize,
)
from simulations.detection.outputs import (
    RESULTS_DIR,
    load_results,
    rescore_from_csv,
    score_calls,
    write_outputs,
)
from simulations.detection.plan import (
    PlannedRun,
    estimate_seconds,
    measure,
    measurement_plan,
    plan_status,
)
from simulations.detection.runner import (
    build_detectors,
    detector_names,
    run_detection,
)
from simulations.detection.tables import (
    DOC_PATH,
    TABLE_END,
    TABLE_START,
    build_failures,
    build_report,
    build_tables,
    setting_label,
    write_report,
)

__all__ = [
    "DOC_PATH",
    "RESULTS_DIR",
    "TABLE_END",
    "TABLE_START",
    "DetectingFedAvg",
    "DetectionLog",
    "DetectorCall",
    "PlannedRun",
    "RoundMetrics",
    "RunMetrics",
    "build_detectors",
    "build_failures",
    "build_report",
    "build_tables",
    "detector_names",
    "estimate_seconds",
    "load_results",
    "measure",
    "measurement_plan",
    "plan_status",
    "rescore_from_csv",
    "run_detection",
    "run_metrics",
    "score_calls",
    "setting_label",
    "summarize",
    "write_outputs",
    "write_report",
]
