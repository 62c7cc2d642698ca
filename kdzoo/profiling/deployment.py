"""What a deployment pays: the classifier plus its per-frame encoder, and the cards' cost block.

`end_to_end` adds an encoder (`kdzoo.profiling.encoder.encoder_cost`) to a teacher /
student `kdzoo.profiling.compare` report; `card_cost` is the cost block of a zoo model
card (the classifier alone and end to end, batch 1) and `card_ratios` a student's
block over its teacher's.
"""

from __future__ import annotations

from collections.abc import Mapping

import keras

from kdzoo.profiling.encoder import encoder_cost

__all__ = ["card_cost", "card_ratios", "end_to_end"]


def end_to_end(report: Mapping, encoder: keras.Model | Mapping | None, **encoder_kwargs) -> dict:
    """Adds the encoder to a `kdzoo.profiling.compare` report: what a deployment pays.

    `encoder` is a Keras model (timed now with `encoder_cost`), an `encoder_cost` result
    measured before (one encoder timing shared by several pairs: it must cover the frame
    counts ``n x B`` used here), or None.

    For the teacher (N frames) and the student (k frames) and each batch size B of the
    report: FLOPs = n x encoder FLOPs/frame + aggregator FLOPs; latency = encoder time on
    n x B frames (`encoder_cost`) + the aggregator's measured time at batch B.

    Returns:
        ``{"encoder": encoder_cost(...), "teacher": {"flops", "latency": {B: ms}},
        "student": {...}, "ratios": {"flops", "latency": {B: ratio}}}``; with
        ``encoder=None`` the aggregator-only numbers (``"encoder": None``).
    """
    batches = [int(b) for b in report["ratios"]["latency"]]
    roles = ("teacher", "student")
    counts = [report[r]["num_frames"] * b for r in roles for b in batches]
    if isinstance(encoder, keras.Model):
        enc = encoder_cost(encoder, counts, **encoder_kwargs)
    else:
        enc = encoder
        missing = sorted(set(counts) - set(enc["latency"])) if enc is not None else []
        if missing:
            raise ValueError(f"The encoder cost has no timing for {missing} frames; measure it with these counts.")
    out = {"encoder": enc}
    for role in roles:
        n = report[role]["num_frames"]
        agg = report[role]["latency"]
        enc_flops = n * enc["flops_per_frame"] if enc else 0
        out[role] = {
            "num_frames": n,
            "flops": report[role]["flops"] + enc_flops,
            "encoder_flops": enc_flops,
            "latency": {
                b: agg[b]["median_ms"] + (enc["latency"][n * b]["ms"] if enc else 0.0) for b in agg
            },
            "encoder_latency": {b: enc["latency"][n * b]["ms"] if enc else 0.0 for b in agg},
        }
    t, s = out["teacher"], out["student"]
    out["ratios"] = {
        "flops": s["flops"] / t["flops"],
        "num_frames": s["num_frames"] / t["num_frames"],
        "latency": {b: s["latency"][b] / t["latency"][b] for b in t["latency"]},
    }
    return out


def card_cost(
    model: keras.Model,
    num_frames: int,
    encoder: keras.Model | None,
    encoder_name: str | None = None,
    latency_repeats: int = 20,
) -> dict:
    """The cost block of a zoo model card: aggregator-only and end to end (batch 1).

    Returns::

        {"params", "flops", "latency_ms_cpu_batch1",            # the classifier alone
         "end_to_end": {"encoder", "encoder_params", "encoder_flops_per_frame",
                        "flops", "latency_ms_cpu_batch1", "encoder_latency_method", "note"}}

    ``end_to_end`` is absent when ``encoder`` is None. Ratios between a student's and
    its teacher's blocks: `card_ratios`.
    """
    from kdzoo.profiling.flops import flops as model_flops, params as model_params
    from kdzoo.profiling.latency import latency

    lat = latency(model, num_frames=num_frames, batch=1, repeats=latency_repeats)
    block = {
        "params": int(model_params(model)),
        "flops": int(model_flops(model, num_frames=num_frames)),
        "latency_ms_cpu_batch1": round(float(lat["median_ms"]), 3),
    }
    if encoder is not None:
        enc = encoder_cost(encoder, [num_frames])
        block["end_to_end"] = {
            "encoder": encoder_name or enc["name"],
            "encoder_params": enc["params"],
            "encoder_flops_per_frame": enc["flops_per_frame"],
            "flops": block["flops"] + enc["flops"][num_frames],
            "latency_ms_cpu_batch1": round(block["latency_ms_cpu_batch1"] + enc["latency"][num_frames]["ms"], 3),
            "encoder_latency_method": enc["latency"][num_frames]["method"],
            "note": enc["note"],
        }
    return block


def card_ratios(student: Mapping, teacher: Mapping) -> dict:
    """Student / teacher ratios of two `card_cost` blocks (end-to-end ones when both have them)."""
    keys = ("params", "flops", "latency_ms_cpu_batch1")
    ratios = {key: student[key] / teacher[key] for key in keys}
    if "end_to_end" in student and "end_to_end" in teacher:
        ratios["end_to_end"] = {
            key: student["end_to_end"][key] / teacher["end_to_end"][key] for key in ("flops", "latency_ms_cpu_batch1")
        }
    return ratios
