"""``python -m spikelab``: the ``spikelab`` command (what ``torchrun --nproc-per-node N -m spikelab train ...`` runs)."""
import sys

from spikelab.cli import main

sys.exit(main())
