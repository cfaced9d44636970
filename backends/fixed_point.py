r"""SpiNNaker's arithmetic in numpy: what 16-bit weights and s16.15 state do to a network's spikes and accuracy.

:func:`simulate_fixed_point` is :func:`spikelab.graph.simulate` redone in sPyNNaker's ``IF_curr_delta`` integer
arithmetic (numpy int64, deterministic), following the C sources of sPyNNaker 1!7.4.1
(``neuron_model_lif_impl.h``, ``input_type_delta.h``, ``synapse_types_delta_impl.h``, ``threshold_type_static.h``,
``neuron_impl_standard.h``; ``reference/backends.md`` §3.5). :func:`quantize_weights` gives the float network on the
same 16-bit weight grid, so :func:`evaluate_fixed_point` can split an accuracy change into weight quantisation and
state arithmetic. The weight grid of each population and receptor comes from its ring-buffer shift
(:func:`spikelab.backends.spinnaker.ring_buffer_shifts`).
"""
from __future__ import annotations

import copy

import numpy as np

from spikelab.delays import DelayedLinear
from spikelab.errors import ExportError
from spikelab.decoding import predict
from spikelab.graph import Network, Population, Projection, delay_matrices, simulate
from spikelab.layers import Conv2d, Dropout, Flatten, Linear

from .spinnaker import (FRACTION_BITS, WEIGHT_MASK, quantized_magnitudes, ring_buffer_shifts,
                        weight_scale)


def quantize_weights(network: Network, shifts=None) -> Network:
    """A copy of ``network`` whose weights are those sPyNNaker stores: 16-bit magnitudes on the grid
    ``2^(shift - 15)`` of their post population and receptor (signs kept, wrapped above ``2^(shift + 1)``).

    ``shifts``: ``{population: (exc shift, inh shift)}``, default :func:`ring_buffer_shifts`.
    """
    shifts = ring_buffer_shifts(network) if shifts is None else shifts
    out = copy.deepcopy(network)
    for projection in out.projections:
        weight = projection.weight.copy()
        for index, (receptor, sel) in enumerate(projection.receptor_masks().items()):
            shift = int(shifts[projection.post][index])
            weight[sel] = np.sign(weight[sel]) * quantized_magnitudes(weight[sel], shift) / weight_scale(shift)
        projection.weight = weight
    return out


def _to_s1615(values) -> np.ndarray:
    """Host encoding of an S1615 parameter: ``round(x 2^15)`` (numpy's half-to-even, as ``DataType.S1615``)."""
    return np.round(np.asarray(values, dtype=np.float64) * (1 << FRACTION_BITS)).astype(np.int64)


