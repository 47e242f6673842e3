"""asrtune import-ct2: CTranslate2 / faster-whisper model folder → transformers checkpoint."""

from __future__ import annotations

import argparse

from asrtune.commands.common import new_parser


def build_parser() -> argparse.ArgumentParser:
    parser = new_parser(
        "import-ct2",
        "Convert a CTranslate2 (faster-whisper) Whisper folder into a transformers "
        "checkpoint + processor.",
    )
    parser.add_argument("src", help="folder with model.bin, config.json, tokenizer.json")
    parser.add_argument("dst", help="output folder (created)")
    return parser


def run(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from asrtune.models.ct2 import import_ct2

    print(import_ct2(args.src, args.dst))
    return 0
