"""Federated CIFAR-10 and Fashion-MNIST, loaded with Flower Datasets.

Partitions come from :class:`flwr_datasets.FederatedDataset` with an
:class:`~flwr_datasets.partitioner.IidPartitioner` or a
:class:`~flwr_datasets.partitioner.DirichletPartitioner` (``partition_by="label"``),
as Flower users load them.

Where the data come from (``FEDUP_DATA_DIR``'s local parquet files, fully
offline, or else the Hugging Face Hub) is decided and checked by
:mod:`simulations.data_source`; the datasets themselves are described in
:mod:`simulations.dataset_specs`.

Each partition (and each test set) is decoded once per process into normalised
``float32`` tensors and cached for the life of the process, so the training loop
never decodes a PNG. The cached tensors are shared: treat them as read-only
(the attacks in :mod:`simulations.attacks` return new tensors).
"""

from __future__ import annotations

import functools
import io
import operator
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch.utils.data import TensorDataset

from simulations.data_source import load_kwargs, local_dir, prepared
from simulations.dataset_specs import DATASETS, DatasetSpec, get_spec

__all__ = [
    "PARTITIONERS",
    "ImageDataset",
    "load_partition",
    "load_test",
]

PARTITIONERS = ("iid", "dirichlet")
"""Names accepted by ``load_partition(partitioner=...)``."""


