"""The fused UltraLIF-family scans (numba, one autograd node) against the reference loop of step functions.

Every option of the family in every combination: temporal (UltraLIF / UltraPLIF), diffusive without and with the
centre factor (UltraDLIF / UltraDPLIF); soft and hard spikes; eps and tau fixed floats or learnable tensors; from
rest or from a given state; shapes ``(T, B, F)``, conv feature maps ``(T, B, C, H, W)``, T = 1, batch 1 and rings
of one and two units. Forward outputs and every gradient are compared in float64 and float32, and the
hand-written backward pass is checked against finite differences (``gradcheck``) for the smooth (soft) spike.
"""
from __future__ import annotations

import itertools

import pytest
import torch

from spikelab.errors import ConfigError
from spikelab.functional.ultralif import UltraState, ultra_diffusive_sequence, ultra_sequence
from spikelab.neurons.ultra import ULTRA_NEURONS, set_spike_mode

KINDS = ("temporal", "diffusive", "diffusive_centre")
SHAPES = {"features": (6, 3, 7), "conv": (4, 2, 3, 3, 4), "one_step": (1, 2, 5), "batch_1": (5, 1, 4),
          "ring_1": (4, 2, 1), "ring_2": (4, 2, 2)}
CASES = [case for case in itertools.product(KINDS, ("soft", "hard"), ("eps_float", "eps_learn"),
                                            ("tau_float", "tau_learn"), SHAPES, ("rest", "state"))
         if not (case[0] == "diffusive" and case[3] == "tau_learn")]  # UltraDLIF has no tau


def case_id(case) -> str:
    kind, spike, eps, tau, shape, state = case
    return "-".join((kind, spike, eps, "no_tau" if kind == "diffusive" else tau, shape, state))


def run(case, backend: str, dtype=torch.float64, seed: int = 0) -> dict:
    """Outputs and gradients of one case, for a loss weighing spikes, membranes and the final state at random."""
    kind, spike, eps_kind, tau_kind, shape_name, state_kind = case
    shape = SHAPES[shape_name]
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(shape, generator=g, dtype=torch.float64) * 1.5 + 0.6).to(dtype).requires_grad_()
    leaves = {"x": x}
    eps = 0.7
    if eps_kind == "eps_learn":
        eps = leaves["eps"] = torch.tensor(0.7, dtype=dtype, requires_grad=True)
    tau = None if kind == "diffusive" else 0.8
    if tau is not None and tau_kind == "tau_learn":
        tau = leaves["tau"] = torch.tensor(0.8, dtype=dtype, requires_grad=True)
    state = None
    if state_kind == "state":
        leaves["v0"] = torch.randn(shape[1:], generator=g, dtype=torch.float64).to(dtype).requires_grad_()
        state = UltraState(leaves["v0"])
    hard = spike == "hard"
    if kind == "temporal":
        s, v, last = ultra_sequence(x, tau, eps, 1.0, hard, state, backend=backend)
    else:
        s, v, last = ultra_diffusive_sequence(x, eps, 1.0, tau, hard, state, backend=backend)
    weights = [torch.randn(t.shape, generator=g, dtype=torch.float64).to(dtype) for t in (s, v, last.v)]
    ((s * weights[0]).sum() + (v * weights[1]).sum() + (last.v * weights[2]).sum()).backward()
    return {"s": s.detach(), "v": v.detach(), "last": last.v.detach(),
            **{f"grad_{name}": leaf.grad for name, leaf in leaves.items()}}


@pytest.mark.parametrize("case", CASES, ids=[case_id(c) for c in CASES])
def test_fused_scan_equals_the_step_loop(case):
    want, got = run(case, "torch"), run(case, "numba")
    if case[1] == "hard":
        assert set(want["s"].unique().tolist()) <= {0.0, 1.0}
    assert sorted(got) == sorted(want)
    for name in want:
        assert want[name] is not None and torch.isfinite(want[name]).all()
        torch.testing.assert_close(got[name], want[name], rtol=1e-10, atol=1e-12, msg=name)


@pytest.mark.parametrize("case", [c for c in CASES if c[2:4] == ("eps_learn", "tau_learn") and c[5] == "state"
                                  or c[0] == "diffusive" and c[2] == "eps_learn" and c[5] == "state"],
                         ids=case_id)
def test_fused_scan_equals_the_step_loop_in_float32(case):
    want, got = run(case, "torch", torch.float32), run(case, "numba", torch.float32)
    assert got["s"].dtype == got["grad_x"].dtype == torch.float32
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=2e-5, atol=2e-5, msg=name)


GRADCHECK = [(kind, shape) for kind in KINDS for shape in SHAPES]


