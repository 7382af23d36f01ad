"""The app given to ``flwr run`` and the Flower CLI's connection to the SuperLink.

``flwr run`` (1.42) migrates ``[tool.flwr.federations]`` tables of an app's
``pyproject.toml`` into the Flower config file and comments them out in the
app's ``pyproject.toml``. The project has such a table, so the demo runs a copy
of the app without it (:func:`prepare_app`), and writes the connection to its
SuperLink into a ``config.toml`` of its own (:func:`write_flower_config`).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from simulations.deploy.common import CONNECTION, ROOT, DemoError

APP_ITEMS = ("simulations", "fedup_flwr", "conf")
"""What the app copy holds, besides ``pyproject.toml``."""


def strip_federations(pyproject: str) -> str:
    """Drop the ``[tool.flwr.federations*]`` tables from a pyproject.toml text."""
    out: list[str] = []
    skipping = False
    for line in pyproject.splitlines(keepends=True):
        header = re.match(r"\s*\[([^\]]*)\]", line)
        if header:
            skipping = header.group(1).strip().startswith("tool.flwr.federations")
        if not skipping:
            out.append(line)
    return "".join(out)


def prepare_app(dest: Path) -> Path:
    """Copy the Flower app (code, Hydra config, pyproject.toml) to ``dest``.

    Raises
    ------
    DemoError
        If the project is not a source checkout (no ``pyproject.toml``).
    """
    pyproject = ROOT / "pyproject.toml"
    if not pyproject.is_file():
        raise DemoError(
            f"no {pyproject}: the demo deploys the app of a source checkout; "
            "run it from a clone installed with `make install`"
        )
    dest.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for item in APP_ITEMS:
        shutil.copytree(ROOT / item, dest / item, ignore=ignore, dirs_exist_ok=True)
    text = pyproject.read_text(encoding="utf-8")
    (dest / "pyproject.toml").write_text(strip_federations(text), encoding="utf-8")
    return dest


def write_flower_config(home: Path, address: str, ca_cert: Path | None) -> Path:
    """Write the CLI's Flower config with one SuperLink connection.

    Parameters
    ----------
    home : Path
        The ``FLWR_HOME`` of the CLI calls; gets ``config.toml``.
    address : str
        ``host:port`` of the SuperLink.
    ca_cert : Path or None
        The CA certificate to trust; ``None`` for a plain-text connection.

    Returns
    -------
    Path
        The ``config.toml`` written.
    """
    home.mkdir(parents=True, exist_ok=True)
    lines = [
        "[superlink]",
        f'default = "{CONNECTION}"',
        "",
        f"[superlink.{CONNECTION}]",
        f'address = "{address}"',
    ]
    if ca_cert is None:
        lines.append("insecure = true")
    else:
        lines.append(f'root-certificates = "{ca_cert}"')
    config = home / "config.toml"
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return config
