"""kdzoo: efficient video classification by knowledge distillation.

A teacher sees all N frames of a video; a student sees only k of them and learns
from the teacher's video embedding and predictions (Bhardwaj, Srinivasan, Khapra,
"Efficient Video Classification Using Fewer Frames", CVPR 2019).

    import kdzoo
    kdzoo.list_models("netvlad*")
    student = kdzoo.load("netvlad_student_k2.audioset")
    teacher, student = kdzoo.load_pair("netvlad", 2, dataset="audioset")
    kdzoo.export("netvlad_student_k2.audioset", "served.keras", encoder="my_vggish.keras")

The names below are imported on first use (``import kdzoo`` alone does not import
TensorFlow, so the ``kdzoo`` command answers ``--help`` at once). kdzoo's Keras classes
are registered for ``keras.saving.load_model`` once any of them is used, or by
``kdzoo.load("model.keras")``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Public name -> the module that defines it.
_ATTRIBUTES = {
    "Distiller": "kdzoo.distillation",
    "build_model": "kdzoo.models",
    "list_models": "kdzoo.zoo",
    "load": "kdzoo.zoo",
    "load_pair": "kdzoo.zoo",
    "model_card": "kdzoo.zoo",
    "WholeVideoClassifier": "kdzoo.whole_video",
}
# `kdzoo.export` is the module kdzoo.export, callable as `kdzoo.export(NAME, PATH, ...)`.
_SUBMODULES = ("data", "distillation", "encoders", "evaluation", "export", "layers", "metrics", "models",
               "profiling", "sampling", "training", "tuning", "whole_video", "zoo")

__all__ = sorted([*_ATTRIBUTES, "export", "layers", "metrics", "sampling"])

if TYPE_CHECKING:
    from kdzoo import export, layers, metrics, sampling
    from kdzoo.distillation import Distiller
    from kdzoo.models import build_model
    from kdzoo.whole_video import WholeVideoClassifier
    from kdzoo.zoo import list_models, load, load_pair, model_card


def __getattr__(name: str) -> Any:
    if name in _ATTRIBUTES:
        value = getattr(importlib.import_module(_ATTRIBUTES[name]), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f"kdzoo.{name}")
    else:
        raise AttributeError(f"module 'kdzoo' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_ATTRIBUTES) | set(_SUBMODULES))
