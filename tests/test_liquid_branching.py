"""The astrocyte's closed loop sets the branching factor: the higher w_A, the lower the BF (NALSM, §3.9 of
reference/algorithms.md), on a small seeded liquid with NALSM's protocol shortened."""
import numpy as np
import torch

from spikelab.functional.liquid import AstroSTDPParameters
from spikelab.liquid import LiquidStateMachine
from spikelab.liquid.metrics import branching_factor, firing_rates, recurrent_connectivity

#: 6x6x6 liquid, 20 input channels at 0.05 events per ms: the liquid amplifies its input (BF > 1 at low w_A),
#: so the astrocyte (driven by liquid minus input spikes) has something to push down
SHAPE, INPUTS, RATE = (6, 6, 6), 20, 0.05
ASTRO_WEIGHTS = (0.03, 0.1, 0.3, 1.0)


def _bf_and_rate(astro_w, seed, init, test):
    lsm = LiquidStateMachine(size=SHAPE, n_input=INPUTS, seed=seed, plasticity=AstroSTDPParameters(astro_w=astro_w))
    lsm.learn(init)                                          # phase 1: 20 ms per sample, weights kept
    spikes = lsm(test, rate_decay=0.99).spikes.numpy().transpose(1, 0, 2)    # phase 2, (samples, T, neurons)
    return branching_factor(spikes, recurrent_connectivity(lsm.topology)), firing_rates(spikes).mean()


def test_branching_factor_falls_as_the_astrocyte_weight_rises():
    generator = torch.Generator().manual_seed(0)
    init = (torch.rand(20, 100, INPUTS, generator=generator) < RATE).float()
    test = (torch.rand(150, 10, INPUTS, generator=generator) < RATE).float()
    bf, rate = np.zeros((3, len(ASTRO_WEIGHTS))), np.zeros((3, len(ASTRO_WEIGHTS)))
    for seed in range(3):
        for k, astro_w in enumerate(ASTRO_WEIGHTS):
            bf[seed, k], rate[seed, k] = _bf_and_rate(astro_w, seed, init, test)
    mean_bf = bf.mean(0)
    assert np.all(np.diff(mean_bf) < 0), mean_bf
    assert np.all(np.diff(rate.mean(0)) < 0), rate.mean(0)
    assert mean_bf[0] > 1.0     # supercritical without much astrocyte control: there is something to control
