"""Kept for old habits: the deployment demo is ``python -m simulations.deploy``."""

import sys

from simulations.deploy.cli import main

sys.exit(main())
