"""The method registry, and the config check reading both registries."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from hydra.core.config_store import ConfigStore

from fedup_flwr import DEFAULT_PRUNING_RATE, FedUP
from fedup_flwr.detectors import available_detectors, registry
from simulations.config import compose, detector_names, register_detector_configs
from simulations.methods import (
    Method,
    available_methods,
    parse_method,
    parse_pruning_rate,
)
from simulations.online import FromRound
from simulations.scenario import Scenario

SMOKE = ["+experiment=smoke"]


def test_every_method_config_names_a_known_method() -> None:
    from simulations.config import CONF_DIR

    files = sorted(p.stem for p in (CONF_DIR / "unlearning").glob("*.yaml"))
    assert files == sorted(available_methods())


@pytest.mark.parametrize("name", available_methods())
def test_plain_names_parse_to_their_kind(name: str) -> None:
    assert parse_method(name) == Method(name, name, None)


@pytest.mark.parametrize(
    ("name", "rate"), [("fedup-0", 0.0), ("fedup-0.05", 0.05), ("fedup-1", 1.0)]
)
def test_fixed_rate_is_parsed_once(name: str, rate: float) -> None:
    method = parse_method(name)
    assert (method.kind, method.rate, method.prunes) == ("fedup", rate, True)


@pytest.mark.parametrize("name", ["fedup-1.5", "fedup--0.1", "fedup-x", "fedup-nan"])
def test_bad_rate_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match=r"fedup-<P>.*\[0, 1\]"):
        parse_method(name)


def test_unknown_method_lists_the_valid_names() -> None:
    with pytest.raises(ValueError, match="unknown unlearning method 'magic'") as err:
        parse_method("magic")
    for name in available_methods():
        assert name in str(err.value)
    with pytest.raises(TypeError):
        parse_method(0.1)  # type: ignore[arg-type]


def test_only_pruning_kinds_prune() -> None:
    pruning = {m for m in available_methods() if parse_method(m).prunes}
    assert pruning == {"fedup", "random_prune", "malicious_magnitude"}


def test_fixed_rate_reaches_the_strategy_settings() -> None:
    scenario = Scenario(compose([*SMOKE, "compare=[fedup-0.2,natural]"]))
    assert scenario.method_settings("fedup-0.2")["pruning_rate"] == 0.2
    assert scenario.method_settings("natural")["pruning_rate"] == 0.0
    # Plain fedup takes unlearning.pruning_rate: "default" is the library's.
    assert scenario.method_settings("fedup")["pruning_rate"] == DEFAULT_PRUNING_RATE


def test_adaptive_method_is_adaptive_whatever_the_config_says() -> None:
    method = parse_method("fedup-adaptive")
    assert (method.kind, method.rate, method.adaptive, method.prunes) == (
        "fedup", None, True, True,
    )  # fmt: skip
    cfg = compose([*SMOKE, "compare=[fedup-adaptive]", "unlearning.pruning_rate=0.2"])
    settings = Scenario(cfg).method_settings("fedup-adaptive")
    assert settings["pruning_rate"] is None and settings["similarity"] == "weights"
    assert (settings["sim_min"], settings["sim_max"]) == (None, None)


@pytest.mark.parametrize(
    ("value", "rate"),
    [("default", DEFAULT_PRUNING_RATE), ("adaptive", None), ("0.1", 0.1), ("0", 0.0)],
)
def test_configured_rate_reaches_the_strategy_settings(
    value: str, rate: float | None
) -> None:
    cfg = compose([*SMOKE, f"unlearning.pruning_rate={value}"])
    scenario = Scenario(cfg)
    for method in ("fedup", "random_prune", "malicious_magnitude"):
        assert scenario.method_settings(method)["pruning_rate"] == rate
    assert scenario.method_settings("natural")["pruning_rate"] == 0.0


def test_similarity_settings_reach_the_strategy() -> None:
    cfg = compose(
        [*SMOKE, "unlearning.similarity=kernel_updates", "unlearning.sim_min=0.1",
         "unlearning.sim_max=0.6", "unlearning.pruning_rate=adaptive"]
    )  # fmt: skip
    settings = Scenario(cfg).method_settings("fedup")
    assert (settings["similarity"], settings["sim_min"], settings["sim_max"]) == (
        "kernel_updates", 0.1, 0.6,
    )  # fmt: skip
    strategy = FedUP(**settings)  # the settings are FedUP's own arguments
    assert (strategy.similarity, strategy.sim_min, strategy.pruning_rate) == (
        "kernel_updates", 0.1, None,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ("unlearning.pruning_rate=null", "write 'adaptive'"),
        ("unlearning.pruning_rate=fast", "'default'.*'adaptive'"),
        ("unlearning.pruning_rate=1.5", r"number in \[0, 1\]"),
        ("unlearning.similarity=cosine", "unknown similarity 'cosine'"),
        ("unlearning.sim_min=2", "unlearning.sim_min"),
    ],
)
def test_config_check_refuses_bad_rate_settings(override: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Scenario(compose([*SMOKE, override]))


@pytest.mark.parametrize("value", [None, "fast", 1.5, float("nan"), True])
def test_parse_pruning_rate_refuses(value: object) -> None:
    with pytest.raises(ValueError, match=r"unlearning\.pruning_rate must be"):
        parse_pruning_rate(value)


@pytest.mark.parametrize("compare", ["[fedup-2]", "[bogus]"])
def test_config_check_refuses_bad_methods(compare: str) -> None:
    with pytest.raises(ValueError, match="unlearning method"):
        Scenario(compose([*SMOKE, f"compare={compare}"]))


class Throwaway:
    """A detector known only to this test, flagging node ``node`` every round."""

    def __init__(self, *, node: int = 0, seed: int = 0) -> None:
        self.node, self.seed = node, seed

    def detect(self, server_round: int, replies: Mapping[int, Any], g: Any) -> set[int]:
        return {self.node} if self.node in replies else set()


@pytest.fixture
def throwaway(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Register ``Throwaway`` for one test (registry and Hydra entry removed after)."""
    name = "test_throwaway_detector"
    monkeypatch.setitem(registry._REGISTRY, name, Throwaway)
    yield name
    ConfigStore.instance().repo["detector"].pop(f"{name}.yaml", None)


