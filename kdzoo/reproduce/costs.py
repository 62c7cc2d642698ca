"""Per-video cost of a row's model: it depends on the architecture alone, so it is computed
once per k, not stored with each row."""

from __future__ import annotations

from typing import Any

import keras

from kdzoo.models import build_model
from kdzoo.zoo.config import ZooConfig


def cost(model: keras.Model, num_frames: int, encoder_flops_per_frame: int | None = None) -> dict[str, int | None]:
    """Per-video cost of a model that sees `num_frames` frames: aggregator + head FLOPs, parameters,
    and end to end (`num_frames` x the encoder's FLOPs per frame + the model's), when the encoder is known."""
    from kdzoo import profiling  # cost accounting sits on top of the training path

    flops = int(profiling.flops(model, num_frames=num_frames))
    return {"flops": flops, "params": int(profiling.params(model)),
            "end_to_end_flops": None if encoder_flops_per_frame is None else flops + num_frames * encoder_flops_per_frame}


def encoder_cost(config: ZooConfig, encoder: str = "default") -> tuple[str | None, int | None]:
    """``(name, FLOPs per frame)`` of the encoder that made the features; ``(None, None)`` when
    unknown (``"default"``: the dataset layout's encoder, when its width matches the data) or
    not wanted (``"none"``)."""
    if encoder == "none":
        return None, None
    from kdzoo import encoders, profiling

    name = encoders.DATASET_ENCODERS.get(config.dataset, "none") if encoder == "default" else encoder
    model = encoders.get_encoder(name, config.dataset)
    if model is not None and int(model.output.shape[-1]) == config.spec.feature_size:
        return model.name, int(profiling.encoder_flops(model))
    if encoder != "default":
        width = None if model is None else model.output.shape[-1]
        raise ValueError(f"The encoder {name!r} outputs {width} features per frame; the data has "
                         f"{config.spec.feature_size}.")
    return None, None


class RowCosts:
    """Cost of the teacher (k=None) and of each k-frame student of a recipe, computed on first use
    (``embedding_size``: a student built with that model-config key, as the L_rep-only rows of a
    student wider than its teacher are)."""

    def __init__(self, config: ZooConfig, encoder: str = "default"):
        self.config, self.encoder = config, encoder
        self._encoder: tuple[str | None, int | None] | None = None
        self._costs: dict[tuple[int | None, int | None], dict[str, Any]] = {}

    @property
    def encoder_name(self) -> str | None:
        return self._encoder[0] if self._encoder else None

    def __call__(self, k: int | None, embedding_size: int | None = None) -> dict[str, Any]:
        if self._encoder is None:
            self._encoder = encoder_cost(self.config, self.encoder)
        key = (k, embedding_size)
        if key not in self._costs:
            role = "teacher" if k is None else "student"
            model_config = self.config.model_config(role, k)
            if embedding_size is not None:
                model_config = {**model_config, "embedding_size": embedding_size}
            self._costs[key] = cost(build_model(model_config), k or self.config.spec.max_frames, self._encoder[1])
        return self._costs[key]
