"""simulations.attacks: label flipping and backdoor triggers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from simulations.attacks import (
    DEFAULT_FLIP,
    POSITIONS,
    Backdoor,
    LabelFlip,
    backdoor_success,
    flip_success,
)
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
