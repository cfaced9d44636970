"""``python -m spikelab.cli``: the same as the ``spikelab`` command."""
import sys

from . import main

sys.exit(main())
