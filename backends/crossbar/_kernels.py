"""numba kernels of the crossbar read (CPU float32 / float64), used by :mod:`.array`; :func:`.tile.noisy_adc_sum`
is the torch reference they are tested against.

**Random numbers.** The noise of a read is a counter-based stream: 64-bit word ``k`` of the stream with key ``K`` is
SplitMix64's output ``mix(K + k * GOLDEN)`` (Steele, Lea and Flood, OOPSLA 2014; passes BigCrush), so any slice of
the stream is computed directly from its position, in any order, and a read that starts at word ``w0`` draws
exactly the same numbers whatever was read before. Each word gives two 32-bit candidates (low half: normal ``2k``,
high half: normal ``2k + 1``) for a 1024-layer ziggurat (Marsaglia and Tsang, J. Stat. Softw. 5(8), 2000; numpy's
float layout with more layers): 10 bits choose the layer, 1 bit the sign, 21 bits the abscissa. 99.6 % of
candidates land inside their layer's rectangle and are returned at once; the loop that does this has no branch, so
LLVM vectorises it. The rest are finished exactly (the wedge test, or Marsaglia's tail method beyond
``r = 4.0388``) with uniforms from a second SplitMix64 stream keyed by the normal's position. The result is an
exact standard normal sampler on a grid of ``layer width / 2^21`` (about 5e-7 relative), the fast path rounded
to float32. On this 2-core VM it draws a normal in about 1.7 ns, against about 8 ns for ``torch.randn``
(mt19937 and Box-Muller).

**The read.** :func:`noisy_adc_sum` takes the analog partial sums of every row tile and adds, per tile, sample and
column, ``sqrt(var + out_std^2) * z`` (read noise and output noise in one normal: the sum of two independent
normals), digitises with the tile's ADC, scales and sums the tiles: one pass over memory instead of the dozen
tensor operations of the reference. The read-noise variances ``var = x^2 @ V^T`` are accumulated from the rows
whose input is not zero, event by event, as the column currents of a crossbar are: for spike inputs at a few per
cent that is a few per cent of a dense product. Row ``q = r * N + n`` of the ``(R, N, M)`` block uses words
``w0 + q * ceil(M / 2)`` on.
"""
import math

import numba
import numpy as np

_JIT = dict(cache=True, nogil=True, error_model="numpy")
GOLDEN = 0x9E3779B97F4A7C15
SLOW_STREAM = 0xD1B54A32D192ED03   # xor-ed into the key: the stream of the rare slow-path draws
CHUNK = 8192                      # normals drawn per call of the read (32 KB of float32: stays in cache)


def ziggurat_layers(layers: int) -> tuple[float, float]:
    """``(r, area)`` of the ziggurat of ``exp(-x^2 / 2)`` with ``layers`` layers of equal area: the ``r`` at which
    the layers stacked from the base close exactly at the peak (bisection; 128 layers give Marsaglia and Tsang's
    ``r = 3.442619855899``, 256 numpy's ``3.6541528853610088``)."""
    def overshoot(r):
        area = r * math.exp(-0.5 * r * r) + math.sqrt(math.pi / 2) * math.erfc(r / math.sqrt(2))
        x = r
        for _ in range(layers - 2):
            y = area / x + math.exp(-0.5 * x * x)
            if y >= 1:
                return 1.0, area
            x = math.sqrt(-2 * math.log(y))
        return area / x + math.exp(-0.5 * x * x) - 1, area

    low, high = 1.0, 8.0
    for _ in range(100):
        middle = (low + high) / 2
        low, high = (middle, high) if overshoot(middle)[0] > 0 else (low, middle)
    return low, overshoot(low)[1]


