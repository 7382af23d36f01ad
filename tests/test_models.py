"""simulations.models: architectures and array conversion."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from simulations.models import MODELS, get_arrays, get_model, set_arrays

torch.set_num_threads(1)

CASES = [
    ("fmnist_cnn", "fashion_mnist", (1, 28, 28)),
    ("fmnist_cnn", None, (1, 28, 28)),
    ("cifar_cnn", "cifar10", (3, 32, 32)),
    ("cifar_cnn", None, (3, 32, 32)),
    ("lenet5", "cifar10", (3, 32, 32)),
    ("lenet5", None, (3, 32, 32)),
    ("lenet5", "fashion_mnist", (1, 28, 28)),
    ("resnet18", "cifar10", (3, 32, 32)),
    ("resnet18", "fashion_mnist", (1, 28, 28)),
]


@pytest.mark.parametrize(("name", "dataset", "shape"), CASES)
def test_output_shape(name: str, dataset: str | None, shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    model = get_model(name, dataset)
    out = model(torch.randn(2, *shape))
    assert out.shape == (2, 10)
    assert out.dtype == torch.float32
    model.eval()
    with torch.no_grad():
        assert model(torch.randn(2, *shape)).shape == (2, 10)


def _shapes(model: nn.Module, kind: type[nn.Module]) -> list[tuple[int, ...]]:
    weights = [m.weight for m in model.modules() if isinstance(m, kind)]
    return [tuple(w.shape) for w in weights if isinstance(w, torch.Tensor)]


def test_fmnist_cnn_layers() -> None:
    model = get_model("fmnist_cnn")
    assert _shapes(model, nn.Conv2d) == [(16, 1, 5, 5), (32, 16, 5, 5)]
    assert [m.padding for m in model.modules() if isinstance(m, nn.Conv2d)] == [
        (2, 2),
        (2, 2),
    ]
    assert _shapes(model, nn.BatchNorm2d) == [(16,), (32,)]
    assert _shapes(model, nn.Linear) == [(10, 1568)]
    assert sum(isinstance(m, nn.MaxPool2d) for m in model.modules()) == 2


def test_cifar_cnn_layers() -> None:
    model = get_model("cifar_cnn")
    assert _shapes(model, nn.Conv2d) == [
        (32, 3, 3, 3),
        (32, 32, 3, 3),
        (64, 32, 3, 3),
        (64, 64, 3, 3),
        (128, 64, 3, 3),
        (128, 128, 3, 3),
    ]
    assert _shapes(model, nn.BatchNorm2d) == [(c,) for c in (32, 32, 64, 64, 128, 128)]
    assert _shapes(model, nn.Linear) == [(128, 2048), (10, 128)]
    assert sum(isinstance(m, nn.MaxPool2d) for m in model.modules()) == 3
    # Conv -> ReLU -> BatchNorm order.
    kinds = [type(m) for m in model.children()][:3]
    assert kinds == [nn.Conv2d, nn.ReLU, nn.BatchNorm2d]


@pytest.mark.parametrize(
    ("dataset", "channels", "padding"),
    [("cifar10", 3, (0, 0)), ("fashion_mnist", 1, (2, 2))],
)
def test_lenet5_layers(dataset: str, channels: int, padding: tuple[int, int]) -> None:
    model = get_model("lenet5", dataset)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [tuple(c.weight.shape) for c in convs] == [
        (6, channels, 5, 5),
        (16, 6, 5, 5),
    ]
    assert convs[0].padding == padding
    assert _shapes(model, nn.Linear) == [(120, 400), (84, 120), (10, 84)]


def test_resnet18_is_torchvisions() -> None:
    model = get_model("resnet18", "cifar10")
    n_params = sum(p.numel() for p in model.parameters())
    assert n_params == 11_181_642  # torchvision resnet18 with 10 classes
    assert model.fc.out_features == 10  # type: ignore[union-attr]
    gray = get_model("resnet18", "fashion_mnist")
    assert gray.conv1.in_channels == 1  # type: ignore[union-attr]


def test_unknown_names() -> None:
    with pytest.raises(ValueError, match=r"cifar_cnn.*fmnist_cnn.*lenet5.*resnet18"):
        get_model("vgg16")
    with pytest.raises(ValueError, match="unknown dataset"):
        get_model("lenet5", "mnist")
    with pytest.raises(ValueError, match="fashion_mnist"):
        get_model("fmnist_cnn", "cifar10")
    with pytest.raises(ValueError, match="cifar10"):
        get_model("cifar_cnn", "fashion_mnist")
    assert set(MODELS) == {"fmnist_cnn", "cifar_cnn", "lenet5", "resnet18"}


def test_get_arrays_follows_state_dict() -> None:
    model = get_model("fmnist_cnn")
    state = model.state_dict()
    arrays = get_arrays(model)
    assert len(arrays) == len(state)
    for array, (key, tensor) in zip(arrays, state.items()):
        assert isinstance(array, np.ndarray)
        assert array.shape == tuple(tensor.shape), key
        np.testing.assert_array_equal(array, tensor.numpy())
    keys = list(state)
    assert "1.running_mean" in keys and "1.num_batches_tracked" in keys
    nbt = arrays[keys.index("1.num_batches_tracked")]
    assert nbt.shape == () and nbt.dtype == np.int64
    # Copies: training the model does not change arrays already taken.
    before = arrays[0].copy()
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    np.testing.assert_array_equal(arrays[0], before)


@pytest.mark.parametrize("name", ["fmnist_cnn", "cifar_cnn", "lenet5"])
def test_round_trip(name: str) -> None:
    torch.manual_seed(1)
    source = get_model(name)
    source.train()
    dummy = torch.randn(4, *((1, 28, 28) if name == "fmnist_cnn" else (3, 32, 32)))
    source(dummy)  # update BatchNorm buffers
    torch.manual_seed(2)
    dest = get_model(name)
    arrays = get_arrays(source)
    for a in arrays:
        a.setflags(write=False)  # as Flower's ArrayRecord may hand them over
    set_arrays(dest, arrays)
    for (k, a), b in zip(source.state_dict().items(), dest.state_dict().values()):
        assert torch.equal(a, b), k
        assert a.dtype == b.dtype, k
    source.eval()
    dest.eval()
    with torch.no_grad():
        assert torch.equal(source(dummy), dest(dummy))


def test_set_arrays_casts_float64() -> None:
    model = get_model("lenet5")
    arrays = [a.astype(np.float64) for a in get_arrays(model)]
    set_arrays(model, arrays)
    assert all(t.dtype == torch.float32 for t in model.state_dict().values())


def test_set_arrays_rejects_mismatch() -> None:
    model = get_model("fmnist_cnn")
    arrays = get_arrays(model)
    with pytest.raises(ValueError, match="got 1 arrays"):
        set_arrays(model, arrays[:1])
    with pytest.raises(ValueError, match="arrays but the model"):
        set_arrays(model, [*arrays, arrays[0]])
    bad = list(arrays)
    bad[0] = np.zeros((16, 1, 3, 3), dtype=np.float32)
    with pytest.raises(ValueError, match=r"array 0 \('0.weight'\) has shape"):
        set_arrays(model, bad)
    with pytest.raises(ValueError, match="got 10 arrays"):
        set_arrays(model, get_arrays(get_model("lenet5")))  # another model
