"""``python -m simulations.report``: rebuild ``docs/results.md`` and its figures."""

from __future__ import annotations

from simulations.report.document import build_report
from simulations.report.runs import DOC, load_results


def main() -> None:
    """Rebuild ``docs/results.md`` (and its figures) from ``results/``."""
    text = build_report(load_results())
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(text)
    print(f"wrote {DOC}")