def ziggurat_tables(layers: int, bits: int):
    """Marsaglia and Tsang's ziggurat of the unnormalised density ``exp(-x^2 / 2)``: ``ki`` (acceptance
    thresholds of the ``bits``-bit abscissa per layer), ``wi`` (abscissa scale), ``fi`` (density at each layer's
    edge) and the tail's start ``r``. Layer 0 is the base strip with the tail beyond ``r``."""
    r, area = ziggurat_layers(layers)
    scale = 2.0 ** bits
    density = lambda x: math.exp(-0.5 * x * x)
    ki = np.zeros(layers, np.int64)
    wi = np.zeros(layers, np.float64)
    fi = np.zeros(layers, np.float64)
    edge = outer = r
    q = area / density(edge)
    ki[0], ki[1] = int(edge / q * scale), 0
    wi[0], wi[-1] = q / scale, edge / scale
    fi[0], fi[-1] = 1.0, density(edge)
    for i in range(layers - 2, 0, -1):
        edge = math.sqrt(-2.0 * math.log(area / edge + density(edge)))
        ki[i + 1] = int(edge / outer * scale)
        outer = edge
        fi[i] = density(edge)
        wi[i] = edge / scale
    return ki, wi, fi, r


LAYER_BITS = 10                                 # 1024 layers: 99.6 % of candidates take the fast path
ABSCISSA_BITS = 31 - LAYER_BITS                 # a 32-bit candidate: layer, sign, abscissa
LAYER_MASK, ABSCISSA_MASK = (1 << LAYER_BITS) - 1, (1 << ABSCISSA_BITS) - 1
KI, WI, FI, R_TAIL = ziggurat_tables(1 << LAYER_BITS, ABSCISSA_BITS)
KI32, WI32 = KI.astype(np.int32), WI.astype(np.float32)   # the fast path's tables (numba freezes globals)


@numba.njit(inline="always")
def _mix(z):
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@numba.njit(inline="always")
def _word(key, k):
    """Word ``k`` of the stream ``key``."""
    return _mix(key + np.uint64(k) * np.uint64(GOLDEN))


@numba.njit(inline="always")
def _next(state):
    """``(next state, 64-bit word)`` of a SplitMix64 stream."""
    state = state + np.uint64(GOLDEN)
    return state, _mix(state)


