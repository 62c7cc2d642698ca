import dataclasses
import json

import numpy as np
import pytest
import tensorflow as tf

from kdzoo.data import (
    AUDIOSET,
    YT8M_FRAME,
    YT8M_VIDEO,
    DatasetSpec,
    FeatureSpec,
    dequantize,
    get_spec,
    quantize,
)

pytestmark = pytest.mark.unit


def test_presets():
    assert YT8M_FRAME.feature_size == 1152 and YT8M_FRAME.num_classes == 3862 and YT8M_FRAME.max_frames == 300
    assert [f.name for f in YT8M_FRAME.features] == ["rgb", "audio"]
    assert YT8M_VIDEO.feature_size == 1152 and not YT8M_VIDEO.frame_level and YT8M_VIDEO.dequantize is None
    assert [f.name for f in YT8M_VIDEO.features] == ["mean_rgb", "mean_audio"] and YT8M_VIDEO.max_frames == 1
    assert AUDIOSET.feature_size == 128 and AUDIOSET.num_classes == 527 and AUDIOSET.max_frames == 10
    assert AUDIOSET.id_key == "video_id" and AUDIOSET.label_key == "labels"
    assert get_spec("yt8m") is YT8M_FRAME and get_spec("yt8m_video") is YT8M_VIDEO
    assert get_spec("AudioSet") is AUDIOSET and get_spec(AUDIOSET) is AUDIOSET
    with pytest.raises(dataclasses.FrozenInstanceError):
        AUDIOSET.max_frames = 3


@pytest.mark.parametrize("spec", [YT8M_FRAME, YT8M_VIDEO, AUDIOSET])
def test_round_trip(spec):
    d = spec.to_dict()
    assert json.loads(json.dumps(d)) == d
    assert DatasetSpec.from_dict(d) == spec
    assert get_spec(json.loads(json.dumps(d))) == spec


def test_from_dict_variants_and_overrides():
    spec = DatasetSpec.from_dict({"features": [["x", 3], {"name": "y", "width": 2}], "num_classes": 4,
                                  "max_frames": 5})
    assert spec.features == (FeatureSpec("x", 3, "uint8"), FeatureSpec("y", 2, "uint8")) and spec.feature_size == 5
    short = get_spec({"preset": "audioset", "max_frames": 5})
    assert short.max_frames == 5 and short.features == AUDIOSET.features
    with pytest.raises(ValueError, match="Unknown DatasetSpec keys"):
        DatasetSpec.from_dict({**AUDIOSET.to_dict(), "bogus": 1})


def test_invalid_specs():
    with pytest.raises(ValueError, match="Unknown dataset spec 'kinetics'.*yt8m, yt8m_video, audioset"):
        get_spec("kinetics")
    with pytest.raises(ValueError, match="width"):
        FeatureSpec("a", 0)
    with pytest.raises(ValueError, match="num_classes"):
        DatasetSpec((FeatureSpec("a", 1),), num_classes=0, max_frames=2)
    with pytest.raises(ValueError, match="dequantize"):
        DatasetSpec((FeatureSpec("a", 1),), num_classes=2, max_frames=2, dequantize="bogus")
    with pytest.raises(ValueError, match="duplicate"):
        DatasetSpec((FeatureSpec("a", 1), FeatureSpec("a", 2)), num_classes=2, max_frames=2)


def test_dequantize_variants():
    q = np.arange(256, dtype=np.uint8)
    qf = q.astype(np.float64)
    y = dequantize(q)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, qf * 4 / 255 - 2, atol=1e-6)
    assert y[0] == pytest.approx(-2.0) and y[255] == pytest.approx(2.0)
    s = dequantize(q, "starter")
    np.testing.assert_allclose(s, qf * 4 / 255 - 2 + 4 / 512, atol=1e-6)
    t = dequantize(tf.constant(q), "yt8m")
    assert tf.is_tensor(t) and t.dtype == tf.float32
    np.testing.assert_allclose(t.numpy(), y, atol=1e-6)
    np.testing.assert_array_equal(dequantize(q, None), q.astype(np.float32))
    for variant in ("yt8m", "starter"):
        np.testing.assert_array_equal(quantize(dequantize(q, variant), variant), q)
        np.testing.assert_array_equal(quantize(dequantize(tf.constant(q), variant), variant).numpy(), q)
    np.testing.assert_array_equal(quantize(np.array([-5.0, 5.0])), [0, 255])
    with pytest.raises(ValueError, match="Unknown dequantize variant"):
        dequantize(q, "bogus")
