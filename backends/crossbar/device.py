r"""What a simulated crossbar is made of: the resistive cell (:class:`Device`) and the tile around it (:class:`Periphery`).

Every non-ideality has its own field and an "off" value (0, ``None`` or ``False``), so each one can be switched on
alone; :meth:`Device.ideal` and :meth:`Periphery.ideal` switch all off. Presets: :func:`PCM`, :func:`RRAM` (devices)
and ``Periphery()`` (aihwkit's default periphery). Both are frozen dataclasses of plain numbers and strings, so a
checkpoint stores them as they are (:meth:`to_dict` / :meth:`from_dict`).

**Device** (one cell of a differential pair; a weight is ``w = (G+ - G-) * w_max / (g_max - g_min)``):

======================  ========  ===========================  ============================================================
field                   unit      PCM / RRAM preset            meaning (source)
======================  ========  ===========================  ============================================================
``g_min``               µS        0 / 0                        conductance of a cell at weight zero (aihwkit
                                                               ``SinglePairConductanceConverter``)
``g_max``               µS        25 / 40                      conductance of the largest weight (aihwkit PCM default;
                                                               the Wan 2022 fit's reference)
``levels``              --        None / None                  distinct conductance levels in [g_min, g_max] (None:
                                                               continuous; MemTorch ``FiniteConductanceStates``)
``programming_noise``   --        ``"pcm"`` / ``"wan2022"``    sigma(G) of programming (:mod:`.noise`), or None
``programming_scale``   1         1.0                          multiplies sigma(G) (aihwkit ``prog_noise_scale``)
``read_noise``          1         0.0175 / 0.01                std of every read relative to the cell's conductance,
                                                               drawn afresh per sample and time step (aihwkit's PCM
                                                               preset ``w_noise`` 0.0175; its ReRAM models recommend
                                                               about 0.01)
``drift``               --        ``"pcm"`` / None             conductance drift law (:mod:`.noise`), or None
``retention``           --        ``"pcm"`` / ``"wan2022"``    noise gathered since programming (1/f for PCM, the Wan
                                                               2022 1 day / 2 day spread for RRAM), or None
``stuck_at_gmin``       1         0 / 0                        fraction of cells stuck at g_min (MemTorch ``DeviceFaults``
                                                               HRS; 0.025 in its example)
``stuck_at_gmax``       1         0 / 0                        fraction of cells stuck at g_max (LRS)
``gmax_spread``         1         0 / 0                        device-to-device std of each cell's g_max, relative: a cell
                                                               told to reach a fraction f of its range reaches
                                                               ``g_min + f (g_max_cell - g_min)``
``forming_mean``        µS        14.25 / 14.25                conductance of a formed cell when cells are *not*
                                                               programmed but formed at random (random liquids; ESGNN,
                                                               Wang et al., Nat. Mach. Intell. 2023)
``forming_std``         µS        2.46 / 2.46                  its device-to-device spread (same source)
======================  ========  ===========================  ============================================================

**Periphery** (one tile and its converters; outputs are in units of one full-scale cell, ``(G+ - G-)/(g_max - g_min)``
summed over the active rows, the units of aihwkit's ``out_bound`` and ``out_noise``):

======================  ========  ==========  =================================================================
field                   unit      default     meaning (source: aihwkit ``IOParameters`` / ``MappingParameter``)
======================  ========  ==========  =================================================================
``tile_rows``           rows      512         inputs per tile (``max_input_size``); partial sums of row tiles are
                                              digitised separately and added digitally
``tile_columns``        columns   512         outputs per tile (``max_output_size``); each tile has its own scale
``adc_bits``            bits      9           ADC resolution per tile column (``out_res = 1/(2^9 - 2)``), None: ideal
``adc_bound``           1         12.0        ADC range ``[-bound, bound]`` (``out_bound``), or ``"max"``: the largest
                                              current the tile can carry with every row spiking (never clips)
``out_noise``           1         0.06        std of Gaussian noise on every analog output, per read (``out_noise``)
``wire_resistance``     Ω         0.0         wire resistance between neighbouring cells of a column: first-order
                                              IR drop (0.35 Ω in aihwkit's ``ir_drop_g_ratio``), 0: off
``drift_compensation``  --        True        rescale outputs by the read-out drop of the whole array
                                              (``GlobalDriftCompensation``)
``dac_bits``            bits      None        None: inputs must be spikes (0/1, one read, no DAC); an int: analog
                                              inputs, scaled by their absolute maximum per sample and quantised
======================  ========  ==========  =================================================================
"""
from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass

from spikelab.errors import ConfigError

from .noise import DRIFT_MODELS, PROGRAMMING_MODELS, RETENTION_MODELS


def _check_choice(name, value, choices):
    if value is not None and value not in choices:
        raise ConfigError(f"{name} must be None or one of {', '.join(choices)}, got {value!r}")


def _check_number(name, value, low=0.0, high=math.inf, integer=False, optional=False):
    if optional and value is None:
        return
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if integer:
        ok = ok and float(value).is_integer()
    if not ok or not low <= value <= high:
        kind = "an int" if integer else "a number"
        raise ConfigError(f"{name} must be {kind} in [{low}, {high}]{' or None' if optional else ''}, got {value!r}")


