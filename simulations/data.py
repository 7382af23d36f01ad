"""Federated CIFAR-10 and Fashion-MNIST, loaded with Flower Datasets.

Partitions come from :class:`flwr_datasets.FederatedDataset` with an
:class:`~flwr_datasets.partitioner.IidPartitioner` or a
:class:`~flwr_datasets.partitioner.DirichletPartitioner` (``partition_by="label"``),
as Flower users load them.

Where the data come from
------------------------
* ``FEDUP_DATA_DIR`` set: the files ``$FEDUP_DATA_DIR/<dir_name>/train.parquet``
  and ``test.parquet`` (Hugging Face hub schema, ``dir_name`` being ``cifar10`` or
  ``fashion_mnist``) are read through ``datasets.load_dataset("parquet", ...)``.
  This path is fully offline: the Hugging Face libraries are switched to offline
  mode (``HF_HUB_OFFLINE``/``HF_DATASETS_OFFLINE``) and Flower Datasets telemetry
  is disabled unless ``FLWR_TELEMETRY_ENABLED`` is set explicitly. If the files
  are missing a :class:`RuntimeError` is raised at once; the Hub is not tried.
* ``FEDUP_DATA_DIR`` unset: the dataset is fetched from the Hugging Face Hub
  (``uoft-cs/cifar10``, ``zalando-datasets/fashion_mnist``) or its local cache;
  if that fails a :class:`RuntimeError` explains how to use ``FEDUP_DATA_DIR``.

Each partition (and each test set) is decoded once per process into normalised
``float32`` tensors and cached for the life of the process, so the training loop
never decodes a PNG. The cached tensors are shared: treat them as read-only
(the attacks in :mod:`simulations.attacks` return new tensors).
"""

from __future__ import annotations

import functools
import io
import operator
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch.utils.data import TensorDataset

__all__ = [
    "DATASETS",
    "DATA_DIR_ENV",
    "PARTITIONERS",
    "DatasetSpec",
    "ImageDataset",
    "check_data",
    "get_spec",
    "load_partition",
    "load_test",
]

DATA_DIR_ENV = "FEDUP_DATA_DIR"
"""Environment variable naming the directory with the local parquet files."""

PARTITIONERS = ("iid", "dirichlet")
"""Names accepted by ``load_partition(partitioner=...)``."""

_SPLIT_FILES = ("train.parquet", "test.parquet")


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
        _source(spec),
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
    return _cached_test(dataset, _source(spec), fraction, seed)


# --------------------------------------------------------------------------- #
# Internals
# --------------------------------------------------------------------------- #


def check_data(dataset: str, *, probe_timeout: float = 3.0) -> str:
    """Say where ``dataset`` will be read from, or fail at once with how to fix it.

    Checked before anything starts (see :func:`simulations.config.validate`):
    with ``FEDUP_DATA_DIR`` set, its two parquet files must exist; unset, the
    dataset must be in the Hugging Face cache or the Hub must answer one
    connection within ``probe_timeout`` seconds (no retries), so that a machine
    without network fails in seconds instead of after the Hub's retries.

    Parameters
    ----------
    dataset : str
        A key of :data:`DATASETS`.
    probe_timeout : float (default: 3.0)
        Seconds to wait for the Hub's answer when the data are not local.

    Returns
    -------
    str
        The local folder, or ``"the Hugging Face Hub"``.

    Raises
    ------
    RuntimeError
        If the local files are missing, or the data are neither local, cached,
        nor reachable; the message says how to set ``FEDUP_DATA_DIR``.
    """
    spec = get_spec(dataset)
    source = _source(spec)
    if source is not None:
        return source
    if _hub_cached(spec):
        return "the Hugging Face cache"
    import socket

    hint = (
        f"set {DATA_DIR_ENV} to a folder holding {spec.dir_name}/train.parquet and "
        f"{spec.dir_name}/test.parquet (Hugging Face hub schema of "
        f"{spec.hub_name!r}), e.g. `export {DATA_DIR_ENV}=/path/to/data`"
    )
    if os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0"):
        raise RuntimeError(f"{DATA_DIR_ENV} is not set and HF_HUB_OFFLINE is; {hint}")
    try:
        socket.create_connection(("huggingface.co", 443), timeout=probe_timeout).close()
    except OSError as err:
        raise RuntimeError(
            f"{DATA_DIR_ENV} is not set and the Hugging Face Hub is unreachable "
            f"({err}); {hint}"
        ) from None
    return "the Hugging Face Hub"


