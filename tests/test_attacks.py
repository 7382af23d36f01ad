"""simulations.attacks: label flipping, backdoor triggers and boosted updates."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch

from simulations.attacks import (
    DEFAULT_FLIP,
    POSITIONS,
    Backdoor,
    LabelFlip,
    backdoor_success,
    boost_update,
    flip_success,
)
from simulations.config import ConfigError, compose, validate
from simulations.dataset_specs import DATASETS

torch.set_num_threads(1)


def _data(
    n: int = 200, channels: int = 3, size: int = 8, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, channels, size, size, generator=g)
    y = torch.arange(n) % 10
    return x, y


@pytest.mark.parametrize("fraction", [1.0, 0.5, 0.25, 0.1])
def test_label_flip_changes_exactly_the_share(fraction: float) -> None:
    x, y = _data()
    x0, y0 = x.clone(), y.clone()
    x2, y2, flipped = LabelFlip(5, 3, fraction, seed=1).apply(x, y)
    n_source = int((y == 5).sum())
    assert int(flipped.sum()) == round(fraction * n_source)
    assert flipped.dtype == torch.bool and flipped.shape == y.shape
    assert bool((y[flipped] == 5).all())  # only source samples were chosen
    assert bool((y2[flipped] == 3).all())
    assert torch.equal(y2[~flipped], y[~flipped])  # nothing else changed
    assert x2 is x and torch.equal(x, x0) and torch.equal(y, y0)  # inputs intact


def test_label_flip_is_seeded() -> None:
    x, y = _data()
    a = LabelFlip(5, 3, 0.5, seed=1).apply(x, y)[2]
    b = LabelFlip(5, 3, 0.5, seed=1).apply(x, y)[2]
    c = LabelFlip(5, 3, 0.5, seed=2).apply(x, y)[2]
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_label_flip_defaults() -> None:
    assert DEFAULT_FLIP == {"cifar10": (5, 3), "fashion_mnist": (6, 0)}
    flip = LabelFlip.for_dataset("fashion_mnist", fraction=0.5)
    assert (flip.source, flip.target, flip.fraction) == (6, 0, 0.5)
    cifar = LabelFlip.for_dataset("cifar10")
    assert (cifar.source, cifar.target, cifar.fraction) == (5, 3, 1.0)


def test_label_flip_without_source_samples() -> None:
    x, y = _data()
    y = torch.where(y == 5, torch.zeros_like(y), y)
    _, y2, flipped = LabelFlip(5, 3).apply(x, y)
    assert not flipped.any() and torch.equal(y, y2)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((10, 3), "source"),
        ((-1, 3), "source"),
        ((5, 10), "target"),
        ((5, 5), "differ"),
        ((5, 3, 0.0), "fraction"),
        ((5, 3, 1.01), "fraction"),
        ((5, 3, math.nan), "fraction"),
    ],
)
def test_label_flip_validation(args: tuple[float, ...], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        LabelFlip(*args)  # type: ignore[arg-type]


def test_backdoor_stamps_exactly_the_square_and_the_fraction() -> None:
    x, y = _data(n=100)
    x0, y0 = x.clone(), y.clone()
    door = Backdoor(target=0, size=3, fraction=0.2, seed=3, white=1.0)
    x2, y2, poisoned = door.apply(x, y)
    assert int(poisoned.sum()) == 20
    assert torch.equal(x, x0) and torch.equal(y, y0)  # inputs intact
    assert bool((y2[poisoned] == 0).all())
    assert torch.equal(y2[~poisoned], y[~poisoned])
    assert torch.equal(x2[~poisoned], x[~poisoned])
    square = torch.zeros(8, 8, dtype=torch.bool)
    square[5:, 5:] = True
    stamped = x2[poisoned]
    assert bool((stamped[:, :, square] == 1.0).all())  # raw [0, 1] scale: white 1
    assert torch.equal(stamped[:, :, ~square], x[poisoned][:, :, ~square])


@pytest.mark.parametrize(
    ("position", "rows", "cols"),
    [
        ("top-left", slice(0, 2), slice(0, 2)),
        ("top-right", slice(0, 2), slice(6, 8)),
        ("bottom-left", slice(6, 8), slice(0, 2)),
        ("bottom-right", slice(6, 8), slice(6, 8)),
        ("center", slice(3, 5), slice(3, 5)),
    ],
)
def test_backdoor_positions(position: str, rows: slice, cols: slice) -> None:
    assert position in POSITIONS
    x = torch.zeros(1, 1, 8, 8)
    stamped = Backdoor(size=2, position=position, white=1.0).stamp(x)
    expected = torch.zeros(1, 1, 8, 8)
    expected[:, :, rows, cols] = 1.0
    assert torch.equal(stamped, expected)


@pytest.mark.parametrize("dataset", ["cifar10", "fashion_mnist"])
def test_backdoor_white_is_normalised_maximum(dataset: str) -> None:
    spec = DATASETS[dataset]
    x = torch.zeros(4, spec.channels, *spec.image_size)
    for door in (Backdoor(dataset=dataset, size=3), Backdoor(size=3)):  # inferred
        stamped = door.stamp(x)
        for c, (m, s) in enumerate(zip(spec.mean, spec.std)):
            patch = stamped[:, c, -3:, -3:]
            assert torch.allclose(patch, torch.full_like(patch, (1 - m) / s))
        assert int((stamped != 0).sum()) == 4 * spec.channels * 9


def test_triggered_test_set_excludes_target() -> None:
    x, y = _data(n=50)
    door = Backdoor(target=2, size=2, white=[1.0, 1.0, 1.0])
    xt, yt = door.triggered_test_set(x, y)
    keep = y != 2
    assert len(xt) == len(yt) == int(keep.sum())
    assert not bool((yt == 2).any())
    assert torch.equal(yt, y[keep])
    assert bool((xt[:, :, -2:, -2:] == 1.0).all())
    assert torch.equal(xt[:, :, :6, :], x[keep][:, :, :6, :])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"target": 10}, "target"),
        ({"target": -1}, "target"),
        ({"size": 0}, "size"),
        ({"position": "middle"}, "position"),
        ({"fraction": 0.0}, "fraction"),
        ({"fraction": 2.0}, "fraction"),
        ({"dataset": "mnist"}, "unknown dataset"),
        ({"dataset": "cifar10", "white": 1.0}, "not both"),
    ],
)
def test_backdoor_validation(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Backdoor(**kwargs)  # type: ignore[arg-type]


def test_backdoor_shape_checks() -> None:
    with pytest.raises(ValueError, match="does not fit"):
        Backdoor(size=9).stamp(torch.zeros(1, 1, 8, 8))
    with pytest.raises(ValueError, match="channel"):
        Backdoor(dataset="cifar10").stamp(torch.zeros(1, 1, 8, 8))
    with pytest.raises(ValueError, match="channel"):
        Backdoor(white=[1.0, 1.0]).stamp(torch.zeros(1, 3, 8, 8))
    with pytest.raises(ValueError, match=r"Backdoor\(dataset=\.\.\.\)"):
        Backdoor().stamp(torch.zeros(1, 2, 8, 8))  # no 2-channel dataset
    with pytest.raises(ValueError, match="shape"):
        Backdoor().apply(torch.zeros(3, 1, 8, 8), torch.zeros(2, dtype=torch.long))


def test_success_metrics() -> None:
    y_true = torch.tensor([5, 5, 5, 5, 1, 3])
    preds = torch.tensor([3, 3, 5, 0, 3, 3])
    assert flip_success(preds, y_true, source=5, target=3) == 0.5
    assert flip_success(preds.numpy(), y_true.numpy(), 5, 3) == 0.5
    assert math.isnan(flip_success(preds, y_true, source=7, target=3))
    with pytest.raises(ValueError, match="differ"):
        flip_success(preds[:2], y_true, 5, 3)
    assert backdoor_success(torch.tensor([0, 0, 1, 2]), target=0) == 0.5
    assert backdoor_success(np.array([0, 0]), target=0) == 1.0
    assert math.isnan(backdoor_success(torch.tensor([], dtype=torch.long), 0))


# ---------------------------------------------------------------- boosting
def test_boost_update_scales_floating_arrays_and_keeps_dtypes() -> None:
    global_ = [np.array([1.0, 0.0], dtype=np.float32), np.array([[2.0]])]
    local = [np.array([2.0, -1.0], dtype=np.float32), np.array([[1.0]])]
    out = boost_update(local, global_, 2.5)
    # 1 + 2.5 * (2 - 1) = 3.5; 0 + 2.5 * (-1 - 0) = -2.5; 2 + 2.5 * (1 - 2) = -0.5
    np.testing.assert_array_equal(out[0], [3.5, -2.5])
    np.testing.assert_array_equal(out[1], [[-0.5]])
    assert out[0].dtype == np.float32 and out[1].dtype == np.float64
    # The inputs are not modified.
    np.testing.assert_array_equal(local[0], [2.0, -1.0])


def test_boost_update_leaves_integer_and_boolean_arrays() -> None:
    tracked = np.array(7, dtype=np.int64)  # BatchNorm's num_batches_tracked
    flags = np.array([True, False])
    out = boost_update(
        [np.array([2.0]), tracked, flags],
        [np.array([1.0]), np.array(5, dtype=np.int64), np.array([False, False])],
        3.0,
    )
    np.testing.assert_array_equal(out[0], [4.0])
    assert out[1] is tracked and out[2] is flags


def test_boost_update_of_one_returns_the_local_arrays() -> None:
    local: list[np.ndarray] = [
        np.array([2.0], dtype=np.float32),
        np.array(3, dtype=np.int64),
    ]
    out = boost_update(local, [np.array([1.0], dtype=np.float32), np.array(0)], 1)
    assert len(out) == 2 and all(a is b for a, b in zip(out, local))


@pytest.mark.parametrize(
    ("local", "factor", "match"),
    [
        ([np.zeros(2)], 0.5, "finite number >= 1, got 0.5"),
        ([np.zeros(2)], math.nan, "finite number >= 1, got nan"),
        ([np.zeros(2)], math.inf, "finite number >= 1, got inf"),
        ([np.zeros(2), np.zeros(2)], 2.0, "2 local arrays but 1 global"),
        ([np.zeros(3)], 2.0, r"array 0: local shape \(3,\) differs .* \(2,\)"),
    ],
)
def test_boost_update_validation(
    local: list[np.ndarray], factor: float, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        boost_update(local, [np.zeros(2)], factor)


def _check(*overrides: str) -> None:
    validate(compose(["+experiment=smoke", *overrides]), data=False)


@pytest.mark.parametrize("attack", ["backdoor", "label_flip"])
def test_config_accepts_a_boost(attack: str) -> None:
    cfg = compose(["+experiment=smoke", f"attack={attack}"])
    assert cfg.attack.boost == 1.0  # the default: no boosting
    _check(f"attack={attack}", "attack.boost=2.5")
    _check(f"attack={attack}", "attack.boost=1")


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        (["attack.boost=0.5"], r"attack.boost must be a finite number >= 1 .* got 0.5"),
        # No "auto": the message gives N/M (smoke: 5 clients, 2 malicious).
        (["attack.boost=auto"], r"got 'auto'; give the factor itself .* is 2.5 here"),
        (["attack.boost=true"], r"attack.boost must be .* got True"),
        (["attack.boost=inf"], r"attack.boost must be .* got inf"),
        (["attack=backdoor", "attack.boost=0"], r"attack.boost must be .* got 0"),
        (["attack=none", "++attack.boost=2"], r"attack=none has no malicious update"),
    ],
)
def test_config_refuses_a_bad_boost(overrides: list[str], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        _check(*overrides)
    _check("attack=none", "++attack.boost=1")  # nothing boosted: allowed


def test_only_malicious_clients_reply_boosted(
    monkeypatch: pytest.MonkeyPatch, reply_factory: Any
) -> None:
    """Training adds 1 to every entry: the attacker replies global + 2.5."""
    from flwr.app import ArrayRecord, ConfigRecord, Context, RecordDict

    import simulations.client_app as client_app
    from simulations.data import ImageDataset
    from simulations.models import get_arrays, get_model
    from simulations.scenario import Scenario

    def fake_partition(*args: object, **kwargs: object) -> ImageDataset:
        return ImageDataset(torch.zeros(10, 1, 28, 28), torch.arange(10))

    def fake_train(
        model: torch.nn.Module, *args: object, **kwargs: object
    ) -> dict[str, float]:
        with torch.no_grad():
            for value in model.state_dict().values():
                value.add_(1)
        return {"loss": 0.5}

    monkeypatch.setattr(client_app, "_LOCAL_DATA", {})  # no cached real data
    monkeypatch.setattr(client_app, "load_partition", fake_partition)
    monkeypatch.setattr(client_app, "train", fake_train)
    scenario = Scenario(
        compose(["+experiment=smoke", "attack=backdoor", "attack.boost=2.5"])
    )
    assert scenario.malicious_partitions == [0, 1]
    torch.manual_seed(0)
    start = get_arrays(get_model("fmnist_cnn", "fashion_mnist"))
    content = RecordDict(
        {"arrays": ArrayRecord(start), "config": ConfigRecord({"server-round": 1})}
    )
    replies = {}
    for pid in (0, 2):  # malicious, benign
        msg = reply_factory(pid + 1, record=content)  # a delivered Message
        context = Context(1, pid + 1, {"partition-id": pid}, RecordDict(), {})
        reply = client_app.train_handler(scenario, msg, context)
        replies[pid] = reply.content.array_records["arrays"].to_numpy_ndarrays()
    floating = [i for i, a in enumerate(start) if a.dtype.kind == "f"]
    counters = [i for i, a in enumerate(start) if a.dtype.kind != "f"]
    assert floating and counters  # BatchNorm's num_batches_tracked
    for i in floating:
        assert replies[0][i].dtype == start[i].dtype
        base = start[i].astype(np.float64)
        np.testing.assert_allclose(replies[0][i], base + 2.5, rtol=0, atol=1e-5)
        np.testing.assert_allclose(replies[2][i], base + 1.0, rtol=0, atol=1e-6)
    for i in counters:  # trained (+1), never boosted
        np.testing.assert_array_equal(replies[0][i], start[i] + 1)
        np.testing.assert_array_equal(replies[2][i], start[i] + 1)
