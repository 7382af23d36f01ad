"""simulations.training: local training and evaluation loops."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from simulations.models import get_arrays, get_model
from simulations.training import accuracy, predict, resolve_device, train

torch.set_num_threads(1)


def _separable(n: int = 256, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Two Gaussian blobs in 8 dimensions, labels 0/1."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    centres = torch.tensor([[-2.0] * 8, [2.0] * 8])
    x = centres[y] + torch.randn(n, 8, generator=g)
    return x, y


def _mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))


def test_training_lowers_the_loss_and_fits() -> None:
    x, y = _separable()
    model = _mlp()
    criterion = nn.CrossEntropyLoss()
    with torch.no_grad():
        before = criterion(model(x), y).item()
    first = train(model, x, y, epochs=1, batch_size=32, lr=1e-2, seed=0)
    later = train(model, x, y, epochs=3, batch_size=32, lr=1e-2, seed=0)
    assert first["num_examples"] == later["num_examples"] == 256
    assert later["loss"] < first["loss"] < before
    assert accuracy(model, x, y) > 0.97
    x_test, y_test = _separable(seed=1)
    assert accuracy(model, x_test, y_test, batch_size=7) > 0.97
    assert model.training is False  # accuracy() leaves it in eval mode


def test_training_is_deterministic_with_a_seed() -> None:
    x, y = _separable()
    runs = []
    for _ in range(2):
        model = _mlp(seed=3)
        result = train(model, x, y, epochs=2, batch_size=16, seed=11)
        runs.append((result["loss"], get_arrays(model)))
    assert runs[0][0] == runs[1][0]
    for a, b in zip(runs[0][1], runs[1][1]):
        assert (a == b).all()
    model = _mlp(seed=3)
    other = train(model, x, y, epochs=2, batch_size=16, seed=12)
    assert other["loss"] != runs[0][0]


def test_train_a_cnn_on_images() -> None:
    # Bright vs dark images: a couple of steps of the Fashion-MNIST CNN learn it.
    g = torch.Generator().manual_seed(0)
    y = torch.arange(64) % 2
    x = torch.randn(64, 1, 28, 28, generator=g) * 0.3 + (y.float() * 2 - 1).view(
        -1, 1, 1, 1
    )
    torch.manual_seed(0)
    model = get_model("fmnist_cnn")
    result = train(model, x, y, epochs=3, batch_size=16, seed=0)
    assert math.isfinite(result["loss"])
    assert accuracy(model, x, y) == 1.0


def test_single_sample_batch_is_skipped_with_batch_norm() -> None:
    x, y = _separable(n=33)
    model = nn.Sequential(nn.Linear(8, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    result = train(model, x, y, epochs=1, batch_size=32, seed=0)  # 32 + 1
    assert math.isfinite(result["loss"]) and result["num_examples"] == 33


def test_predict_and_edge_cases() -> None:
    x, _ = _separable(n=10)
    model = _mlp()
    preds = predict(model, x, batch_size=3)
    assert preds.shape == (10,) and preds.dtype == torch.int64
    assert torch.equal(preds, model(x).argmax(1))
    assert predict(model, x[:0]).shape == (0,)
    assert math.isnan(accuracy(model, x[:0], torch.zeros(0, dtype=torch.long)))
    assert math.isnan(train(model, x, x[:, 0].long() * 0, epochs=0)["loss"])
    with pytest.raises(ValueError, match="samples"):
        train(model, x, torch.zeros(3, dtype=torch.long), epochs=1)
    with pytest.raises(ValueError, match="batch_size"):
        train(model, x, torch.zeros(10, dtype=torch.long), epochs=1, batch_size=0)


def test_resolve_device() -> None:
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device("cpu") == torch.device("cpu")
    x, y = _separable(n=32)
    assert train(_mlp(), x, y, epochs=1, device="auto")["num_examples"] == 32
