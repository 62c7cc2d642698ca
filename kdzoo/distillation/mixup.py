"""Mixup for batches of padded videos (Zhang et al., "mixup: Beyond Empirical Risk
Minimization", ICLR 2018), the training-time augmentation of `Distiller(mixup_alpha=...)`.

Each video of a batch is mixed with a partner drawn from the same batch:

    lam ~ Beta(alpha, alpha), one per video
    frames = lam * frames + (1 - lam) * frames[partner]     (every frame position)
    mask   = max(mask, mask[partner])                       (a position is real in either)
    labels = lam * labels + (1 - lam) * labels[partner]     (soft multi-label targets)

A serial teacher sees the mixed frames too, so its soft targets describe the same input.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import tensorflow as tf

from kdzoo import sampling

# keys of a Distiller batch that hold per-video frames or masks (the student's view is optional)
_FRAME_KEYS = ("frames", "student_frames")
_MASK_KEYS = ("mask", "student_mask")
# mixup's random streams are keyed apart from the frame sampler's (same seed, step)
_SEED_OFFSET = 0x6D69787570


def check_mixup_alpha(alpha: Any, name: str = "mixup_alpha", where: str = "") -> float:
    """`alpha` as a float; a ValueError naming `name` (and `where`, e.g. " in FILE") unless it
    is a number >= 0 (0: no mixup)."""
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or alpha < 0:
        raise ValueError(f"Expected {name} >= 0 (0: no mixup){where}. Received: {name}={alpha!r}")
    return float(alpha)


def mixup_weights(batch, alpha: float, seed: int = 0, step=None) -> tuple[tf.Tensor, tf.Tensor]:
    """``(lam, partner)`` of one batch: ``lam`` (batch,) float32 from Beta(alpha, alpha) and
    ``partner`` (batch,) int32, a random permutation; deterministic in ``(seed, step)``."""
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not alpha > 0:
        raise ValueError(f"Expected mixup alpha > 0. Received: alpha={alpha!r}")
    base = sampling.seed_pair(seed, step)
    seeds = [base + tf.constant([_SEED_OFFSET + i, 0], tf.int64) for i in range(3)]
    gamma_a = tf.random.stateless_gamma([batch], seeds[0], alpha=float(alpha))
    gamma_b = tf.random.stateless_gamma([batch], seeds[1], alpha=float(alpha))
    lam = gamma_a / tf.maximum(gamma_a + gamma_b, 1e-12)  # Beta(alpha, alpha)
    partner = tf.argsort(tf.random.stateless_uniform([batch], seeds[2]))
    return lam, tf.cast(partner, tf.int32)


def mixup_batch(inputs: Mapping[str, Any], labels, alpha: float, seed: int = 0, step=None):
    """Mixes a batch of videos and their labels; deterministic in ``(seed, step)``.

    Args:
        inputs: ``{"frames": (batch, frames, features), "mask": (batch, frames)}``
            (optionally ``"student_frames"``/``"student_mask"``, mixed with the same partners).
        labels: ``(batch, num_classes)`` multi-hot.
        alpha: the Beta distribution's concentration (> 0); small values keep most videos
            close to themselves.
        seed, step: the `kdzoo.sampling` seed rule.

    Returns ``(mixed inputs, mixed labels)``: float32, same shapes.
    """
    labels = tf.cast(labels, tf.float32)
    batch = tf.shape(labels)[0]
    lam, partner = mixup_weights(batch, alpha, seed, step)

    def mix(x):
        x = tf.cast(x, tf.float32)
        shape = tf.concat([[batch], tf.ones([tf.rank(x) - 1], tf.int32)], axis=0)
        weight = tf.reshape(lam, shape)
        return weight * x + (1.0 - weight) * tf.gather(x, partner)

    mixed = dict(inputs)
    for key in _FRAME_KEYS:
        if key in mixed:
            mixed[key] = mix(mixed[key])
    for key in _MASK_KEYS:
        if key in mixed and mixed[key] is not None:
            mask = tf.cast(mixed[key], tf.float32)
            mixed[key] = tf.maximum(mask, tf.gather(mask, partner))
    return mixed, mix(labels)
