"""Data: dataset specs, (de)quantisation and the tf.data pipeline."""

from kdzoo.data.errors import DataError, data_errors, iterate
from kdzoo.data.pipeline import (
    Problem,
    ValidationReport,
    count_records,
    list_files,
    make_dataset,
    parse_example,
    validate_records,
)
from kdzoo.data.quantization import MAX_QUANTIZED_VALUE, MIN_QUANTIZED_VALUE, dequantize, quantize
from kdzoo.data.spec import AUDIOSET, PRESETS, YT8M_FRAME, YT8M_VIDEO, DatasetSpec, FeatureSpec, get_spec

__all__ = [
    "AUDIOSET",
    "DataError",
    "DatasetSpec",
    "FeatureSpec",
    "MAX_QUANTIZED_VALUE",
    "MIN_QUANTIZED_VALUE",
    "PRESETS",
    "Problem",
    "ValidationReport",
    "YT8M_FRAME",
    "YT8M_VIDEO",
    "count_records",
    "data_errors",
    "dequantize",
    "get_spec",
    "iterate",
    "list_files",
    "make_dataset",
    "parse_example",
    "quantize",
    "validate_records",
]
