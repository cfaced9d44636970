"""Optional parts of the test suite: packages from the extras and the real N-MNIST sample.

With the core install alone (``pip install -e .`` plus pytest) the tests that need an optional package or the data
skip, naming what is missing. CI sets ``SPIKELAB_REQUIRE_ALL=1`` (see ``.ci/run``): then a missing part fails its
tests instead, so a green CI run has run everything.
"""
import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

REQUIRE_ALL = os.environ.get("SPIKELAB_REQUIRE_ALL") == "1"
REPO = Path(__file__).resolve().parents[1]
NMNIST_SAMPLE = REPO.parent / "shared" / "data" / "nmnist-sample"


def need(module: str, install: str = "pip install -e '.[test]'"):
    """Import ``module`` for a test (module level: for the whole file), or skip where it is not installed
    (``install`` says how to install it)."""
    if REQUIRE_ALL:
        return importlib.import_module(module)
    return pytest.importorskip(module, reason=f"{module} is not installed ({install})")


def missing(reason: str):
    """Skip for a missing part, or fail under SPIKELAB_REQUIRE_ALL=1."""
    if REQUIRE_ALL:
        pytest.fail(f"{reason} (SPIKELAB_REQUIRE_ALL=1: every part of the suite must run)")
    pytest.skip(reason)


def triton_interpreted(test_file: str, out_dir: Path) -> dict:
    """Run ``python test_file OUT`` with ``TRITON_INTERPRET=1`` and load the results it saved to ``OUT``.

    Triton picks its interpreter when it is imported, so the Triton cases of a test file run in a child process (its
    ``__main__`` worker); the worker records whether the kernels really ran interpreted (``"interpreted"``).
    """
    import torch

    need("triton")
    out = out_dir / "results.pt"
    subprocess.run([sys.executable, test_file, str(out)], env={**os.environ, "TRITON_INTERPRET": "1"}, check=True)
    results = torch.load(out)
    assert results["interpreted"], "the Triton kernels did not run in the interpreter"
    return results
