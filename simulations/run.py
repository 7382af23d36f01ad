"""Run one scenario (or a Hydra sweep) on Flower's Ray simulation engine.

python -m simulations.run +experiment=smoke
python -m simulations.run -m unlearning.pruning_rate=0.01,0.05,0.1,0.15
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import hydra
from flwr.simulation import run_simulation
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from simulations.client_app import make_client_app
from simulations.config import CONF_DIR, register_detector_configs
from simulations.scenario import Scenario
from simulations.server_app import make_server_app


def backend_config(cfg: DictConfig) -> dict[str, Any]:
    """Ray backend settings from the config (client resources, CPUs, cluster).

    ``ray_address`` null starts a local Ray instance; an address (``auto``,
    ``host:port``) joins that running cluster instead, whose CPUs are those
    its nodes were started with.

    Raises
    ------
    ValueError
        If both ``ray_address`` and ``ray_num_cpus`` are set.
    """
    init_args: dict[str, Any] = {"include_dashboard": False, "log_to_driver": True}
    address = cfg.get("ray_address")
    if address is not None:
        if cfg.ray_num_cpus is not None:
            raise ValueError(
                f"ray_address={address} joins a running Ray cluster, whose CPUs "
                "are set by its `ray start --num-cpus`; drop ray_num_cpus="
                f"{cfg.ray_num_cpus} (or set ray_address=null for a local Ray)"
            )
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
    scenario = Scenario(cfg)  # validate before starting Ray
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


@hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")
def _hydra_main(cfg: DictConfig) -> None:
    run_scenario(cfg, Path(HydraConfig.get().runtime.output_dir))


def main() -> None:
    """Entry point: registered detectors become ``detector=<name>``, then Hydra."""
    register_detector_configs()
    _hydra_main()


if __name__ == "__main__":
    main()
