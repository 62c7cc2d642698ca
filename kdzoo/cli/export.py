"""``kdzoo export``: a serving artefact that takes one whole video and samples its k frames inside."""

from __future__ import annotations

import argparse

from kdzoo.cli._common import add_model_argument, add_spec_argument, add_weights_argument, load_model_source


def add_parser(sub, parent) -> None:
    p = sub.add_parser("export", parents=[parent], help="export a student for serving one variable-length video")
    add_model_argument(p, "the student")
    p.add_argument("--format", default="keras", choices=("keras", "savedmodel", "tflite"))
    p.add_argument("--out", required=True, help="a .keras file, a SavedModel folder or a .tflite file")
    add_weights_argument(p)
    add_spec_argument(p)
    p.add_argument("--sampler", default=None, help="frame sampler (default: the card's, or uniform)")
    p.add_argument("--input-dtype", default="float32", choices=("float32", "uint8"))
    p.add_argument("--k", type=int, default=None, help="frame budget of an elastic student (*_student_elastic)")
    p.add_argument("--encoder", default="none",
                   help="serve raw frames: the frame encoder run on the k sampled frames only (default, vggish, "
                        "inception_v3, yt8m or PATH.keras; built-in encoders have random weights); none: features in")
    p.add_argument("--normalize-from", default=None, metavar="GLOB|JSON",
                   help="store a feature normalisation in the export: the mean/std of these TFRecords' frames "
                        "(read with the spec), or a JSON file {\"mean\": [...], \"std\": [...]}")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from kdzoo.export import export, export_model

    source = load_model_source(args.name, args.weights, spec=args.spec, sampler=args.sampler, k=args.k)
    if args.encoder != "none":  # raw frames in: the encoder runs on the k sampled frames only
        if args.normalize_from:
            raise ValueError("--normalize-from applies to exports that take features (--encoder none).")
        target = source.entry.name if source.entry is not None else source.model
        role = source.entry.role if source.entry is not None else ("student" if source.k else "teacher")
        path = export(target, args.out, format=args.format, encoder=args.encoder, weights=args.weights, k=args.k,
                      sampler=source.sampler, role=role, input_dtype=args.input_dtype)
        what = f"raw frames, encoded by {args.encoder}"
    else:
        dequantize = source.spec.dequantize if source.spec is not None else "yt8m"
        normalization = _normalization(args.normalize_from, source)
        path = export_model(source.model, args.out, format=args.format, k=source.k, sampler=source.sampler,
                            input_dtype=args.input_dtype, dequantize=dequantize, normalization=normalization)
        what = "features, normalised" if normalization else "features"
    print(f"{source.name} ({source.k} frames, {source.sampler} sampler, input: {what}) exported as "
          f"{args.format}: {path}")
    return 0


def _normalization(value: str | None, source):
    if value is None:
        return None
    if value.endswith(".json"):
        import json

        with open(value, encoding="utf-8") as f:
            return json.load(f)
    from kdzoo.cli._common import require_spec
    from kdzoo.export import normalization_from_files

    return normalization_from_files(value, require_spec(source, "export --normalize-from"))
