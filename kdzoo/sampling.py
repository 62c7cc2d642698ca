"""Frame samplers: which k of a video's L frames the student sees.

All samplers are batched TensorFlow ops that work inside ``tf.function`` /
``tf.data`` graphs with an unknown batch size; ``sample_indices_numpy`` is a
plain-numpy reference implementation of the same rules (used by the tests).

Methods (``SAMPLERS``), for a video of true length ``L >= k``:

``uniform``
    ``idx_i = floor((i + 0.5) * L / k)``, computed exactly in integers as
    ``((2i + 1) * L) // (2k)``.  L=10, k=2 -> [2, 7].
``random``
    k distinct indices drawn uniformly without replacement, returned sorted.
    Uses stateless random ops (``tf.random.stateless_uniform``) keyed by
    ``seed`` (a shape-[2] integer tensor).  In training the caller passes a
    different seed per step (``make_dataset`` does this with a batch counter).
    With ``seed=None``: ``training=False`` uses the fixed ``DEFAULT_SEED`` so
    inference is deterministic; ``training=True`` draws a fresh seed from the
    global (stateful) TF generator on every call.
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

Short videos (``0 < L < k``): *every* method, ``random`` included, falls back to
the uniform formula.  For L < k it repeats frames evenly, is sorted, and covers
every one of the L frames at least once, so the student still gets k real
frames (never padding).  Example: L=3, k=5 -> [0, 0, 1, 2, 2].

Empty videos (``L == 0``): indices are all 0 and ``sample_frames`` returns a
student mask of 0 for that row.

Indices are always in ``[0, max(L, 1) - 1]``: they never point into padding.
"""

from __future__ import annotations

import numbers

import numpy as np
import tensorflow as tf

SAMPLERS = ("uniform", "random", "first", "middle", "last", "first_middle_last")

#: Seed used by the ``random`` sampler at inference when no seed is given.
DEFAULT_SEED = (20190616, 7)


def _check_args(k, method):
    if isinstance(k, bool) or not isinstance(k, numbers.Integral):
        raise ValueError(f"k must be a positive int, got {k!r} ({type(k).__name__}).")
    k = int(k)
    if k <= 0:
        raise ValueError(f"k must be a positive int, got {k}.")
    if method not in SAMPLERS:
        raise ValueError(f"Unknown sampler {method!r}. Expected one of {', '.join(SAMPLERS)}.")
    return k


def _fml_sizes(k: int):
    q, r = divmod(k, 3)
    return q + (r > 0), q + (r > 1), q


def _uniform(lengths, k):
    """lengths int64 (B,) -> int64 (B, k), ((2i+1) L) // (2k)."""
    i = tf.range(k, dtype=tf.int64)
    return ((2 * i[None, :] + 1) * lengths[:, None]) // (2 * k)


def _random(lengths, k, seed):
    """k distinct sorted indices per row, uniformly among [0, L)."""
    batch = tf.shape(lengths)[0]
    width = tf.maximum(tf.cast(tf.reduce_max(tf.concat([lengths, tf.zeros([1], tf.int64)], 0)), tf.int32), k)
    scores = tf.random.stateless_uniform(tf.stack([batch, width]), seed=seed, dtype=tf.float32)
    positions = tf.range(width, dtype=tf.int64)
    valid = positions[None, :] < lengths[:, None]
    # Invalid positions get a score above any valid one, so the k smallest
    # scores are a uniformly random k-subset of the valid positions.
    scores = tf.where(valid, scores, tf.constant(2.0, tf.float32))
    _, idx = tf.math.top_k(-scores, k=k, sorted=False)
    return tf.sort(tf.cast(idx, tf.int64), axis=1)


