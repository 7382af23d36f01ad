"""What one scenario is, read from the Hydra config: roles, attack, methods.

Both entry points (``python -m simulations.run`` and ``flwr run .``) build a
:class:`Scenario` from the same composed Hydra config, so they cannot drift.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from simulations.attacks import DEFAULT_FLIP, Backdoor, LabelFlip
from simulations.data import get_spec

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"

METHODS = (
    "fedup",
    "natural",
    "none",
    "random_prune",
    "malicious_magnitude",
    "not",
    "federaser",
    "retrain",
)
# One-shot detectors flag in the last training round; online ones run every
# round (the registry's detectors, and the DoS detector).
ONE_SHOT_DETECTORS = ("oracle", "false_positive")
ONLINE_DETECTORS = ("last_layer_cluster", "cosine_outlier", "krum_score", "dos")


def compose(overrides: str | list[str] = "") -> DictConfig:
    """Compose ``conf/config.yaml`` with Hydra overrides (for ``flwr run``).

    Parameters
    ----------
    overrides : str | list[str]
        Hydra overrides, e.g. ``"+experiment=smoke seed=1"``.
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    items = shlex.split(overrides) if isinstance(overrides, str) else list(overrides)
    if GlobalHydra.instance().is_initialized():
        GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return hydra_compose(config_name="config", overrides=items)


@dataclass(frozen=True)
class Scenario:
    """A validated view of the config used by the server and client apps."""

    cfg: DictConfig

    def __post_init__(self) -> None:
        cfg = self.cfg
        get_spec(cfg.dataset.name)  # raises on an unknown dataset
        if cfg.num_clients < 2:
            raise ValueError(f"num_clients must be >= 2, got {cfg.num_clients}")
        if not 0 <= cfg.num_malicious < cfg.num_clients:
            raise ValueError(
                f"num_malicious must be in [0, num_clients), got {cfg.num_malicious}"
            )
        if cfg.rounds.train < 1:
            raise ValueError(f"rounds.train must be >= 1, got {cfg.rounds.train}")
        for method in self.methods:
            if method.startswith("fedup-"):
                rate = method.removeprefix("fedup-")
                try:
                    ok = 0.0 <= float(rate) <= 1.0
                except ValueError:
                    ok = False
                if not ok:
                    raise ValueError(
                        f"{method!r}: use fedup-<rate> with a rate in [0, 1]"
                    )
            elif method not in METHODS:
                raise ValueError(f"unknown unlearning method {method!r}; use {METHODS}")
        detectors = ONE_SHOT_DETECTORS + ONLINE_DETECTORS
        if cfg.detector.name not in detectors:
            raise ValueError(
                f"unknown detector {cfg.detector.name!r}; use one of {detectors}"
            )
        if (
            cfg.detector.name == "false_positive"
            and cfg.num_malicious + 1 >= cfg.num_clients
        ):
            raise ValueError("false_positive needs a benign client to flag")
        if cfg.attack.name not in ("none", "label_flip", "backdoor"):
            raise ValueError(f"unknown attack {cfg.attack.name!r}")

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
        return str(self.cfg.detector.name) in ONLINE_DETECTORS

    def make_detector(self) -> Any:
        """The configured online detector, wrapped to act from ``from_round``."""
        from simulations.online import FlagEveryRound, FromRound

        det = self.cfg.detector
        if det.name == "dos":
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
        att = self.cfg.attack
        source, target = DEFAULT_FLIP[self.cfg.dataset.name]
        return LabelFlip(
            int(source if att.source is None else att.source),
            int(target if att.target is None else att.target),
            float(att.fraction),
            seed=int(self.cfg.seed),
            num_classes=get_spec(self.cfg.dataset.name).num_classes,
        )

    def backdoor(self) -> Backdoor:
        att = self.cfg.attack
        return Backdoor(
            target=int(att.target),
            size=int(att.size),
            position=str(att.position),
            fraction=float(att.fraction),
            seed=int(self.cfg.seed),
        )

    def method_settings(self, method: str) -> dict[str, Any]:
        """FedUP arguments for a method (natural = exclusion, no pruning).

        FedUP and the two pruning ablations share P (fixed or adaptive), so
        the ablations prune the same number of weights per layer.
        """
        u = self.cfg.unlearning
        fixed = None
        if method.startswith("fedup-"):
            method, fixed = "fedup", float(method.removeprefix("fedup-"))
        common = {
            "p_min": float(u.p_min),
            "p_max": float(u.p_max),
            "gamma": float(u.gamma),
            "rate_limit": int(u.rate_limit),
            "recovery_rounds": int(u.recovery_rounds),
        }
        if method in ("fedup", "random_prune", "malicious_magnitude"):
            rate = u.pruning_rate if fixed is None else fixed
            return {**common, "pruning_rate": None if rate is None else float(rate)}
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
