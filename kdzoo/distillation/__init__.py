"""Knowledge distillation: the `Distiller` model and the paper's losses."""

from kdzoo.distillation.distiller import MODES, Distiller
from kdzoo.distillation.losses import (
    PREDICTION_LOSSES,
    classification_loss,
    prediction_loss,
    representation_loss,
)

__all__ = [
    "MODES",
    "PREDICTION_LOSSES",
    "Distiller",
    "classification_loss",
    "prediction_loss",
    "representation_loss",
]
