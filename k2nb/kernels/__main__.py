"""`python -m k2nb.kernels install [--user] [--name NAME] [--prefix PREFIX]`."""

import sys

from k2nb.kernels.cli import main

sys.exit(main())
