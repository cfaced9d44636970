"""The ``spikelab`` command.

=========================  ==================================================================  ===============
command                    what it does                                                        module
=========================  ==================================================================  ===============
``train``, ``eval``        train a named architecture on a dataset; evaluate a run             ``training``
``models``, ``data``       list architectures; write generated data sets                       ``training``
``bench``, ``inspect``     benchmarks against the peers; a run's learned delays                ``tools``
``export``, ``import``     a run on NEST, SpiNNaker, as a PyNN script or NIR; NIR as a run     ``hardware``
=========================  ==================================================================  ===============

Errors a user can cause print one line (``error: ...``) without a traceback and exit with 2. Under ``torchrun``
(``torchrun --nproc-per-node N -m spikelab train ...``) only rank 0 prints to standard output.
"""
from __future__ import annotations

import argparse
import sys

from ..errors import SpikelabError
from ..training.distributed import quiet_unless_main
from . import hardware, tools, training
from .common import EPILOG


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spikelab", epilog=EPILOG,
                                     description="Spiking neural networks: train, evaluate, benchmark, export.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (training, tools, hardware):
        module.add_commands(commands)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        with quiet_unless_main():
            return args.run(args)
    except SpikelabError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted; continue with the same command and --resume", file=sys.stderr)
        return 130