def _kdivk(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """s16.15 division ``a / b``, rounded to nearest (the chip's ``kdivk`` is approximated)."""
    return np.round(a.astype(np.float64) / b.astype(np.float64) * (1 << FRACTION_BITS)).astype(np.int64)


def _saturate(x: np.ndarray) -> np.ndarray:
    return np.clip(x, -(2 ** 31), 2 ** 31 - 1)


def _wrap(x: np.ndarray) -> np.ndarray:
    """int32 two's complement wrap of a plain (non-saturating) accum add or subtract."""
    return ((x + 2 ** 31) & (2 ** 32 - 1)) - 2 ** 31


def _mul_round(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``MULT_ROUND_NEAREST_ACCUM`` / ``__stdfix_smul_k_round_nearest``: ``(x y + 2^14) >> 15``, saturated."""
    return _saturate((x * y + (1 << (FRACTION_BITS - 1))) >> FRACTION_BITS)


def fixed_point_parameters(population: Population, dt: float) -> dict[str, np.ndarray]:
    """The ``IF_curr_delta`` state of ``population`` as the chip holds it (int64 in units of 2^-15), per neuron.

    ``R = kdivk(tau_m, cm)``, ``e = expk(-kdivk(dt, tau_m))``, ``scale = kdivk(1, dt)`` (the delta input type's
    1 / dt), ``i_offset``, ``v_thresh``, computed from the S1615-encoded PyNN parameters of
    :func:`spikelab.backends.pynn.cell_parameters`.
    """
    from spikelab.backends.pynn import cell_parameters

    params = cell_parameters(population, dt)
    one = np.int64(1 << FRACTION_BITS)
    tau_m, cm, ts = _to_s1615(params["tau_m"]), _to_s1615(params["cm"]), _to_s1615(dt)
    decay_rate = _kdivk(np.broadcast_to(ts, tau_m.shape), tau_m)
    return {
        "R": _kdivk(tau_m, cm),
        "e": _to_s1615(np.exp(-decay_rate / float(one))),
        "scale": _kdivk(np.array([one]), np.array([ts]))[0],
        "i_offset": _to_s1615(params["i_offset"]),
        "v_thresh": _to_s1615(params["v_thresh"]),
        "v_reset": _to_s1615(params["v_reset"]),
        "refractory": np.int64(population.refractory_steps),
    }


def _stored_matrices(projection: Projection, n_pre: int, n_post: int, shifts) -> list[tuple[int, int, np.ndarray]]:
    """``(delay, receptor index, dense (n_post, n_pre) stored-weight matrix as float64 of integers)``."""
    out = []
    for r_index, (receptor, sel) in enumerate(projection.receptor_masks().items()):
        if not sel.any():
            continue
        stored = quantized_magnitudes(projection.weight, int(shifts[projection.post][r_index]))
        out += [(d, r_index, matrix) for d, matrix in delay_matrices(projection, n_pre, n_post, stored, sel)]
    return out


def simulate_fixed_point(network: Network, spikes, shifts=None, return_stats: bool = False):
    """Run ``network`` on binary input spikes ``(T, B, n_input)`` in sPyNNaker's ``IF_curr_delta`` arithmetic.

    Same interface and time alignment as :func:`spikelab.graph.simulate` (``{population: (T, B, n)}``: spikes of
    LIF populations, the readout membrane in membrane units), so the two compare step for step. Per step and
    neuron, as ``neuron_impl_standard.h`` and its parts compute it:

    1. ring buffer: ``rb = min(sum of stored weights of the spikes arriving now, 0xFFFF)`` per receptor; stored
       weights are ``rint(|w| 2^(15 - shift)) & 0xFFFF`` (``shifts``: ``{population: (exc, inh)}``, default
       :func:`ring_buffer_shifts`, the worst case);
    2. input ``rb << shift`` (s16.15), times ``1 / dt`` (delta input type), ``I = exc - inh + i_offset``;
    3. outside the refractory period: ``alpha = R I`` and ``V = alpha - e (alpha - V)``, both products rounded to
       nearest 2^-15 and saturated (``MULT_ROUND_NEAREST_ACCUM``), the adds wrapping as plain accum adds do;
       inside it: the timer counts down, V stays, the input is dropped;
    4. spike when ``V >= v_thresh``; then ``V = v_reset`` (0) and the timer is set to ``refractory_steps``.

    Not emulated (so no bit-exactness with a chip is promised): the chip's own ``expk`` / ``kdivk`` rounding (``e``,
    ``R``, ``1/dt`` are the nearest s16.15 values here), whether GCC's plain accum multiply (``input x 1/dt``)
    truncates or rounds (exact at dt = 1 ms, rounded here), spikes dropped or late on a busy chip, and anything
    but ``IF_curr_delta`` with static synapses.

    Args:
        return_stats: also return ``{population: {"ring_buffer_saturations": n, "alpha_saturations": n}}``.
    """
    spikes = np.asarray(spikes, dtype=np.float64)
    if spikes.ndim < 3:
        raise ExportError(f"spikes must be (T, B, n_input), got shape {spikes.shape}")
    steps, batch = spikes.shape[:2]
    spikes = spikes.reshape(steps, batch, -1)
    if np.any((spikes != 0) & (spikes != 1)):
        raise ExportError("SpiNNaker inputs are spikes: the input must be binary (0/1) per step")
    shifts = ring_buffer_shifts(network) if shifts is None else shifts
    out = {network.input.name: spikes}
    stats = {}
    limit = (2 ** 31) - 1
    for population in network.populations[1:]:
        n = population.size
        params = fixed_point_parameters(population, network.dt)
        shift = np.array(shifts[population.name], dtype=np.int64)
        feed = np.zeros((2, steps, batch, n))       # stored units per receptor, not yet saturated
        recurrent = []
        for projection in network.incoming(population.name):
            if projection.recurrent:
                recurrent += _stored_matrices(projection, n, n, shifts)
                continue
            pre = out[projection.pre]
            for d, r_index, matrix in _stored_matrices(projection, pre.shape[-1], n, shifts):
                if d < steps:
                    feed[r_index, d:] += pre[:steps - d] @ matrix.T    # exact: integers far below 2^53
        v = np.zeros((batch, n), dtype=np.int64)
        timer = np.zeros((batch, n), dtype=np.int64)
        history = np.zeros((steps, batch, n))
        record = np.empty((steps, batch, n))
        rb_saturations = alpha_saturations = 0
        for t in range(steps):
            rb = feed[:, t].copy()
            for d, r_index, matrix in recurrent:
                if t - d >= 0:
                    rb[r_index] += history[t - d] @ matrix.T
            rb = rb.astype(np.int64)
            rb_saturations += int(np.count_nonzero(rb > WEIGHT_MASK))
            rb = np.minimum(rb, WEIGHT_MASK)
            exc = _mul_round(_wrap(rb[0] << shift[0]), params["scale"])     # int32 shift, as in C
            inh = _mul_round(_wrap(rb[1] << shift[1]), params["scale"])
            current = _wrap(_wrap(exc - inh) + params["i_offset"])
            product = current * params["R"]
            alpha_saturations += int(np.count_nonzero(np.abs(product) >> FRACTION_BITS >= limit))
            alpha = _mul_round(current, params["R"])
            updated = _wrap(alpha - _mul_round(params["e"], _wrap(alpha - v)))
            active = timer <= 0
            v = np.where(active, updated, v)
            timer = np.where(active, timer, timer - 1)
            fired = v >= params["v_thresh"]
            v = np.where(fired, params["v_reset"], v)
            timer = np.where(fired, params["refractory"], timer)
            history[t] = fired
            record[t] = v / float(1 << FRACTION_BITS) if population.kind == "readout" else fired
        out[population.name] = record
        stats[population.name] = {"ring_buffer_saturations": rb_saturations, "alpha_saturations": alpha_saturations}
    return (out, stats) if return_stats else out


def spike_mismatch(reference: dict, other: dict, network: Network) -> dict[str, dict]:
    """Per LIF population: reference spikes, spikes of ``other`` and the (step, sample, neuron) entries that
    differ, with ``rate = differing / reference spikes``; per readout: the largest membrane difference."""
    out = {}
    for population in network.populations[1:]:
        a, b = reference[population.name], other[population.name]
        if population.kind == "readout":
            out[population.name] = {"max_abs_difference": float(np.abs(a - b).max(initial=0.0))}
            continue
        diff = int(np.count_nonzero(a != b))
        spikes = int(a.sum())
        out[population.name] = {"reference_spikes": spikes, "spikes": int(b.sum()), "mismatched": diff,
                                "rate": diff / max(spikes, 1)}
    return out


def evaluate_fixed_point(network: Network, spikes, targets, shifts=None, decode: str = "mean_membrane") -> dict:
    """Accuracy under SpiNNaker arithmetic next to float64, on binary inputs ``(T, B, n_input)``.

    Args:
        targets: ``(B,)`` class labels.
        shifts: ``{population: (exc, inh)}`` ring-buffer shifts (default the worst case, :func:`ring_buffer_shifts`).
        decode: how the output population's ``(T, B, n)`` becomes ``(B,)`` classes: the run's loss name
            (:mod:`spikelab.decoding`; default ``"mean_membrane"``).

    Returns:
        ``{"float_accuracy", "fixed_accuracy", "quantized_weights_accuracy", "agreement", "shifts", "mismatch",
        "saturation"}``: ``quantized_weights_accuracy`` is float arithmetic with the 16-bit weights, so the drop
        splits into weight quantisation and state arithmetic; ``agreement`` is the share of samples whose class is
        the same in float and fixed point.
    """
    targets = np.asarray(targets).reshape(-1)
    shifts = ring_buffer_shifts(network) if shifts is None else shifts
    reference = simulate(network, spikes)
    quantised = simulate(quantize_weights(network, shifts), spikes)
    fixed, saturation = simulate_fixed_point(network, spikes, shifts, return_stats=True)
    name = network.output.name
    p_float, p_quant, p_fixed = (predict(o[name], decode) for o in (reference, quantised, fixed))
    return {
        "float_accuracy": float(np.mean(p_float == targets)),
        "quantized_weights_accuracy": float(np.mean(p_quant == targets)),
        "fixed_accuracy": float(np.mean(p_fixed == targets)),
        "agreement": float(np.mean(p_float == p_fixed)),
        "samples": int(len(targets)),
        "shifts": {k: list(v) for k, v in shifts.items()},
        "mismatch": spike_mismatch(reference, fixed, network),
        "saturation": saturation,
    }


def weight_grids(network: Network, model, shifts=None) -> dict[int, tuple[float, float]]:
    """``{layer index: (positive step, negative step)}``: the grid SpiNNaker stores each weight layer of ``model``
    on, for :func:`spikelab.training.weight_grid.put_on_grid` (quantisation-aware fine-tuning).

    A projection's weights are those of one layer when nothing rescales them on the way (only ``Flatten`` and
    ``Dropout`` may sit between the layer and its neuron layer); batch norm or pooling would put the grid on a
    product of parameters, which is refused. The synapses of a max pooling (``"or"`` populations) are no layer's
    weights: they stay at 2, which every grid holds.
    """
    shifts = ring_buffer_shifts(network) if shifts is None else shifts
    grids = {}
    for projection in network.projections:
        if network.population(projection.post).kind == "or":
            continue
        if projection.recurrent:
            raise ExportError(f"layer {projection.layers[0]} (RecurrentLIF): fine-tuning on the weight grid covers "
                              "feed-forward weights only")
        weighted = [i for i in projection.layers if isinstance(model[i], (Linear, Conv2d, DelayedLinear))]
        others = [i for i in projection.layers if i not in weighted and not isinstance(model[i], (Flatten, Dropout))]
        if len(weighted) != 1 or others:
            raise ExportError(f"layers {projection.source}: fine-tuning on the weight grid needs one weight layer per "
                              "projection with nothing rescaling it (no batch norm or pooling after it)")
        exc, inh = shifts[projection.post]
        grids[weighted[0]] = (1.0 / weight_scale(int(exc)), 1.0 / weight_scale(int(inh)))
    return grids