def test_registered_detector_is_a_hydra_option(throwaway: str) -> None:
    assert throwaway in available_detectors()
    assert throwaway in register_detector_configs()
    cfg = compose([*SMOKE, f"detector={throwaway}", "++detector.params.node=3"])
    scenario = Scenario(cfg)
    assert scenario.online
    detector = scenario.make_detector()
    assert isinstance(detector, FromRound) and detector.from_round == 1
    assert isinstance(detector.detector, Throwaway)
    assert (detector.detector.node, detector.detector.seed) == (3, int(cfg.seed))
    assert detector.detect(1, {3: [], 4: []}, []) == {3}


def test_detector_name_override_reads_the_registry(throwaway: str) -> None:
    cfg = compose([*SMOKE, f"detector.name={throwaway}", "detector.from_round=2"])
    detector = Scenario(cfg).make_detector()
    assert isinstance(detector.detector, Throwaway) and detector.from_round == 2


def test_unknown_detector_lists_the_registry() -> None:
    assert set(available_detectors()) <= set(detector_names())
    with pytest.raises(ValueError, match="unknown detector 'nope'") as err:
        Scenario(compose([*SMOKE, "detector.name=nope"]))
    for name in available_detectors():
        assert name in str(err.value)


def test_yaml_detector_settings_are_kept() -> None:
    # A file in conf/detector wins over the generated entry (tuned from_round).
    cfg = compose([*SMOKE, "detector=krum_score"])
    assert cfg.detector.from_round == 3
    assert cfg.detector.params.f == cfg.num_malicious
