"""The supported image datasets: what each one is and how to look it up.

One job: the static description of CIFAR-10 and Fashion-MNIST (Hub name, local
folder name, columns, shape, normalisation constants) and the lookup by name that
fails on unknown names. Loading the data is :mod:`simulations.data`'s job;
finding where the files are is :mod:`simulations.data_source`'s.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DATASETS", "DatasetSpec", "get_spec"]


@dataclass(frozen=True)
class DatasetSpec:
    """Static description of one image-classification dataset.

    Attributes
    ----------
    hub_name : str
        Hugging Face Hub dataset name.
    dir_name : str
        Sub-directory of ``$FEDUP_DATA_DIR`` holding ``train.parquet`` and
        ``test.parquet``.
    image_column : str
        Column holding the images (``{"bytes", "path"}`` structs).
    num_classes : int
        Number of classes (labels are ``0 .. num_classes - 1``).
    channels : int
        Image channels (3 for RGB, 1 for grayscale).
    image_size : tuple of int
        ``(height, width)`` of every image.
    mean, std : tuple of float
        Per-channel normalisation constants for pixels scaled to ``[0, 1]``.
    label_column : str
        Column holding the integer labels.
    """

    hub_name: str
    dir_name: str
    image_column: str
    num_classes: int
    channels: int
    image_size: tuple[int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    label_column: str = "label"


DATASETS: dict[str, DatasetSpec] = {
    "cifar10": DatasetSpec(
        hub_name="uoft-cs/cifar10",
        dir_name="cifar10",
        image_column="img",
        num_classes=10,
        channels=3,
        image_size=(32, 32),
        mean=(0.4914, 0.4822, 0.4465),
        std=(0.2470, 0.2435, 0.2616),
    ),
    "fashion_mnist": DatasetSpec(
        hub_name="zalando-datasets/fashion_mnist",
        dir_name="fashion_mnist",
        image_column="image",
        num_classes=10,
        channels=1,
        image_size=(28, 28),
        mean=(0.2860,),
        std=(0.3530,),
    ),
}
"""The supported datasets, by the name the rest of the project uses."""


def get_spec(dataset: str) -> DatasetSpec:
    """Return the :class:`DatasetSpec` of ``dataset``.

    Parameters
    ----------
    dataset : str
        A key of :data:`DATASETS`.

    Returns
    -------
    DatasetSpec
        Its description.

    Raises
    ------
    ValueError
        If ``dataset`` is not a known name.
    """
    try:
        return DATASETS[dataset]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown dataset {dataset!r}; choose one of {sorted(DATASETS)}"
        ) from None
