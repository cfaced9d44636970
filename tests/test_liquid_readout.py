"""Liquid readouts (features, NALSM normalisation, ridge and Adadelta) and the three-phase protocol."""
import numpy as np
import pytest
import torch

from spikelab.errors import CheckpointError, ConfigError
from spikelab.liquid.protocol import (RIDGE_PENALTIES, NALSMConfig, NALSMResult, extract_features, fit_readout,
                                      init_window, initialise_liquid, run_nalsm)
from spikelab.liquid.readout import LinearReadout, liquid_features, normalise


def test_features():
    spikes = torch.zeros(10, 2, 3)
    spikes[0, 0, 0] = spikes[9, 0, 0] = spikes[4, 1, 2] = spikes[5, 1, 2] = 1
    assert torch.equal(liquid_features(spikes), torch.tensor([[2.0, 0, 0], [0, 0, 2]]))
    rates = liquid_features(spikes, "rates", bins=2)           # two 5 ms bins, bin-major
    assert torch.allclose(rates, torch.tensor([[0.2, 0, 0, 0.2, 0, 0], [0, 0, 0.2, 0, 0, 0.2]]))
    trace = liquid_features(spikes, "trace", tau=4.0)
    assert trace[0, 0].item() == pytest.approx(1 + np.exp(-9 / 4), rel=1e-6)
    assert trace[1, 2].item() == pytest.approx(np.exp(-5 / 4) + np.exp(-4 / 4), rel=1e-6)
    with pytest.raises(ConfigError, match="feature kind"):
        liquid_features(spikes, "voltage")


def test_normalise_is_l1_then_training_max():
    counts = torch.tensor([[1.0, 3.0], [2.0, 2.0], [0.0, 0.0]])
    x, scale = normalise(counts)
    assert scale == pytest.approx(0.75)
    assert torch.allclose(x, torch.tensor([[1 / 3, 1.0], [2 / 3, 2 / 3], [0, 0]]))
    again, same = normalise(torch.tensor([[4.0, 4.0]]), scale)
    assert same == scale and torch.allclose(again, torch.tensor([[2 / 3, 2 / 3]]))


def test_ridge_is_the_closed_form_minimum():
    g = torch.Generator().manual_seed(0)
    counts = torch.rand(60, 7, generator=g) * 10
    labels = torch.randint(0, 3, (60,), generator=g)
    readout = LinearReadout(7, 3).fit_ridge(counts, labels, ridge=0.1)
    x = readout.prepare(counts).double()
    design = torch.cat([x, torch.ones(60, 1, dtype=torch.float64)], 1)
    beta = torch.cat([readout.linear.weight.T, readout.linear.bias[None]], 0).detach().double()
    y = torch.nn.functional.one_hot(labels, 3).double()
    penalty = torch.eye(8, dtype=torch.float64) * 0.1
    penalty[-1, -1] = 0
    gradient = design.T @ (design @ beta - y) + penalty @ beta      # zero at the minimum
    assert gradient.abs().max() < 1e-5
    # and it matches numpy's solution of the same normal equations
    expected = np.linalg.solve((design.T @ design + penalty).numpy(), (design.T @ y).numpy())
    np.testing.assert_allclose(beta.numpy(), expected, atol=1e-5)


def test_gradient_readout_learns_and_picks_the_epoch_on_validation():
    g = torch.Generator().manual_seed(1)
    labels = torch.randint(0, 2, (200,), generator=g)
    counts = torch.rand(200, 6, generator=g) + 2 * torch.nn.functional.one_hot(labels, 6).float()
    readout = LinearReadout(6, 2)
    history = readout.fit_gradient(counts[:150], labels[:150], valid=(counts[150:], labels[150:]), epochs=15,
                                   lr=1.0, batch_size=25)
    assert len(history["valid_accuracy"]) == 15
    assert history["best_epoch"] == int(np.argmax(history["valid_accuracy"]))
    assert readout.accuracy(counts[150:], labels[150:]) == max(history["valid_accuracy"]) > 0.9


