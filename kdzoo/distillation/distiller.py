"""`Distiller`: a teacher that sees every frame teaches a student that sees k frames.

One batch of padded videos ``({"frames": (B, T, D), "mask": (B, T)}, labels (B, C))``
goes through one step:

    teacher(frames, mask)                    -> E_T, P_T
    student(k frames chosen by the sampler)  -> E_S, P_S
    loss = w_ce * L_CE(labels, P_S) + w_rep * ||E_T - proj(E_S)||^2 + w_pred * d(P_T, P_S)
           [+ w_inter * ||I_T - proj_I(I_S)||^2, the intermediate representations of both models]

``mode="serial"``: the teacher is pretrained and frozen (inference mode, never updated).
``mode="parallel"``: the teacher trains at the same time on its own L_CE; the distillation
losses do not flow back into it unless ``distill_into_teacher=True``.
With ``teacher=None`` the same code path trains the paper's no-teacher baselines
(a student on L_CE alone with any sampler).

One Keras model in one file (its arguments are checked in `kdzoo.distillation.arguments`):
over 400 lines because the Keras custom-``train_step`` contract is one concept here, the
documented constructor, the student's view, the losses, the steps, the metrics and
``get_config`` / ``from_config`` all read the same attributes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import keras
import tensorflow as tf
from keras import ops

from kdzoo import metrics as kd_metrics
from kdzoo import sampling
from kdzoo.data.errors import data_errors
from kdzoo.distillation import losses as kd_losses
from kdzoo.distillation.arguments import MODES, check_arguments  # noqa: F401 (MODES: public here)
from kdzoo.distillation.mixup import check_mixup_alpha, mixup_batch
from kdzoo.models import embedding_size

RANKING_METRICS = (kd_metrics.GlobalAveragePrecision, kd_metrics.MeanAveragePrecision)


@keras.saving.register_keras_serializable(package="kdzoo")
class Distiller(keras.Model):
    """Trains a k-frame student from an all-frame teacher with `fit`.

    Args:
        teacher: a kdzoo model (see `kdzoo.models.build_model`) that sees all frames,
            or None to train the student on the labels alone.
        student: a kdzoo model that sees `k` frames.
        k: the number of frames the student sees per video; None shows the student
            every frame (how teachers themselves are trained: alone, with teacher=None,
            or from a stronger model such as a `kdzoo.models.build_ensemble`).
        sampler: how the k frames are chosen at evaluation and prediction
            (`kdzoo.sampling.SAMPLERS`).
        train_sampler: how they are chosen in training steps; None means `sampler`
            (e.g. ``"random"``: a fresh k-subset each step, evaluated ``"uniform"``).
        train_k: optional ``(low, high)``: each training step draws its own k
            uniformly from ``low..high`` (inclusive) for an elastic student built with
            ``num_frames=None``; evaluation and prediction still use ``k``. With
            ``k=None`` (an all-frame model, such as a teacher trained alone) it is
            frame-subset augmentation: each step shows the model its drawn number of
            frames (``train_sampler``), padded back to the batch's frame axis and masked,
            so a model built for a fixed ``num_frames`` trains on fewer frames and is
            evaluated on all of them.
        mode: ``"serial"`` (frozen teacher) or ``"parallel"`` (joint training).
        ce_weight: weight of the student's L_CE.
        representation_weight: weight of L_rep.
        prediction_weight: weight of L_pred.
        prediction_loss: ``"bce"`` or ``"mse"`` (see `kdzoo.distillation.losses`).
        intermediate_weight: weight of L_inter, the squared L2 distance between the
            teacher's and the student's ``"intermediate"`` outputs (both models built
            with ``"intermediate": True``; a student's of another width goes through a
            learned linear layer, ``intermediate_projection``, as FitNets' regressor);
            0 turns it off.
        teacher_ce_weight: weight of the teacher's own L_CE in parallel mode.
        distill_into_teacher: in parallel mode, let L_rep and L_pred update the teacher.
        metrics: names of the quality metrics tracked for the student and the teacher
            (``"gap"``, ``"hit_at_one"``, ``"perr"``, ``"map"``). GAP and mAP are
            reported by `evaluate` and on validation data, not on training batches.
        metric_capacity: most videos one epoch of GAP/mAP metrics can hold.
        seed: seed of the random sampler: training step s draws with ``(seed, s)``,
            evaluation with ``(seed, 0)`` (the `kdzoo.sampling` seed rule).
        mixup_alpha: > 0 mixes each training batch (`kdzoo.distillation.mixup.mixup_batch`:
            frames, masks and labels, per-video weights from Beta(alpha, alpha)) before
            both models see it; 0 turns it off. Validation and evaluation are never mixed.

    Call arguments (`predict`, `__call__`):
        inputs: ``{"frames": (batch, frames, features), "mask": (batch, frames)}``;
            may also hold the student's view as ``"student_frames"``/``"student_mask"``.

    Returns the student's ``{"embedding", "predictions"}`` (``predict(..., role="teacher")``
    gives the teacher's).
    """

    def __init__(
        self,
        teacher: keras.Model | None,
        student: keras.Model,
        k: int | None,
        sampler: str = "uniform",
        train_sampler: str | None = None,
        train_k: Sequence[int] | None = None,
        mode: str = "serial",
        ce_weight: float = 1.0,
        representation_weight: float = 0.01,
        prediction_weight: float = 1.0,
        prediction_loss: str = "bce",
        intermediate_weight: float = 0.0,
        teacher_ce_weight: float = 1.0,
        distill_into_teacher: bool = False,
        metrics: Sequence[str] = ("gap", "hit_at_one"),
        metric_capacity: int = 100_000,
        seed: int = 0,
        mixup_alpha: float = 0.0,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        train_k, feature_size = check_arguments(
            teacher, student, k, sampler, train_sampler, train_k, mode, prediction_loss, intermediate_weight, metrics
        )
        if teacher is not None:
            teacher.trainable = mode == "parallel"
        self.teacher = teacher
        self.student = student
        self.k = k
        self.sampler = sampler
        self.train_sampler = train_sampler or sampler
        self.train_k = train_k
        self.mode = mode
        self.ce_weight = float(ce_weight)
        self.representation_weight = float(representation_weight)
        self.prediction_weight = float(prediction_weight)
        self.prediction_loss = prediction_loss
        self.intermediate_weight = float(intermediate_weight)
        self.teacher_ce_weight = float(teacher_ce_weight)
        self.distill_into_teacher = bool(distill_into_teacher)
        self.metric_names = tuple(metrics)
        self.metric_capacity = int(metric_capacity)
        self.seed = int(seed)
        self.mixup_alpha = check_mixup_alpha(mixup_alpha)
        self.feature_size = feature_size

        self.projection = None
        if teacher is not None and embedding_size(teacher) != embedding_size(student):
            self.projection = keras.layers.Dense(embedding_size(teacher), dtype="float32", name="projection")
        self.intermediate_projection = None
        if teacher is not None and self.intermediate_weight > 0:
            widths = [int(m.output["intermediate"].shape[-1]) for m in (teacher, student)]
            if widths[0] != widths[1]:
                self.intermediate_projection = keras.layers.Dense(
                    widths[0], dtype="float32", name="intermediate_projection")

        loss_names = ["loss", "ce_loss"]
        if teacher is not None:
            loss_names += ["rep_loss", "pred_loss"]
            if self.intermediate_weight > 0:
                loss_names.append("inter_loss")
            if mode == "parallel":
                loss_names.append("teacher_ce_loss")
        self.loss_trackers = {n: keras.metrics.Mean(name=n) for n in loss_names}
        num_classes = int(student.get_layer("predictions").output.shape[-1])
        roles = ("student", "teacher") if teacher is not None else ("student",)
        self.quality_metrics = {
            role: [self._make_metric(m, f"{role}_{m}", num_classes) for m in self.metric_names]
            for role in roles
        }
        # Every shape is known now (teacher and student are built), so the Distiller builds
        # itself through `build`, as Keras' BackupAndRestore wants before `fit`.
        self.build()

    def build(self, input_shape: Any = None) -> None:
        """Creates the projections' weights: student embedding (intermediate) -> the teacher's width.

        The teacher and the student come built; nothing here depends on `input_shape`.
        """
        if self.projection is not None and not self.projection.built:
            self.projection.build((None, embedding_size(self.student)))
        if self.intermediate_projection is not None and not self.intermediate_projection.built:
            self.intermediate_projection.build((None, int(self.student.output["intermediate"].shape[-1])))

    def _make_metric(self, name: str, full_name: str, num_classes: int) -> keras.metrics.Metric:
        if name == "gap":
            return kd_metrics.GlobalAveragePrecision(
                top_k=min(20, num_classes), capacity=self.metric_capacity, name=full_name
            )
        if name == "map":
            return kd_metrics.MeanAveragePrecision(num_classes, capacity=self.metric_capacity, name=full_name)
        if name == "perr":
            return kd_metrics.PERR(name=full_name)
        return kd_metrics.HitAtOne(name=full_name)

    def compile(self, optimizer="rmsprop", loss=None, loss_weights=None, metrics=None, weighted_metrics=None,
                **kwargs):
        """`keras.Model.compile` with an optimizer (and Keras' run options: ``jit_compile``,
        ``steps_per_execution``, ...).

        The Distiller's losses come from its ``*_weight`` arguments and its metrics from
        ``metrics=`` in the constructor, so ``loss``, ``loss_weights``, ``metrics`` and
        ``weighted_metrics`` here are refused with a ValueError rather than ignored.
        """
        given = {
            name: value
            for name, value in (("loss", loss), ("loss_weights", loss_weights), ("metrics", metrics),
                                ("weighted_metrics", weighted_metrics))
            if value
        }
        if given:
            raise ValueError(
                f"Distiller.compile() takes an optimizer only; it refuses {sorted(given)}: the losses are set by "
                "ce_weight, representation_weight and prediction_weight, the metrics by metrics=(...) in the "
                f"Distiller's constructor. Received: {given}"
            )
        super().compile(optimizer=optimizer, **kwargs)

    def compile_from_config(self, config: dict[str, Any]) -> None:
        """Recompiles a loaded Distiller with its saved optimizer (see `compile`)."""
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)
        if self.built:
            self.optimizer.build(self.trainable_variables)

    @property
    def metrics(self) -> list[keras.metrics.Metric]:
        out = list(self.loss_trackers.values())
        for role_metrics in self.quality_metrics.values():
            out.extend(role_metrics)
        return out

    # ----------------------------------------------------------------- inputs
    def _unpack(self, inputs: Any) -> tuple[Any, Any]:
        if isinstance(inputs, Mapping):
            if "frames" not in inputs:
                raise ValueError(f"Expected inputs with a 'frames' key. Received keys: {sorted(inputs)}")
            frames = inputs["frames"]
            mask = inputs.get("mask")
        else:
            frames, mask = inputs, None
        frames = ops.convert_to_tensor(frames)
        if len(frames.shape) != 3 or frames.shape[-1] != self.feature_size:
            raise ValueError(
                f"Expected frames of shape (batch, frames, {self.feature_size}). Received: {tuple(frames.shape)}"
            )
        # k=None: every frame, or a padded subset of at most the frame axis (`_padded_subset`)
        largest = None if self.k is None else max(self.k, self.train_k[1] if self.train_k else 0)
        if frames.shape[1] is not None and self.teacher is not None and largest and largest > frames.shape[1]:
            raise ValueError(
                f"The student's k={largest} exceeds the {frames.shape[1]} frames in the batch."
            )
        frames = ops.cast(frames, "float32")
        if mask is None:
            mask = ops.ones(ops.shape(frames)[:2], dtype="float32")
        return frames, ops.cast(mask, "float32")

    def student_view(self, inputs: Any, training: bool = False) -> dict[str, Any]:
        """The student's input: k frames per video chosen from its true length.

        Returns ``{"frames": (batch, k, features), "mask": (batch, k)}``.
        """
        return self._student_view(inputs, *self._unpack(inputs), training=training)

    def _student_view(self, inputs: Any, frames, mask, training: bool) -> dict[str, Any]:
        if isinstance(inputs, Mapping) and "student_frames" in inputs:
            return {
                "frames": ops.cast(inputs["student_frames"], "float32"),
                "mask": ops.cast(inputs["student_mask"], "float32"),
            }
        sampler = self.train_sampler if training else self.sampler
        step = None
        if training and getattr(self, "optimizer", None) is not None:
            step = self.optimizer.iterations
        k = self.k
        if training and self.train_k is not None:
            k = self.draw_k(step)
            if self.k is None:
                return self._padded_subset(frames, mask, k, sampler, step)
        k_frames, k_mask = sampling.sample_frames(frames, mask, k, sampler, seed=self.seed, step=step)
        return {"frames": k_frames, "mask": k_mask}

    def _padded_subset(self, frames, mask, k, sampler: str, step) -> dict[str, Any]:
        """k frames per video, zero-padded and masked back to ``frames``' shape (a video of
        at most k frames keeps all of them): frame-subset augmentation for an all-frame model."""
        num_frames = tf.shape(frames)[1]
        k = tf.minimum(k, num_frames)
        k_frames, k_mask = sampling.sample_frames(frames, mask, k, sampler, seed=self.seed, step=step)
        pad = num_frames - k
        k_frames = tf.pad(k_frames, [[0, 0], [0, pad], [0, 0]])
        k_mask = tf.pad(k_mask, [[0, 0], [0, pad]])
        short = tf.reduce_sum(mask, axis=1) <= tf.cast(k, mask.dtype)  # (batch,)
        k_frames = tf.where(short[:, None, None], frames, k_frames)
        k_mask = tf.where(short[:, None], mask, k_mask)
        return {"frames": tf.ensure_shape(k_frames, frames.shape), "mask": tf.ensure_shape(k_mask, mask.shape)}

    def draw_k(self, step=None) -> tf.Tensor:
        """The k of one elastic training step: uniform in ``train_k``, keyed by (seed, step).

        The draw uses a seed independent of the frame sampler's (its seed + 1).
        """
        low, high = self.train_k
        seed = sampling.seed_pair(self.seed + 1, None if step is None else tf.cast(step, tf.int64))
        return tf.random.stateless_uniform([], seed=seed, minval=low, maxval=high + 1, dtype=tf.int32)

    # ----------------------------------------------------------------- forward
    def call(self, inputs: Any, training: bool = False) -> dict[str, Any]:
        return self.student(self.student_view(inputs, training=training), training=training)

    def compute_losses(self, inputs: Any, labels: Any, training: bool = False):
        """All losses of one batch, plus both models' outputs: the per-batch step of
        `train_step` and `test_step`, also callable from a custom ``tf.distribute`` loop.

        Args:
            inputs: ``{"frames": (batch, frames, features), "mask": (batch, frames)}``.
            labels: ``(batch, num_classes)`` multi-hot.
            training: a training step (dropout on, the training-time sampler, the step's seed).

        Returns ``(losses, student_outputs, teacher_outputs)`` where ``losses`` maps the
        names in ``loss_trackers`` to scalars (means over this batch; ``"loss"`` is the
        weighted total) and ``teacher_outputs`` is None without a teacher.
        """
        labels = ops.cast(labels, "float32")
        frames, mask = self._unpack(inputs)
        # Through `__call__` (the student on its view), as the Keras guide's train_step does.
        student_out = self(inputs, training=training)
        ce = kd_losses.classification_loss(labels, student_out["predictions"])
        losses = {"ce_loss": ce}
        total = self.ce_weight * ce
        teacher_out = None
        if self.teacher is not None:
            teacher_training = training and self.mode == "parallel"
            teacher_out = self.teacher({"frames": frames, "mask": mask}, training=teacher_training)
            e_t, p_t = teacher_out["embedding"], teacher_out["predictions"]
            if not (self.mode == "parallel" and self.distill_into_teacher):
                e_t, p_t = ops.stop_gradient(e_t), ops.stop_gradient(p_t)
            e_s = student_out["embedding"]
            if self.projection is not None:
                e_s = self.projection(e_s)
            losses["rep_loss"] = kd_losses.representation_loss(e_t, e_s)
            losses["pred_loss"] = kd_losses.prediction_loss(p_t, student_out["predictions"], self.prediction_loss)
            total = (
                total
                + self.representation_weight * losses["rep_loss"]
                + self.prediction_weight * losses["pred_loss"]
            )
            if self.intermediate_weight > 0:
                i_t = teacher_out["intermediate"]
                if not (self.mode == "parallel" and self.distill_into_teacher):
                    i_t = ops.stop_gradient(i_t)
                i_s = student_out["intermediate"]
                if self.intermediate_projection is not None:
                    i_s = self.intermediate_projection(i_s)
                losses["inter_loss"] = kd_losses.representation_loss(i_t, i_s)
                total = total + self.intermediate_weight * losses["inter_loss"]
            if self.mode == "parallel":
                losses["teacher_ce_loss"] = kd_losses.classification_loss(labels, teacher_out["predictions"])
                total = total + self.teacher_ce_weight * losses["teacher_ce_loss"]
        losses["loss"] = total
        return losses, student_out, teacher_out

    def update_metrics(self, losses, labels, student_out, teacher_out, ranking: bool) -> dict[str, Any]:
        """Updates the trackers with one batch (`compute_losses`' results); returns the logs.

        Ranking metrics (GAP, mAP) buffer every prediction of the epoch and sort them
        to report: they run in `evaluate` and validation only (``ranking=True``), so a
        training step stays cheap; losses, Hit@1 and PERR stream in every step.
        """
        for name, tracker in self.loss_trackers.items():
            tracker.update_state(losses[name])
        logs = {name: tracker.result() for name, tracker in self.loss_trackers.items()}
        outputs = {"student": student_out, "teacher": teacher_out}
        for role, role_metrics in self.quality_metrics.items():
            for metric in role_metrics:
                if ranking or not isinstance(metric, RANKING_METRICS):
                    metric.update_state(labels, outputs[role]["predictions"])
                    logs[metric.name] = metric.result()
        return logs

    # ----------------------------------------------------------------- steps
    @staticmethod
    def _unpack_batch(data):
        inputs, labels, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        if sample_weight is not None:
            raise ValueError(
                "The Distiller does not support sample_weight or class_weight: its losses and metrics weigh "
                "every video alike. Pass batches (inputs, labels) without weights."
            )
        if labels is None:
            raise ValueError("Expected batches (inputs, labels); the Distiller's losses need the labels.")
        return inputs, labels

    def train_step(self, data):
        inputs, labels = self._unpack_batch(data)
        if self.mixup_alpha > 0:
            inputs = inputs if isinstance(inputs, Mapping) else {"frames": inputs}
            inputs, labels = mixup_batch(inputs, labels, self.mixup_alpha, self.seed, self.optimizer.iterations)
        with tf.GradientTape() as tape:
            losses, student_out, teacher_out = self.compute_losses(inputs, labels, training=True)
            # Per-replica mean: gradients are summed across replicas by the optimizer.
            replicas = tf.distribute.get_strategy().num_replicas_in_sync
            scaled = self.optimizer.scale_loss(losses["loss"] / replicas)
        variables = self.trainable_variables
        gradients = tape.gradient(scaled, variables)
        self.optimizer.apply_gradients(
            [(g, v) for g, v in zip(gradients, variables) if g is not None]
        )
        return self.update_metrics(losses, ops.cast(labels, "float32"), student_out, teacher_out, ranking=False)

    def test_step(self, data):
        inputs, labels = self._unpack_batch(data)
        losses, student_out, teacher_out = self.compute_losses(inputs, labels, training=False)
        return self.update_metrics(losses, ops.cast(labels, "float32"), student_out, teacher_out, ranking=True)

    def predict(self, x, *args, role: str = "student", **kwargs):
        """Predicts with the student (default) or, with ``role="teacher"``, the teacher.

        The teacher predicts through its own view of the inputs (every real frame); the
        Distiller's state is left as it is.
        """
        if role not in ("student", "teacher"):
            raise ValueError(f"Unknown role {role!r}. Expected 'student' or 'teacher'.")
        if role == "student":
            with data_errors([x]):
                return super().predict(x, *args, **kwargs)
        if self.teacher is None:
            raise ValueError("This Distiller has no teacher; predict with role='student'.")
        with data_errors([x]):
            return _TeacherView(self).predict(x, *args, **kwargs)

    def fit(self, x=None, *args, **kwargs):
        """`keras.Model.fit`; a bad record in a `kdzoo.data.make_dataset` dataset (``x`` or
        ``validation_data``) raises `kdzoo.data.DataError` naming its file and record."""
        with data_errors([x, kwargs.get("validation_data")]):
            return super().fit(x, *args, **kwargs)

    def evaluate(self, x=None, *args, **kwargs):
        """`keras.Model.evaluate`, with `kdzoo.data.DataError` for bad records (as `fit`)."""
        with data_errors([x]):
            return super().evaluate(x, *args, **kwargs)

    # ----------------------------------------------------------------- config
    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "teacher": None if self.teacher is None else keras.saving.serialize_keras_object(self.teacher),
                "student": keras.saving.serialize_keras_object(self.student),
                "k": self.k,
                "sampler": self.sampler,
                "train_sampler": self.train_sampler,
                "train_k": None if self.train_k is None else list(self.train_k),
                "mode": self.mode,
                "ce_weight": self.ce_weight,
                "representation_weight": self.representation_weight,
                "prediction_weight": self.prediction_weight,
                "prediction_loss": self.prediction_loss,
                "intermediate_weight": self.intermediate_weight,
                "teacher_ce_weight": self.teacher_ce_weight,
                "distill_into_teacher": self.distill_into_teacher,
                "metrics": list(self.metric_names),
                "metric_capacity": self.metric_capacity,
                "seed": self.seed,
                "mixup_alpha": self.mixup_alpha,
            }
        )
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "Distiller":
        config = dict(config)
        teacher = config.pop("teacher")
        config["teacher"] = None if teacher is None else keras.saving.deserialize_keras_object(teacher)
        config["student"] = keras.saving.deserialize_keras_object(config.pop("student"))
        return cls(**config)


class _TeacherView(keras.Model):
    """The teacher of a `Distiller` applied to the Distiller's inputs (for ``predict(role="teacher")``)."""

    def __init__(self, distiller: Distiller):
        super().__init__(name=f"{distiller.name}_teacher")
        self.distiller = distiller

    def call(self, inputs: Any, training: bool = False) -> dict[str, Any]:
        frames, mask = self.distiller._unpack(inputs)
        return self.distiller.teacher({"frames": frames, "mask": mask}, training=False)
