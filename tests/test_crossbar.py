"""The simulated crossbar: exactness with every non-ideality off, each non-ideality against its equation, seeds,
saving, noise-aware training hooks, the random liquid, and accuracy against noise on a trained net."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import spikelab as sl
from spikelab.backends import crossbar
from spikelab.backends.crossbar import _kernels, noise, tile
from spikelab.errors import ConfigError, ExportError

IDEAL = (crossbar.Device.ideal(), crossbar.Periphery.ideal())


def spikes(*shape, rate=0.2, seed=0):
    return (torch.rand(*shape, generator=torch.Generator().manual_seed(seed)) < rate).float()


def mlp(seed=0, inputs=40, hidden=24, classes=4):
    torch.manual_seed(seed)
    return sl.Sequential(sl.Linear(inputs, hidden), sl.LIF(), sl.Linear(hidden, classes), sl.LeakyIntegrator()).eval()


def test_ideal_crossbar_is_bitwise_the_plain_model_even_across_tiles():
    net = mlp()
    x = spikes(30, 5, 40)
    chip = crossbar.convert(net, crossbar.Device.ideal(), crossbar.Periphery.ideal(tile_rows=16, tile_columns=8))
    assert len(chip[0].array.row_edges) == 3 and len(chip[0].array.column_edges) == 3   # 40 rows, 24 columns
    with torch.no_grad():
        assert torch.equal(chip(x), net(x))


def test_ideal_crossbar_matches_conv_delay_recurrent_and_ultra_models():
    torch.manual_seed(1)
    conv = sl.Sequential(sl.Conv2d(2, 4, 3, padding=1), sl.LIF(), sl.MaxPool2d(2), sl.Flatten(), sl.Linear(4 * 4 * 4, 3),
                         sl.LeakyIntegrator()).eval()
    delayed = sl.Sequential(sl.DelayedLinear(12, 8, max_delay=4, bias=True), sl.LIF(beta=0.5, threshold=0.3),
                            sl.DelayedLinear(8, 3, max_delay=2, extend=True), sl.LeakyIntegrator()).eval()
    recurrent = sl.Sequential(sl.Linear(12, 16), sl.RecurrentLIF(16, bias=True), sl.Linear(16, 3), sl.LeakyIntegrator()).eval()
    ultra = sl.Sequential(sl.Linear(12, 16), sl.UltraLIF(), sl.Linear(16, 3), sl.LeakyIntegrator()).eval()
    sl.set_spike_mode(ultra, "hard")
    cases = [(conv, spikes(10, 3, 2, 8, 8)), (delayed, spikes(20, 3, 12)), (recurrent, spikes(20, 3, 12)),
             (ultra, spikes(20, 3, 12))]
    with torch.no_grad():
        for net, x in cases:
            chip = crossbar.convert(net, *IDEAL)
            reference, out = net(x), chip(x)
            assert out.shape == reference.shape
            assert torch.allclose(out, reference, atol=1e-6, rtol=1e-6), type(net[0]).__name__
            assert reference.abs().max() > 0.1
    recurrent_chip = crossbar.convert(recurrent, *IDEAL)
    assert isinstance(recurrent_chip[1].recurrent, crossbar.CrossbarLinear)  # the recurrent weights are on tiles too
    delayed_chip = crossbar.convert(delayed, *IDEAL)                            # step by step as well
    x = spikes(20, 3, 12)
    with torch.no_grad():
        state, outs = None, []
        for x_t in x:
            y_t, state = delayed_chip[:2].step(x_t, state)
            outs.append(y_t)
        assert torch.allclose(torch.stack(outs), delayed[:2](x), atol=1e-6)


def test_quantisation_alone_equals_its_closed_form():
    layer = sl.Linear(50, 7, bias=False).eval()
    levels = 9
    chip = crossbar.convert(layer, crossbar.Device.ideal().replace(levels=levels), crossbar.Periphery.ideal())
    w = layer.weight.detach().double()
    w_max = w.abs().max()
    expected = torch.sign(w) * torch.round(w.abs() / w_max * (levels - 1)) * w_max / (levels - 1)
    x = spikes(64, 50)
    with torch.no_grad():
        assert torch.allclose(chip(x).double(), x.double() @ expected.t(), atol=1e-6)
        assert not torch.allclose(chip(x), layer(x), atol=1e-3)        # it did quantise
    assert torch.allclose(chip.array.effective_weight(), expected, atol=1e-12)


@pytest.mark.parametrize("model, g_max", [("pcm", 25.0), ("wan2022", 40.0)])
def test_programming_error_has_the_configured_sigma_over_a_million_cells(model, g_max):
    device = crossbar.Device(g_max=g_max, programming_noise=model)
    target = torch.linspace(0.25 * g_max, g_max, 1000, dtype=torch.float64).repeat(2, 500, 1)   # 1e6 cells
    state = tile.program(target, device, 3, "sigma")
    sigma = noise.programming_sigma(model, target, g_max)
    z = (state["programmed"] - target) / sigma
    assert z.numel() == 1_000_000
    assert abs(z.std().item() - 1) < 0.005 and abs(z.mean().item()) < 0.005
    high = target > 0.9 * g_max                                      # also where sigma(G) is largest / smallest
    assert abs(((state["programmed"] - target)[high]).std().item() / sigma[high].mean().item() - 1) < 0.01


def test_published_values_of_the_noise_models():
    g = torch.tensor([25.0], dtype=torch.float64)
    assert noise.programming_sigma("pcm", g, 25.0).item() == pytest.approx(1.05538, abs=1e-5)   # 0.26348 + 1.9650 - 1.1731
    nu = noise.pcm_drift_exponents(g, 25.0, torch.zeros(1, dtype=torch.float64))
    assert 0.049 <= nu.item() <= 0.1
    zero = torch.zeros(1, dtype=torch.float64)
    assert noise.wan2022_sigma(zero, 1.0, 40.0).item() == pytest.approx(0.348)
    assert noise.wan2022_sigma(zero, 86400.0, 40.0).item() == pytest.approx(0.701)
    middle = noise.wan2022_sigma(zero, math.sqrt(86400.0 * 172800.0), 40.0).item()      # halfway in log t
    assert middle == pytest.approx((0.701 + 0.782) / 2)


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_read_noise_in_output_space_equals_resampling_every_cell(backend):
    """y + sqrt(x^2 . V + out_std^2) N has the distribution of x @ W_read with every cell read afresh plus the
    output noise: same mean and spread, with either backend."""
    layer = sl.Linear(64, 6, bias=False).eval()
    device = crossbar.Device.ideal(g_max=40.0).replace(read_noise=0.05)
    chip = crossbar.convert(layer, device, crossbar.Periphery.ideal().replace(out_noise=0.02), seed=2, backend=backend)
    x = spikes(1, 64, rate=0.5, seed=4).expand(20000, 64)
    with torch.no_grad():
        ours = chip(x)
        g = chip.array.conductances()                                # (2, out, rows), µS
        draws = g[None] * (1 + 0.05 * torch.randn(20000, *g.shape, dtype=torch.float64))
        scale = chip.array.tile_scale.item()
        w = (draws[:, 0] - draws[:, 1]) / 40.0 * scale
        theirs = torch.einsum("nr,nor->no", x[:1].double().expand(20000, 64), w) \
            + 0.02 * scale * torch.randn(20000, 6, dtype=torch.float64)
    assert torch.allclose(ours.mean(0).double(), theirs.mean(0), atol=3 * theirs.std(0).max().item() / 100)
    ratio = ours.std(0).double() / theirs.std(0)
    assert torch.all((ratio - 1).abs() < 0.04), ratio


@pytest.mark.parametrize("adc_bits", [None, 6])
def test_compiled_read_is_the_reference_arithmetic_on_its_own_normals(adc_bits):
    """The numba read computes tile.noisy_adc_sum (variances by a second matrix product) given the normals of its
    counter-based stream, read after read; and with the noise off both backends agree bit for bit (float32)."""
    torch.manual_seed(3)
    layer = sl.Linear(300, 20, bias=False)
    periphery = crossbar.Periphery(tile_rows=128, adc_bits=adc_bits, adc_bound=2.0, out_noise=0.05)
    chip = crossbar.convert(layer, crossbar.RRAM(read_noise=0.03), periphery, seed=1, backend="numba")
    array = chip.array
    x = spikes(50, 300, rate=0.1).double()
    with torch.no_grad():
        reads = [array(x), array(x)]
        d = array._derive(torch.float64, torch.device("cpu"))
        u = tile.partial_sums(x, d["blocks"], d["edges"])
        variance = tile.partial_sums(x, d["variance"], d["edges"])
    words = u.shape[0] * u.shape[1] * ((u.shape[2] + 1) // 2)
    z = np.empty(4 * words)
    _kernels.fill_normals(z, np.uint64(tile.stream_key(1, "", "read")), 0)
    normals = torch.from_numpy(z).reshape(2, *u.shape[:2], -1)[..., :u.shape[2]]
    for read, normal in zip(reads, normals):
        expected = tile.noisy_adc_sum(u, variance, d["out_std"], d["step"], d["scale"], d["top"], normal)
        assert (read - expected).abs().max() < 1e-9
    assert (reads[0] - reads[1]).abs().max() > 0.01                 # fresh noise at every read
    quiet = crossbar.Periphery(tile_rows=128, adc_bits=adc_bits or 5, adc_bound=2.0, out_noise=0.0)
    numba_chip, torch_chip = (crossbar.convert(layer, crossbar.RRAM(read_noise=0.0), quiet, seed=1, backend=b)
                              for b in ("numba", "torch"))
    with torch.no_grad():
        assert torch.equal(numba_chip(x.float()), torch_chip(x.float()))


def test_counter_based_normals_are_standard_normal_and_seekable():
    n = 2_000_000
    z = np.empty(n)
    _kernels.fill_normals(z, np.uint64(12345), 0)
    t = torch.from_numpy(z)
    assert abs(t.mean().item()) < 0.003 and abs(t.std().item() - 1) < 0.003
    assert abs((t ** 4).mean().item() - 3) < 0.03                   # normal kurtosis
    ks = (torch.special.ndtr(t.sort().values) - torch.arange(1, n + 1, dtype=torch.float64) / n).abs().max().item()
    assert ks < 1.63 / math.sqrt(n)                                  # Kolmogorov-Smirnov at the 1 % level
    for c in (1.0, 3.0, _kernels.R_TAIL):                            # the tail beyond r comes from the slow path
        expected = 2 * torch.special.ndtr(torch.tensor(-c, dtype=torch.float64)).item()
        observed = (t.abs() > c).double().mean().item()
        assert abs(observed - expected) < 4 * math.sqrt(expected / n), (c, observed, expected)
    assert abs(torch.corrcoef(torch.stack([t[0::2], t[1::2]]))[0, 1].item()) < 0.004   # the two halves of a word
    assert abs(torch.corrcoef(torch.stack([t[:-2], t[2:]]))[0, 1].item()) < 0.004
    part = np.empty(1000)
    _kernels.fill_normals(part, np.uint64(12345), 5000)              # word 5000 on: normals 10000 on
    assert np.array_equal(part, z[10000:11000])
    assert _kernels.ziggurat_layers(128)[0] == pytest.approx(3.442619855899, abs=1e-11)   # Marsaglia and Tsang
    assert _kernels.ziggurat_layers(256)[0] == pytest.approx(3.6541528853610088, abs=1e-12)   # numpy


def test_same_seed_same_chip_and_outputs_other_seed_other_chip():
    net = mlp()
    x = spikes(20, 4, 40)
    a, b, c = (crossbar.convert(net, crossbar.RRAM(), seed=s) for s in (5, 5, 6))
    with torch.no_grad():
        assert torch.equal(a(x), b(x))
        assert torch.equal(a(x), b(x))                              # the streams stay in step
        assert not torch.equal(a(x), c(x))
        first = a(x)
        assert not torch.equal(first, a(x))                         # fresh read noise at every call
        crossbar.reseed(a)
        crossbar.reseed(b)
        assert torch.equal(a(x), b(x))
    assert torch.equal(a[0].array.programmed, b[0].array.programmed)
    assert not torch.equal(a[0].array.programmed, c[0].array.programmed)


def test_state_dict_and_checkpoint_keep_the_programmed_conductances(tmp_path):
    net = mlp()
    chip = crossbar.convert(net, crossbar.PCM(stuck_at_gmax=0.05, gmax_spread=0.1), seed=11, dt=1.0)
    crossbar.set_time(chip, 3600.0)
    path = tmp_path / "chip.pt"
    crossbar.save(chip, path, source_spec=sl.spec.spec_of(net))
    loaded = crossbar.load(path)
    other = crossbar.convert(net, crossbar.PCM(stuck_at_gmax=0.05, gmax_spread=0.1), seed=99, dt=1.0)
    assert not torch.equal(other[0].array.programmed, chip[0].array.programmed)
    other.load_state_dict(chip.state_dict())
    x = spikes(15, 4, 40)
    for copy in (loaded, other):
        assert torch.equal(copy[0].array.programmed, chip[0].array.programmed)
        assert copy[0].array.clock.item() == 3600.0
        with torch.no_grad():
            crossbar.reseed(chip, 0), crossbar.reseed(copy, 0)
            assert torch.equal(copy(x), chip(x))
    with pytest.raises(sl.errors.CheckpointError):
        crossbar.load(tmp_path / "missing.pt")


def test_pcm_drift_follows_the_clock_and_compensation_restores_the_scale():
    layer = sl.Linear(100, 20, bias=False).eval()
    device = crossbar.Device(g_max=25.0, drift="pcm")
    periphery = crossbar.Periphery.ideal()
    chip = crossbar.convert(layer, device, periphery, dt=10.0)
    w0 = chip.array.effective_weight().clone()
    crossbar.set_time(chip, 86400.0)
    w_day = chip.array.effective_weight()
    factor = (86400 + 20) / 20
    assert torch.allclose(chip.array.conductances(), chip.array.programmed * factor ** -chip.array.nu, rtol=1e-12)
    assert 0.049 < chip.array.nu.mean() < 0.1                       # the published mean exponents
    shrink = (w_day.abs().sum() / w0.abs().sum()).item()
    assert factor ** -0.1 < shrink < factor ** -0.04
    compensated = crossbar.convert(layer, device, periphery.replace(drift_compensation=True))
    crossbar.set_time(compensated, 86400.0)
    assert compensated.array.effective_weight().abs().sum().item() == pytest.approx(w0.abs().sum().item(), rel=1e-9)
    with torch.no_grad():
        chip(spikes(50, 2, 100))                                    # 50 steps of 10 ms
    assert chip.array.clock.item() == pytest.approx(86400.5)


def test_stuck_cells_and_device_spread_have_their_configured_rates():
    layer = sl.Linear(400, 300, bias=False)
    device = crossbar.Device.ideal().replace(stuck_at_gmin=0.03, stuck_at_gmax=0.02, gmax_spread=0.1)
    array = crossbar.convert(layer, device, crossbar.Periphery.ideal(), seed=1).array
    g = array.conductances()
    assert (array.stuck == 1).double().mean().item() == pytest.approx(0.03, abs=0.002)
    assert (array.stuck == 2).double().mean().item() == pytest.approx(0.02, abs=0.002)
    assert torch.all(g[array.stuck == 2] == 25.0) and torch.all(g[array.stuck == 1] == 0.0)
    free = (array.stuck == 0) & (array.target > 1.0)
    nominal = crossbar.convert(layer, crossbar.Device.ideal(), crossbar.Periphery.ideal(), seed=1).array.target
    gain = array.target[free] / nominal[free]
    assert gain.std().item() == pytest.approx(0.1, rel=0.05)


def test_adc_output_lies_on_its_grid_and_clips_at_its_bound():
    layer = sl.Linear(600, 5, bias=False)
    periphery = crossbar.Periphery.ideal(tile_rows=300).replace(adc_bits=4, adc_bound=3.0)
    chip = crossbar.convert(layer, crossbar.Device.ideal(), periphery)
    x = spikes(200, 600, rate=0.5)
    array = chip.array
    d = array._derive(torch.float64, torch.device("cpu"))
    step, top = tile.adc_grid(4, 3.0)
    assert (step, top) == (2 * 3.0 / (2 ** 4 - 2), 7)
    with torch.no_grad():
        parts = [x[:, r0:r1].double() @ block.t() for (r0, r1), block in zip(array.row_edges, d["blocks"])]
        expected = sum(tile.adc(u, step, top) * array.tile_scale[r, 0] for r, u in enumerate(parts))
        assert torch.allclose(chip(x).double(), expected, atol=1e-6)
        codes = [(tile.adc(u, step, top) / step) for u in parts]
    assert all(torch.allclose(c, c.round()) and c.abs().max() <= 7 for c in codes)
    assert any((u.abs() > 3.0).any() for u in parts)                 # some partial sums were clipped


def test_first_order_ir_drop_agrees_with_the_exact_column_solution():
    """A column of n cells, inputs as ideal voltage sources, wire resistance r between neighbours: solve the
    node voltages exactly and compare the column current with the first-order effective conductances."""
    n, r = 12, 50.0                                                   # Ω: a drop of a few per cent
    g = torch.rand(n, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 25.0   # µS
    x = spikes(n, rate=0.5, seed=1).double()
    siemens = g * 1e-6
    # node k (column wire at row k), node n = output at 0 V; wire k -> k+1 has conductance 1/r
    a = torch.zeros(n, n, dtype=torch.float64)
    b = siemens * x
    for k in range(n):
        a[k, k] += siemens[k]
        for nb in (k - 1, k + 1):
            if 0 <= nb <= n:
                a[k, k] += 1 / r
                if nb < n:
                    a[k, nb] -= 1 / r
    v = torch.linalg.solve(a, b)
    exact = (v[-1] / r).item()                                        # current into the sense amplifier
    ideal = (siemens * x).sum().item()
    first_order = (tile.ir_drop(g, [(0, n)], r) * 1e-6 * x).sum().item()
    assert exact < ideal
    assert 0.01 < (ideal - exact) / ideal < 0.2
    assert abs(first_order - exact) < 0.1 * (ideal - exact)          # the first-order term carries the drop


def test_ir_drop_lowers_the_far_rows_most():
    layer = sl.Linear(256, 4, bias=False)
    with torch.no_grad():
        layer.weight.fill_(1.0)
    chip = crossbar.convert(layer, crossbar.Device.ideal(), crossbar.Periphery.ideal().replace(wire_resistance=1.0))
    w = chip.array.effective_weight()
    assert w[0, 0] < w[0, 128] < w[0, -1] <= 1.0 and w[0, 0] < 0.99


def test_inputs_that_are_not_spikes_are_refused_unless_there_is_a_dac():
    layer = sl.Linear(10, 3)
    chip = crossbar.convert(layer, *IDEAL)
    with pytest.raises(ExportError, match="dac_bits"):
        chip(torch.rand(4, 10))
    with_dac = crossbar.convert(layer, crossbar.Device.ideal(), crossbar.Periphery.ideal().replace(dac_bits=8))
    x = torch.rand(4, 10)
    with torch.no_grad():
        assert torch.allclose(with_dac(x), layer(x), atol=0.02)
    with pytest.raises(ConfigError, match="levels"):
        crossbar.RRAM(levels=1)
    with pytest.raises(ConfigError, match="preset"):
        crossbar.preset("flash")
    with pytest.raises(ExportError, match="groups"):
        crossbar.convert(torch.nn.Conv2d(4, 4, 3, groups=2), *IDEAL)


def test_training_noise_perturbs_training_forwards_only_and_keeps_the_gradient_path():
    net = mlp()
    hooks = crossbar.add_training_noise(net, crossbar.PCM())
    x = spikes(10, 8, 40)
    keys = list(net.state_dict())
    net.train()
    torch.manual_seed(0)
    a = net(x)
    torch.manual_seed(0)
    assert torch.equal(net(x), a)                                    # drawn from torch's seeded generator
    assert not torch.equal(net(x), a)
    a.sum().backward()
    assert net[0].weight.grad is not None and net[0].weight.grad.abs().sum() > 0
    net.eval()
    with torch.no_grad():
        assert torch.equal(net(x), net(x))
    assert list(net.state_dict()) == keys
    hooks.remove()
    net.train()
    assert torch.equal(net(x), net(x))
    std = crossbar.training.weight_noise_std(net[0].weight, crossbar.PCM())
    largest = net[0].weight.abs().argmax()            # its pair: one cell at g_max (sigma 1.05538), one at 0 (0.26348)
    expected = math.sqrt(1.05538 ** 2 + 0.26348 ** 2) / 25.0 * net[0].weight.abs().max().item()
    assert std.flatten()[largest].item() == pytest.approx(expected, rel=1e-5)


def test_random_liquid_weights_are_symmetric_sparse_and_match_the_software_twin():
    chip = crossbar.random_liquid(256, neurons=200, device=crossbar.RRAM(read_noise=0.0),
                                  periphery=crossbar.Periphery.ideal(), formed_fraction=0.6, seed=3)
    twin = crossbar.random_liquid(256, neurons=200, seed=3)
    array = chip[0].array
    formed = (array.target > 0).double().mean().item()
    assert formed == pytest.approx(0.6, abs=0.01)
    w = array.effective_weight()
    assert abs(w.mean().item()) < 0.01 and abs(((w - w.mean()) ** 3).mean().item() / w.std().item() ** 3) < 0.05
    assert w.std().item() == pytest.approx(twin[0].weight.std().item(), rel=0.03)
    x = spikes(50, 6, 256, rate=0.1)
    with torch.no_grad():
        chip_rates, twin_rates = crossbar.firing_rates(chip, x), crossbar.firing_rates(twin, x)
    assert chip_rates.shape == twin_rates.shape == (6, 200)
    assert 0.01 < chip_rates.mean() < 0.9 and 0.01 < twin_rates.mean() < 0.9


def _task(seed, n, inputs=40, classes=4, steps=20):
    """Class c fires inputs c*10 .. c*10+9 at rate 0.5, the rest at 0.05."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, classes, (n,), generator=g)
    rate = torch.full((n, inputs), 0.05)
    for c in range(classes):
        rate[labels == c, c * 10:(c + 1) * 10] = 0.5
    return (torch.rand(steps, n, inputs, generator=g) < rate).float(), labels


def test_accuracy_falls_monotonically_with_noise_on_a_trained_net():
    net = mlp(seed=0)
    x, y = _task(0, 256)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    net.train()
    for _ in range(30):
        optimizer.zero_grad()
        F.cross_entropy(net(x).mean(0), y).backward()
        optimizer.step()
    net.eval()
    x_test, y_test = _task(1, 300)
    predict = lambda out: out.mean(0).argmax(1)
    float_accuracy = crossbar.sweep.accuracy(net, x_test, y_test, predict)
    assert float_accuracy > 0.9
    sweep = crossbar.run_sweep(net, x_test, y_test, predict, "noise", crossbar.RRAM(), crossbar.Periphery.ideal(),
                               seeds=(0, 1), values=(0.0, 3.0, 10.0, 30.0, 100.0))
    means = [p["mean"] for p in sweep["points"]]
    assert means[0] == pytest.approx(float_accuracy, abs=0.01)
    assert all(a >= b for a, b in zip(means, means[1:])), means
    assert means[-1] < float_accuracy - 0.2
