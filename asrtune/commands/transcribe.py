"""asrtune transcribe: print the text of audio files (long files are decoded long-form)."""

from __future__ import annotations

import argparse

from asrtune.commands.common import add_decoding_flags, add_model_flag, decoding_options, new_parser


def build_parser() -> argparse.ArgumentParser:
    parser = new_parser("transcribe", "Transcribe audio files; prints one line per file.")
    add_model_flag(parser)
    parser.add_argument("files", nargs="+", help="audio files (wav, flac, ogg, mp3, ...)")
    add_decoding_flags(parser)
    return parser


def run(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from asrtune.api import transcribe

    texts = transcribe(
        args.model, args.files, options=decoding_options(args), allow_pickle=args.allow_pickle
    )
    for path, text in zip(args.files, texts, strict=True):
        print(text if len(args.files) == 1 else f"{path}\t{text}")
    return 0
