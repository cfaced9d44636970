"""``python -m spikelab.backends.spinnaker WORK``: the sPyNNaker subprocess of :func:`map_on_virtual_board`."""
import sys

from .virtual_board import run_job

sys.exit(run_job(sys.argv[1:]))