def class_batches(n_batches, batch, steps, n_input, seed):
    """Two classes: class c drives the first or the second half of the inputs."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n_batches):
        labels = torch.randint(0, 2, (batch,), generator=g)
        rate = torch.full((batch, n_input), 0.005)
        half = n_input // 2
        for b, c in enumerate(labels):
            rate[b, c * half:(c + 1) * half] = 0.15
        x = (torch.rand(steps, batch, n_input, generator=g) < rate).float()
        out.append((x, labels))
    return out


def test_protocol_phases():
    config = NALSMConfig(size=(4, 4, 4), n_input=20, input_density=0.5, seed=0, init_samples=5, init_steps=10,
                         extract_steps=40, epochs=20, readout_batch=8, lr=1.0)
    liquid = config.build_liquid()
    start = liquid.weight.clone()
    train = class_batches(3, 4, 40, 20, seed=2)
    assert initialise_liquid(liquid, train, samples=5, steps=10) == 5
    w_ini = liquid.weight.clone()
    assert not torch.equal(w_ini, start)
    counts, labels = extract_features(liquid, train)
    assert counts.shape == (12, 64) and labels.shape == (12,) and counts.sum() > 0
    assert torch.equal(liquid.weight, w_ini), "extraction runs on copies of W_INI"


def test_run_nalsm_separates_two_classes_and_is_seeded(tmp_path):
    config = NALSMConfig(size=(4, 4, 4), n_input=20, input_density=0.5, seed=0, init_samples=8, init_steps=20,
                         extract_steps=60, epochs=30, readout_batch=16, lr=1.0)
    train, valid, test = (class_batches(4, 8, 60, 20, seed=s) for s in (3, 4, 5))
    phases = []
    result = run_nalsm(config, train, valid, test, progress=phases.append)
    assert phases == ["initialise", "extract", "readout"]
    assert result.accuracy["test"] > 0.8 and result.history["init_samples_used"] == 8
    again = run_nalsm(config, train, valid, test)
    assert torch.equal(again.liquid.weight, result.liquid.weight) and again.accuracy == result.accuracy
    result.save(tmp_path / "nalsm.pt")
    loaded = NALSMResult.load(tmp_path / "nalsm.pt")
    result.liquid.save(tmp_path / "liquid.pt")
    with pytest.raises(CheckpointError, match="LiquidStateMachine.load"):     # a liquid alone has no readout
        NALSMResult.load(tmp_path / "liquid.pt")
    assert torch.equal(loaded.liquid.weight, result.liquid.weight) and loaded.accuracy == result.accuracy
    x, y = test[0]
    assert torch.equal(loaded.predict(x), result.predict(x))
    assert (result.predict(x) == y).float().mean() > 0.7
    ridge = run_nalsm(NALSMConfig(**{**result.config, "readout": "ridge", "stdp": False}), train, valid, test)
    assert ridge.history["init_samples_used"] == 0 and ridge.accuracy["test"] > 0.8
    with pytest.raises(ConfigError, match="validation"):      # the penalty is chosen on a validation set
        run_nalsm(NALSMConfig(**{**result.config, "readout": "ridge", "stdp": False}), train, None, test)
    with pytest.raises(ConfigError, match="readout"):
        NALSMConfig(readout="svm")
    with pytest.raises(ConfigError, match="iterator"):
        run_nalsm(config, iter(train))


def test_ridge_penalty_is_chosen_on_the_validation_set_only():
    """Features whose useful part is tiny beside a large noisy part: the penalty decides the accuracy, and the
    one kept is the best on validation; a fixed penalty is used as given."""
    generator = torch.Generator().manual_seed(0)

    def split(n):
        labels = torch.arange(n) % 2
        signal = labels[:, None].float() * torch.ones(n, 3)
        return torch.cat([signal, 40 * torch.rand(n, 30, generator=generator)], 1) + 1, labels

    train, valid = split(40), split(200)
    readout, history = fit_readout(train, valid, 2, NALSMConfig(readout="ridge"))
    assert history["ridge"] == list(RIDGE_PENALTIES) and len(history["valid_accuracy"]) == len(RIDGE_PENALTIES)
    assert history["valid_accuracy"][history["best_epoch"]] == max(history["valid_accuracy"])
    assert readout.accuracy(*valid) == max(history["valid_accuracy"])
    assert max(history["valid_accuracy"]) - min(history["valid_accuracy"]) > 0.1     # the choice matters here
    fixed, fixed_history = fit_readout(train, None, 2, NALSMConfig(readout="ridge", ridge=1e-3))
    assert fixed_history["ridge"] == [1e-3] and fixed_history["best_epoch"] == 0
    assert torch.equal(fixed.linear.weight, LinearReadout(33, 2).fit_ridge(*train, ridge=1e-3).linear.weight)
    with pytest.raises(ConfigError, match="ridge"):
        NALSMConfig(ridge=-1.0)


def test_init_window_first_or_random_within_the_recording():
    steps, length = 5, 12
    x = torch.arange(length, dtype=torch.float32)[:, None, None].expand(length, 400, 2)   # x[t] = t
    assert torch.equal(init_window(x, steps, "first"), x[:steps])
    windows = init_window(x, steps, "random", torch.Generator().manual_seed(0))
    assert windows.shape == (steps, 400, 2)
    starts = windows[0, :, 0]
    expected = (starts[None] + torch.arange(steps)[:, None])[..., None].expand_as(windows)
    assert torch.equal(windows, expected), "contiguous windows"
    # NALSM: randint(1, T - 1 - steps), i.e. starts 1 .. T - steps - 2, each of them drawn
    assert set(starts.long().tolist()) == set(range(1, length - steps - 1))
    again = init_window(x, steps, "random", torch.Generator().manual_seed(0))
    assert torch.equal(windows, again), "seeded by the generator"
    with pytest.raises(ConfigError, match="at least 8 ms"):
        init_window(x[:7], steps, "random")
    with pytest.raises(ConfigError, match="window must be one of"):
        init_window(x, steps, "middle")
    with pytest.raises(ConfigError, match="init_window"):
        NALSMConfig(init_window="middle")
