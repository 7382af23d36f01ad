"""``python -m simulations.detection``: see :mod:`simulations.detection.cli`."""

from simulations.detection.cli import cli

cli()
