"""Run one scenario (or a Hydra sweep) on Flower's Ray simulation engine.

python -m simulations.run +experiment=smoke
python -m simulations.run -m unlearning.pruning_rate=0.01,0.05,0.1,0.15

The whole config is checked first (:func:`simulations.config.validate`), so a
bad setting fails in seconds with one line. Each round prints one line; the
run ends with its table and the folder it wrote to.
"""

from __future__ import annotations

import json
import logging
import random
import sys
from pathlib import Path
from typing import Any

import hydra
from flwr.simulation import run_simulation
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, open_dict

from simulations.client_app import make_client_app
from simulations.config import (
    CONF_DIR,
    ConfigError,
    check_ray,
    register_detector_configs,
    validate,
)
from simulations.outcome import exit_code, not_done
from simulations.progress import quiet_logs
from simulations.scenario import Scenario
from simulations.schema import RunResult
from simulations.server_app import make_server_app


def backend_config(cfg: DictConfig) -> dict[str, Any]:
    """Ray backend settings from the config (client resources, CPUs, cluster).

    ``ray_address`` null starts a local Ray instance; an address (``auto``,
    ``host:port``) joins that running cluster instead, whose CPUs are those
    its nodes were started with. Ray's own logs (its start, the workers'
    output) show only with ``verbose=true``.

    Raises
    ------
    ValueError
        If both ``ray_address`` and ``ray_num_cpus`` are set
        (:func:`simulations.config.check_ray`).
    """
    check_ray(cfg)
    verbose = bool(cfg.get("verbose", False))
    init_args: dict[str, Any] = {"include_dashboard": False, "log_to_driver": verbose}
    if not verbose:
        init_args["logging_level"] = logging.WARNING
    address = cfg.get("ray_address")
    if address is not None:
        init_args["address"] = str(address)
    elif cfg.ray_num_cpus is not None:
        init_args["num_cpus"] = int(cfg.ray_num_cpus)
    return {
        "client_resources": {
            "num_cpus": float(cfg.client_resources.num_cpus),
            "num_gpus": float(cfg.client_resources.num_gpus),
        },
        "init_args": init_args,
    }


def run_scenario(cfg: DictConfig, out_dir: Path) -> dict[str, Any]:
    """Run one scenario into ``out_dir``; skip it when its results exist."""
    done = out_dir / "results.json"
    if cfg.resume and (out_dir / "checkpoint.pkl").exists():
        print(f"resuming the run in {out_dir} from its checkpoint")
    elif cfg.resume and done.exists():
        print(f"{done} exists; skipping (resume=true)")
        results: dict[str, Any] = json.loads(done.read_text())
        return results
    scenario = Scenario(cfg)
    random.seed(int(cfg.seed))  # FedAvg samples nodes with `random`
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "config.yaml").write_text(scenario.to_yaml())
    captured: dict[str, Any] = {}
    run_simulation(
        server_app=make_server_app(cfg, out_dir, on_done=captured.update),
        client_app=make_client_app(cfg),
        num_supernodes=scenario.num_clients,
        backend_config=backend_config(cfg),
    )
    if not captured:
        raise RuntimeError(f"the simulation ended without results; see {out_dir}")
    return captured


_failed: list[int] = []  # exit statuses of this process's runs (sweeps: several)


def sweep_suffix(overrides: list[str], swept: set[str]) -> str:
    """The swept keys' values of one job, for its ``name`` (``""``: none).

    Parameters
    ----------
    overrides : list[str]
        The job's overrides (``hydra.overrides.task``).
    swept : set[str]
        The keys the sweep varies.
    """
    parts = []
    for item in overrides:
        key, _, value = item.lstrip("+~").partition("=")
        if key in swept:
            parts.append(f"{key}={value}")
    return ",".join(parts)


def _swept_keys() -> set[str]:
    """Keys a multirun varies: ``a=1,2`` on the command line, sweeper params."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    hydra_cfg = HydraConfig.get()
    args = [a for a in sys.argv[1:] if "=" in a and not a.startswith("-")]
    parsed = OverridesParser.create().parse_overrides(args)
    keys = {o.get_key_element().lstrip("+~") for o in parsed if o.is_sweep_override()}
    keys |= set((hydra_cfg.sweeper.get("params") or {}).keys())
    return keys


def _run_job(cfg: DictConfig) -> None:
    """One Hydra job: validate, run, print the table and where it all went."""
    hydra_cfg = HydraConfig.get()
    out_dir = Path(hydra_cfg.runtime.output_dir)
    if hydra_cfg.mode == RunMode.MULTIRUN:
        suffix = sweep_suffix(list(hydra_cfg.overrides.task), _swept_keys())
        if suffix and suffix not in str(cfg.name):
            with open_dict(cfg):
                cfg.name = f"{cfg.name}-{suffix}"
    validate(cfg)
    run = RunResult.from_dict(run_scenario(cfg, out_dir))
    print(f"results: {out_dir.resolve()}", flush=True)
    code = exit_code(run)
    if code:
        why = "; ".join(not_done(run))
        print(
            f"error: the unlearning asked for did not happen ({why})", file=sys.stderr
        )
    _failed.append(code)


@hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")
def _hydra_main(cfg: DictConfig) -> None:
    verbose = bool(cfg.get("verbose", False))
    quiet_logs(verbose)
    try:
        _run_job(cfg)
    except Exception as err:  # one line unless verbose (then Hydra's traceback)
        if verbose:
            raise
        hint = "" if isinstance(err, ConfigError) else " (verbose=true: traceback)"
        print(f"error: {err}{hint}".replace("\n", " "), file=sys.stderr, flush=True)
        sys.exit(2 if isinstance(err, ConfigError) else 1)


def main() -> None:
    """Entry point: registered detectors become ``detector=<name>``, then Hydra.

    Exits with 2 on a bad setting (before anything starts), 1 on another
    error, and :data:`simulations.outcome.EXIT_NOT_UNLEARNED` when a run's
    unlearning did not happen (e.g. refused by FedUP's guard).
    """
    register_detector_configs()
    _hydra_main()
    if any(_failed):
        sys.exit(max(_failed))


if __name__ == "__main__":
    main()
