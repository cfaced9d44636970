"""The float64 reference run of a :class:`~spikelab.graph.network.Network`: what every backend is compared with."""
from __future__ import annotations

import numpy as np

from .network import Network, delay_matrices


def simulate(network: Network, spikes) -> dict[str, np.ndarray]:
    """Run ``network`` on input spikes ``(T, B, n_input)`` in float64; returns ``{population name: (T, B, n)}``.

    LIF populations give their spikes, the readout its membrane, the input its spikes. Same update as
    :mod:`spikelab.functional.lif` with zero reset: ``v[t] = beta * (1 - s[t-1]) * v[t-1] + mask[t] * I[t]``,
    ``s[t] = v[t] >= threshold``, ``I[t] = bias + sum_synapses weight * s_pre[t - delay]``; ``mask[t]`` is 0 for
    the ``refractory_steps`` steps after a spike (NEST's ``t_ref``: the membrane stays at the reset, input dropped).
    """
    spikes = np.asarray(spikes, dtype=np.float64)
    steps, batch = spikes.shape[:2]
    out = {network.input.name: spikes.reshape(steps, batch, -1)}
    for population in network.populations[1:]:
        n = population.size
        feed = np.broadcast_to(population.bias, (steps, batch, n)).copy()
        recurrent = []
        for projection in network.incoming(population.name):
            if projection.recurrent:
                recurrent += delay_matrices(projection, n, n)
                continue
            for d, matrix in delay_matrices(projection, out[projection.pre].shape[-1], n):
                if d < steps:
                    feed[d:] += out[projection.pre][:steps - d] @ matrix.T
        v, s = np.zeros((batch, n)), np.zeros((batch, n))
        vs, ss = np.empty((steps, batch, n)), np.empty((steps, batch, n))
        hold = population.refractory_steps
        for t in range(steps):
            current = feed[t] + sum(ss[t - d] @ matrix.T for d, matrix in recurrent if t - d >= 0)
            mask = 1.0 - ss[max(t - hold, 0):t].max(0) if hold and t else 1.0
            v = population.beta * (1.0 - s) * v + mask * current
            s = (v >= population.threshold).astype(np.float64)
            vs[t], ss[t] = v, s
        out[population.name] = vs if population.kind == "readout" else ss
    return out


