"""Choosing a student's frames: which k of a video's L frames it sees.

`sample_frames` is THE function that does it, for training (the Distiller), evaluation
(`kdzoo.data.make_dataset(k=...)`, `kdzoo.evaluation`) and serving (`kdzoo.export`): it
reads each video's true length from its mask, picks k indices with `sample_indices`,
gathers those frames and returns the student's new mask. `sample_indices_numpy` is a
plain-numpy reference of the same index rules (used by the tests).

All of it is batched TensorFlow (int32 index arithmetic, TFLite builtin ops for every
method but ``random``) that works in ``tf.function`` / ``tf.data`` graphs with an unknown
batch size. ``k`` is a python int (the output has the static shape ``(batch, k)``), a
scalar int tensor (a k drawn per step, e.g. for students that accept any k: the output
is ``(batch, None)``), or, in `sample_frames` only, None (every frame, unchanged).

Methods (``SAMPLERS``), for a video of true length ``L >= k``:

``uniform``
    ``idx_i = floor((i + 0.5) * L / k)``, computed exactly in integers as
    ``((2i + 1) * L) // (2k)``.  L=10, k=2 -> [2, 7].
``random``
    k distinct indices drawn uniformly without replacement, returned sorted, from
    stateless random ops keyed by the seed rule below.
``first``
    ``0 .. k-1``.
``last``
    ``L-k .. L-1``.
``middle``
    k contiguous frames centred in the video: start ``(L - k) // 2``.
``first_middle_last``
    three contiguous runs of sizes ``a = k//3 + (k%3 > 0)``,
    ``b = k//3 + (k%3 > 1)``, ``c = k//3``: ``0 .. a-1`` at the start,
    ``b`` frames centred in the middle (start ``(L - b) // 2``, clipped to
    ``[a, L - b - c]`` so the runs never overlap), and ``L-c .. L-1`` at the end.
    The result is always k distinct sorted indices.

The seed rule (the only one in kdzoo): the random draw of a batch is keyed by the pair
``(seed, step)``. ``seed`` is an int, None meaning `DEFAULT_SEED`; ``step`` is the
training step (the Distiller passes its optimizer's iteration count, `make_dataset(...,
fresh_seeds=True)` its batch counter) so each step draws anew, and None (evaluation,
serving) means 0, so inference sees the same frames on every call. `base_seed` turns a
caller's ``seed`` / "draw fresh seeds" pair into the int ``seed``.

Short videos (``0 < L < k``): *every* method, ``random`` included, falls back to
the uniform formula.  For L < k it repeats frames evenly, is sorted, and covers
every one of the L frames at least once, so the student still gets k real
frames (never padding).  Example: L=3, k=5 -> [0, 0, 1, 2, 2].

Empty videos (``L == 0``): indices are all 0 and ``sample_frames`` returns a
student mask of 0 for that row.

Indices are always in ``[0, max(L, 1) - 1]``: they never point into padding. The
integer arithmetic is exact while ``(2k + 1) * L < 2**31``.
"""

from __future__ import annotations

import numbers

import numpy as np
import tensorflow as tf

SAMPLERS = ("uniform", "random", "first", "middle", "last", "first_middle_last")

#: The ``seed`` of the ``random`` sampler when none is given (evaluation, serving).
DEFAULT_SEED = 20190616


def _check_method(method):
    if method not in SAMPLERS:
        raise ValueError(f"Unknown sampler {method!r}. Expected one of {', '.join(SAMPLERS)}.")


def check_k(k, method: str = "uniform") -> int:
    """Validates a python-int k and a sampler name; returns k as an int."""
    if isinstance(k, bool) or not isinstance(k, numbers.Integral):
        raise ValueError(f"k must be a positive int, got {k!r} ({type(k).__name__}).")
    k = int(k)
    if k <= 0:
        raise ValueError(f"k must be a positive int, got {k}.")
    _check_method(method)
    return k


