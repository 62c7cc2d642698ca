"""The model zoo: named teacher/student pairs, their configs, weights and cards."""

from kdzoo.zoo.artifacts import WeightsIntegrityError, sha256_of, verify_weights
from kdzoo.zoo.config import ZooConfig
from kdzoo.zoo.names import ZooName, format_name, parse_name
from kdzoo.zoo.registry import (
    MissingWeightsError,
    Registry,
    UnknownModelError,
    ZooEntry,
    get_registry,
    list_models,
    load,
    load_pair,
    model_card,
)

__all__ = [
    "MissingWeightsError",
    "Registry",
    "UnknownModelError",
    "WeightsIntegrityError",
    "ZooConfig",
    "ZooEntry",
    "ZooName",
    "format_name",
    "get_registry",
    "list_models",
    "load",
    "load_pair",
    "model_card",
    "parse_name",
    "sha256_of",
    "verify_weights",
]
