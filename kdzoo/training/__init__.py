"""Training recipes: a teacher, its distilled students and their no-teacher baselines.

* `kdzoo.training.stages`: one model per resumable run folder (`fit_stage`,
  `train_teacher`, `train_student`, `teacher_distiller`), the config's data (`TrainingData`, `datasets`,
  `resolve_data`) and its distillation arguments (`distill_kwargs`).
* `kdzoo.training.entries`: a whole zoo config trained, evaluated and written as zoo
  entries (`train_zoo_config`, `card_metadata`).
"""

from kdzoo.training.entries import EVAL_SUBSET, card_metadata, train_zoo_config
from kdzoo.training.stages import (
    MONITOR,
    TrainingData,
    datasets,
    distill_kwargs,
    fit_stage,
    keras_model_path,
    learning_rate_schedule,
    load_teacher,
    resolve_data,
    stage_name,
    teacher_distiller,
    train_student,
    train_teacher,
)

__all__ = [
    "EVAL_SUBSET",
    "MONITOR",
    "TrainingData",
    "card_metadata",
    "datasets",
    "distill_kwargs",
    "fit_stage",
    "keras_model_path",
    "learning_rate_schedule",
    "load_teacher",
    "resolve_data",
    "stage_name",
    "teacher_distiller",
    "train_student",
    "train_teacher",
    "train_zoo_config",
]
