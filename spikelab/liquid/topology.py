r"""The liquid's wiring: input units and a 3-D grid of excitatory/inhibitory neurons joined by Maass' distance rule.

NALSM's liquid (``reference/algorithms.md`` §3.3), generated here from a seed:

* ``shape = (d1, d2, d3)`` grid points, one liquid neuron each (NALSM1000: 10x10x10, NALSM8000: 20x20x20); a
  random fraction ``excitatory_fraction`` of them (0.8, placed at random on the grid) is excitatory, the rest
  inhibitory.
* A recurrent synapse ``i -> j`` (``i != j``) exists with probability ``C[type_i, type_j] * exp(-(D_ij / lam)^2)``,
  ``D_ij`` the Euclidean grid distance, ``C_EE = 0.2``, ``C_EI = 0.1``, ``C_IE = 0.3``, ``C_II = 0.05`` (first
  letter the presynaptic type), ``lam = 3`` grid units.
* Each input unit (N-MNIST: 2 x 34 x 34 = 2312, one per pixel and polarity) connects to each liquid neuron with
  probability ``input_density`` (0.15), with a random sign.
* Every weight starts at the largest magnitude ``weight`` (3): ``+3`` from excitatory neurons, ``-3`` from
  inhibitory ones, ``+-3`` from inputs; the plastic bounds are ``[0, 3]``, ``[-3, 0]`` and ``[-3, 3]``.

Neurons are numbered in one index space: inputs ``0 .. n_input - 1``, then the liquid ``n_input .. n_total - 1``.
The synapses are index arrays sorted by ``(post, pre)`` (CSR by postsynaptic neuron: each liquid neuron's incoming
synapses are contiguous, the order STDP's potentiation walks), with the permutation ``by_pre`` / pointer
``pre_ptr`` that lists each unit's outgoing synapses (:meth:`LiquidTopology.csr`); ``post`` is a liquid index
(``0 .. n_liquid - 1``). So 8,000 neurons (about 2.9 million synapses with N-MNIST input) take a few tens of MB,
not dense matrices.

=======================  ==========  ================  =========================================================
argument                 unit        default           meaning
=======================  ==========  ================  =========================================================
``shape``                grid points ``(10, 10, 10)``  liquid grid; ``n_liquid = d1 d2 d3``
``n_input``              neurons     2312              input units (N-MNIST 2x34x34; MNIST 784)
``input_density``        --          0.15              probability of each input -> liquid synapse
``connectivity``         --          NALSM's C above   ``{"EE", "EI", "IE", "II"}`` -> C (presynaptic type first)
``lam``                  grid units  3.0               length constant of the distance rule
``excitatory_fraction``  --          0.8               fraction of excitatory liquid neurons
``weight``               weight      3.0               initial magnitude and bound of every weight
``seed``                 --          0                 seeds the types, the synapses and the input signs
=======================  ==========  ================  =========================================================
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from spikelab.errors import ConfigError

NALSM_CONNECTIVITY = {"EE": 0.2, "EI": 0.1, "IE": 0.3, "II": 0.05}
NMNIST_INPUTS = 2 * 34 * 34
#: neuron kinds in :attr:`LiquidTopology.kind`
INPUT, EXCITATORY, INHIBITORY = 0, 1, 2
SIZES = {1000: (10, 10, 10), 8000: (20, 20, 20)}


class SynapseIndex(NamedTuple):
    """CSR views of the synapses (in the topology's ``(post, pre)`` order): ``post_ptr`` ``(n_liquid + 1,)``,
    liquid neuron ``i``'s incoming synapses being ``post_ptr[i]:post_ptr[i + 1]``; ``by_pre`` (int32 synapse
    indices ordered by presynaptic unit) and ``pre_ptr`` ``(n_total + 1,)``, unit ``j``'s outgoing synapses being
    ``by_pre[pre_ptr[j]:pre_ptr[j + 1]]``, and ``out_post = post[by_pre]`` (their targets, contiguous per unit)."""

    post_ptr: np.ndarray
    by_pre: np.ndarray
    pre_ptr: np.ndarray
    out_post: np.ndarray
    n_synapses: int


@dataclass
class LiquidTopology:
    """A liquid's neurons and synapses (see the module docstring for the numbering).

    ``kind`` ``(n_total,)`` int8: :data:`INPUT`, :data:`EXCITATORY` or :data:`INHIBITORY`; ``positions``
    ``(n_liquid, 3)`` grid coordinates; ``pre`` (global index), ``post`` (liquid index), ``weight`` (initial) per
    synapse, sorted by ``(post, pre)``; ``w_min`` / ``w_max`` ``(n_total,)``: the bounds of every synapse from
    each unit (NALSM: by the unit's kind).
    """

    shape: tuple
    n_input: int
    kind: np.ndarray
    positions: np.ndarray
    pre: np.ndarray
    post: np.ndarray
    weight: np.ndarray
    w_min: np.ndarray
    w_max: np.ndarray
    seed: int = 0

    @property
    def n_liquid(self) -> int:
        return int(np.prod(self.shape))

    @property
    def n_total(self) -> int:
        return self.n_input + self.n_liquid

    @property
    def n_synapses(self) -> int:
        return len(self.pre)

    @property
    def excitatory(self) -> np.ndarray:
        """``(n_liquid,)`` bool: which liquid neurons are excitatory."""
        return self.kind[self.n_input:] == EXCITATORY

    def csr(self) -> SynapseIndex:
        """The synapse index arrays the kernels walk (computed once per topology, then cached)."""
        cached = self.__dict__.get("_csr")
        if cached is None or cached.n_synapses != self.n_synapses:
            by_pre = np.argsort(self.pre, kind="stable").astype(np.int32)
            cached = SynapseIndex(
                post_ptr=np.searchsorted(self.post, np.arange(self.n_liquid + 1)).astype(np.int64),
                by_pre=by_pre,
                pre_ptr=np.searchsorted(self.pre[by_pre], np.arange(self.n_total + 1)).astype(np.int64),
                out_post=np.ascontiguousarray(self.post[by_pre]),
                n_synapses=self.n_synapses)
            self.__dict__["_csr"] = cached
        return cached

    def recurrent(self) -> np.ndarray:
        """Mask of the liquid -> liquid synapses."""
        return self.pre >= self.n_input

    def state_dict(self) -> dict:
        return {"shape": list(self.shape), "n_input": self.n_input, "kind": self.kind, "positions": self.positions,
                "pre": self.pre, "post": self.post, "weight": self.weight, "w_min": self.w_min,
                "w_max": self.w_max, "seed": self.seed}

    @classmethod
    def from_state_dict(cls, state: dict) -> "LiquidTopology":
        fields = dict(state)
        fields["shape"] = tuple(int(d) for d in fields["shape"])
        fields["n_input"] = int(fields["n_input"])
        fields["seed"] = int(fields["seed"])
        for name in ("kind", "positions", "pre", "post", "weight", "w_min", "w_max"):
            fields[name] = np.asarray(fields[name])
        return cls(**fields)


def liquid_shape(size) -> tuple:
    """``size`` as a grid: 1000 -> (10, 10, 10), 8000 -> (20, 20, 20), or a 3-tuple as given."""
    if isinstance(size, int) and not isinstance(size, bool):
        if size in SIZES:
            return SIZES[size]
        side = round(size ** (1 / 3))
        if side ** 3 == size:
            return (side,) * 3
        raise ConfigError(f"a liquid of {size} neurons is not a cube; give the grid as a 3-tuple, e.g. (10, 10, 10)")
    shape = tuple(size)
    if len(shape) != 3 or any(not isinstance(d, (int, np.integer)) or d < 1 for d in shape):
        raise ConfigError(f"the liquid grid must be 3 positive integers, got {size!r}")
    return tuple(int(d) for d in shape)


def _check(n_input, input_density, connectivity, lam, excitatory_fraction, weight):
    if not isinstance(n_input, (int, np.integer)) or n_input < 1:
        raise ConfigError(f"n_input must be a positive number of input channels, got {n_input!r}")
    if not 0.0 <= input_density <= 1.0:
        raise ConfigError(f"input_density must be a probability in [0, 1], got {input_density!r}")
    if set(connectivity) != set(NALSM_CONNECTIVITY) or not all(0 <= c <= 1 for c in connectivity.values()):
        raise ConfigError(f"connectivity must map each of EE, EI, IE, II to a probability, got {connectivity!r}")
    if not lam > 0:
        raise ConfigError(f"lam must be a positive length in grid units, got {lam!r}")
    if not 0.0 <= excitatory_fraction <= 1.0:
        raise ConfigError(f"excitatory_fraction must be in [0, 1], got {excitatory_fraction!r}")
    if not weight > 0:
        raise ConfigError(f"weight must be a positive magnitude, got {weight!r}")


def grid_liquid(shape=(10, 10, 10), n_input: int = NMNIST_INPUTS, input_density: float = 0.15,
                connectivity: dict | None = None, lam: float = 3.0, excitatory_fraction: float = 0.8,
                weight: float = 3.0, seed: int = 0) -> LiquidTopology:
    """Draw a NALSM liquid (arguments, units and defaults in the module docstring); the same seed gives the
    same liquid."""
    shape = liquid_shape(shape)
    connectivity = dict(NALSM_CONNECTIVITY if connectivity is None else connectivity)
    _check(n_input, input_density, connectivity, lam, excitatory_fraction, weight)
    rng = np.random.default_rng(seed)
    n_liquid = int(np.prod(shape))
    positions = np.stack(np.unravel_index(np.arange(n_liquid), shape), axis=1).astype(np.float64)
    n_exc = int(round(excitatory_fraction * n_liquid))
    excitatory = np.zeros(n_liquid, dtype=bool)
    excitatory[rng.permutation(n_liquid)[:n_exc]] = True

    c = np.array([[connectivity["II"], connectivity["IE"]], [connectivity["EI"], connectivity["EE"]]])
    post_exc = excitatory.astype(np.int64)
    pres, posts = [], []
    block = max(1, 2_000_000 // n_liquid)     # rows of the distance matrix at a time: bounded memory at 8000
    for start in range(0, n_liquid, block):
        rows = np.arange(start, min(start + block, n_liquid))
        d2 = ((positions[rows, None, :] - positions[None, :, :]) ** 2).sum(-1)
        p = c[excitatory[rows].astype(np.int64)[:, None], post_exc[None, :]] * np.exp(-d2 / lam ** 2)
        p[np.arange(len(rows)), rows] = 0.0
        hit = rng.random(p.shape) < p
        i, j = np.nonzero(hit)
        pres.append(rows[i] + n_input)
        posts.append(j)
    rec_pre, rec_post = np.concatenate(pres), np.concatenate(posts)
    rec_w = np.where(excitatory[rec_pre - n_input], weight, -weight)

    hit = rng.random((n_input, n_liquid)) < input_density
    in_pre, in_post = np.nonzero(hit)
    in_w = np.where(rng.random(len(in_pre)) < 0.5, weight, -weight)

    kind = np.concatenate([np.full(n_input, INPUT), np.where(excitatory, EXCITATORY, INHIBITORY)]).astype(np.int8)
    pre = np.concatenate([in_pre, rec_pre]).astype(np.int32)
    post = np.concatenate([in_post, rec_post]).astype(np.int32)
    w = np.concatenate([in_w, rec_w]).astype(np.float32)
    order = np.lexsort((pre, post))
    pre, post, w = pre[order], post[order], w[order]
    w_min = np.where(kind == EXCITATORY, 0.0, -weight).astype(np.float32)
    w_max = np.where(kind == INHIBITORY, 0.0, weight).astype(np.float32)
    return LiquidTopology(shape=shape, n_input=int(n_input), kind=kind, positions=positions, pre=pre, post=post,
                          weight=w, w_min=w_min, w_max=w_max, seed=int(seed))