def sample_indices(lengths, k: int, method: str = "uniform", training: bool = False, seed=None):
    """Indices of the k frames each video's student sees.

    Args:
      lengths: int tensor (batch,), the true number of frames of each video.
      k: number of frames to sample (python int > 0).
      method: one of ``SAMPLERS``.
      training: only affects ``random`` with ``seed=None`` (see module doc).
      seed: shape-[2] int tensor for ``random``; ignored by the other methods.

    Returns:
      int32 tensor (batch, k) with values in [0, max(L, 1) - 1].
    """
    k = _check_args(k, method)
    lengths = tf.convert_to_tensor(lengths)
    if not lengths.dtype.is_integer:
        raise ValueError(f"lengths must be an integer tensor, got dtype {lengths.dtype.name}.")
    lengths = tf.maximum(tf.cast(lengths, tf.int64), 0)
    lengths = tf.reshape(lengths, [-1])
    i = tf.range(k, dtype=tf.int64)[None, :]
    L = lengths[:, None]

    if method == "uniform":
        idx = _uniform(lengths, k)
    elif method == "random":
        if seed is None:
            if training:
                seed = tf.random.uniform([2], minval=0, maxval=2**31 - 1, dtype=tf.int32)
            else:
                seed = tf.constant(DEFAULT_SEED, tf.int32)
        seed = tf.convert_to_tensor(seed)
        if not seed.dtype.is_integer:
            raise ValueError(f"seed must be a shape-[2] integer tensor, got dtype {seed.dtype.name}.")
        idx = _random(lengths, k, seed)
    elif method == "first":
        idx = tf.broadcast_to(i, tf.stack([tf.shape(lengths)[0], k]))
    elif method == "last":
        idx = L - k + i
    elif method == "middle":
        idx = (L - k) // 2 + i
    else:  # first_middle_last
        a, b, c = _fml_sizes(k)
        first = tf.broadcast_to(tf.range(a, dtype=tf.int64)[None, :], tf.stack([tf.shape(lengths)[0], a]))
        mid_start = tf.clip_by_value((L - b) // 2, a, tf.maximum(L - b - c, a))
        mid = mid_start + tf.range(b, dtype=tf.int64)[None, :]
        end = L - c + tf.range(c, dtype=tf.int64)[None, :]
        idx = tf.concat([first, mid, end], axis=1)

    if method != "uniform":
        # Short videos: every method falls back to the uniform formula.
        idx = tf.where(L >= k, idx, _uniform(lengths, k))
    # Empty videos -> index 0 (the caller masks them); never negative.
    idx = tf.clip_by_value(idx, 0, tf.maximum(L - 1, 0))
    return tf.cast(idx, tf.int32)


def sample_frames(frames, mask, k: int, method: str = "uniform", training: bool = False, seed=None):
    """Gather the student's k frames from zero-padded frames.

    Args:
      frames: (B, T, D) tensor, valid frames first then padding.
      mask: (B, T) tensor, 1 for valid frames (a prefix) and 0 for padding.
      k, method, training, seed: as in ``sample_indices``.

    Returns:
      ``(frames_k, mask_k)``: (B, k, D) frames and a float32 (B, k) mask that is
      1 for every row with at least one frame and 0 for empty videos.
    """
    k = _check_args(k, method)
    frames = tf.convert_to_tensor(frames)
    mask = tf.convert_to_tensor(mask)
    lengths = tf.cast(tf.round(tf.reduce_sum(tf.cast(mask, tf.float32), axis=1)), tf.int32)
    idx = sample_indices(lengths, k, method=method, training=training, seed=seed)
    frames_k = tf.gather(frames, idx, batch_dims=1)
    mask_k = tf.broadcast_to(tf.cast(lengths > 0, tf.float32)[:, None], tf.shape(idx))
    return frames_k, mask_k


def sample_indices_numpy(length: int, k: int, method: str, rng=None) -> np.ndarray:
    """Plain numpy reference of ``sample_indices`` for a single video.

    ``rng`` (random only): a ``np.random.Generator`` or a seed for one.
    """
    k = _check_args(k, method)
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
