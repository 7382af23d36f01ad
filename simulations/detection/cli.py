"""The command line: a run (Hydra), ``measure``, ``plan``, ``report``, ``separability``.

python -m simulations.detection <overrides>     # one run, conf/detection.yaml
python -m simulations.detection measure 60      # the plan, within 60 minutes
python -m simulations.detection plan            # the plan's progress and time
python -m simulations.detection report          # tables -> docs/detectors.md
python -m simulations.detection separability    # results/separability -> same page
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

from omegaconf import DictConfig

from simulations.detection.outputs import load_results
from simulations.detection.plan import measure, plan_status
from simulations.detection.runner import run_detection
from simulations.detection.separability import write_separability
from simulations.detection.tables import write_report
from simulations.scenario import CONF_DIR

__all__ = ["cli"]

USAGE = (
    "usage: python -m simulations.detection "
    "[measure [MINUTES] | plan | report | separability | HYDRA_OVERRIDES...]"
)


def _hydra_main() -> None:
    import hydra
    from hydra.core.hydra_config import HydraConfig

    @hydra.main(config_path=str(CONF_DIR), config_name="detection", version_base="1.3")
    def main(cfg: DictConfig) -> None:
        overrides = list(HydraConfig.get().overrides.task)
        command = " ".join(
            ["python -m simulations.detection", *(shlex.quote(o) for o in overrides)]
        )
        run_detection(cfg, Path(HydraConfig.get().runtime.output_dir), command)

    main()


def cli(argv: list[str] | None = None) -> None:
    """Dispatch ``measure [minutes]``, ``plan``, ``report``, ``separability``, or a run.

    Raises
    ------
    SystemExit
        On a malformed ``measure`` budget (with the usage line).
    """
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["measure"]:
        try:
            minutes = float(args[1]) if len(args) > 1 else 60.0
        except ValueError:
            raise SystemExit(f"measure: {args[1]!r} is not minutes\n{USAGE}") from None
        measure(minutes, results=load_results())
    elif args[:1] == ["plan"]:
        print(plan_status(load_results()))
    elif args[:1] == ["report"]:
        print(write_report(plan_status=plan_status(load_results())))
    elif args[:1] == ["separability"]:
        print(write_separability())
    else:
        os.environ.setdefault("RAY_DEDUP_LOGS", "1")
        _hydra_main()
