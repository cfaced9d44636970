"""Optional parts of the test suite: packages from the extras and the real N-MNIST sample.

With the core install alone (``pip install -e .`` plus pytest) the tests that need an optional package or the data
skip, naming what is missing. CI sets ``SPIKELAB_REQUIRE_ALL=1`` (see ``.ci/run``): then a missing part fails its
tests instead, so a green CI run has run everything.
"""
import importlib
import os
from pathlib import Path

import pytest

REQUIRE_ALL = os.environ.get("SPIKELAB_REQUIRE_ALL") == "1"
REPO = Path(__file__).resolve().parents[1]
NMNIST_SAMPLE = REPO.parent / "shared" / "data" / "nmnist-sample"


def need(module: str):
    """Import ``module`` for a test (module level: for the whole file), or skip where it is not installed."""
    if REQUIRE_ALL:
        return importlib.import_module(module)
    return pytest.importorskip(module, reason=f"{module} is not installed (pip install -e '.[test]')")


def missing(reason: str):
    """Skip for a missing part, or fail under SPIKELAB_REQUIRE_ALL=1."""
    if REQUIRE_ALL:
        pytest.fail(f"{reason} (SPIKELAB_REQUIRE_ALL=1: every part of the suite must run)")
    pytest.skip(reason)
