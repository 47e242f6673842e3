"""asrtune export: a model (LoRA merged first) → CTranslate2 (faster-whisper) or ONNX."""

from __future__ import annotations

import argparse

from asrtune.commands.common import new_parser


def build_parser() -> argparse.ArgumentParser:
    from asrtune.publish.export import CT2_QUANTIZATIONS, FORMATS

    parser = new_parser(
        "export",
        "Export a model for inference engines: ct2 (CTranslate2 / faster-whisper, Whisper "
        "only) or onnx (encoder + decoder graphs). A LoRA adapter is merged first.",
    )
    parser.add_argument("out", help="model folder or LoRA output folder of asrtune train")
    parser.add_argument("--format", required=True, choices=FORMATS, help="export format")
    parser.add_argument(
        "--quantization",
        default=None,
        choices=CT2_QUANTIZATIONS,
        help="ct2 weight type; none: the model's own",
    )
    parser.add_argument("--output", required=True, help="folder to write (new or empty)")
    return parser


def run(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from asrtune.publish.export import export_model

    print(export_model(args.out, args.format, args.output, quantization=args.quantization))
    return 0
