"""What every part of the deployment demo shares: its settings, error and output.

The demo deploys on 127.0.0.1 only: one SuperLink and :data:`NUM_NODES`
SuperNodes, partition ``i`` on SuperNode ``i``, partition
:data:`FLAGGED_PARTITION` being the label-flipping client that the oracle flags
in round :data:`UNLEARNING_ROUND` of the preset ``conf/experiment/deploy.yaml``.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
"""The source checkout: the app copied for ``flwr run`` comes from here."""
BIN = Path(sys.executable).parent
"""This virtual environment's ``bin``: Flower's commands are taken from it."""
HOST = "127.0.0.1"
CONNECTION = "fedup-deploy"
"""Name of the SuperLink connection in the Flower CLI's ``config.toml``."""
NUM_NODES = 4
FLAGGED_PARTITION = 0
UNLEARNING_ROUND = 3
DATASET = "fashion_mnist"
"""The dataset of ``conf/experiment/deploy.yaml``, read from ``FEDUP_DATA_DIR``."""
OVERRIDES = "+experiment=deploy"
# With a restart: never count as recovered, so that every ``max_recovery`` round
# runs and at least one is configured while the restarted SuperNode is back.
RESTART_OVERRIDES = "tolerance=-1.0"

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class DemoError(RuntimeError):
    """A check failed, or the deployment did not come up."""


def say(message: str) -> None:
    """Print one progress line of the demo."""
    print(f"[deploy-demo] {message}", flush=True)


def clean(text: str) -> str:
    """Drop the ANSI colour codes Flower's logger writes."""
    return _ANSI.sub("", text)


def read_log(path: Path) -> str:
    """The text of a log file without colour codes ('' if it does not exist)."""
    if not path.exists():
        return ""
    return clean(path.read_text(encoding="utf-8", errors="replace"))
