"""``python -m coffea_fastsim.cli``: the ``coffea-fastsim`` command."""

import sys

from coffea_fastsim.cli import main

sys.exit(main())
