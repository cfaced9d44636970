"""Liquid state machines (NALSM: a 3-D LIF liquid with astrocyte-modulated STDP) and their metrics."""
from . import metrics

__all__ = ["metrics"]
