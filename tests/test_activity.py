import pytest
import torch

import spikelab as sl
from spikelab.errors import ConfigError
from spikelab.training import Trainer
from spikelab.training.activity import monitor_activity

from test_trainer import rate_coded_task, small_net


def test_synaptic_operations_count_nonzero_inputs_times_fan_out():
    net = sl.Sequential(sl.Linear(4, 3), sl.LIF(threshold=0.5), sl.Linear(3, 2), sl.LeakyIntegrator())
    x = torch.zeros(5, 2, 4)
    x[0, 0, :2] = 1.0  # two input events in sample 0 at step 0
    with monitor_activity(net) as activity, torch.no_grad():
        with sl.record(net) as rec:
            net(x)
    hidden_spikes = rec["1"]["spikes"].count_nonzero().item()
    assert activity.synops == 2 * 3 + hidden_spikes * 2
    assert activity.samples == 2
    assert activity.mean_spike_rate().item() == pytest.approx(rec["1"]["spikes"].mean().item())


def test_conv_fan_out_is_channels_times_kernel_area():
    net = sl.Sequential(sl.Conv2d(1, 4, 3), sl.LIF())
    x = torch.zeros(2, 1, 1, 6, 6)
    x[0, 0, 0, 2, 2] = 1.0
    with monitor_activity(net) as activity, torch.no_grad():
        net(x)
    assert activity.synops == 1 * 4 * 9


def test_evaluation_reports_spike_rate_and_synops():
    result = Trainer(small_net(), progress=False).evaluate(rate_coded_task(n=30))
    assert 0.0 <= result["spike_rate"] <= 1.0 and result["synops"] > 0


def test_sparsity_penalty_lowers_spike_rate():
    rates = {}
    for sparsity in (0.0, 2.0):
        trainer = Trainer(small_net(), lr=5e-3, epochs=4, batch_size=24, sparsity=sparsity, progress=False)
        trainer.fit(rate_coded_task())
        rates[sparsity] = trainer.evaluate(rate_coded_task(n=60, seed=1))["spike_rate"]
    assert rates[2.0] < 0.7 * rates[0.0]


def test_sparsity_needs_bptt():
    with pytest.raises(ConfigError, match="bptt"):
        Trainer(small_net(), mode="sltt", sparsity=0.1)