def _as_k(k, method):
    """A python int (static k) or a scalar int32 tensor (k chosen at run time)."""
    if tf.is_tensor(k) or isinstance(k, np.ndarray):
        k = tf.convert_to_tensor(k)
        if not k.dtype.is_integer or k.shape.rank != 0:
            raise ValueError(f"k must be a positive int or a scalar int tensor, got {k.dtype.name} {k.shape}.")
        _check_method(method)
        with tf.control_dependencies([tf.debugging.assert_positive(k, message="k must be positive")]):
            return tf.identity(tf.cast(k, tf.int32))
    return check_k(k, method)


def base_seed(seed: int | None = None, fresh: bool = False) -> int:
    """The ``seed`` half of the seed rule: `seed` if given, else a fresh draw (fresh=True)
    from the OS entropy pool, else `DEFAULT_SEED`."""
    if seed is not None:
        return int(seed)
    if fresh:
        return int(np.random.SeedSequence().generate_state(1)[0] >> 1)
    return DEFAULT_SEED


def seed_pair(seed=None, step=None) -> tf.Tensor:
    """The seed rule: int64 ``[seed, step]``, with `DEFAULT_SEED` and step 0 for None."""
    seed = tf.constant(DEFAULT_SEED if seed is None else seed, tf.int64) if not tf.is_tensor(seed) else seed
    step = tf.zeros([], tf.int64) if step is None else tf.convert_to_tensor(step)
    for name, value in (("seed", seed), ("step", step)):
        if not value.dtype.is_integer or value.shape.rank != 0:
            raise ValueError(f"{name} must be an integer scalar, got {value.dtype.name} {value.shape}.")
    return tf.stack([tf.cast(seed, tf.int64), tf.cast(step, tf.int64)])


def _fml_sizes(k):
    q, r = k // 3, k % 3
    if isinstance(k, int):
        return q + (r > 0), q + (r > 1), q
    one = tf.ones([], tf.int32)
    return q + tf.where(r > 0, one, 0), q + tf.where(r > 1, one, 0), q


def _uniform(lengths, k):
    """lengths int32 (B,) -> int32 (B, k), ((2i+1) L) // (2k)."""
    i = tf.range(k, dtype=tf.int32)
    return tf.math.floordiv((2 * i[None, :] + 1) * lengths[:, None], 2 * k)


def _random(lengths, k, seed):
    """k distinct sorted indices per row, uniformly among [0, L)."""
    batch = tf.shape(lengths)[0]
    width = tf.maximum(tf.reduce_max(tf.concat([lengths, tf.zeros([1], tf.int32)], 0)), k)
    scores = tf.random.stateless_uniform(tf.stack([batch, width]), seed=seed, dtype=tf.float32)
    positions = tf.range(width, dtype=tf.int32)
    valid = positions[None, :] < lengths[:, None]
    # Invalid positions get a score above any valid one, so the k smallest
    # scores are a uniformly random k-subset of the valid positions.
    scores = tf.where(valid, scores, tf.constant(2.0, tf.float32))
    _, idx = tf.math.top_k(-scores, k=k, sorted=False)
    return tf.sort(tf.cast(idx, tf.int32), axis=1)


