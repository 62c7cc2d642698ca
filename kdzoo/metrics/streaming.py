"""Streaming Keras 3 metrics: GAP@k, mAP, Hit@1 and PERR accumulated over batches.

They give the numbers of `kdzoo.metrics.ranking` on the concatenated batches, inside
``model.fit`` / ``model.evaluate`` and under a ``tf.distribute`` strategy.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from kdzoo.metrics.ranking import _check_top_k

__all__ = ["GlobalAveragePrecision", "MeanAveragePrecision", "HitAtOne", "PERR"]

#
# Distribution (tf.distribute, TF backend): Keras creates metric variables with
# synchronization="on_read" and aggregation="sum", i.e. every replica keeps its
# own copy and reading the variable in cross-replica context returns the sum of
# the copies.  The buffer metrics exploit this: the buffers have a leading
# "replica" axis of size ``num_replicas_in_sync`` (taken from the distribution
# strategy in scope when the metric is constructed) and replica ``r`` only
# writes row ``r`` (the other rows stay zero), so the cross-replica sum is the
# union of what every replica saw and ``result()`` is exact.  Inside a replica
# (e.g. the per-step logs of ``model.fit``) ``result()`` only sees that
# replica's rows.


def _tf():
    if keras.backend.backend() != "tensorflow":
        return None
    import tensorflow as tf

    return tf


def _num_replicas_in_scope():
    tf = _tf()
    if tf is None:
        return 1
    return int(tf.distribute.get_strategy().num_replicas_in_sync)


def _replica_id():
    tf = _tf()
    if tf is None:
        return 0
    ctx = tf.distribute.get_replica_context()
    if ctx is None:  # cross-replica context: behave like a single replica
        return 0
    return ctx.replica_id_in_sync_group


def _assert_capacity(new_count, capacity, replica_id, num_replicas, metric_name):
    """Graph-friendly overflow / replica checks (TF backend; no-op elsewhere).

    Under XLA ``Assert`` is dropped, so ``result()`` additionally returns NaN
    after an overflow.
    """
    tf = _tf()
    if tf is None:
        return
    tf.debugging.assert_less_equal(
        tf.cast(new_count, "int64"),
        tf.constant(capacity, "int64"),
        message=(
            f"{metric_name}: capacity={capacity} videos per replica exceeded; "
            "construct the metric with a larger `capacity`"
        ),
    )
    tf.debugging.assert_less(
        tf.cast(replica_id, "int64"),
        tf.constant(num_replicas, "int64"),
        message=(
            f"{metric_name}: was built for {num_replicas} replica(s); construct "
            "it inside the strategy.scope() it is used with"
        ),
    )


def _to_2d(y_true, y_pred, num_classes=None, name="metric"):
    y_pred = ops.convert_to_tensor(y_pred)
    y_true = ops.convert_to_tensor(y_true)
    if len(y_pred.shape) != 2:
        raise ValueError(
            f"{name}: y_pred must have shape (batch, num_classes); got {y_pred.shape}"
        )
    if len(y_true.shape) != 2:
        raise ValueError(
            f"{name}: y_true must have shape (batch, num_classes); got {y_true.shape}"
        )
    for a, b in zip(y_true.shape, y_pred.shape):
        if a is not None and b is not None and a != b:
            raise ValueError(
                f"{name}: y_true shape {y_true.shape} does not match y_pred "
                f"shape {y_pred.shape}"
            )
    if num_classes is not None and y_pred.shape[1] is not None and y_pred.shape[1] != num_classes:
        raise ValueError(
            f"{name}: expected {num_classes} classes, got y_pred shape {y_pred.shape}"
        )
    y_pred = ops.cast(y_pred, "float32")
    y_true = ops.cast(ops.greater(ops.cast(y_true, "float32"), 0.0), "float32")
    return y_true, y_pred


def _no_sample_weight(sample_weight, name):
    if sample_weight is not None:
        raise NotImplementedError(f"{name} does not support sample_weight")


def _filled_mask(counts, length):
    """``[R, length]`` bool, True where the position is < counts[r]."""
    return ops.less(
        ops.expand_dims(ops.arange(length, dtype="int32"), 0),
        ops.expand_dims(counts, 1),
    )


class _BufferMetric(keras.metrics.Metric):
    """Shared bookkeeping: per-replica row buffers plus per-replica counters."""

    def _init_counters(self, capacity):
        if isinstance(capacity, bool) or not isinstance(capacity, (int, np.integer)) or capacity <= 0:
            raise ValueError(f"capacity must be a positive integer; got {capacity!r}")
        self.capacity = int(capacity)
        self._num_replicas = _num_replicas_in_scope()
        # Videos stored per replica (== videos seen while within capacity).
        self.count = self.add_variable(
            shape=(self._num_replicas,), initializer="zeros", dtype="int32", name="count"
        )
        # Videos seen per replica; > capacity means overflow.
        self.seen = self.add_variable(
            shape=(self._num_replicas,), initializer="zeros", dtype="int32", name="seen"
        )

    def _reserve(self, batch_size):
        """Returns (replica_id, offset) and bumps the counters."""
        rid = ops.cast(_replica_id(), "int32")
        seen = ops.take(self.seen, rid)
        new_seen = seen + batch_size
        _assert_capacity(new_seen, self.capacity, rid, self._num_replicas, self.name)
        offset = ops.take(self.count, rid)
        new_count = ops.minimum(new_seen, self.capacity)
        self.seen.assign(ops.slice_update(self.seen, [rid], ops.reshape(new_seen, (1,))))
        self.count.assign(ops.slice_update(self.count, [rid], ops.reshape(new_count, (1,))))
        return rid, offset

    def _overflowed(self):
        return ops.any(ops.greater(ops.convert_to_tensor(self.seen), self.capacity))

    def reset_state(self):
        for v in self.variables:
            v.assign(ops.zeros(v.shape, dtype=v.dtype))


@keras.saving.register_keras_serializable(package="kdzoo")
class GlobalAveragePrecision(_BufferMetric):
    """Streaming, exact GAP@top_k (see :func:`gap` for the definition).

    Every video's ``top_k`` (prediction, is_positive) pairs are stored in
    fixed-size buffers (metric variables of ``capacity * top_k`` floats each,
    per replica) together with the running number of positive labels;
    ``result()`` sorts the stored pairs.  ``capacity`` is the maximum number of
    videos per replica between resets (per epoch / per ``evaluate`` call):
    exceeding it raises ``InvalidArgumentError`` when the batch is added
    (TF backend, eager or graph) and makes ``result()`` NaN (also under XLA,
    where asserts are dropped).  ``result()`` sorts the whole buffer, so its
    cost grows with ``capacity``; size it to the evaluation set.  The result
    equals :func:`gap` on the concatenated batches (to float rounding), also
    under ``tf.distribute.MirroredStrategy`` when the metric is constructed
    inside ``strategy.scope()``: pooled pairs are then ordered replica by
    replica, which can only matter for exactly tied predictions.
    (Exact means the final value read outside the replicas, e.g. what
    ``model.evaluate`` returns and the epoch logs of ``fit``; per-step progress
    values under a strategy are per-replica values averaged by Keras.)

    Unlike :func:`gap`, which clips ``top_k`` to ``num_classes``, the metric
    raises ``ValueError`` when ``num_classes < top_k``.
    ``sample_weight`` is not supported (``NotImplementedError``).
    """

    def __init__(self, top_k=20, capacity=50_000, name="gap", dtype=None, **kwargs):
        super().__init__(name=name, dtype=dtype, **kwargs)
        self.top_k = _check_top_k(top_k)
        self._init_counters(capacity)
        shape = (self._num_replicas, self.capacity * self.top_k)
        self.pred_buffer = self.add_variable(
            shape=shape, initializer="zeros", dtype="float32", name="pred_buffer"
        )
        self.label_buffer = self.add_variable(
            shape=shape, initializer="zeros", dtype="float32", name="label_buffer"
        )
        self.num_positives = self.add_variable(
            shape=(), initializer="zeros", dtype="float64", name="num_positives"
        )

    def update_state(self, y_true, y_pred, sample_weight=None):
        _no_sample_weight(sample_weight, type(self).__name__)
        y_true, y_pred = _to_2d(y_true, y_pred, name=self.name)
        if y_pred.shape[1] is not None and y_pred.shape[1] < self.top_k:
            raise ValueError(
                f"{self.name}: num_classes ({y_pred.shape[1]}) < top_k "
                f"({self.top_k}); use top_k <= num_classes"
            )
        values, indices = ops.top_k(y_pred, self.top_k)
        hits = ops.take_along_axis(y_true, indices, axis=1)
        batch = ops.shape(y_pred)[0]
        rid, offset = self._reserve(batch)
        flat_p = ops.reshape(values, (1, -1))
        flat_y = ops.reshape(hits, (1, -1))
        start = [rid, offset * self.top_k]
        self.pred_buffer.assign(ops.slice_update(self.pred_buffer, start, flat_p))
        self.label_buffer.assign(ops.slice_update(self.label_buffer, start, flat_y))
        self.num_positives.assign(
            self.num_positives + ops.sum(ops.cast(y_true, "float64"))
        )

    def result(self):
        counts = ops.convert_to_tensor(self.count) * self.top_k
        length = self.capacity * self.top_k
        valid = ops.reshape(_filled_mask(counts, length), (-1,))
        preds = ops.reshape(ops.convert_to_tensor(self.pred_buffer), (-1,))
        labels = ops.reshape(ops.convert_to_tensor(self.label_buffer), (-1,))
        key = ops.where(valid, preds, float("-inf"))
        # tf.math.top_k is stable: equal keys keep buffer (== pooled) order.
        _, order = ops.top_k(key, ops.shape(key)[0])
        s_valid = ops.cast(ops.take(valid, order), "float64")
        s_pos = ops.cast(ops.take(labels, order), "float64") * s_valid
        # Precision only counts stored pairs (empty slots are skipped).
        precision = ops.cumsum(s_pos) / ops.maximum(ops.cumsum(s_valid), 1.0)
        num_pos = ops.cast(ops.convert_to_tensor(self.num_positives), "float64")
        value = ops.sum(precision * s_pos) / ops.maximum(num_pos, 1.0)
        value = ops.where(num_pos > 0, value, ops.zeros_like(value))
        value = ops.where(self._overflowed(), float("nan"), value)
        return ops.cast(value, "float32")

    def get_config(self):
        config = super().get_config()
        config.update({"top_k": self.top_k, "capacity": self.capacity})
        return config


@keras.saving.register_keras_serializable(package="kdzoo")
class MeanAveragePrecision(_BufferMetric):
    """Streaming, exact mAP (see :func:`mean_average_precision`).

    Stores all predictions and labels in ``capacity x num_classes`` buffers per
    replica (two float32 buffers: ``8 * capacity * num_classes`` bytes per
    replica, and ``result()`` sorts every class column of the whole buffer, so
    keep ``capacity`` close to the evaluation set size).  ``capacity`` is the
    maximum number of videos per replica between resets; overflow raises
    ``InvalidArgumentError`` at update time (TF backend) and makes ``result()``
    NaN.  Exact under ``tf.distribute.MirroredStrategy`` when constructed inside
    ``strategy.scope()`` (ties are grouped, so replica order is irrelevant).

    ``sample_weight`` is not supported (``NotImplementedError``).
    """

    def __init__(self, num_classes, capacity=10_000, name="map", dtype=None, **kwargs):
        super().__init__(name=name, dtype=dtype, **kwargs)
        if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes <= 0:
            raise ValueError(f"num_classes must be a positive integer; got {num_classes!r}")
        self.num_classes = int(num_classes)
        self._init_counters(capacity)
        shape = (self._num_replicas, self.capacity, self.num_classes)
        self.pred_buffer = self.add_variable(
            shape=shape, initializer="zeros", dtype="float32", name="pred_buffer"
        )
        self.label_buffer = self.add_variable(
            shape=shape, initializer="zeros", dtype="float32", name="label_buffer"
        )

    def update_state(self, y_true, y_pred, sample_weight=None):
        _no_sample_weight(sample_weight, type(self).__name__)
        y_true, y_pred = _to_2d(y_true, y_pred, self.num_classes, name=self.name)
        batch = ops.shape(y_pred)[0]
        rid, offset = self._reserve(batch)
        start = [rid, offset, 0]
        self.pred_buffer.assign(
            ops.slice_update(self.pred_buffer, start, ops.expand_dims(y_pred, 0))
        )
        self.label_buffer.assign(
            ops.slice_update(self.label_buffer, start, ops.expand_dims(y_true, 0))
        )

    def result(self):
        c = self.num_classes
        n = self._num_replicas * self.capacity
        valid = ops.reshape(_filled_mask(ops.convert_to_tensor(self.count), self.capacity), (1, n))
        preds = ops.transpose(ops.reshape(ops.convert_to_tensor(self.pred_buffer), (n, c)))
        labels = ops.transpose(ops.reshape(ops.convert_to_tensor(self.label_buffer), (n, c)))
        valid = ops.broadcast_to(valid, (c, n))
        key = ops.where(valid, preds, float("-inf"))
        s_key, order = ops.top_k(key, n)  # [c, n], descending per class
        s_valid = ops.cast(ops.take_along_axis(valid, order, axis=1), "float64")
        s_pos = ops.cast(ops.take_along_axis(labels, order, axis=1), "float64") * s_valid
        tps = ops.cumsum(s_pos, axis=1)
        seen = ops.cumsum(s_valid, axis=1)
        # Group equal scores: group id per position, unique across classes.
        new_group = ops.concatenate(
            [ops.ones((c, 1), dtype="int32"),
             ops.cast(ops.not_equal(s_key[:, 1:], s_key[:, :-1]), "int32")],
            axis=1,
        )
        group = ops.cumsum(new_group, axis=1) - 1
        seg = ops.reshape(group + ops.expand_dims(ops.arange(c, dtype="int32") * n, 1), (-1,))
        # tps / seen are non-decreasing, so the group max is the value at the
        # group's last element, i.e. at the threshold.  Padding slots add 0.
        tp_at = ops.segment_max(ops.reshape(tps, (-1,)), seg, num_segments=c * n)
        seen_at = ops.segment_max(ops.reshape(seen, (-1,)), seg, num_segments=c * n)
        pos_in = ops.segment_sum(ops.reshape(s_pos, (-1,)), seg, num_segments=c * n)
        # Empty segments: pos_in == 0; guard the max() sentinel values.
        contrib = ops.where(
            pos_in > 0, pos_in * tp_at / ops.maximum(seen_at, 1.0), ops.zeros_like(pos_in)
        )
        npos = tps[:, -1]
        ap = ops.sum(ops.reshape(contrib, (c, n)), axis=1) / ops.maximum(npos, 1.0)
        has_pos = ops.cast(npos > 0, "float64")
        value = ops.sum(ap * has_pos) / ops.maximum(ops.sum(has_pos), 1.0)
        value = ops.where(self._overflowed(), float("nan"), value)
        return ops.cast(value, "float32")

    def get_config(self):
        config = super().get_config()
        config.update({"num_classes": self.num_classes, "capacity": self.capacity})
        return config


@keras.saving.register_keras_serializable(package="kdzoo")
class HitAtOne(keras.metrics.Metric):
    """Streaming Hit@1 (see :func:`hit_at_one`): running hits / videos.

    Exact under ``tf.distribute`` (plain sums).  ``sample_weight`` is not
    supported (``NotImplementedError``).
    """

    def __init__(self, name="hit_at_one", dtype=None, **kwargs):
        super().__init__(name=name, dtype=dtype, **kwargs)
        self.hits = self.add_variable(shape=(), initializer="zeros", dtype="float64", name="hits")
        self.videos = self.add_variable(shape=(), initializer="zeros", dtype="float64", name="videos")

    def update_state(self, y_true, y_pred, sample_weight=None):
        _no_sample_weight(sample_weight, type(self).__name__)
        y_true, y_pred = _to_2d(y_true, y_pred, name=self.name)
        _, top1 = ops.top_k(y_pred, 1)  # lowest index wins ties
        hit = ops.take_along_axis(y_true, top1, axis=1)
        self.hits.assign(self.hits + ops.sum(ops.cast(hit, "float64")))
        self.videos.assign(self.videos + ops.cast(ops.shape(y_pred)[0], "float64"))

    def result(self):
        return ops.cast(ops.divide_no_nan(self.hits, self.videos), "float32")

    def reset_state(self):
        for v in self.variables:
            v.assign(ops.zeros(v.shape, dtype=v.dtype))


@keras.saving.register_keras_serializable(package="kdzoo")
class PERR(keras.metrics.Metric):
    """Streaming PERR (see :func:`perr`): running sum of per-video PERR / videos.

    Videos without labels add 0 and count in the denominator.  Exact under
    ``tf.distribute`` (plain sums).  ``sample_weight`` is not supported
    (``NotImplementedError``).
    """

    def __init__(self, name="perr", dtype=None, **kwargs):
        super().__init__(name=name, dtype=dtype, **kwargs)
        self.total = self.add_variable(shape=(), initializer="zeros", dtype="float64", name="total")
        self.videos = self.add_variable(shape=(), initializer="zeros", dtype="float64", name="videos")

    def update_state(self, y_true, y_pred, sample_weight=None):
        _no_sample_weight(sample_weight, type(self).__name__)
        y_true, y_pred = _to_2d(y_true, y_pred, name=self.name)
        num_classes = ops.shape(y_pred)[1]
        _, order = ops.top_k(y_pred, num_classes)  # stable: lower index first
        sorted_y = ops.take_along_axis(y_true, order, axis=1)
        n = ops.sum(y_true, axis=1)
        ranks = ops.cast(ops.arange(num_classes), "float32")
        in_top_n = ops.cast(ops.less(ops.expand_dims(ranks, 0), ops.expand_dims(n, 1)), "float32")
        hits = ops.sum(sorted_y * in_top_n, axis=1)
        per_video = ops.divide_no_nan(hits, n)
        self.total.assign(self.total + ops.sum(ops.cast(per_video, "float64")))
        self.videos.assign(self.videos + ops.cast(ops.shape(y_pred)[0], "float64"))

    def result(self):
        return ops.cast(ops.divide_no_nan(self.total, self.videos), "float32")

    def reset_state(self):
        for v in self.variables:
            v.assign(ops.zeros(v.shape, dtype=v.dtype))
