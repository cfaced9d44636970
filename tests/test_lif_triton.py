"""The Triton LIF kernels against the CPU path (numba), on CPU tensors in Triton's interpreter.

Triton picks its interpreter when it is imported (``TRITON_INTERPRET=1``), so the Triton side runs in one
subprocess (this file run as a script) that saves its outputs; the tests here compute the same cases with the
numba kernels and compare: spikes exactly, membranes and every gradient to float32 tolerance. Every option is
covered in every combination: reset, refractory steps, surrogate, detached reset, float / per-layer /
per-neuron beta, with and without an initial state; 270 neurons per step, so two programs of 256 neurons with a
masked tail.
"""
from __future__ import annotations

import itertools
import sys

import pytest
import torch
from parts import need, triton_interpreted

from spikelab.errors import ConfigError
from spikelab.functional.lif import LIFParameters, LIFState, lif_sequence, select_backend

SHAPE = (9, 3, 90)   # (T, B, features)
CASES = list(itertools.product(("zero", "subtract", "none"), (0, 1), ("atan", "fast_sigmoid", "triangle"),
                               (True, False), ("float", "layer", "neuron"), (False, True)))
LOW_PRECISION = (torch.bfloat16, torch.float16)


def case_id(case) -> str:
    reset, refractory, surrogate, detach, beta, state = case
    return (f"{reset}-ref{refractory}-{surrogate}-{'detach' if detach else 'attach'}-beta_{beta}"
            f"-{'state' if state else 'rest'}")


def run_case(index: int, backend: str, dtype=torch.float32) -> dict:
    """Outputs and gradients of one case, for a loss that weighs spikes and membranes at random."""
    reset, refractory, surrogate, detach, beta_kind, with_state = CASES[index]
    g = torch.Generator().manual_seed(index)
    x = (torch.rand(SHAPE, generator=g) * 1.2 - 0.1).to(dtype).requires_grad_()
    w_s, w_v = torch.rand(SHAPE, generator=g), torch.rand(SHAPE, generator=g)
    leaves = {"x": x}
    beta = 0.8
    if beta_kind != "float":
        beta = leaves["beta"] = torch.full(() if beta_kind == "layer" else SHAPE[2:], 0.8, requires_grad=True)
    state = None
    if with_state:
        leaves["v0"] = torch.rand(SHAPE[1:], generator=g).requires_grad_()
        leaves["s0"] = (torch.rand(SHAPE[1:], generator=g) > 0.5).float().requires_grad_()
        state = LIFState(leaves["v0"], leaves["s0"])
    p = LIFParameters(beta, reset=reset, refractory_steps=refractory, surrogate=surrogate, detach_reset=detach)
    s, v = lif_sequence(x, p, state, backend=backend)
    ((s.float() * w_s).sum() + (v.float() * w_v).sum()).backward()
    return {"s": s.detach(), "v": v.detach(),
            **{f"grad_{name}": leaf.grad for name, leaf in leaves.items() if leaf.grad is not None}}


def _worker(out: str) -> None:
    """Run every case on the Triton backend (in the interpreter) and save the results to ``out``."""
    from spikelab.functional import _lif_triton

    results = {"interpreted": _lif_triton.INTERPRETED, "cases": [run_case(i, "triton") for i in range(len(CASES))],
               "low_precision": {str(dtype): run_case(0, "triton", dtype) for dtype in LOW_PRECISION}}
    torch.save(results, out)


@pytest.fixture(scope="module")
def triton_results(tmp_path_factory):
    return triton_interpreted(__file__, tmp_path_factory.mktemp("triton"))


@pytest.mark.parametrize("index", range(len(CASES)), ids=[case_id(c) for c in CASES])
def test_triton_equals_cpu_path(index, triton_results):
    got, want = triton_results["cases"][index], run_case(index, "numba")
    assert want["s"].any() and not want["s"].all()  # spikes and silences: the resets are exercised
    assert torch.equal(got["s"], want["s"])
    torch.testing.assert_close(got["v"], want["v"], rtol=1e-6, atol=1e-6)
    assert sorted(got) == sorted(want)  # the same leaves received gradients
    for name in want:
        if name.startswith("grad_"):
            torch.testing.assert_close(got[name], want[name], rtol=1e-5, atol=1e-5, msg=name)


@pytest.mark.parametrize("dtype", LOW_PRECISION, ids=str)
def test_low_precision_input_integrates_in_float32(dtype, triton_results):
    """float16 / bfloat16 input (autocast): both paths widen it and integrate in float32, so spikes and membranes
    equal the float32 scan of the rounded input; outputs and dL/dx come back in the input's dtype."""
    got, want = triton_results["low_precision"][str(dtype)], run_case(0, "numba", dtype)
    reference = lif_sequence(run_case_input(0).to(dtype).float(), LIFParameters(0.8), backend="numba")
    assert got["s"].dtype == got["v"].dtype == got["grad_x"].dtype == dtype
    assert torch.equal(got["s"], want["s"]) and torch.equal(want["s"].float(), reference[0])
    assert torch.equal(got["v"], want["v"]) and torch.equal(want["v"], reference[1].to(dtype))
    # one unit in the last place: the interpreter rounds float32 -> bfloat16 toward zero, a GPU to nearest
    torch.testing.assert_close(got["grad_x"].float(), want["grad_x"].float(), rtol=2 ** -7, atol=1e-6)


def run_case_input(index: int) -> torch.Tensor:
    """The input current of a case (the first draw of its generator, as in :func:`run_case`)."""
    return torch.rand(SHAPE, generator=torch.Generator().manual_seed(index)) * 1.2 - 0.1


def test_dispatch_numba_on_cpu_and_triton_only_where_it_runs():
    x = torch.zeros(3, 2, 4)
    assert select_backend(x) == "numba"
    assert select_backend(x.to(torch.bfloat16)) == "numba"  # widened to float32 for the kernels
    assert select_backend(x, "torch") == "torch"
    with pytest.raises(ConfigError, match="numba backend runs CPU tensors"):
        select_backend(torch.zeros(3, 2, 4, device="meta"), "numba")


def test_dispatch_refuses_triton_for_a_cpu_tensor():
    need("triton")   # without triton the error is the missing package's
    with pytest.raises(ConfigError, match="triton backend runs"):  # a CPU tensor, interpreter off
        select_backend(torch.zeros(3, 2, 4), "triton")


if __name__ == "__main__":
    _worker(sys.argv[1])
