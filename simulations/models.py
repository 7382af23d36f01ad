"""The paper's models, and conversion between a model and a list of numpy arrays.

Registered names (see :data:`MODELS`):

``fmnist_cnn``
    Fashion-MNIST only. Conv(1→16, 5×5, pad 2)–BatchNorm–ReLU–MaxPool(2),
    Conv(16→32, 5×5, pad 2)–BatchNorm–ReLU–MaxPool(2), Linear(1568→10).
``cifar_cnn``
    CIFAR-10 only. Three blocks of two [Conv 3×3 (pad 1)–ReLU–BatchNorm] with
    32, 64 and 128 channels, each block followed by MaxPool(2); then
    Linear(2048→128)–ReLU–Linear(128→10).
``lenet5``
    Conv(C→6, 5×5)–ReLU–MaxPool(2)–Conv(6→16, 5×5)–ReLU–MaxPool(2)–
    Linear(400→120)–ReLU–Linear(120→84)–ReLU–Linear(84→10). For CIFAR-10
    (the default) C = 3 with no padding (32→28→14→10→5). For Fashion-MNIST C = 1
    and the first convolution pads by 2 (28→28→14→10→5), so the classifier also
    sees 16·5·5 = 400 features.
``resnet18``
    ``torchvision.models.resnet18(num_classes=10)``, randomly initialised (no
    weights are downloaded). For Fashion-MNIST the first convolution takes one
    channel instead of three; everything else is unchanged.

All models output logits for 10 classes.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from simulations.dataset_specs import DATASETS

__all__ = ["MODELS", "get_arrays", "get_model", "set_arrays"]

_NUM_CLASSES = 10


def _fmnist_cnn(dataset: str | None) -> nn.Module:
    _require(dataset, "fmnist_cnn", "fashion_mnist")
    return nn.Sequential(
        nn.Conv2d(1, 16, kernel_size=5, padding=2),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, kernel_size=5, padding=2),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * 7 * 7, _NUM_CLASSES),
    )


def _cifar_cnn(dataset: str | None) -> nn.Module:
    _require(dataset, "cifar_cnn", "cifar10")
    layers: list[nn.Module] = []
    in_channels = 3
    for out_channels in (32, 64, 128):
        for _ in range(2):
            layers += [
                nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1),
                nn.ReLU(),
                nn.BatchNorm2d(out_channels),
            ]
            in_channels = out_channels
        layers.append(nn.MaxPool2d(2))
    layers += [
        nn.Flatten(),
        nn.Linear(128 * 4 * 4, 128),
        nn.ReLU(),
        nn.Linear(128, _NUM_CLASSES),
    ]
    return nn.Sequential(*layers)


def _lenet5(dataset: str | None) -> nn.Module:
    gray = dataset == "fashion_mnist"
    return nn.Sequential(
        nn.Conv2d(1 if gray else 3, 6, kernel_size=5, padding=2 if gray else 0),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(6, 16, kernel_size=5),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120),
        nn.ReLU(),
        nn.Linear(120, 84),
        nn.ReLU(),
        nn.Linear(84, _NUM_CLASSES),
    )


def _resnet18(dataset: str | None) -> nn.Module:
    from torchvision.models import resnet18

    model: nn.Module = resnet18(weights=None, num_classes=_NUM_CLASSES)
    if dataset == "fashion_mnist":
        model.conv1 = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
    return model


MODELS: dict[str, Callable[[str | None], nn.Module]] = {
    "fmnist_cnn": _fmnist_cnn,
    "cifar_cnn": _cifar_cnn,
    "lenet5": _lenet5,
    "resnet18": _resnet18,
}
"""Model builders by name; each takes the dataset name (or ``None``)."""


def _require(dataset: str | None, model: str, expected: str) -> None:
    if dataset is not None and dataset != expected:
        raise ValueError(f"model {model!r} is built for {expected!r}, not {dataset!r}")


def get_model(name: str, dataset: str | None = None) -> nn.Module:
    """Build a freshly initialised model.

    Parameters
    ----------
    name : str
        A key of :data:`MODELS`: ``fmnist_cnn``, ``cifar_cnn``, ``lenet5`` or
        ``resnet18``.
    dataset : str or None
        ``"cifar10"`` or ``"fashion_mnist"``; selects the input channels of
        ``lenet5`` and ``resnet18`` (``None`` means CIFAR-10's three channels)
        and is checked against the dataset-specific CNNs.

    Returns
    -------
    torch.nn.Module
        The model on the CPU, in training mode. Seed ``torch`` beforehand for a
        reproducible initialisation.

    Raises
    ------
    ValueError
        For an unknown model or dataset name, or a CNN paired with the other
        dataset.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")
    if dataset is not None and dataset not in DATASETS:
        raise ValueError(
            f"unknown dataset {dataset!r}; choose one of {sorted(DATASETS)}"
        )
    return MODELS[name](dataset)


def get_arrays(model: nn.Module) -> list[NDArray[np.generic]]:
    """Return the model's state as numpy arrays.

    Parameters
    ----------
    model : torch.nn.Module
        Any model.

    Returns
    -------
    list of numpy.ndarray
        Copies of every ``state_dict`` entry in ``state_dict`` order, BatchNorm
        buffers included (``num_batches_tracked`` stays a 0-d ``int64`` array).
    """
    return [
        np.array(value.detach().cpu().numpy(), copy=True)
        for value in model.state_dict().values()
    ]


def set_arrays(model: nn.Module, arrays: Sequence[NDArray[np.generic]]) -> None:
    """Load arrays produced by :func:`get_arrays` into ``model`` in place.

    Parameters
    ----------
    model : torch.nn.Module
        The model to update; its tensors keep their device and dtype (values
        are cast as ``Tensor.copy_`` does).
    arrays : sequence of numpy.ndarray
        One array per ``state_dict`` entry, in ``state_dict`` order.

    Raises
    ------
    ValueError
        If the number of arrays or any shape does not match the model.
    """
    state = model.state_dict()
    if len(arrays) != len(state):
        raise ValueError(
            f"got {len(arrays)} arrays but the model's state_dict has {len(state)} "
            "entries"
        )
    new_state: OrderedDict[str, torch.Tensor] = OrderedDict()
    for i, ((key, current), array) in enumerate(zip(state.items(), arrays)):
        array = np.asarray(array)
        if tuple(array.shape) != tuple(current.shape):
            raise ValueError(
                f"array {i} ({key!r}) has shape {tuple(array.shape)} but the model "
                f"expects {tuple(current.shape)}"
            )
        new_state[key] = torch.tensor(array)  # a copy; read-only input is fine
    model.load_state_dict(new_state, strict=True)