def _hub_cached(spec: DatasetSpec) -> bool:
    """Whether the Hugging Face cache already holds ``spec``'s dataset."""
    home = Path(
        os.environ.get("HF_HOME", "") or Path("~/.cache/huggingface").expanduser()
    )
    org, name = spec.hub_name.split("/")
    places = [
        Path(os.environ.get("HF_DATASETS_CACHE", "") or home / "datasets")
        / f"{org}___{name}",
        Path(os.environ.get("HF_HUB_CACHE", "") or home / "hub")
        / f"datasets--{org}--{name}",
    ]
    return any(p.is_dir() for p in places)


def _check_fraction(fraction: float) -> float:
    fraction = float(fraction)
    if not 0.0 < fraction <= 1.0:  # also rejects NaN
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    return fraction


def _source(spec: DatasetSpec) -> str | None:
    """Local directory with the parquet files, or ``None`` for the Hub."""
    root = os.environ.get(DATA_DIR_ENV, "").strip()
    if not root:
        return None
    directory = Path(root).expanduser() / spec.dir_name
    missing = [name for name in _SPLIT_FILES if not (directory / name).is_file()]
    if missing:
        raise RuntimeError(
            f"{DATA_DIR_ENV}={root!r} is set but {', '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} missing from {str(directory)!r}. "
            f"Put train.parquet and test.parquet of {spec.hub_name!r} (Hugging Face "
            f"hub schema) at {str(directory / '{train,test}.parquet')!r}, or unset "
            f"{DATA_DIR_ENV} to download the dataset from the Hugging Face Hub."
        )
    return str(directory.resolve())


def _go_offline() -> None:
    """Keep every library off the network: the data are local files."""
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        os.environ[var] = "1"
    os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
    # The constants are read at import time, so also patch loaded modules.
    import datasets.config
    import huggingface_hub.constants
    from flwr_datasets.common import telemetry

    datasets.config.HF_HUB_OFFLINE = True
    datasets.config.HF_DATASETS_OFFLINE = True
    huggingface_hub.constants.HF_HUB_OFFLINE = True
    telemetry.FLWR_TELEMETRY_ENABLED = os.environ["FLWR_TELEMETRY_ENABLED"]


def _load_kwargs(spec: DatasetSpec, source: str | None) -> dict[str, Any]:
    if source is None:
        return {"dataset": spec.hub_name}
    _go_offline()
    return {
        "dataset": "parquet",
        "data_files": {
            split.removesuffix(".parquet"): str(Path(source) / split)
            for split in _SPLIT_FILES
        },
    }


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


def _prepared(fds: Any, spec: DatasetSpec, source: str | None) -> Any:
    """Trigger Flower Datasets' lazy load, turning Hub failures into one error."""
    if source is not None:
        fds.load_split("train")
        return fds
    try:
        fds.load_split("train")
    except Exception as exc:
        raise RuntimeError(
            f"could not load {spec.hub_name!r} from the Hugging Face Hub or its "
            f"cache ({type(exc).__name__}: {exc}). To run offline, set "
            f"{DATA_DIR_ENV} to a directory holding {spec.dir_name}/train.parquet "
            f"and {spec.dir_name}/test.parquet (Hugging Face hub schema)."
        ) from exc
    return fds


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
    kwargs = _load_kwargs(spec, source)  # goes offline before importing datasets
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
    return _prepared(fds, spec, source)


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
    kwargs = _load_kwargs(spec, source)
    from flwr_datasets import FederatedDataset

    pre = (
        None
        if fraction == 1.0
        else _StratifiedSubset("test", spec.label_column, fraction, seed)
    )
    fds = FederatedDataset(
        partitioners={"train": 1}, preprocessor=pre, shuffle=False, **kwargs
    )
    fds = _prepared(fds, spec, source)
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
