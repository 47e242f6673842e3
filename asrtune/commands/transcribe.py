"""asrtune transcribe: print (or write) the text of audio files, as plain text or as timed
subtitles (srt, vtt) or JSON; long files are decoded long-form."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from asrtune.commands.common import add_decoding_flags, add_model_flag, decoding_options, new_parser
from asrtune.errors import AsrtuneError
from asrtune.transcripts import FORMATS, TIMED_FORMATS, render, to_json


def build_parser() -> argparse.ArgumentParser:
    parser = new_parser(
        "transcribe",
        "Transcribe audio files. txt prints one line per file (PATH<tab>TEXT when several); "
        "srt, vtt and json carry segment times (json: one object per line per file, with "
        "its text and segments).",
    )
    add_model_flag(parser)
    parser.add_argument("files", nargs="+", help="audio files (wav, flac, ogg, mp3, ...)")
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="txt",
        help="output format; srt/vtt/json decode with timestamps (Whisper) (default: txt)",
    )
    parser.add_argument(
        "--output",
        default=None,
        metavar="DIR",
        help="write one <stem>.<format> per file into DIR instead of printing; needed for "
        "srt/vtt of several files (default: print to stdout)",
    )
    add_decoding_flags(parser)
    return parser


def _check_destination(files: list[str], fmt: str, output: str | None) -> None:
    """User mistakes caught before the model loads."""
    if output is None:
        if fmt in TIMED_FORMATS and len(files) > 1:
            raise AsrtuneError(f"--format {fmt} of several files needs --output DIR")
        return
    stems: dict[str, str] = {}
    for path in files:
        stem = Path(path).stem
        if stem in stems:
            raise AsrtuneError(f"{stems[stem]} and {path} would both write {stem}.{fmt}")
        stems[stem] = path


def _documents(args: argparse.Namespace) -> list[str]:
    """Each file's transcript as the text to print or write, newline-terminated."""
    from asrtune.api import transcribe, transcribe_segments

    options = decoding_options(args)
    if args.format == "txt":  # decoded without timestamps, as always
        texts = transcribe(args.model, args.files, options=options, allow_pickle=args.allow_pickle)
        return [text + "\n" for text in texts]
    transcripts = transcribe_segments(
        args.model,
        args.files,
        options=options,
        allow_pickle=args.allow_pickle,
        require_timestamps=args.format in TIMED_FORMATS,
    )
    if args.format == "json" and args.output is None:  # JSON Lines: one object per file
        return [to_json(item, indent=None) + "\n" for item in transcripts]
    return [render(item, args.format) for item in transcripts]


def run(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    _check_destination(args.files, args.format, args.output)
    documents = _documents(args)
    if args.output is None:
        if args.format == "txt" and len(args.files) > 1:
            documents = [f"{p}\t{d}" for p, d in zip(args.files, documents, strict=True)]
        sys.stdout.write("".join(documents))
        return 0
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    for path, document in zip(args.files, documents, strict=True):
        target = out / f"{Path(path).stem}.{args.format}"
        target.write_text(document, encoding="utf-8")
        print(target)
    return 0
