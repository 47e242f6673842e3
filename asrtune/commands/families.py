"""asrtune families: the registered model families, each with its kind and capabilities,
what --freeze_encoder leaves training, what LoRA adapts and its make-tiny sizes."""

from __future__ import annotations

import argparse

from asrtune.commands.common import new_parser
from asrtune.models import FAMILIES


def build_parser() -> argparse.ArgumentParser:
    parser = new_parser(
        "families",
        "List the registered model families: name (--family of make-tiny), kind "
        "(encoder_decoder, audio_llm, ctc, transducer), capabilities, what "
        "--freeze_encoder leaves training, what LoRA adapts by default, make-tiny sizes.",
    )
    parser.add_argument("--names", action="store_true", help="print only the names, one a line")
    return parser


def run(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.names:
        print("\n".join(FAMILIES))
    else:
        print("\n\n".join(family.describe() for family in FAMILIES.values()))
    return 0
