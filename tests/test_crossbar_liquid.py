"""NALSM's liquid on simulated crossbars (backends/crossbar/nalsm.py): exact with every non-ideality off, programming
noise only on existing synapses with its configured statistics, drift with the clock, saving, refusals."""
import math

import pytest
import torch
from torch import nn

from spikelab.backends import crossbar
from spikelab.backends.crossbar import noise, tile
from spikelab.errors import ExportError
from spikelab.liquid import LiquidStateMachine

N_INPUT = 60
STATIC = dict(device=crossbar.RRAM(read_noise=0.0), periphery=crossbar.Periphery(adc_bits=None, out_noise=0.0))


def events(steps=80, batch=4, rate=0.05, seed=0):
    return (torch.rand(steps, batch, N_INPUT, generator=torch.Generator().manual_seed(seed)) < rate).float()


def learned_liquid(seed=0):
    """A small liquid after some STDP, so its weights spread over [-3, 3] (not only the initial +-3)."""
    lsm = LiquidStateMachine(size=(5, 5, 4), n_input=N_INPUT, seed=seed)
    lsm.learn(events(batch=3, seed=seed + 1))
    return lsm


def dense(chip):
    """The chip's weights as dense (n_liquid, rows) matrices and the masks of the synapses that exist."""
    return crossbar.nalsm.dense_matrices(chip.liquid)


def test_ideal_chip_gives_the_spikes_of_the_frozen_float_liquid_across_tiles_and_backends():
    lsm = learned_liquid()
    assert len(torch.unique(lsm.weight)) > 10                      # learned: many weight values, not just +-3
    x = events(seed=5)
    reference = lsm(x, plastic=False)
    assert reference.counts.sum() > 100
    for backend in ("numba", "torch"):
        lsm.backend = backend
        chip = crossbar.convert(lsm, crossbar.Device.ideal(), crossbar.Periphery.ideal(tile_rows=16, tile_columns=32))
        assert len(chip.input.row_edges) == 4 and len(chip.recurrent.column_edges) == 4
        assert torch.equal(chip.synapse_weights(), lsm.weight)
        assert torch.equal(chip(x).spikes, reference.spikes), backend


def test_a_model_that_contains_a_liquid_gets_it_converted():
    model = nn.ModuleDict({"liquid": learned_liquid(), "encoder": nn.Identity()})
    chip = crossbar.convert(model, crossbar.Device.ideal(), crossbar.Periphery.ideal())
    assert isinstance(chip["liquid"], crossbar.CrossbarLiquid)
    assert [a.key for a in crossbar.arrays(chip)] == ["liquid.input", "liquid.recurrent"]   # own random streams
    x = events(seed=2)
    assert torch.equal(chip["liquid"](x).counts, model["liquid"](x, plastic=False).counts)


def test_programming_noise_moves_only_existing_synapses_with_the_configured_sigma():
    lsm = LiquidStateMachine(size=(6, 6, 6), n_input=N_INPUT, seed=3)   # every weight +-3: one target pair each
    device = crossbar.Device.ideal(g_max=40.0).replace(programming_noise="wan2022", stuck_at_gmax=0.0)
    chip = crossbar.convert(lsm, device, crossbar.Periphery.ideal(), seed=7)
    deviations = []
    for part, array in (("input", chip.input), ("recurrent", chip.recurrent)):
        matrix, cells = dense(chip)[part]
        weight = array.effective_weight()
        assert torch.equal(weight[~cells], torch.zeros_like(weight[~cells]))   # absent synapses: exactly 0
        assert torch.equal(array.programmed[:, ~cells], torch.zeros_like(array.programmed[:, ~cells]))   # no cells
        assert torch.all(array.tile_scale == 3.0)
        # in µS of the pair, signed so that the weight's own cell comes first: sigma(g_max) N - max(sigma(0) N', 0)
        deviations.append(((weight - matrix)[cells] * matrix[cells].sign() / 3.0 * 40.0))
    deviation = torch.cat(deviations)
    sigma_top = noise.programming_sigma("wan2022", torch.tensor(40.0, dtype=torch.float64), 40.0).item()
    sigma_zero = noise.programming_sigma("wan2022", torch.tensor(0.0, dtype=torch.float64), 40.0).item()
    mean = -sigma_zero / math.sqrt(2 * math.pi)                    # the g_min cell is clipped at 0 µS: half-normal
    std = math.sqrt(sigma_top ** 2 + sigma_zero ** 2 * (0.5 - 1 / (2 * math.pi)))
    assert len(deviation) > 4000
    assert abs(deviation.mean().item() - mean) < 4 * std / math.sqrt(len(deviation))
    assert deviation.std().item() == pytest.approx(std, rel=0.05)
    x = events(seed=4)
    assert not torch.equal(chip(x).counts, lsm(x, plastic=False).counts)