@numba.njit(inline="always")
def _uniform(state):
    """``(next state, uniform in [0, 1))`` of a SplitMix64 stream (53 bits)."""
    state, word = _next(state)
    return state, np.float64(word >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@numba.njit(inline="always")
def _slow_normal(key, position):
    """Normal ``position`` of the stream ``key`` whose candidate left its layer's rectangle: the wedge test or the
    tail, then fresh candidates until one is accepted (the ziggurat's exact rejection loop)."""
    bits = np.int64((_word(key, position // 2) >> np.uint64(32 * (position % 2))) & np.uint64(0xFFFFFFFF))
    state = _word(key ^ np.uint64(SLOW_STREAM), position)
    while True:
        layer = bits & LAYER_MASK
        negative = (bits >> LAYER_BITS) & 1
        rabs = (bits >> (LAYER_BITS + 1)) & ABSCISSA_MASK
        x = rabs * WI[layer]
        if negative:
            x = -x
        if rabs < KI[layer]:
            return x
        if layer == 0:   # beyond r: Marsaglia's tail method
            while True:
                state, u1 = _uniform(state)
                state, u2 = _uniform(state)
                xx = -math.log1p(-u1) / R_TAIL
                yy = -math.log1p(-u2)
                if yy + yy > xx * xx:
                    return -(R_TAIL + xx) if negative else R_TAIL + xx
        state, u = _uniform(state)
        if FI[layer] + u * (FI[layer - 1] - FI[layer]) < math.exp(-0.5 * x * x):   # under the density: keep
            return x
        state, word = _next(state)
        bits = np.int64(word & np.uint64(0xFFFFFFFF))


@numba.njit(**_JIT)
def fill_normals(z, key, word0):
    """Fill ``z`` (1-D, of even length) with standard normals ``2 word0, 2 word0 + 1, ...`` of the stream ``key``."""
    nan = z.dtype.type(np.nan)
    for k in range(z.shape[0] // 2):   # selects, no branches: LLVM vectorises it; NaN marks a rejection
        w = _word(key, word0 + k)
        lo = np.int32(w & np.uint64(0xFFFFFFFF))
        hi = np.int32(w >> np.uint64(32))
        l0, l1 = lo & LAYER_MASK, hi & LAYER_MASK
        a0, a1 = (lo >> (LAYER_BITS + 1)) & ABSCISSA_MASK, (hi >> (LAYER_BITS + 1)) & ABSCISSA_MASK
        x0 = np.float32(a0) * WI32[l0] * np.float32(1 - 2 * ((lo >> LAYER_BITS) & 1))
        x1 = np.float32(a1) * WI32[l1] * np.float32(1 - 2 * ((hi >> LAYER_BITS) & 1))
        z[2 * k] = x0 if a0 < KI32[l0] else nan
        z[2 * k + 1] = x1 if a1 < KI32[l1] else nan
    for i in range(z.shape[0]):
        if z[i] != z[i]:
            z[i] = _slow_normal(key, 2 * word0 + i)


@numba.njit(**_JIT)
def noisy_adc_sum(u, squared, variance_t, edges, table, top, noisy, adc, stream, y):
    """``y[n, j] = sum_r scale[r, j] * ADC_r(u[r, n, j] + sqrt(var[r, n, j] + out_std[r, j]^2) z)`` with the
    read-noise variances ``var[r, n] = sum over the rows i of tile r with squared[n, i] != 0 of squared[n, i] *
    variance_t[i]``: only the rows that carry input are added (a few per cent of them for spikes), instead of a
    second dense matrix product.

    Args:
        u: analog partial sums ``(R, N, M)``.
        squared: the squared inputs ``(N, rows)`` (spikes: the spikes).
        variance_t: read-noise variance of every cell, transposed ``(rows, M)``, or shape ``(0, 0)``: none.
        edges: int64 ``(R, 2)``: the rows ``[r0, r1)`` of every row tile.
        table: ``(3, R, M)``: ``out_std``, ``step`` and ``scale`` of every row tile's columns.
        top: the largest ADC code; ``ADC(v) = clip(rint(v / step), -top, top) * step``.
        noisy: add noise (else ``out_std``, the variances and ``stream`` are not used).
        adc: digitise (else ``step`` and ``top`` are not used).
        stream: uint64 ``[key, next word]`` of the random stream; the word moves on by ``R N ceil(M / 2)``.
        y: the result ``(N, M)``.

    Every float array and ``top`` have one dtype, so float32 stays float32.
    """
    count, samples, columns = u.shape
    read_noise = variance_t.shape[0] > 0
    words = (columns + 1) // 2
    key, word0 = stream[0], np.int64(stream[1])
    chunk = max(1, CHUNK // (2 * words))          # rows of normals drawn per call
    z = np.empty((chunk, 2 * words), u.dtype)
    v = np.empty(columns, u.dtype)
    var = np.empty(columns, u.dtype)
    for n0 in range(0, samples, chunk):
        n1 = min(n0 + chunk, samples)
        y[n0:n1] = 0
        for t in range(count):
            if noisy:                              # rows (t, n0) .. (t, n1 - 1) are consecutive in the stream
                fill_normals(z.reshape(-1)[:(n1 - n0) * 2 * words], key, word0 + (t * samples + n0) * words)
            sd, step, scale = table[0, t], table[1, t], table[2, t]
            for n in range(n0, n1):
                un, yn, zn = u[t, n], y[n], z[n - n0]
                if noisy and read_noise:
                    var[:] = 0
                    xn = squared[n]
                    for i in range(edges[t, 0], edges[t, 1]):
                        a = xn[i]
                        if a != 0:
                            vi = variance_t[i]
                            for j in range(columns):
                                var[j] += a * vi[j]
                    for j in range(columns):
                        v[j] = un[j] + np.sqrt(var[j] + sd[j] * sd[j]) * zn[j]
                elif noisy:
                    for j in range(columns):
                        v[j] = un[j] + sd[j] * zn[j]
                else:
                    v[:] = un
                if adc:
                    for j in range(columns):
                        yn[j] += min(max(np.rint(v[j] / step[j]), -top), top) * step[j] * scale[j]
                else:
                    for j in range(columns):
                        yn[j] += v[j] * scale[j]
    if noisy:
        stream[1] = np.uint64(word0 + count * samples * words)
