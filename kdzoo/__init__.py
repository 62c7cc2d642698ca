"""kdzoo: efficient video classification by knowledge distillation.

A teacher sees all N frames of a video; a student sees only k of them and learns
from the teacher's video embedding and predictions (Bhardwaj, Srinivasan, Khapra,
"Efficient Video Classification Using Fewer Frames", CVPR 2019).

    import kdzoo
    kdzoo.list_models("netvlad*")
    student = kdzoo.load("netvlad_student_k2.audioset")
    teacher, student = kdzoo.load_pair("netvlad", 2, dataset="audioset")
    kdzoo.export("netvlad_student_k2.audioset", "served.keras", encoder="my_vggish.keras")
"""

from kdzoo import export, layers, metrics, sampling
from kdzoo.distillation import Distiller
from kdzoo.models import build_model
from kdzoo.zoo import list_models, load, load_pair, model_card

__version__ = "0.1.0"

__all__ = [
    "Distiller",
    "build_model",
    "export",
    "layers",
    "list_models",
    "load",
    "load_pair",
    "metrics",
    "model_card",
    "sampling",
]
