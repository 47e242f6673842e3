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
    add_verify_flags(parser)
    return parser


def add_verify_flags(parser: argparse.ArgumentParser) -> None:
    """The parity-check flags; defaults and help from VerifyOptions."""
    from asrtune.publish.parity import VerifyOptions

    defaults, helps = VerifyOptions(), VerifyOptions.field_help()
    group = parser.add_argument_group(
        "parity check",
        "The exported model and the transformers model transcribe the same rows; both "
        "WERs and loop counts are printed and written to export_parity.json.",
    )
    group.add_argument("--verify", action="store_true", help=helps["verify"])
    for flag, name, kind, metavar in (
        ("verify_manifest", "manifest", str, "PATH"),
        ("verify_samples", "samples", int, "N"),
        ("max_wer_gap", "max_wer_gap", float, "GAP"),
        ("language", "language", str, "CODE"),
    ):
        group.add_argument(
            *dict.fromkeys((f"--{flag}", f"--{flag.replace('_', '-')}")),
            dest=name,
            type=kind,
            metavar=metavar,
            default=getattr(defaults, name),
            help=helps[name],
        )


def run(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from asrtune.publish.parity import VerifyOptions, export_with_parity

    options = VerifyOptions(
        verify=args.verify,
        manifest=args.manifest,
        samples=args.samples,
        max_wer_gap=args.max_wer_gap,
        language=args.language,
    )
    result = export_with_parity(
        args.out, args.format, args.output, quantization=args.quantization, options=options
    )
    print(result.output)
    print(result.summary())
    return 0