def test_faults_never_give_an_absent_synapse_a_weight():
    chip = crossbar.convert(learned_liquid(), crossbar.PCM(read_noise=0.0, stuck_at_gmax=0.2, gmax_spread=0.1),
                            crossbar.Periphery(adc_bits=None, out_noise=0.0, wire_resistance=0.35), seed=1)
    crossbar.set_time(chip, 86400.0)
    for part, array in (("input", chip.input), ("recurrent", chip.recurrent)):
        cells = dense(chip)[part][1]
        weight = array.effective_weight()
        assert torch.equal(weight[~cells], torch.zeros_like(weight[~cells]))
        assert weight[cells].abs().max() > 0.5


def test_drift_moves_the_weights_with_the_clock_and_each_forward_moves_the_clock():
    lsm = learned_liquid()
    chip = crossbar.convert(lsm, crossbar.Device.ideal().replace(drift="pcm"), crossbar.Periphery.ideal(), seed=2)
    x = events(steps=50, seed=6)
    fresh = chip(x)
    assert chip.input.clock.item() == pytest.approx(0.05) and chip.recurrent.clock.item() == pytest.approx(0.05)
    assert torch.equal(fresh.counts, lsm(x, plastic=False).counts)   # after 0 s nothing has drifted
    crossbar.set_time(chip, 86400.0)
    # a drifting cell: G(t) = G_prog ((t + t0) / t0)^-nu; here G- = 0 on a positive weight and G+ = 0 on a negative
    factor = ((86400.0 + noise.PCM_T0) / noise.PCM_T0) ** -chip.input.nu
    g = chip.input.programmed * factor
    scale = tile.expand_tiles(chip.input.tile_scale, chip.input.row_edges, chip.input.column_edges)
    matrix, cells = dense(chip)["input"]
    weight = chip.input.effective_weight()
    assert torch.allclose(weight, (g[0] - g[1]) / 25.0 * scale, rtol=0, atol=1e-12)
    kept = weight[cells] / matrix[cells]
    assert torch.all((kept > 0) & (kept <= 1)) and kept.median() < 0.8    # a day of drift: about a third lost
    drifted = chip(x)
    assert drifted.counts.sum() < fresh.counts.sum()                 # weaker synapses: a quieter liquid
    assert chip.input.clock.item() == pytest.approx(86400.05)


def test_save_and_load_keep_the_programmed_chip(tmp_path):
    lsm = learned_liquid(seed=1)
    chip = crossbar.convert(lsm, crossbar.PCM(read_noise=0.0, levels=16),
                            crossbar.Periphery(adc_bits=None, out_noise=0.0), seed=3)
    crossbar.set_time(chip, 3600.0)
    path = tmp_path / "chip.pt"
    crossbar.save(chip, path)
    loaded = crossbar.load(path)
    assert isinstance(loaded, crossbar.CrossbarLiquid)
    assert loaded.input.clock.item() == 3600.0
    assert torch.equal(loaded.liquid.weight, lsm.weight)                     # the twin it was programmed from
    assert torch.equal(torch.as_tensor(loaded.topology.pre), torch.as_tensor(lsm.topology.pre))
    assert torch.equal(loaded.synapse_weights(), chip.synapse_weights())
    assert not torch.equal(chip.synapse_weights(), lsm.weight)                # and it is a programmed chip
    x = events(seed=8)
    assert torch.equal(loaded(x).spikes, chip(x).spikes)


def test_a_state_dict_carries_the_chip_and_its_liquid_into_a_model_converted_from_another_liquid():
    source = nn.ModuleDict({"liquid": learned_liquid(seed=1)})
    chip = crossbar.convert(source, seed=4, **STATIC)
    other = crossbar.convert(nn.ModuleDict({"liquid": LiquidStateMachine(size=(5, 5, 4), n_input=N_INPUT, seed=9)}),
                             seed=5, **STATIC)
    assert other["liquid"].topology.n_synapses != chip["liquid"].topology.n_synapses
    other.load_state_dict(chip.state_dict())
    assert torch.equal(other["liquid"].synapse_weights(), chip["liquid"].synapse_weights())
    x = events(seed=3)
    assert torch.equal(other["liquid"](x).spikes, chip["liquid"](x).spikes)


def test_per_read_effects_plastic_runs_and_other_time_steps_are_refused_by_name():
    lsm = learned_liquid()
    with pytest.raises(ExportError, match="DAC") as refused:
        crossbar.convert(lsm, crossbar.RRAM(), crossbar.Periphery())
    assert all(name in str(refused.value) for name in ("read_noise", "out_noise", "adc_bits", "Periphery(adc_bits=None"))
    with pytest.raises(ExportError, match="dac_bits"):
        crossbar.convert(lsm, crossbar.Device.ideal(), crossbar.Periphery.ideal().replace(dac_bits=8))
    with pytest.raises(ExportError, match="1 ms"):
        crossbar.convert(lsm, dt=2.0, **STATIC)
    chip = crossbar.convert(lsm, **STATIC)
    for call in (lambda: chip(events(), plastic=True), lambda: chip.learn(events()),
                 lambda: chip(events(), keep_weights=True)):
        with pytest.raises(ExportError, match="frozen"):
            call()
    assert chip(events(), plastic=False).counts.shape == (4, 100)
