"""What one scenario is, read from the Hydra config: roles, attack, methods.

Both entry points (``python -m simulations.run`` and ``flwr run .``) build a
:class:`Scenario` from the same composed Hydra config, so they cannot drift.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf

from simulations.attacks import Backdoor, LabelFlip
from simulations.config import (
    CONF_DIR,
    backdoor,
    compose,
    is_online,
    label_flip,
    validate,
)
from simulations.methods import parse_method

__all__ = ["CONF_DIR", "Scenario", "compose"]  # CONF_DIR, compose: for callers


@dataclass(frozen=True)
class Scenario:
    """A validated view of the config used by the server and client apps."""

    cfg: DictConfig

    def __post_init__(self) -> None:
        # The entry points check the data and the keys first (they know which
        # primary config they composed).
        validate(self.cfg, data=False, keys=None)

    @property
    def num_clients(self) -> int:
        return int(self.cfg.num_clients)

    @property
    def malicious_partitions(self) -> list[int]:
        """Partitions 0 .. num_malicious-1 attack (ground truth: harness only)."""
        return list(range(int(self.cfg.num_malicious)))

    @property
    def online(self) -> bool:
        """Detection every round (a real detector) rather than an oracle at T."""
        return is_online(str(self.cfg.detector.name))

    def make_detector(self) -> Any:
        """The configured online detector, wrapped to act from ``from_round``."""
        from simulations.online import FlagEveryRound, FromRound

        det = self.cfg.detector
        if det.name == "dos":  # harness-only (config.HARNESS_ONLINE_DETECTORS)
            inner: Any = FlagEveryRound()
        else:
            from fedup_flwr.detectors import get_detector

            params = dict(det.get("params") or {})
            inner = get_detector(str(det.name), seed=int(self.cfg.seed), **params)
        return FromRound(inner, int(det.from_round or 1))

    @property
    def flagged_partitions(self) -> list[int]:
        """Partitions the detector flags: the attackers, or one benign client."""
        if self.cfg.detector.name == "false_positive":
            return [int(self.cfg.num_malicious)]
        return self.malicious_partitions

    @property
    def methods(self) -> list[str]:
        """The main method first, then the comparisons (no duplicates)."""
        out = [str(self.cfg.unlearning.method)]
        for m in self.cfg.get("compare", []) or []:
            if str(m) not in out:
                out.append(str(m))
        return out

    def partition_kwargs(self) -> dict[str, Any]:
        part = self.cfg.partition
        kwargs: dict[str, Any] = {
            "partitioner": str(part.name),
            "seed": int(self.cfg.seed),
            "fraction": float(self.cfg.fraction),
        }
        if part.name == "dirichlet":
            kwargs["alpha"] = float(part.alpha)
        return kwargs

    def label_flip(self) -> LabelFlip:
        """The label-flipping attack of ``attack`` (label_flip)."""
        return label_flip(self.cfg)

    def backdoor(self) -> Backdoor:
        """The backdoor attack of ``attack`` (backdoor)."""
        return backdoor(self.cfg)

    def method_settings(self, method: str) -> dict[str, Any]:
        """FedUP arguments for a method (natural = exclusion, no pruning).

        FedUP and the two pruning ablations share P (fixed or adaptive), so
        the ablations prune the same number of weights per layer; the method's
        name or ``unlearning.pruning_rate`` sets it (:meth:`Method.pruning_rate`).
        """
        u = self.cfg.unlearning
        parsed = parse_method(method)
        sim_min, sim_max = u.get("sim_min"), u.get("sim_max")
        common = {
            "p_min": float(u.p_min),
            "p_max": float(u.p_max),
            "gamma": float(u.gamma),
            "rate_limit": int(u.rate_limit),
            "recovery_rounds": int(u.recovery_rounds),
            "similarity": str(u.get("similarity", "weights")),
            "sim_min": None if sim_min is None else float(sim_min),
            "sim_max": None if sim_max is None else float(sim_max),
        }
        if parsed.prunes:
            return {**common, "pruning_rate": parsed.pruning_rate(u.pruning_rate)}
        return {**common, "pruning_rate": 0.0}

    def setting(self) -> dict[str, Any]:
        """The fields that name a scenario's setting in results files."""
        cfg = self.cfg
        return {
            "dataset": str(cfg.dataset.name),
            "model": str(cfg.model.name),
            "partition": str(cfg.partition.name),
            "alpha": cfg.partition.get("alpha"),
            "attack": str(cfg.attack.name),
            "num_clients": self.num_clients,
            "num_malicious": int(cfg.num_malicious),
        }

    def to_yaml(self) -> str:
        return OmegaConf.to_yaml(self.cfg, resolve=True)