class ImageDataset(TensorDataset):
    """A :class:`~torch.utils.data.TensorDataset` of images and labels.

    Parameters
    ----------
    x : torch.Tensor
        Normalised images, ``float32`` of shape ``(N, C, H, W)``.
    y : torch.Tensor
        Labels, ``int64`` of shape ``(N,)``.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        if x.ndim != 4 or y.ndim != 1 or x.shape[0] != y.shape[0]:
            raise ValueError(
                f"expected x of shape (N, C, H, W) and y of shape (N,), got "
                f"{tuple(x.shape)} and {tuple(y.shape)}"
            )
        super().__init__(x, y)

    @property
    def x(self) -> torch.Tensor:
        """Images, ``float32`` of shape ``(N, C, H, W)``."""
        return self.tensors[0]

    @property
    def y(self) -> torch.Tensor:
        """Labels, ``int64`` of shape ``(N,)``."""
        return self.tensors[1]


def load_partition(
    dataset: str,
    partition_id: int,
    num_partitions: int,
    *,
    partitioner: str = "iid",
    alpha: float = 1.0,
    seed: int = 42,
    fraction: float = 1.0,
    min_partition_size: int = 10,
) -> ImageDataset:
    """Load one client's partition of a training set as tensors.

    Parameters
    ----------
    dataset : str
        ``"cifar10"`` or ``"fashion_mnist"``.
    partition_id : int
        Partition index in ``[0, num_partitions)``.
    num_partitions : int
        Number of partitions (clients), at least 1.
    partitioner : {"iid", "dirichlet"}
        ``IidPartitioner`` (shuffled, equal shards) or ``DirichletPartitioner``
        over the labels.
    alpha : float
        Dirichlet concentration (smaller means more label skew); ignored for IID.
    seed : int
        Seeds the dataset shuffle, the ``fraction`` subset and the Dirichlet draw.
    fraction : float
        In ``(0, 1]``: keep a stratified, seeded subset of this share of the
        training set (per class ``round(fraction * n_class)``, at least one)
        before partitioning.
    min_partition_size : int
        Forwarded to ``DirichletPartitioner``, which redraws until every
        partition holds at least this many samples; ignored for IID.

    Returns
    -------
    ImageDataset
        ``x`` float32 ``(N, C, H, W)`` normalised with the dataset's mean/std,
        ``y`` int64 ``(N,)``. The same object is returned for the same arguments
        (and the same data source) for the life of the process; do not modify it.

    Raises
    ------
    ValueError
        For an unknown dataset or partitioner, ``partition_id`` out of range,
        ``fraction`` outside ``(0, 1]`` or a non-positive ``alpha``.
    RuntimeError
        If the data can be found neither under ``FEDUP_DATA_DIR`` nor on the Hub.
    """
    spec = get_spec(dataset)
    num_partitions = operator.index(num_partitions)
    partition_id = operator.index(partition_id)
    if num_partitions < 1:
        raise ValueError(f"num_partitions must be >= 1, got {num_partitions}")
    if not 0 <= partition_id < num_partitions:
        raise ValueError(
            f"partition_id must be in [0, {num_partitions}), got {partition_id}"
        )
    if partitioner not in PARTITIONERS:
        raise ValueError(
            f"unknown partitioner {partitioner!r}; choose one of {list(PARTITIONERS)}"
        )
    fraction = _check_fraction(fraction)
    seed = operator.index(seed)
    if partitioner == "dirichlet":
        alpha = float(alpha)
        if not (alpha > 0 and np.isfinite(alpha)):
            raise ValueError(f"alpha must be a positive finite number, got {alpha}")
        min_partition_size = operator.index(min_partition_size)
    else:  # keep IID cache keys independent of the Dirichlet-only knobs
        alpha, min_partition_size = 0.0, 0
    return _cached_partition(
        dataset,
        local_dir(spec),
        partition_id,
        num_partitions,
        partitioner,
        alpha,
        seed,
        fraction,
        min_partition_size,
    )


def load_test(dataset: str, *, fraction: float = 1.0, seed: int = 42) -> ImageDataset:
    """Load the (centralised) test set as tensors.

    Parameters
    ----------
    dataset : str
        ``"cifar10"`` or ``"fashion_mnist"``.
    fraction : float
        In ``(0, 1]``: keep a stratified, seeded subset of this share.
    seed : int
        Seeds the ``fraction`` subset (unused when ``fraction`` is 1).

    Returns
    -------
    ImageDataset
        Test images and labels in the original order (subset order preserved);
        cached per process like :func:`load_partition`.

    Raises
    ------
    ValueError
        For an unknown dataset or ``fraction`` outside ``(0, 1]``.
    RuntimeError
        If the data can be found neither under ``FEDUP_DATA_DIR`` nor on the Hub.
    """
    spec = get_spec(dataset)
    fraction = _check_fraction(fraction)
    seed = operator.index(seed) if fraction < 1.0 else 0  # unused for the full set
    return _cached_test(dataset, local_dir(spec), fraction, seed)


# --------------------------------------------------------------------------- #
# Internals
# --------------------------------------------------------------------------- #
def _check_fraction(fraction: float) -> float:
    fraction = float(fraction)
    if not 0.0 < fraction <= 1.0:  # also rejects NaN
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    return fraction


class _StratifiedSubset:
    """Flower Datasets preprocessor keeping a per-class share of one split."""

    def __init__(self, split: str, label: str, fraction: float, seed: int) -> None:
        self.split, self.label, self.fraction, self.seed = split, label, fraction, seed

    def __call__(self, data: Any) -> Any:
        part = data[self.split]
        table = part.select_columns([self.label]).with_format("arrow")[:]
        labels = table.column(self.label).to_numpy()
        rng = np.random.default_rng(self.seed)
        keep: list[NDArray[np.int64]] = []
        for cls in np.unique(labels):
            idx = np.flatnonzero(labels == cls)
            k = max(1, round(self.fraction * idx.size))
            keep.append(rng.choice(idx, size=k, replace=False))
        data[self.split] = part.select(np.sort(np.concatenate(keep)))
        return data


@functools.cache
def _federated_dataset(
    dataset: str,
    source: str | None,
    num_partitions: int,
    partitioner: str,
    alpha: float,
    seed: int,
    fraction: float,
    min_partition_size: int,
) -> Any:
    spec = DATASETS[dataset]
    kwargs = load_kwargs(spec, source)  # goes offline before importing datasets
    from flwr_datasets import FederatedDataset
    from flwr_datasets.partitioner import DirichletPartitioner, IidPartitioner

    part: Any
    if partitioner == "iid":
        part = IidPartitioner(num_partitions=num_partitions)
    else:
        part = DirichletPartitioner(
            num_partitions=num_partitions,
            partition_by=spec.label_column,
            alpha=alpha,
            seed=seed,
            min_partition_size=min_partition_size,
        )
    pre = (
        None
        if fraction == 1.0
        else _StratifiedSubset("train", spec.label_column, fraction, seed)
    )
    fds = FederatedDataset(
        partitioners={"train": part},
        preprocessor=pre,
        shuffle=True,
        seed=seed,
        **kwargs,
    )
    return prepared(fds, spec, source)


@functools.cache
def _cached_partition(
    dataset: str,
    source: str | None,
    partition_id: int,
    num_partitions: int,
    partitioner: str,
    alpha: float,
    seed: int,
    fraction: float,
    min_partition_size: int,
) -> ImageDataset:
    fds = _federated_dataset(
        dataset,
        source,
        num_partitions,
        partitioner,
        alpha,
        seed,
        fraction,
        min_partition_size,
    )
    return _to_tensors(fds.load_partition(partition_id, "train"), DATASETS[dataset])


@functools.cache
def _cached_test(
    dataset: str, source: str | None, fraction: float, seed: int
) -> ImageDataset:
    spec = DATASETS[dataset]
    kwargs = load_kwargs(spec, source)
    from flwr_datasets import FederatedDataset

    pre = (
        None
        if fraction == 1.0
        else _StratifiedSubset("test", spec.label_column, fraction, seed)
    )
    fds = FederatedDataset(
        partitioners={"train": 1}, preprocessor=pre, shuffle=False, **kwargs
    )
    fds = prepared(fds, spec, source)
    return _to_tensors(fds.load_split("test"), spec)


def _decode(data: bytes | None, path: str | None, mode: str) -> NDArray[np.uint8]:
    from PIL import Image

    with Image.open(io.BytesIO(data) if data is not None else str(path)) as img:
        if img.mode == mode:
            return np.asarray(img, dtype=np.uint8)
        return np.asarray(img.convert(mode), dtype=np.uint8)


def _to_tensors(part: Any, spec: DatasetSpec) -> ImageDataset:
    """Decode a Hugging Face ``Dataset`` of PNGs into normalised tensors."""
    import pyarrow.compute as pc

    height, width = spec.image_size
    n = len(part)
    if n == 0:
        x_u8 = np.zeros((0, height, width, spec.channels), dtype=np.uint8)
        labels = np.zeros(0, dtype=np.int64)
    else:
        table = part.with_format("arrow")[:]  # applies any indices mapping
        images = table.column(spec.image_column)
        blobs = pc.struct_field(images, "bytes").to_pylist()
        paths = pc.struct_field(images, "path").to_pylist()
        mode = "RGB" if spec.channels == 3 else "L"
        x_u8 = np.stack([_decode(b, p, mode) for b, p in zip(blobs, paths)])
        if x_u8.ndim == 3:
            x_u8 = x_u8[..., None]
        labels = np.asarray(table.column(spec.label_column).to_numpy(), np.int64)
    if x_u8.shape[1:] != (height, width, spec.channels):
        raise ValueError(
            f"expected {spec.dir_name} images of shape {(height, width)} with "
            f"{spec.channels} channel(s), got {x_u8.shape[1:]}"
        )
    x = torch.from_numpy(x_u8).permute(0, 3, 1, 2).contiguous().to(torch.float32)
    mean = torch.tensor(spec.mean, dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.tensor(spec.std, dtype=torch.float32).view(1, -1, 1, 1)
    x.div_(255.0).sub_(mean).div_(std)
    return ImageDataset(x, torch.from_numpy(labels))
