"""Per-frame encoders: what turns raw audio or video frames into the features kdzoo reads.

VGGish (AudioSet, YouTube-8M audio) and InceptionV3 + PCA (YouTube-8M rgb) as Keras
architectures, for the end-to-end cost model (`kdzoo.profiling.encoder`) and the
end-to-end serving exports. No encoder weights ship with kdzoo: the built-in encoders
have random weights and give the architecture's cost, not its features.
"""

from kdzoo.encoders.inception import build_inception_v3
from kdzoo.encoders.layouts import DATASET_ENCODERS, ENCODERS, NO_WEIGHTS_NOTE, build_yt8m_encoder, get_encoder
from kdzoo.encoders.vggish import build_vggish

__all__ = [
    "DATASET_ENCODERS",
    "ENCODERS",
    "NO_WEIGHTS_NOTE",
    "build_inception_v3",
    "build_vggish",
    "build_yt8m_encoder",
    "get_encoder",
]
