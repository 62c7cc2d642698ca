"""The train/validation split by hash of the video id."""

import numpy as np
import pytest

from kdzoo.data import make_dataset


def _ids(files, subset, fraction=0.1):
    ds = make_dataset(files, "audioset", 1024, include_ids=True, subset=subset, validation_fraction=fraction)
    return [i.decode() for x, _ in ds for i in x["id"].numpy()]


def test_subsets_are_disjoint_cover_everything_and_are_stable(audioset_dir):
    files = str(audioset_dir / "eval-00-of-04.tfrecord")
    train, val, everything = _ids(files, "train"), _ids(files, "validation"), _ids(files, None)
    assert not set(train) & set(val)
    assert sorted(train + val) == sorted(everything)
    assert abs(len(val) / len(everything) - 0.1) < 0.02
    assert _ids(files, "validation") == val  # same split on every run


def test_subset_argument_errors(audioset_dir):
    files = str(audioset_dir / "eval-00-of-04.tfrecord")
    with pytest.raises(ValueError, match="Unknown subset"):
        make_dataset(files, "audioset", subset="test")
    with pytest.raises(ValueError, match="validation_fraction"):
        make_dataset(files, "audioset", subset="train", validation_fraction=1.5)
