"""Shared checks for the kdzoo.layers tests: random inputs, weights, round trips."""

from __future__ import annotations

import keras
import numpy as np

ATOL = 1e-5
RTOL = 1e-5


def assert_close(actual, expected, atol=ATOL, rtol=RTOL):
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(actual), expected, rtol=rtol, atol=atol
    )


def padded_batch(rng, lengths, num_frames, dim, garbage_scale=10.0):
    """Random frames `(len(lengths), num_frames, dim)` and a bool mask.

    Frames past each video's length are large random garbage, so a layer
    that lets padding leak into its output fails the comparison.
    """
    lengths = np.asarray(lengths)
    mask = np.arange(num_frames)[None, :] < lengths[:, None]
    real = rng.normal(size=(len(lengths), num_frames, dim))
    garbage = garbage_scale * rng.normal(size=real.shape)
    frames = np.where(mask[..., None], real, garbage)
    return frames.astype("float32"), mask


def randomize_weights(layer, rng, scale=0.5):
    """Gives every variable (biases, centres, batch-norm stats included) a
    random value, so that the reference implementations test all of them."""
    for variable in layer.weights:
        shape = tuple(variable.shape)
        if variable.name == "moving_variance":
            value = rng.uniform(0.5, 2.0, size=shape)
        else:
            value = scale * rng.normal(size=shape)
        variable.assign(value.astype(variable.dtype))


BN_EPSILON = 1e-3  # keras.layers.BatchNormalization default


def built_layer(cls, rng, dim, **kwargs):
    """``cls(**kwargs)`` built for ``(None, None, dim)`` frames, every weight random."""
    layer = cls(**kwargs)
    layer.build((None, None, dim))
    randomize_weights(layer, rng)
    return layer


def batch_norm_reference(x, norm, real=None, batch_stats=False):
    """Inference (moving statistics) or training (statistics of the ``real`` rows of ``x``,
    all rows when None) batch norm of ``x`` (..., C) by a Keras ``BatchNormalization``, in numpy."""
    if batch_stats:
        rows = x if real is None else x[real.astype(bool)]
        mean, var = rows.mean(axis=0), rows.var(axis=0)
    else:
        mean, var = norm.moving_mean.numpy(), norm.moving_variance.numpy()
    return (x - mean) / np.sqrt(var + BN_EPSILON) * norm.gamma.numpy() + norm.beta.numpy()


def check_padding_invariance(layer, frames, mask, atol=ATOL):
    """Output for each padded video == output on the truncated video."""
    padded = keras.ops.convert_to_numpy(layer(frames, mask=mask, training=False))
    float_mask = mask.astype("float32")
    assert_close(layer(frames, mask=float_mask, training=False), padded, atol)
    for i, length in enumerate(mask.sum(axis=1)):
        if length == 0:
            continue
        alone = layer(frames[i : i + 1, :length], training=False)
        assert_close(alone[0], padded[i], atol)


def check_all_masked_is_finite(layer, frames):
    """A video without real frames gives finite output, eagerly, in a graph
    (where e.g. cuDNN checks fail instead of falling back) and in training
    mode (batch norm uses batch statistics then). Returns the eager output."""
    import tensorflow as tf

    mask = np.zeros(frames.shape[:2], dtype=bool)
    mask[1:, :2] = True  # other videos in the batch do have frames
    out = keras.ops.convert_to_numpy(layer(frames, mask=mask, training=False))
    assert np.all(np.isfinite(out))
    traced = tf.function(lambda x, m: layer(x, mask=m, training=False))
    assert_close(traced(frames, mask), out)
    out_train = keras.ops.convert_to_numpy(
        layer(frames, mask=mask, training=True)
    )
    assert np.all(np.isfinite(out_train))
    return out


def check_round_trips(layer, inputs, mask, tmp_path, atol=1e-6):
    """get_config / from_config and `.keras` save / load keep the outputs.

    `layer` must already be built. With a `mask`, `inputs` are frames
    `(batch, frames, features)` and the model has a `None` frame axis;
    with `mask=None` the layer is called on `inputs` alone.
    """
    cls = type(layer)
    assert keras.saving.get_registered_name(cls) == f"kdzoo>{cls.__name__}"
    call_kwargs = {} if mask is None else {"mask": mask}
    expected = keras.ops.convert_to_numpy(
        layer(inputs, training=False, **call_kwargs)
    )

    config = layer.get_config()
    clone = cls.from_config(config)
    assert clone.get_config() == config
    clone(inputs, **call_kwargs)
    clone.set_weights(layer.get_weights())
    assert_close(clone(inputs, training=False, **call_kwargs), expected, atol)
    revived = keras.layers.deserialize(keras.layers.serialize(layer))
    assert isinstance(revived, cls) and revived.get_config() == config

    if mask is None:
        x_in = keras.Input(inputs.shape[1:])
        model = keras.Model(x_in, layer(x_in))
        model_inputs = inputs
    else:
        x_in = keras.Input((None, inputs.shape[-1]))
        m_in = keras.Input((None,), dtype="bool")
        model = keras.Model([x_in, m_in], layer(x_in, mask=m_in))
        model_inputs = [inputs, mask]
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded.get_layer(layer.name), cls)
    assert_close(loaded(model_inputs, training=False), expected, atol)
    if mask is not None:
        # Same loaded layer, other frame counts.
        for num_frames in (3, 8):
            x = np.resize(inputs, (inputs.shape[0], num_frames, inputs.shape[-1]))
            m = np.ones((inputs.shape[0], num_frames), dtype=bool)
            assert_close(
                loaded([x, m], training=False),
                layer(x, mask=m, training=False),
                atol,
            )
    return loaded


def check_frame_counts(layer, rng, dim, batch=2):
    """The same instance works on 3 and on 8 frames (also in a tf.function
    with a `None` frame axis)."""
    import tensorflow as tf

    @tf.function(
        input_signature=[
            tf.TensorSpec((None, None, dim), tf.float32),
            tf.TensorSpec((None, None), tf.bool),
        ]
    )
    def traced(x, m):
        return layer(x, mask=m, training=False)

    shapes = []
    for num_frames in (3, 8):
        x = rng.normal(size=(batch, num_frames, dim)).astype("float32")
        m = np.ones((batch, num_frames), dtype=bool)
        eager = keras.ops.convert_to_numpy(layer(x, mask=m, training=False))
        assert_close(traced(x, m), eager)
        shapes.append(eager.shape)
    assert shapes[0] == shapes[1]
    assert tuple(layer.compute_output_shape((batch, None, dim))) == shapes[0]
