"""YouTube-8M evaluation metrics: GAP@k, mAP, Hit@1 and PERR.

Two flavours are provided:

* plain numpy functions (:func:`gap`, :func:`mean_average_precision`,
  :func:`hit_at_one`, :func:`perr` and :func:`evaluate`) that take the whole
  ``(num_videos, num_classes)`` prediction and label matrices, and
* streaming Keras 3 metrics (:class:`GlobalAveragePrecision`,
  :class:`MeanAveragePrecision`, :class:`HitAtOne`, :class:`PERR`) that
  accumulate over batches inside ``model.fit`` / ``model.evaluate`` and give the
  same numbers as the numpy functions on the concatenated data.

Definitions follow the YouTube-8M starter code (``eval_util.py`` and
``average_precision_calculator.py``); deviations are spelled out per function.

Conventions shared by everything here
-------------------------------------
* ``labels`` are multi-hot; any value ``> 0`` counts as a positive label.
* Ties are broken deterministically, the same way in numpy and in the streaming
  metrics: when selecting the top predictions of a video, the lower class index
  wins a tie (``np.argsort(-p, kind="stable")`` / ``tf.math.top_k``); when the
  GAP pairs of all videos are pooled and sorted, equal predictions keep their
  pooled order (video order, then rank inside the video's top-k).  The starter
  code instead shuffles the pooled pairs with a fixed seed before sorting, so
  with exactly tied scores the numbers can differ slightly from it.  mAP groups
  ties (sklearn convention) and therefore does not depend on any tie order.
"""

from kdzoo.metrics.ranking import evaluate, gap, hit_at_one, mean_average_precision, perr
from kdzoo.metrics.streaming import PERR, GlobalAveragePrecision, HitAtOne, MeanAveragePrecision

__all__ = [
    "gap",
    "mean_average_precision",
    "hit_at_one",
    "perr",
    "evaluate",
    "GlobalAveragePrecision",
    "MeanAveragePrecision",
    "HitAtOne",
    "PERR",
]
