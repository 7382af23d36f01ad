"""``python -m simulations.deploy``: the deployment demo (see the package)."""

import sys

from simulations.deploy.cli import main

sys.exit(main())
