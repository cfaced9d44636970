"""Optional packages: imported when a feature needs them, with one clear error naming the extra that installs them.

=================  =====================  ====================================================================
package            extra                  what needs it
=================  =====================  ====================================================================
``nir``            ``nir``                NIR export and import (``spikelab export nir``, ``import nir``)
``pyNN.nest``      ``pynn``               running a network on NEST (``spikelab export nest``)
``pyNN.spiNNaker``  ``pynn``              sPyNNaker's virtual board (``spikelab export spinnaker --virtual-board``)
``snntorch``       ``bench``              the LIF benchmark's snnTorch variant, NIR parity tests
=================  =====================  ====================================================================
"""
from __future__ import annotations

import importlib
from types import ModuleType

from .errors import MissingDependencyError

#: The extra of ``pyproject.toml`` that installs each optional top-level package.
EXTRAS = {"nir": "nir", "nirtorch": "nir", "pyNN": "pynn", "nest": "pynn", "spynnaker": "pynn", "snntorch": "bench",
          "dcls": "bench"}


def require(module: str, purpose: str) -> ModuleType:
    """Import ``module`` (e.g. ``"pyNN.nest"``) or raise MissingDependencyError saying what needs it and how to
    install it (``pip install 'spikelab[EXTRA]'``)."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        top = module.split(".")[0]
        extra = EXTRAS.get(top)
        fix = f"pip install 'spikelab[{extra}]'" if extra else f"pip install {top}"
        raise MissingDependencyError(f"{purpose} needs the optional package {top} ({error}): {fix}") from None