class _Plain:
    """Plain-data round trip for checkpoints, and copies with changed fields."""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict):
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ConfigError(f"unknown {cls.__name__} fields {sorted(unknown)}; known: {sorted(known)}")
        return cls(**data)

    def replace(self, **changes):
        """A copy with ``changes`` (each checked like the constructor's arguments)."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = set(changes) - known
        if unknown:
            raise ConfigError(f"unknown {type(self).__name__} fields {sorted(unknown)}; known: {sorted(known)}")
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class Device(_Plain):
    """A resistive cell: conductance range, levels, noise, drift, faults (table in the module docstring).

    Example::

        >>> from spikelab.backends import crossbar
        >>> crossbar.RRAM(levels=32, stuck_at_gmin=0.01).g_max
        40.0
    """

    g_min: float = 0.0
    g_max: float = 25.0
    levels: int | None = None
    programming_noise: str | None = None
    programming_scale: float = 1.0
    read_noise: float = 0.0
    drift: str | None = None
    retention: str | None = None
    stuck_at_gmin: float = 0.0
    stuck_at_gmax: float = 0.0
    gmax_spread: float = 0.0
    forming_mean: float = 14.25
    forming_std: float = 2.46

    def __post_init__(self):
        _check_number("g_min (µS)", self.g_min)
        _check_number("g_max (µS)", self.g_max, low=1e-9)
        if not self.g_min < self.g_max:
            raise ConfigError(f"g_min ({self.g_min} µS) must be below g_max ({self.g_max} µS)")
        _check_number("levels", self.levels, low=2, high=2 ** 24, integer=True, optional=True)
        _check_choice("programming_noise", self.programming_noise, PROGRAMMING_MODELS)
        _check_choice("drift", self.drift, DRIFT_MODELS)
        _check_choice("retention", self.retention, RETENTION_MODELS)
        _check_number("programming_scale", self.programming_scale)
        _check_number("read_noise", self.read_noise, high=10.0)
        _check_number("stuck_at_gmin", self.stuck_at_gmin, high=1.0)
        _check_number("stuck_at_gmax", self.stuck_at_gmax, high=1.0)
        if self.stuck_at_gmin + self.stuck_at_gmax > 1.0:
            raise ConfigError("stuck_at_gmin + stuck_at_gmax must not exceed 1 (they are fractions of all cells)")
        _check_number("gmax_spread", self.gmax_spread, high=1.0)
        _check_number("forming_mean (µS)", self.forming_mean)
        _check_number("forming_std (µS)", self.forming_std)

    @property
    def programs_noisily(self) -> bool:
        return self.programming_noise is not None and self.programming_scale > 0

    @classmethod
    def ideal(cls, g_min: float = 0.0, g_max: float = 25.0) -> "Device":
        """Every device non-ideality off: continuous levels, exact programming, no noise, drift or faults."""
        return cls(g_min=g_min, g_max=g_max)


def PCM(**changes) -> Device:
    """Phase-change memory as aihwkit's ``PCMLikeNoiseModel`` (25 µS, programming noise, drift, 1/f noise)."""
    return Device(g_max=25.0, programming_noise="pcm", read_noise=0.0175, drift="pcm", retention="pcm").replace(**changes)


def RRAM(**changes) -> Device:
    """Resistive RAM as aihwkit's ``ReRamWan2022NoiseModel`` (40 µS, the NeuRRAM fits, 1 % read noise)."""
    return Device(g_max=40.0, programming_noise="wan2022", read_noise=0.01, retention="wan2022").replace(**changes)


PRESETS = {"pcm": PCM, "rram": RRAM, "ideal": Device.ideal}


def preset(name: str, **changes) -> Device:
    """The device preset called ``name`` (``pcm``, ``rram`` or ``ideal``), with ``changes``."""
    if name not in PRESETS:
        raise ConfigError(f"unknown crossbar preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name]().replace(**changes)


@dataclass(frozen=True)
class Periphery(_Plain):
    """A tile and its converters (table in the module docstring); the defaults are aihwkit's periphery.

    Example::

        >>> from spikelab.backends.crossbar import Periphery
        >>> Periphery(adc_bits=6).replace(out_noise=0.0).adc_bits
        6
    """

    tile_rows: int = 512
    tile_columns: int = 512
    adc_bits: int | None = 9
    adc_bound: float | str = 12.0
    out_noise: float = 0.06
    wire_resistance: float = 0.0
    drift_compensation: bool = True
    dac_bits: int | None = None

    def __post_init__(self):
        _check_number("tile_rows", self.tile_rows, low=1, high=2 ** 20, integer=True)
        _check_number("tile_columns", self.tile_columns, low=1, high=2 ** 20, integer=True)
        _check_number("adc_bits", self.adc_bits, low=2, high=24, integer=True, optional=True)
        if self.adc_bound != "max":
            _check_number("adc_bound (or 'max')", self.adc_bound, low=1e-12)
        _check_number("out_noise", self.out_noise, high=100.0)
        _check_number("wire_resistance (Ω)", self.wire_resistance, high=1e6)
        if not isinstance(self.drift_compensation, bool):
            raise ConfigError(f"drift_compensation must be True or False, got {self.drift_compensation!r}")
        _check_number("dac_bits", self.dac_bits, low=1, high=24, integer=True, optional=True)

    @classmethod
    def ideal(cls, tile_rows: int = 512, tile_columns: int = 512) -> "Periphery":
        """Every periphery non-ideality off: no ADC, no output noise, no IR drop, no drift compensation."""
        return cls(tile_rows=tile_rows, tile_columns=tile_columns, adc_bits=None, out_noise=0.0,
                   drift_compensation=False)