def sample_indices(lengths, k, method: str = "uniform", *, seed=None, step=None) -> tf.Tensor:
    """Indices of the k frames each video's student sees.

    Args:
      lengths: int tensor (batch,), the true number of frames of each video.
      k: number of frames to sample: a python int > 0 or a scalar int tensor.
      method: one of ``SAMPLERS``.
      seed, step: the seed rule (module docstring); used by ``random`` only.

    Returns:
      int32 tensor (batch, k) with values in [0, max(L, 1) - 1].
    """
    k = _as_k(k, method)
    lengths = tf.convert_to_tensor(lengths)
    if not lengths.dtype.is_integer:
        raise ValueError(f"lengths must be an integer tensor, got dtype {lengths.dtype.name}.")
    lengths = tf.reshape(tf.maximum(tf.cast(lengths, tf.int32), 0), [-1])
    batch = tf.shape(lengths)[0]
    i = tf.range(k, dtype=tf.int32)[None, :]
    L = lengths[:, None]

    if method == "uniform":
        idx = _uniform(lengths, k)
    elif method == "random":
        idx = _random(lengths, k, seed_pair(seed, step))
    elif method == "first":
        idx = tf.broadcast_to(i, tf.stack([batch, k]))
    elif method == "last":
        idx = L - k + i
    elif method == "middle":
        idx = tf.math.floordiv(L - k, 2) + i
    else:  # first_middle_last
        a, b, c = _fml_sizes(k)
        first = tf.broadcast_to(tf.range(a, dtype=tf.int32)[None, :], tf.stack([batch, a]))
        mid_start = tf.clip_by_value(tf.math.floordiv(L - b, 2), a, tf.maximum(L - b - c, a))
        mid = mid_start + tf.range(b, dtype=tf.int32)[None, :]
        end = L - c + tf.range(c, dtype=tf.int32)[None, :]
        idx = tf.concat([first, mid, end], axis=1)

    if method != "uniform":
        # Short videos: every method falls back to the uniform formula.
        idx = tf.where(L >= k, idx, _uniform(lengths, k))
    # Empty videos -> index 0 (the caller masks them); never negative.
    return tf.clip_by_value(idx, 0, tf.maximum(L - 1, 0))


def sample_frames(frames, mask, k, method: str = "uniform", *, seed=None, step=None):
    """The student's view of a batch: its k frames per video and their mask.

    Args:
      frames: (batch, frames, features) tensor, valid frames first then padding.
      mask: (batch, frames) tensor, 1 for valid frames (a prefix) and 0 for padding.
      k: a python int, a scalar int tensor, or None for every frame (returned as is).
      method: one of ``SAMPLERS``.
      seed, step: the seed rule (module docstring); used by ``random`` only.

    Returns:
      ``(frames_k, mask_k)``: (batch, k, features) frames and a float32 (batch, k)
      mask that is 1 for every row with at least one frame and 0 for empty videos.
    """
    frames = tf.convert_to_tensor(frames)
    mask = tf.cast(tf.convert_to_tensor(mask), tf.float32)
    if k is None:
        _check_method(method)
        return frames, mask
    lengths = tf.cast(tf.round(tf.reduce_sum(mask, axis=1)), tf.int32)
    idx = sample_indices(lengths, k, method=method, seed=seed, step=step)
    frames_k = tf.gather(frames, idx, batch_dims=1)
    mask_k = tf.broadcast_to(tf.cast(lengths > 0, tf.float32)[:, None], tf.shape(idx))
    return frames_k, mask_k


def sample_indices_numpy(length: int, k: int, method: str, rng=None) -> np.ndarray:
    """Plain numpy reference of ``sample_indices`` for a single video.

    ``rng`` (random only): a ``np.random.Generator`` or a seed for one.
    """
    k = check_k(k, method)
    L = int(length)
    if L <= 0:
        return np.zeros(k, np.int64)
    uniform = np.array([int(np.floor((i + 0.5) * L / k)) for i in range(k)], np.int64)
    if L < k or method == "uniform":
        return uniform
    if method == "random":
        rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        return np.sort(rng.choice(L, size=k, replace=False)).astype(np.int64)
    if method == "first":
        return np.arange(k, dtype=np.int64)
    if method == "last":
        return np.arange(L - k, L, dtype=np.int64)
    if method == "middle":
        start = (L - k) // 2
        return np.arange(start, start + k, dtype=np.int64)
    a, b, c = _fml_sizes(k)
    mid = min(max((L - b) // 2, a), L - b - c)
    return np.concatenate([np.arange(a), np.arange(mid, mid + b), np.arange(L - c, L)]).astype(np.int64)
