"""Reports over runs.

- :class:`SweepSummary` (Hydra callback, ``conf/config.yaml``): a multirun's
  ``summary.csv`` and sweep plot (:mod:`~simulations.report.sweep`);
- ``docs/results.md`` from the committed ``results/<run>/results.json``
  (``python -m simulations.report``): loading runs
  (:mod:`~simulations.report.runs`), the robust recovery figures
  (:mod:`~simulations.report.recovery`, per run
  :mod:`~simulations.report.assess`), the paper's numbers
  (:mod:`~simulations.report.paper`), Tables II-IV
  (:mod:`~simulations.report.attack_tables`), Tables V-VII
  (:mod:`~simulations.report.tables`), figures
  (:mod:`~simulations.report.figures`), the similarity section
  (:mod:`~simulations.report.pruning`), the pruning-rate sweeps across seeds
  (:mod:`~simulations.report.rate_sweeps`), the other sections
  (:mod:`~simulations.report.sections`) and the document
  (:mod:`~simulations.report.document`).
"""

from simulations.report.cli import main
from simulations.report.document import build_report
from simulations.report.runs import DOC, ROOT, load_results
from simulations.report.sections import detector_summary
from simulations.report.sweep import SweepSummary, write_summary

__all__ = [
    "DOC",
    "ROOT",
    "SweepSummary",
    "build_report",
    "detector_summary",
    "load_results",
    "main",
    "write_summary",
]
