"""The Hydra config: composing it, and checking it in one place.

Names come from the registries, not from lists here: unlearning methods from
:mod:`simulations.methods`, detectors from
:func:`fedup_flwr.detectors.available_detectors`. The harness adds three
detector names of its own: ``oracle`` and ``false_positive`` flag from the
ground truth in the last training round (one-shot), ``dos`` flags a new client
every round (an attack on the unlearning, see :mod:`simulations.online`).

A detector registered in code is usable as ``detector=<name>`` without a file
in ``conf/detector/``: :func:`register_detector_configs` stores a default
group entry (``from_round: 1``, ``params: {}``) for every registered name that
has no YAML file. Its constructor arguments go in ``detector.params``, e.g.
``detector=mine ++detector.params.k=3`` (``++`` adds or replaces a key). The
registration must run before Hydra composes: ``python -m simulations.run``
and :func:`compose` do it, so a detector registered at import time (e.g. in
``fedup_flwr.detectors`` or a module imported before composing) is found.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from omegaconf import DictConfig

from simulations.data import get_spec
from simulations.methods import parse_method

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"

ONE_SHOT_DETECTORS = ("oracle", "false_positive")
"""Harness detectors that flag from the ground truth in the last training round."""
HARNESS_ONLINE_DETECTORS = ("dos",)
"""Harness detectors that run every round (not in the library's registry)."""
ATTACKS = ("none", "label_flip", "backdoor")


def registry_detectors() -> list[str]:
    """Registered detectors the harness builds with ``get_detector`` (online).

    Returns
    -------
    list[str]
        :func:`fedup_flwr.detectors.available_detectors` minus the names the
        harness implements itself (``oracle`` is registered, but the harness
        runs it as a one-shot ground truth).
    """
    from fedup_flwr.detectors import available_detectors

    harness = set(ONE_SHOT_DETECTORS) | set(HARNESS_ONLINE_DETECTORS)
    return [name for name in available_detectors() if name not in harness]


def detector_names() -> list[str]:
    """Every name ``detector.name`` accepts: harness ones, then the registry's."""
    return [*ONE_SHOT_DETECTORS, *HARNESS_ONLINE_DETECTORS, *registry_detectors()]


def is_online(detector: str) -> bool:
    """Whether ``detector`` runs every round (False: one-shot at round T)."""
    return detector not in ONE_SHOT_DETECTORS


def register_detector_configs() -> list[str]:
    """Make every registered detector a ``detector=<name>`` option for Hydra.

    Stores a ``detector/<name>`` entry in Hydra's ConfigStore for each name of
    :func:`registry_detectors` without a ``conf/detector/<name>.yaml`` (the
    YAML files keep their tuned settings). Safe to call more than once.

    Returns
    -------
    list[str]
        The names stored by this call.
    """
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    stored = []
    for name in registry_detectors():
        if not (CONF_DIR / "detector" / f"{name}.yaml").exists():
            node = {"name": name, "from_round": 1, "params": {}}
            store.store(group="detector", name=name, node=node)
            stored.append(name)
    return stored


def compose(overrides: str | list[str] = "") -> DictConfig:
    """Compose ``conf/config.yaml`` with Hydra overrides (for ``flwr run``).

    Parameters
    ----------
    overrides : str | list[str]
        Hydra overrides, e.g. ``"+experiment=smoke seed=1"``.

    Returns
    -------
    DictConfig
        The composed config (not validated yet: see :func:`validate`).
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    items = shlex.split(overrides) if isinstance(overrides, str) else list(overrides)
    register_detector_configs()
    if GlobalHydra.instance().is_initialized():
        GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return hydra_compose(config_name="config", overrides=items)


def validate(cfg: DictConfig) -> None:
    """Check a composed config before anything starts.

    Parameters
    ----------
    cfg : DictConfig
        The composed config.

    Raises
    ------
    ValueError
        On an unknown dataset, method, detector or attack, or counts out of
        range; the message says what is accepted.
    """
    get_spec(cfg.dataset.name)  # raises on an unknown dataset
    if cfg.num_clients < 2:
        raise ValueError(f"num_clients must be >= 2, got {cfg.num_clients}")
    if not 0 <= cfg.num_malicious < cfg.num_clients:
        raise ValueError(
            f"num_malicious must be in [0, num_clients), got {cfg.num_malicious}"
        )
    if cfg.rounds.train < 1:
        raise ValueError(f"rounds.train must be >= 1, got {cfg.rounds.train}")
    parse_method(str(cfg.unlearning.method))  # raises on an unknown name
    for method in cfg.get("compare", []) or []:
        parse_method(str(method))
    detector = str(cfg.detector.name)
    if detector not in detector_names():
        raise ValueError(
            f"unknown detector {detector!r}; use one of {detector_names()} "
            "(a detector registered with fedup_flwr.detectors.register_detector "
            "is accepted too)"
        )
    if detector == "false_positive" and cfg.num_malicious + 1 >= cfg.num_clients:
        raise ValueError("false_positive needs a benign client to flag")
    if cfg.attack.name not in ATTACKS:
        raise ValueError(f"unknown attack {cfg.attack.name!r}; use one of {ATTACKS}")
