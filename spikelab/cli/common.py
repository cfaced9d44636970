"""What every ``spikelab`` command shares."""
from __future__ import annotations

EPILOG = "Every option is described by `spikelab COMMAND --help`."


def add_run_dir_argument(parser) -> None:
    """The positional RUN_DIR of commands that read a trained run."""
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run folder (uses its best.pt) or a checkpoint file")
