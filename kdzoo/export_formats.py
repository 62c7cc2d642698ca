"""Serving artefacts on disk: the ``keras``, ``savedmodel`` and ``tflite`` formats.

`write_artefact` writes one artefact for `kdzoo.export.export_model` (a video of
features in) and `kdzoo.end_to_end.export_clip` (a raw clip in) alike: a Keras
model saved as ``.keras``, or a `tf.Module` whose ``serve`` `tf.function` has an
input signature, saved as a SavedModel or converted to TFLite (`write_tflite`).
`run_tflite` runs a ``.tflite`` on one video or clip.

TFLite recipe, the one that works on TF 2.21 for a variable-length input: the
``serve`` concrete function is frozen with ``convert_variables_to_constants_v2``
(converted as they are, the Keras 3 variables become TFLite resource variables that
the interpreter reads uninitialised: NaN), re-wrapped in a ``tf.function`` that
restores the output names, and converted with
``tf.lite.TFLiteConverter.from_concrete_functions([fn], module)`` and
``supported_ops = [TFLITE_BUILTINS]`` (no Flex delegate needed). `kdzoo.sampling`
computes its indices in int32, which TFLite's builtin kernels cover. The ``random``
sampler is refused (its stateless random op has no builtin kernel). The input's frame
axis is dynamic (shape_signature ``[-1, ...]``); the ``serving_default`` signature
runner resizes it per call. Outputs agree with the Keras model to float32 kernel
precision (the tests use atol 1e-5 on predictions and embeddings; differences seen
are ~1e-7).
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf

from kdzoo import _tf_internals

FORMATS = ("keras", "savedmodel", "tflite")

__all__ = ["FORMATS", "check_format", "run_tflite", "write_artefact", "write_tflite"]


def check_format(format: str) -> None:
    if format not in FORMATS:
        raise ValueError(f"Unknown export format {format!r}. Expected one of {FORMATS}.")


def _refuse_random_tflite(sampler: str) -> None:
    if sampler == "random":
        raise ValueError(
            "The 'random' sampler cannot be exported to TFLite (its stateless random op has no TFLite "
            "builtin kernel); export the keras or savedmodel format, or use a deterministic sampler."
        )


def write_artefact(
    path: str | os.PathLike,
    format: str,
    sampler: str,
    *,
    keras_model: Callable[[], keras.Model],
    serving_module: Callable[[], tf.Module],
) -> str:
    """Writes one serving artefact; returns the path written, as a string.

    ``format="keras"``: ``keras_model()`` saved to `path` (which must end in ``.keras``);
    ``"savedmodel"`` / ``"tflite"``: ``serving_module()`` (a `tf.Module` with a ``serve``
    `tf.function`) as a SavedModel folder (``serving_default`` = ``serve``) or a
    ``.tflite`` file. `sampler` is the artefact's: ``random`` cannot go to TFLite.
    """
    check_format(format)
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if format == "keras":
        if path.suffix != ".keras":
            raise ValueError(f"A keras export needs a path ending in '.keras'. Received: {path}")
        keras_model().save(path)
        return str(path)
    if format == "tflite":
        _refuse_random_tflite(sampler)
    module = serving_module()
    if format == "savedmodel":
        tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
        return str(path)
    return write_tflite(module, path)


def write_tflite(module: tf.Module, path: str | os.PathLike) -> str:
    """Converts ``module.serve`` (a `tf.function` with an input signature) to a ``.tflite`` file.

    Variables are frozen into constants first: converted as they are, the Keras 3
    variables stay TFLite resource variables that the interpreter reads uninitialised.
    """
    path = pathlib.Path(path)
    concrete = module.serve.get_concrete_function()
    frozen = _tf_internals.convert_variables_to_constants_v2(concrete, lower_control_flow=False)
    names = sorted(concrete.structured_outputs)  # the order tf.nest flattens the output dict in

    @tf.function(input_signature=concrete.structured_input_signature[0])
    def serve(*inputs):  # puts the output names back into the TFLite signature
        return dict(zip(names, tf.nest.flatten(frozen(*inputs))))

    converter = tf.lite.TFLiteConverter.from_concrete_functions([serve.get_concrete_function()], module)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    flatbuffer = converter.convert()
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(flatbuffer)
    os.replace(tmp, path)
    return str(path)


def run_tflite(path_or_interpreter, video) -> dict[str, np.ndarray]:
    """Runs an exported ``.tflite`` on one video ``(T, D)`` (or one raw clip of an
    end-to-end export: an array, or a dict by encoder input name); returns numpy outputs by name."""
    interpreter = path_or_interpreter
    if not isinstance(interpreter, tf.lite.Interpreter):
        interpreter = tf.lite.Interpreter(model_path=str(path_or_interpreter))
    # The signature runner resizes the dynamic frame axis to this video's length.
    (key,) = interpreter.get_signature_list()
    runner = interpreter.get_signature_runner(key)
    details = runner.get_input_details()
    if not isinstance(video, dict):
        (name,) = details
        video = {name: video}
    inputs = {name: np.asarray(video[name]).astype(details[name]["dtype"]) for name in details}
    for name, value in inputs.items():  # TFLite itself fails deep in its delegate on a wrong shape
        expected = tuple(int(d) for d in details[name]["shape_signature"])
        if value.ndim != len(expected) or any(e not in (-1, d) for e, d in zip(expected, value.shape)):
            shown = tuple("frames" if e == -1 else e for e in expected)
            raise ValueError(f"Expected input {name!r} of shape {shown} for this .tflite model. "
                             f"Received shape {value.shape}")
    return {k: np.asarray(v) for k, v in runner(**inputs).items()}
