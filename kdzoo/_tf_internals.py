"""The private TensorFlow APIs kdzoo depends on, in one place.

TensorFlow has no public replacement for these, so a TensorFlow upgrade can break them.
Every use in kdzoo goes through this module, and `check` (run by
``tests/test_tf_internals.py``) fails loudly, naming the API and the TensorFlow
version, when one of them is gone or behaves differently:

``tensorflow.python.framework.convert_to_constants.convert_variables_to_constants_v2``
    freezes a concrete function's variables into constants. The TFLite export needs it
    (converted as they are, Keras 3 variables become TFLite resource variables that the
    interpreter reads uninitialised) and so does the graph profiler (which cannot see
    variables, nor functional ``While`` loops, which freezing lowers).
``tensorflow.python.framework.ops.RegisterStatistics`` / ``OpStats`` / ``_stats_registry``
    register a FLOP statistic for ``Einsum``, which TF's profiler counts as 0, for the
    duration of a ``with count_einsum_flops():`` block (TF has no way to unregister, so
    the private registry dict is edited back).

The graph profiler itself (``tf.compat.v1.profiler``) is public compat API; its recipe
lives here too (`profile_float_ops`) so that the two profiling call sites share it.
"""

from __future__ import annotations

import contextlib
import math

import tensorflow as tf

_EINSUM_KEY = "Einsum,flops"


class TensorFlowInternalsError(RuntimeError):
    """A private TensorFlow API kdzoo relies on is missing or changed."""


def _broken(api: str, error: BaseException) -> TensorFlowInternalsError:
    return TensorFlowInternalsError(
        f"kdzoo relies on the private TensorFlow API {api}, which TensorFlow {tf.__version__} "
        f"no longer provides as expected ({type(error).__name__}: {error}). Install the TensorFlow "
        "version in setup.cfg, or update kdzoo/_tf_internals.py for this one."
    )


def _private_ops():
    try:
        from tensorflow.python.framework import ops as tf_ops

        tf_ops.RegisterStatistics, tf_ops.OpStats, tf_ops._stats_registry._registry  # noqa: B018
    except (ImportError, AttributeError) as error:
        raise _broken("tensorflow.python.framework.ops (RegisterStatistics, OpStats, _stats_registry)", error)
    return tf_ops


def convert_variables_to_constants_v2(concrete_function, lower_control_flow: bool = True):
    """`tensorflow.python.framework.convert_to_constants.convert_variables_to_constants_v2`."""
    try:
        from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2 as convert
    except ImportError as error:
        raise _broken("tensorflow.python.framework.convert_to_constants.convert_variables_to_constants_v2", error)
    return convert(concrete_function, lower_control_flow=lower_control_flow)


def profile_float_ops(concrete_function) -> int:
    """FLOPs TF's graph profiler counts in a frozen copy of `concrete_function`.

    Recipe (TF 2.21): freeze the variables (`convert_variables_to_constants_v2`, which
    also lowers functional ``While`` loops into v1 control flow the profiler sees), then
    ``tf.compat.v1.profiler.profile(graph, cmd="scope", options=float_operation())``
    and read ``total_float_ops``.
    """
    graph = convert_variables_to_constants_v2(concrete_function).graph
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    return int(tf.compat.v1.profiler.profile(graph=graph, cmd="scope", options=options).total_float_ops)


def _einsum_flops(graph, node):
    """FLOP statistic for TF's ``Einsum`` op: 2 * (product of all index sizes)."""
    tf_ops = _private_ops()
    inputs_part, output_part = node.attr["equation"].s.decode().split("->")
    sizes: dict[str, int] = {}
    for term, name in zip(inputs_part.split(","), node.input):
        shape = graph.get_tensor_by_name(name if ":" in name else name + ":0").shape
        if not shape.is_fully_defined():
            raise ValueError("incomplete shape")
        term = term.replace("...", "")
        sizes.update(zip(term, shape.as_list()[len(shape) - len(term):]))
    output = graph.get_tensor_by_name(node.name + ":0").shape
    if not output.is_fully_defined():
        raise ValueError("incomplete shape")
    named = math.prod(sizes[c] for c in output_part.replace("...", ""))
    broadcast = output.num_elements() // max(1, named)  # the "..." dimensions
    return tf_ops.OpStats("flops", 2 * broadcast * math.prod(sizes.values()))


@contextlib.contextmanager
def count_einsum_flops():
    """Within the block, TF's profiler counts ``Einsum`` as 2 * (product of all index sizes)."""
    tf_ops = _private_ops()
    registry = tf_ops._stats_registry._registry
    previous = registry.get(_EINSUM_KEY)
    if previous is None:
        tf_ops.RegisterStatistics("Einsum", "flops")(_einsum_flops)
    try:
        yield
    finally:
        if previous is None:
            registry.pop(_EINSUM_KEY, None)


def check() -> None:
    """Exercises every private API above on a tiny graph; raises `TensorFlowInternalsError`."""
    a = tf.Variable(tf.ones([3, 4]))

    @tf.function
    def forward(x):
        return tf.matmul(x, a), tf.einsum("ij,jk->ik", x, a)

    concrete = forward.get_concrete_function(tf.TensorSpec([2, 3], tf.float32))
    frozen = convert_variables_to_constants_v2(concrete)
    if any(op.type in ("VarHandleOp", "ReadVariableOp") for op in frozen.graph.get_operations()):
        raise _broken("convert_variables_to_constants_v2", RuntimeError("variables were left in the graph"))
    matmul = 2 * 2 * 3 * 4
    plain = profile_float_ops(concrete)
    with count_einsum_flops():
        with_einsum = profile_float_ops(concrete)
    after = profile_float_ops(concrete)
    if (plain, with_einsum, after) != (matmul, 2 * matmul, matmul):
        raise _broken(
            "the graph profiler's statistics registry",
            RuntimeError(f"counted {plain}, {with_einsum}, {after} FLOPs; expected {matmul}, {2 * matmul}, {matmul}"),
        )
