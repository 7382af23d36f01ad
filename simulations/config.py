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

import math
import shlex
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from fedup_flwr.similarity import similarity_range
from simulations.attacks import DEFAULT_FLIP, Backdoor, LabelFlip
from simulations.config_keys import check_keys
from simulations.data import PARTITIONERS
from simulations.data_source import check_data
from simulations.dataset_specs import get_spec
from simulations.methods import parse_method, parse_pruning_rate

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"

ONE_SHOT_DETECTORS = ("oracle", "false_positive")
"""Harness detectors that flag from the ground truth in the last training round."""
HARNESS_ONLINE_DETECTORS = ("dos",)
"""Harness detectors that run every round (not in the library's registry)."""
ATTACKS = ("none", "label_flip", "backdoor")
# Methods whose unlearning goes through FedUP's guard (a detector flags).
GUARDED = frozenset({"fedup", "natural", "random_prune", "malicious_magnitude", "not"})


class ConfigError(ValueError):
    """A setting that cannot run; the message says what to change."""


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


def validate(
    cfg: DictConfig, *, data: bool = True, keys: str | None = "config"
) -> None:
    """Check a composed config before anything starts (the one place).

    Checks unknown keys (against the keys of ``conf/``, also those added with
    ``+``), names (dataset, partition, methods, detector, attack), ranges
    (counts, fractions, rates, rounds), the attack's parameters, a
    ``num_malicious`` FedUP's guard would refuse, the Ray settings and, with
    ``data``, that the dataset can be read (:func:`simulations.data_source.check_data`).

    Parameters
    ----------
    cfg : DictConfig
        The composed config.
    data : bool (default: True)
        Also check where the dataset is read from.
    keys : str | None (default: "config")
        The primary config (``conf/<keys>.yaml``) whose keys, with its
        groups', are the known ones; None skips the check (a config composed
        from another primary file, e.g. ``conf/detection.yaml``).

    Raises
    ------
    ConfigError
        On the first problem found; the message says what is wrong and what to
        do, on one line.
    """
    try:
        if keys is not None:
            check_keys(cfg, keys, conf_dir=CONF_DIR)
        _check_counts(cfg)
        _check_training(cfg)
        _check_unlearning(cfg)
        _check_detector(cfg)
        _check_attack(cfg)
        _check_guard(cfg)
        check_ray(cfg)
        if data:
            check_data(str(cfg.dataset.name))
    except ConfigError:
        raise
    except (ValueError, TypeError, RuntimeError) as err:  # from the builders
        raise ConfigError(str(err).replace("\n", " ")) from err


def check_ray(cfg: DictConfig) -> None:
    """``ray_address`` joins a cluster whose CPUs are its own: no ``ray_num_cpus``.

    Raises
    ------
    ConfigError
        If both are set, or ``ray_num_cpus`` is not a positive integer.
    """
    address = cfg.get("ray_address")
    cpus = cfg.get("ray_num_cpus")
    if address is not None and cpus is not None:
        raise ConfigError(
            f"ray_address={address} joins a running Ray cluster, whose CPUs "
            f"are set by its `ray start --num-cpus`; drop ray_num_cpus={cpus} "
            "(or set ray_address=null for a local Ray)"
        )
    if cpus is not None:
        _number(cfg, "ray_num_cpus", 1, integer=True)


# ---------------------------------------------------------------- ranges
def _number(
    cfg: DictConfig,
    key: str,
    low: float | None = None,
    high: float | None = None,
    *,
    integer: bool = False,
    open_low: bool = False,
    null: bool = False,
) -> float | None:
    """``cfg.<key>`` checked: a number (an integer), within [low, high]."""
    value = OmegaConf.select(cfg, key)
    if value is None and null:
        return None
    kind = "an integer" if integer else "a number"
    ok = isinstance(value, int if integer else (int, float)) and not isinstance(
        value, bool
    )
    if ok and value == value:  # not NaN
        above = low is None or (value > low if open_low else value >= low)
        if above and (high is None or value <= high):
            return float(value)
    where = (
        ("(" if open_low or low is None else "[")
        + ("-inf" if low is None else f"{low:g}")
        + ", "
        + ("inf" if high is None else f"{high:g}")
        + ("]" if high is not None else ")")
    )
    raise ConfigError(
        f"{key} must be {kind} in {where}{' or null' if null else ''}, got {value!r}"
    )


