"""The method registry, and the config check reading both registries."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from hydra.core.config_store import ConfigStore

from fedup_flwr.detectors import available_detectors, registry
from simulations.config import compose, detector_names, register_detector_configs
from simulations.methods import Method, available_methods, parse_method
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
    assert scenario.method_settings("fedup")["pruning_rate"] is None  # adaptive


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
