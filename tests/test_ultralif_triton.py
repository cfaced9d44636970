"""The Triton UltraLIF-family kernels against the CPU path (numba), on CPU tensors in Triton's interpreter.

As ``test_lif_triton.py``: Triton picks its interpreter when it is imported (``TRITON_INTERPRET=1``), so the Triton
side runs in one subprocess (this file run as a script) that saves its outputs, and the tests compute the same
cases with the numba kernels and compare: spikes, membranes, the final state and every gradient to float32
tolerance. Cases: temporal and diffusive (with and without the centre factor), soft and hard spikes, learnable eps
and tau, from a given state; 270 neurons per step for the temporal kernel (two programs of 256, a masked tail),
conv feature maps for the diffusive one with a tile small enough that a batch element's rings span several
programs, T = 1, and rings of one and two units. The interpreter is slow, so the cases are few and small.
"""
from __future__ import annotations

import sys

import pytest
import torch
from parts import need, triton_interpreted

from spikelab.errors import ConfigError
from spikelab.functional.ultralif import UltraState, ultra_diffusive_sequence, ultra_sequence

KINDS = ("temporal", "diffusive", "diffusive_centre")
SHAPES = {"temporal": [(5, 3, 90), (1, 2, 3)], "diffusive": [(4, 2, 5, 2, 3), (1, 2, 3), (3, 2, 1, 2), (3, 2, 2)]}
CASES = [(kind, spike, shape) for kind in KINDS for spike in ("soft", "hard")
         for shape in SHAPES["temporal" if kind == "temporal" else "diffusive"]]
RING_TILE = 16   # units per diffusive program in the worker: (5, 6) rings -> 8 x 2 tiles, three per batch element
LOW_PRECISION = (torch.bfloat16, torch.float16)


def case_id(case) -> str:
    kind, spike, shape = case
    return f"{kind}-{spike}-{'x'.join(map(str, shape))}"


def run_case(index: int, backend: str, dtype=torch.float32) -> dict:
    """Outputs and gradients of one case (learnable eps and tau, a given state), for a random loss."""
    kind, spike, shape = CASES[index]
    g = torch.Generator().manual_seed(index)
    x = (torch.randn(shape, generator=g) * 1.5 + 0.6).to(dtype).requires_grad_()
    v0 = torch.randn(shape[1:], generator=g).requires_grad_()
    eps = torch.tensor(0.7, requires_grad=True)
    tau = torch.tensor(0.8, requires_grad=True)
    leaves = {"x": x, "v0": v0, "eps": eps}
    if kind == "temporal":
        s, v, last = ultra_sequence(x, tau, eps, 1.0, spike == "hard", UltraState(v0), backend=backend)
    else:
        s, v, last = ultra_diffusive_sequence(x, eps, 1.0, None if kind == "diffusive" else tau, spike == "hard",
                                              UltraState(v0), backend=backend)
    if kind != "diffusive":
        leaves["tau"] = tau
    weights = [torch.rand(t.shape, generator=g) for t in (s, v, last.v)]
    ((s.float() * weights[0]).sum() + (v.float() * weights[1]).sum() + (last.v.float() * weights[2]).sum()).backward()
    return {"s": s.detach(), "v": v.detach(), "last": last.v.detach(),
            **{f"grad_{name}": leaf.grad for name, leaf in leaves.items()}}


def _worker(out: str) -> None:
    """Run every case on the Triton backend (in the interpreter) and save the results to ``out``."""
    from spikelab.functional import _ultralif_triton

    _ultralif_triton.RING_TILE = RING_TILE
    results = {"interpreted": _ultralif_triton.INTERPRETED, "cases": [run_case(i, "triton") for i in range(len(CASES))],
               "low_precision": {str(dtype): run_case(0, "triton", dtype) for dtype in LOW_PRECISION}}
    torch.save(results, out)


@pytest.fixture(scope="module")
def triton_results(tmp_path_factory):
    return triton_interpreted(__file__, tmp_path_factory.mktemp("triton"))


@pytest.mark.parametrize("index", range(len(CASES)), ids=[case_id(c) for c in CASES])
def test_triton_equals_cpu_path(index, triton_results):
    got, want = triton_results["cases"][index], run_case(index, "numba")
    assert sorted(got) == sorted(want)  # the same leaves received gradients
    if CASES[index][1] == "hard":
        assert torch.equal(got["s"], want["s"])
    for name in want:
        assert torch.isfinite(want[name]).all()
        torch.testing.assert_close(got[name], want[name], rtol=1e-5, atol=1e-5, msg=name)


@pytest.mark.parametrize("dtype", LOW_PRECISION, ids=str)
def test_low_precision_input_integrates_in_float32(dtype, triton_results):
    """float16 / bfloat16 input (autocast): both paths integrate in float32 and return the input's dtype."""
    got, want = triton_results["low_precision"][str(dtype)], run_case(0, "numba", dtype)
    assert got["s"].dtype == got["v"].dtype == got["grad_x"].dtype == dtype
    for name in ("s", "v", "last", "grad_x"):
        # one unit in the last place: the interpreter rounds float32 -> bfloat16 toward zero, a GPU to nearest
        torch.testing.assert_close(got[name].float(), want[name].float(), rtol=2 ** -7, atol=1e-6, msg=name)


def test_dispatch_refuses_triton_for_a_cpu_tensor():
    need("triton")   # without triton the error is the missing package's
    with pytest.raises(ConfigError, match="triton backend runs"):  # a CPU tensor, interpreter off
        ultra_sequence(torch.zeros(3, 2, 4), backend="triton")


def test_dispatch_refuses_numba_off_the_cpu():
    with pytest.raises(ConfigError, match="numba backend runs CPU tensors"):
        ultra_diffusive_sequence(torch.zeros(3, 2, 4, device="meta"), backend="numba")


if __name__ == "__main__":
    _worker(sys.argv[1])
