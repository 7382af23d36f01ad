"""The environment of the demo's processes, and the data folder they read.

The ServerApp and every ClientApp read the dataset of the deploy preset from
``FEDUP_DATA_DIR``, offline. :func:`check_data_dir` checks that folder before
anything is started, so that a missing dataset is one clear error and not a
failure inside the apps once every process is up.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from simulations.data_source import DATA_DIR_ENV
from simulations.dataset_specs import get_spec
from simulations.deploy.common import BIN, DATASET, DemoError

SPLITS = ("train.parquet", "test.parquet")
"""The files :mod:`simulations.data_source` reads from the dataset's folder."""


def base_env() -> dict[str, str]:
    """Environment of every process: this venv first on PATH, no network use."""
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["FLWR_TELEMETRY_ENABLED"] = "0"
    env["FLWR_DISABLE_UPDATE_CHECK"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("OMP_NUM_THREADS", "1")
    env.setdefault("MKL_NUM_THREADS", "1")
    return env


def check_data_dir(env: Mapping[str, str]) -> Path:
    """The folder with the demo's dataset, checked before anything starts.

    Parameters
    ----------
    env : Mapping[str, str]
        The environment the SuperLink and SuperNodes will get.

    Returns
    -------
    Path
        ``$FEDUP_DATA_DIR/fashion_mnist``, holding both parquet files.

    Raises
    ------
    DemoError
        If ``FEDUP_DATA_DIR`` is unset or a file is missing; the message says
        how to set it.
    """
    name = get_spec(DATASET).dir_name
    how = (
        f"set it to the folder holding {name}/train.parquet and "
        f"{name}/test.parquet (Hugging Face hub schema) before starting, e.g. "
        f"`export {DATA_DIR_ENV}=/path/to/data`"
    )
    root = env.get(DATA_DIR_ENV, "").strip()
    if not root:
        raise DemoError(
            f"{DATA_DIR_ENV} is not set: the ServerApp and the ClientApps read "
            f"{DATASET} from it, offline; {how}"
        )
    folder = Path(root).expanduser() / name
    missing = [split for split in SPLITS if not (folder / split).is_file()]
    if missing:
        raise DemoError(
            f"{DATA_DIR_ENV}={root} lacks {', '.join(missing)} in {folder}; {how}"
        )
    return folder