def _check_counts(cfg: DictConfig) -> None:
    clients = _number(cfg, "num_clients", 2, integer=True)
    assert clients is not None
    _number(cfg, "num_malicious", 0, clients - 1, integer=True)
    _number(cfg, "seed", 0, integer=True)
    _number(cfg, "rounds.train", 1, integer=True)
    recovery = _number(cfg, "rounds.max_recovery", 0, integer=True)
    _number(cfg, "rounds.min_recovery", 0, recovery, integer=True)
    _number(cfg, "rounds.max_retrain", 0, integer=True)
    _number(cfg, "rounds.retrain_after", 0, integer=True)


def _check_training(cfg: DictConfig) -> None:
    get_spec(cfg.dataset.name)  # raises on an unknown dataset
    if cfg.partition.name not in PARTITIONERS:
        raise ConfigError(
            f"unknown partition {cfg.partition.name!r}; use one of {list(PARTITIONERS)}"
        )
    if cfg.partition.name == "dirichlet":
        _number(cfg, "partition.alpha", 0, open_low=True)
    _number(cfg, "fraction", 0, 1, open_low=True)
    _number(cfg, "test_fraction", 0, 1, open_low=True)
    # Negative: never count as recovered (every max_recovery round runs).
    _number(cfg, "tolerance", None, 1)
    _number(cfg, "train.local_epochs", 1, integer=True)
    _number(cfg, "train.batch_size", 1, integer=True)
    _number(cfg, "train.lr", 0, open_low=True)
    _number(cfg, "client_resources.num_cpus", 0, open_low=True)
    _number(cfg, "client_resources.num_gpus", 0)


def _check_unlearning(cfg: DictConfig) -> None:
    parse_method(str(cfg.unlearning.method))  # raises on an unknown name
    for method in cfg.get("compare", []) or []:
        parse_method(str(method))
    try:
        parse_pruning_rate(OmegaConf.select(cfg, "unlearning.pruning_rate"))
        similarity_range(str(OmegaConf.select(cfg, "unlearning.similarity")))
    except ValueError as err:
        raise ConfigError(str(err)) from None
    _number(cfg, "unlearning.sim_min", -1, 1, null=True)
    _number(cfg, "unlearning.sim_max", -1, 1, null=True)
    low = _number(cfg, "unlearning.p_min", 0, 1)
    _number(cfg, "unlearning.p_max", low, 1)
    _number(cfg, "unlearning.gamma", 0, open_low=True)
    _number(cfg, "unlearning.rate_limit", 1, integer=True)
    _number(cfg, "unlearning.recovery_rounds", 0, integer=True)
    _number(cfg, "unlearning.not_layers", 1, integer=True)
    _number(cfg, "unlearning.federaser_epoch_fraction", 0, 1, open_low=True)
    _number(cfg, "unlearning.federaser_interval", 1, integer=True)


def _check_detector(cfg: DictConfig) -> None:
    detector = str(cfg.detector.name)
    if detector not in detector_names():
        raise ConfigError(
            f"unknown detector {detector!r}; use one of {detector_names()} "
            "(a detector registered with fedup_flwr.detectors.register_detector "
            "is accepted too)"
        )
    if is_online(detector):
        _number(cfg, "detector.from_round", 1, integer=True, null=True)
    if detector in registry_detectors():
        from fedup_flwr.detectors import get_detector

        params = dict(cfg.detector.get("params") or {})
        get_detector(detector, seed=int(cfg.seed), **params)  # bad params raise
    if detector == "false_positive" and cfg.num_malicious + 1 >= cfg.num_clients:
        raise ConfigError(
            "detector=false_positive flags a benign client, but every client is "
            "malicious; lower num_malicious"
        )


