"""Data: dataset specs, files, record parsing, the tf.data dataset and record validation.

One job a module: ``spec`` (what records look like, ``get_spec``), ``files``
(which files), ``records`` (parsing a batch of records), ``dataset``
(``make_dataset``), ``validation`` (checking files record by record),
``errors`` (``DataError``) and ``quantization`` (uint8 <-> float).
"""

from kdzoo.data.dataset import VideoDataset, make_dataset, pipeline_options
from kdzoo.data.errors import DataError, data_errors, iterate
from kdzoo.data.files import count_records, list_files, resolve_files
from kdzoo.data.quantization import MAX_QUANTIZED_VALUE, MIN_QUANTIZED_VALUE, dequantize, quantize
from kdzoo.data.records import parse_batch, parse_example
from kdzoo.data.spec import AUDIOSET, PRESETS, YT8M_FRAME, YT8M_VIDEO, DatasetSpec, FeatureSpec, get_spec
from kdzoo.data.validation import Problem, ValidationReport, validate_records

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
    "VideoDataset",
    "YT8M_FRAME",
    "YT8M_VIDEO",
    "count_records",
    "data_errors",
    "dequantize",
    "get_spec",
    "iterate",
    "list_files",
    "make_dataset",
    "parse_batch",
    "parse_example",
    "quantize",
    "resolve_files",
    "validate_records",
]
