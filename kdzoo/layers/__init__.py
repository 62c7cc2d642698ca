"""Frame aggregators and video-level heads for the teacher and student models."""

from kdzoo.layers.gating import ContextGating
from kdzoo.layers.moe import MixtureOfExperts
from kdzoo.layers.netvlad import NetVLAD
from kdzoo.layers.nextvlad import NeXtVLAD
from kdzoo.layers.pooling import FramePooling
from kdzoo.layers.recurrent import HierarchicalRNN
from kdzoo.layers.recurrent import RecurrentAggregator

__all__ = [
    "ContextGating",
    "FramePooling",
    "HierarchicalRNN",
    "MixtureOfExperts",
    "NeXtVLAD",
    "NetVLAD",
    "RecurrentAggregator",
]
