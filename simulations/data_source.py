"""Where the dataset files come from, and whether they are there.

One job: decide the data source of a dataset and check it before anything starts.
With ``FEDUP_DATA_DIR`` set, the files ``$FEDUP_DATA_DIR/<dir_name>/train.parquet``
and ``test.parquet`` are the source, read fully offline (the Hugging Face libraries
are switched to offline mode and Flower Datasets telemetry is disabled unless
``FLWR_TELEMETRY_ENABLED`` is set); missing files raise a :class:`RuntimeError`
at once. Unset, the Hugging Face Hub (or its local cache) is the source, and a
failure to load from it becomes one :class:`RuntimeError` saying how to use
``FEDUP_DATA_DIR``. :mod:`simulations.data` loads and decodes from the source
chosen here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from simulations.dataset_specs import DatasetSpec, get_spec

__all__ = ["DATA_DIR_ENV", "check_data", "load_kwargs", "local_dir", "prepared"]

DATA_DIR_ENV = "FEDUP_DATA_DIR"
"""Environment variable naming the directory with the local parquet files."""

_SPLIT_FILES = ("train.parquet", "test.parquet")


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
        A key of :data:`~simulations.dataset_specs.DATASETS`.
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
    source = local_dir(spec)
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


def local_dir(spec: DatasetSpec) -> str | None:
    """Return the local directory with ``spec``'s parquet files, or ``None``.

    Parameters
    ----------
    spec : DatasetSpec
        The dataset.

    Returns
    -------
    str or None
        The resolved ``$FEDUP_DATA_DIR/<dir_name>``, or ``None`` when
        ``FEDUP_DATA_DIR`` is unset (the Hugging Face Hub is the source).

    Raises
    ------
    RuntimeError
        If ``FEDUP_DATA_DIR`` is set but a parquet file is missing.
    """
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


def load_kwargs(spec: DatasetSpec, source: str | None) -> dict[str, Any]:
    """Return the ``FederatedDataset`` keyword arguments that read from ``source``.

    A local ``source`` first switches every library off the network.

    Parameters
    ----------
    spec : DatasetSpec
        The dataset.
    source : str or None
        As :func:`local_dir` returns it.

    Returns
    -------
    dict
        ``dataset`` (and ``data_files`` for local parquet files).
    """
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


def prepared(fds: Any, spec: DatasetSpec, source: str | None) -> Any:
    """Trigger Flower Datasets' lazy load, turning Hub failures into one error.

    Parameters
    ----------
    fds : flwr_datasets.FederatedDataset
        Built with :func:`load_kwargs`.
    spec : DatasetSpec
        The dataset.
    source : str or None
        As :func:`local_dir` returns it.

    Returns
    -------
    flwr_datasets.FederatedDataset
        ``fds``, its train split loaded.

    Raises
    ------
    RuntimeError
        If the Hub (or its cache) cannot provide the dataset.
    """
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
