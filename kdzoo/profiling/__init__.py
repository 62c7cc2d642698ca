"""Inference cost of kdzoo models: analytic FLOPs, parameters, latency, profiler traces."""

from kdzoo.profiling.flops import flops
from kdzoo.profiling.flops import flops_breakdown
from kdzoo.profiling.flops import flops_split
from kdzoo.profiling.flops import params
from kdzoo.profiling.flops import tf_profiler_flops
from kdzoo.profiling.latency import compare
from kdzoo.profiling.latency import latency
from kdzoo.profiling.trace import write_trace

__all__ = [
    "compare",
    "flops",
    "flops_breakdown",
    "flops_split",
    "latency",
    "params",
    "tf_profiler_flops",
    "write_trace",
]
