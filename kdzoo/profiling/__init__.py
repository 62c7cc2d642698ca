"""Inference cost of kdzoo models: analytic FLOPs, parameters, latency, profiler traces,
and end to end with the per-frame encoder (`kdzoo.profiling.encoder`, `kdzoo.profiling.deployment`)."""

from kdzoo.profiling.deployment import card_cost, card_ratios, end_to_end
from kdzoo.profiling.encoder import encoder_cost, encoder_flops
from kdzoo.profiling.flops import flops
from kdzoo.profiling.flops import flops_breakdown
from kdzoo.profiling.flops import flops_split
from kdzoo.profiling.flops import params
from kdzoo.profiling.tf_profiler import tf_profiler_flops
from kdzoo.profiling.latency import compare
from kdzoo.profiling.latency import latency
from kdzoo.profiling.trace import write_trace

__all__ = [
    "card_cost",
    "card_ratios",
    "encoder_cost",
    "encoder_flops",
    "end_to_end",
    "compare",
    "flops",
    "flops_breakdown",
    "flops_split",
    "latency",
    "params",
    "tf_profiler_flops",
    "write_trace",
]
