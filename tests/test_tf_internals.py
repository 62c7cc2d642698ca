"""The private TensorFlow APIs behind kdzoo._tf_internals: this test fails loudly, naming
the API, when a TensorFlow upgrade removes or changes one of them."""

import pytest
import tensorflow as tf

from kdzoo import _tf_internals

pytestmark = pytest.mark.unit


def test_private_tensorflow_apis_still_work():
    try:
        _tf_internals.check()
    except _tf_internals.TensorFlowInternalsError as error:
        pytest.fail(f"TensorFlow {tf.__version__} broke a private API kdzoo needs: {error}")


def test_einsum_statistic_is_registered_only_inside_the_block():
    @tf.function
    def forward(x, y):
        return tf.einsum("btk,btd->bkd", x, y)

    concrete = forward.get_concrete_function(tf.TensorSpec([1, 5, 3], tf.float32), tf.TensorSpec([1, 5, 7], tf.float32))
    assert _tf_internals.profile_float_ops(concrete) == 0  # TF's own profiler: no Einsum statistic
    with _tf_internals.count_einsum_flops():
        assert _tf_internals.profile_float_ops(concrete) == 2 * 1 * 5 * 3 * 7  # hand count: 2 * b * t * k * d
    assert _tf_internals.profile_float_ops(concrete) == 0


def test_a_missing_api_is_reported_by_name(monkeypatch):
    import tensorflow.python.framework.ops as tf_ops

    monkeypatch.delattr(tf_ops, "RegisterStatistics")
    with pytest.raises(_tf_internals.TensorFlowInternalsError, match=r"RegisterStatistics.*TensorFlow 2\.\d+"):
        with _tf_internals.count_einsum_flops():
            pass