@pytest.mark.parametrize("kind, shape_name", GRADCHECK, ids=[f"{k}-{s}" for k, s in GRADCHECK])
def test_backward_matches_finite_differences(kind, shape_name):
    g = torch.Generator().manual_seed(1)
    shape = SHAPES[shape_name]
    x = (torch.randn(shape, generator=g, dtype=torch.float64) + 0.6).requires_grad_()
    v0 = torch.randn(shape[1:], generator=g, dtype=torch.float64).requires_grad_()
    eps = torch.tensor(0.8, dtype=torch.float64, requires_grad=True)
    tau = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)

    def scan(x, v0, eps, tau):
        if kind == "temporal":
            s, v, last = ultra_sequence(x, tau, eps, 1.0, False, UltraState(v0), backend="numba")
        else:
            s, v, last = ultra_diffusive_sequence(x, eps, 1.0, None if kind == "diffusive" else tau, False,
                                                  UltraState(v0), backend="numba")
        return s, v, last.v

    inputs = (x, v0, eps, tau) if kind != "diffusive" else (x, v0, eps, tau.detach())
    assert torch.autograd.gradcheck(scan, inputs, eps=1e-6, atol=1e-7, rtol=1e-5)


def test_hard_spikes_train_through_the_soft_derivative():
    """Hard mode: binary spikes forward, yet the input receives the soft spike's gradient (straight-through)."""
    x = torch.randn(5, 2, 6, dtype=torch.float64, requires_grad=True)
    s, _, _ = ultra_sequence(x, 0.8, 0.5, 1.0, True, backend="numba")
    s.sum().backward()
    assert set(s.unique().tolist()) <= {0.0, 1.0} and x.grad.abs().sum() > 0


@pytest.mark.parametrize("name", sorted(ULTRA_NEURONS))
@pytest.mark.parametrize("mode", ("soft", "hard"))
def test_layers_run_the_fused_scan_with_the_loop_s_numbers(name, mode):
    """A layer's forward (the fused scan) equals its own ``step`` in a loop, in outputs, the recorded membrane,
    the final state and every parameter's gradient."""
    torch.manual_seed(0)
    layer = ULTRA_NEURONS[name](eps=0.6)
    set_spike_mode(layer, mode)
    layer.record = True
    x = (torch.randn(6, 2, 5, 3) + 0.5).requires_grad_()
    spikes, state = layer(x, return_state=True)
    (spikes * torch.arange(spikes.numel()).reshape(spikes.shape).sin()).sum().backward()
    fused = {"x": x.grad.clone(), **{n: p.grad.clone() for n, p in layer.named_parameters()}}
    recorded = layer.recorded["v"]
    x.grad = None
    layer.zero_grad()
    loop_state, loop_spikes = None, []
    for x_t in x:
        s_t, loop_state = layer.step(x_t, loop_state)
        loop_spikes.append(s_t)
    loop_spikes = torch.stack(loop_spikes)
    (loop_spikes * torch.arange(spikes.numel()).reshape(spikes.shape).sin()).sum().backward()
    torch.testing.assert_close(spikes, loop_spikes, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(state.v, loop_state.v, rtol=1e-5, atol=1e-6)
    assert recorded.shape == x.shape
    torch.testing.assert_close(x.grad, fused["x"], rtol=1e-4, atol=1e-5)
    for n, p in layer.named_parameters():
        torch.testing.assert_close(p.grad, fused[n], rtol=1e-4, atol=1e-5, msg=n)


def test_empty_sequence_keeps_the_state():
    v0 = torch.randn(2, 3)
    for backend in ("numba", "torch"):
        s, v, last = ultra_sequence(torch.zeros(0, 2, 3), 0.9, 1.0, state=UltraState(v0), backend=backend)
        assert s.shape == v.shape == (0, 2, 3) and torch.equal(last.v, v0)


def test_per_unit_eps_runs_on_the_loop_only():
    x = torch.randn(3, 2, 4)
    eps = torch.full((4,), 0.5)
    with pytest.raises(ConfigError, match="one eps per layer"):
        ultra_sequence(x, 0.9, eps)
    s, _, _ = ultra_sequence(x, 0.9, eps, backend="torch")
    assert s.shape == x.shape
    with pytest.raises(ConfigError, match="eps must be a finite float > 0"):
        ultra_sequence(x, 0.9, 0.0)
    with pytest.raises(ConfigError, match="tau must be a finite float > 0"):
        ultra_sequence(x, -0.5, 1.0)
    with pytest.raises(ConfigError, match="does not broadcast"):
        ultra_sequence(x, 0.9, 1.0, state=UltraState(torch.zeros(5)))
    with pytest.raises(ConfigError, match="T, B, F"):
        ultra_diffusive_sequence(torch.zeros(3, 4), 1.0)
