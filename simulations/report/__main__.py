"""``python -m simulations.report``."""

from simulations.report.cli import main

main()
