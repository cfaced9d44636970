"""Benchmarks behind ``spikelab bench``: spikelab side by side with its peers in one process, reported as ratios.

==============  ==================================================================================================
module          what it measures
==============  ==================================================================================================
``timing``      what all share: interleaved timing in one process, medians, ratios, the machine's load
``lif``         LIF training speed vs snnTorch, SpikingJelly and the matrix-multiply floor; the UltraLIF
                family's fused scans vs their torch loop
``memory``      peak activation memory of one training step, BPTT vs SLTT vs SLTT-K
``delays``      ``DelayedLinear`` vs the DCLS authors' ``Dcls1d``: speed, memory, agreement
``crossbar``    simulated crossbar inference vs the plain layer (and aihwkit when installed)
``gpu``         the Open Neuromorphic GPU setting (Linear + LIF, n up to 16384, T = 500) vs snnTorch, SpikingJelly
``stdp``        the STDP update vs one forward pass of the layer and SpikingJelly's ``STDPLearner``
``liquid``      NALSM feature extraction: samples per second of the plastic liquid (1000 and 8000 neurons)
==============  ==================================================================================================

Each ``run_*`` function returns a JSON-serialisable dict and prints nothing; ``format_*`` turns it into a table.
"""
from .crossbar import format_crossbar_table, run_crossbar_benchmark
from .delays import format_delays_table, run_delays_benchmark
from .gpu import format_gpu_table, run_gpu_benchmark
from .lif import format_lif_table, format_ultra_table, run_lif_benchmark, run_ultra_benchmark
from .liquid import format_liquid_table, run_liquid_benchmark
from .memory import format_memory_table, run_memory_benchmark
from .stdp import format_stdp_table, run_stdp_benchmark

__all__ = ["run_lif_benchmark", "format_lif_table", "run_memory_benchmark", "format_memory_table",
           "run_delays_benchmark", "format_delays_table", "run_crossbar_benchmark", "format_crossbar_table",
           "run_gpu_benchmark", "format_gpu_table", "run_stdp_benchmark", "format_stdp_table",
           "run_ultra_benchmark", "format_ultra_table", "run_liquid_benchmark", "format_liquid_table"]