# ---------------------------------------------------------------- attack
def label_flip(cfg: DictConfig) -> LabelFlip:
    """The label-flipping attack of ``cfg.attack`` (its checks raise)."""
    att = cfg.attack
    source, target = DEFAULT_FLIP[cfg.dataset.name]
    return LabelFlip(
        int(source if att.source is None else att.source),
        int(target if att.target is None else att.target),
        float(att.fraction),
        seed=int(cfg.seed),
        num_classes=get_spec(cfg.dataset.name).num_classes,
    )


def backdoor(cfg: DictConfig) -> Backdoor:
    """The backdoor attack of ``cfg.attack`` (its checks raise)."""
    att = cfg.attack
    return Backdoor(
        target=int(att.target),
        size=int(att.size),
        position=str(att.position),
        fraction=float(att.fraction),
        seed=int(cfg.seed),
    )


def _check_attack(cfg: DictConfig) -> None:
    name = cfg.attack.name
    if name not in ATTACKS:
        raise ConfigError(f"unknown attack {name!r}; use one of {list(ATTACKS)}")
    boost = OmegaConf.select(cfg, "attack.boost")
    if name == "none":
        if boost is not None and boost != 1:
            raise ConfigError(
                f"attack=none has no malicious update to boost; drop "
                f"attack.boost={boost!r} or choose attack=backdoor or label_flip"
            )
        return
    for key in ("attack.fraction", "attack.extra_epochs"):
        if OmegaConf.select(cfg, key) is not None:
            integer = key.endswith("epochs")
            _number(cfg, key, 0, None if integer else 1, integer=integer)
    if boost is not None:
        _check_boost(cfg, boost)
    try:
        if name == "backdoor":
            attack = backdoor(cfg)
            height, width = get_spec(cfg.dataset.name).image_size
            if attack.size > min(height, width):
                raise ConfigError(
                    f"attack.size={attack.size} is larger than the "
                    f"{height}x{width} images of {cfg.dataset.name}"
                )
        else:
            label_flip(cfg)
    except (ValueError, TypeError) as err:
        if isinstance(err, ConfigError):
            raise
        raise ConfigError(f"attack={name}: {err}") from err


def _check_boost(cfg: DictConfig, boost: object) -> None:
    """``attack.boost``: a finite number >= 1 (an explicit one: no ``"auto"``)."""
    if (
        isinstance(boost, (int, float))
        and not isinstance(boost, bool)
        and math.isfinite(boost)
        and boost >= 1
    ):
        return
    clients, malicious = int(cfg.num_clients), int(cfg.num_malicious)
    hint = (
        f" (model replacement's N/M is {clients / malicious:g} here)"
        if malicious
        else ""
    )
    raise ConfigError(
        f"attack.boost must be a finite number >= 1 (1: no boosting; a "
        f"malicious client replies global + boost * (local - global)), got "
        f"{boost!r}; give the factor itself{hint}"
    )


def _check_guard(cfg: DictConfig) -> None:
    """Refuse now what FedUP's guard would refuse after all the training."""
    detector = str(cfg.detector.name)
    if is_online(detector):
        from simulations.online import online_methods

        methods = [str(cfg.unlearning.method), *(cfg.get("compare", []) or [])]
        try:
            online_methods(methods)
        except ValueError as err:
            raise ConfigError(f"detector={detector}: {err}") from None
        return  # who is flagged is known only at run time
    methods = [str(cfg.unlearning.method), *(cfg.get("compare", []) or [])]
    if not any(parse_method(str(m)).kind in GUARDED for m in methods):
        return
    clients = int(cfg.num_clients)
    flagged = 1 if detector == "false_positive" else int(cfg.num_malicious)
    if 2 * flagged >= clients:
        raise ConfigError(
            f"FedUP's guard would refuse to unlearn {flagged} flagged of "
            f"{clients} clients: Theorem 1 needs a benign majority, so the flagged "
            f"clients must be fewer than half of the nodes (here at most "
            f"{(clients - 1) // 2}); lower num_malicious or raise num_clients"
        )
