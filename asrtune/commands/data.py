"""asrtune data: dataset tools, one small function pair per subcommand.

A subcommand is an entry in :data:`SUBCOMMANDS`: a one-line help, a function that adds its
arguments, and a function that runs it and returns the exit code.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from asrtune.commands.common import new_parser
from asrtune.errors import AsrtuneError
from asrtune.help_format import DefaultsHelpFormatter

_LISTED = 20  # entries of each kind printed by `data check`


@dataclass(frozen=True)
class Subcommand:
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


# ----- check ----------------------------------------------------------------------------


def _add_source_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "source",
        metavar="SOURCE",
        help="a manifest (.jsonl/.csv/.tsv), an audio folder, hf:NAME[:CONFIG][@SPLIT] or "
        "granary:LANG_CORPUS[@SPLIT]",
    )
    parser.add_argument(
        "--audio-column",
        "--audio_column",
        default=None,
        help="audio column of a Hub dataset (default: detected)",
    )
    parser.add_argument(
        "--text-column",
        "--text_column",
        default=None,
        help="text column of a Hub dataset (default: detected)",
    )
    parser.add_argument(
        "--granary-audio-root",
        "--granary_audio_root",
        default=None,
        help="folder holding the audio a Granary manifest names",
    )


def _hub_options(args: argparse.Namespace) -> object:
    from asrtune.data.sources import HubOptions

    return HubOptions(
        audio_column=args.audio_column,
        text_column=args.text_column,
        granary_audio_root=args.granary_audio_root,
    )


def _check_arguments(parser: argparse.ArgumentParser) -> None:
    _add_source_flags(parser)
    parser.add_argument("--output", default=None, help="write the full report (JSON) here")
    parser.add_argument(
        "--model",
        default=None,
        help="also check against this model's limits (length, label tokens), languages and "
        "tokenizer (unknown tokens), as training admits rows",
    )
    parser.add_argument("--language", default=None, help="language for rows without one")
    parser.add_argument(
        "--eval-set",
        "--eval_set",
        action="store_true",
        help="the source is an evaluation set: rows with empty text are non-speech probes "
        "(silence, noise; scored apart from WER), a warning rather than an error "
        "(default: off)",
    )
    parser.add_argument(
        "--allow-pickle",
        "--allow_pickle",
        action="store_true",
        help="allow non-safetensors (pickle) weights for --model; only for models you trust",
    )
    parser.add_argument(
        "--allow-unknown-tokens",
        "--allow_unknown_tokens",
        action="store_true",
        help="as asrtune train --allow_unknown_tokens: rows whose text the --model's "
        "tokenizer turns into unknown tokens are kept (a warning), not left out of training "
        "(default: off)",
    )


def _print_entries(title: str, entries: list) -> None:
    if not entries:
        return
    print(f"{title}:")
    for entry in entries[:_LISTED]:
        print(f"  line {entry.line}: {entry.reason} ({entry.audio_path})")
    if len(entries) > _LISTED:
        print(f"  ... and {len(entries) - _LISTED} more (--output writes them all)")


def _check(args: argparse.Namespace) -> int:
    from asrtune.data_check import check_manifest

    report = check_manifest(
        args.source,
        model=args.model,
        language=args.language,
        allow_pickle=args.allow_pickle,
        options=_hub_options(args),
        nonspeech_ok=args.eval_set,
        allow_unknown_tokens=args.allow_unknown_tokens,
    )
    _print_entries("invalid rows", report.problems)
    _print_entries("over the model's limits (valid, left out of training)", report.over_limits)
    _print_entries("warnings (rows kept)", report.warnings)
    print(report.summary())
    if args.output:
        print(f"report: {report.save(args.output)}")
    return 0 if report.ok else 1


# ----- synth ----------------------------------------------------------------------------


def _synth_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--text",
        default=None,
        help="UTF-8 text file, one phrase per line (blank lines skipped); with --terms, the "
        "lines that hold a term are the sentences spoken for it",
    )
    parser.add_argument(
        "--terms",
        default=None,
        help="term file (as for 'asrtune eval --terms'): speak sentences that hold each term, "
        "from --text's lines that hold it, else neutral carrier sentences in --language",
    )
    parser.add_argument(
        "--sentences-per-term",
        "--sentences_per_term",
        type=int,
        default=3,
        help="with --terms: sentences per term (each spoken in every voice)",
    )
    parser.add_argument(
        "--language", default="en", help="espeak-ng voice language (en, en-us, fr, de, ...)"
    )
    parser.add_argument(
        "--voices", type=int, default=4, help="speaker styles; every phrase is spoken by each"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed for the voice styles")
    parser.add_argument("--output", required=True, help="folder for audio/*.wav and manifest.jsonl")


def read_phrases(path: str | Path) -> list[str]:
    """Non-blank, stripped lines of a UTF-8 text file."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise AsrtuneError(f"text file not found: {path}")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise AsrtuneError(f"{path} is not UTF-8 text: {exc}") from exc
    phrases = [line.strip() for line in lines if line.strip()]
    if not phrases:
        raise AsrtuneError(f"{path} holds no phrases")
    return phrases


def synth_phrases(args: argparse.Namespace) -> list[str]:
    """What ``data synth`` speaks: --text's lines, or with --terms the sentences per term
    (:func:`asrtune.terms.term_sentences`)."""
    if args.terms is None:
        if args.text is None:
            raise AsrtuneError("data synth needs --text FILE or --terms FILE (or both)")
        return read_phrases(args.text)
    from asrtune.terms import read_terms, term_sentences

    lines = read_phrases(args.text) if args.text else []
    pairs = term_sentences(read_terms(args.terms), lines, args.language, args.sentences_per_term)
    own = sum(1 for _, sentence in pairs if sentence in set(lines))
    print(
        f"{len(pairs)} sentences for {len({t for t, _ in pairs})} terms "
        f"({own} from your text, {len(pairs) - own} carrier sentences)",
        file=sys.stderr,
    )
    return list(dict.fromkeys(sentence for _, sentence in pairs))


def _synth(args: argparse.Namespace) -> int:
    from asrtune.data.synth import synthesize_manifest

    phrases = synth_phrases(args)
    print(synthesize_manifest(phrases, Path(args.output), args.language, args.voices, args.seed))
    return 0


# ----- split ----------------------------------------------------------------------------


def _split_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", metavar="SOURCE", help="manifest (.jsonl, .csv or .tsv)")
    parser.add_argument(
        "--eval-fraction",
        "--eval_fraction",
        type=float,
        default=0.1,
        help="share of rows for eval (whole speakers when rows have a speaker column)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument("--output", required=True, help="folder for train.jsonl and eval.jsonl")


def _split(args: argparse.Namespace) -> int:
    from asrtune.data.split import split_manifest

    result = split_manifest(args.source, args.output, args.eval_fraction, args.seed)
    if result.bad_rows:
        _print_entries("lines left out (not valid rows)", result.bad_rows)
    split = result.split
    for side, path in (("train", result.train_path), ("eval", result.eval_path)):
        rows = getattr(split, side)
        speakers = f", {len(split.speakers(side))} speakers" if split.by_speaker else ""
        print(f"{side}: {len(rows)} rows{speakers} -> {path}")
    return 0


# ----- push -----------------------------------------------------------------------------


def _push_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "source",
        metavar="DIR",
        help="a manifest, or a folder with manifest/train/eval/test .jsonl (one split each)",
    )
    parser.add_argument("repo", metavar="REPO", help="Hub dataset repo id, e.g. me/my-speech")
    parser.add_argument("--private", action="store_true", help="create the repo as private")
    parser.add_argument(
        "--dry-run",
        "--dry_run",
        action="store_true",
        help="write the folder that would be uploaded (to --output) and upload nothing",
    )
    parser.add_argument("--output", default=None, help="with --dry-run: where to write it")


def _push(args: argparse.Namespace) -> int:
    from asrtune.data.push import build_dataset_folder, push_dataset

    if args.dry_run:
        if not args.output:
            raise AsrtuneError("--dry-run needs --output DIR")
        print(build_dataset_folder(args.source, args.repo, args.output))
        return 0
    print(push_dataset(args.source, args.repo, private=args.private))
    return 0


# ----- the command ----------------------------------------------------------------------

SUBCOMMANDS: dict[str, Subcommand] = {
    "check": Subcommand(
        "decode every file and report invalid rows, rows over a model's limits, warnings "
        "(exit 1 when a row is invalid)",
        _check_arguments,
        _check,
    ),
    "synth": Subcommand(
        "speak a text file's phrases in several espeak-ng voices into a manifest",
        _synth_arguments,
        _synth,
    ),
    "split": Subcommand(
        "seeded train/eval split of a manifest, by speaker when rows have one",
        _split_arguments,
        _split,
    ),
    "push": Subcommand(
        "upload a manifest's audio and texts as a Hub dataset (parquet, one commit); "
        "it loads back with --train_manifest hf:REPO",
        _push_arguments,
        _push,
    ),
}


def build_parser() -> argparse.ArgumentParser:
    parser = new_parser("data", "Dataset tools: check, synthesize, split and push datasets.")
    subparsers = parser.add_subparsers(
        dest="subcommand", metavar="SUBCOMMAND", required=True, title="subcommands"
    )
    for name, sub in SUBCOMMANDS.items():
        sub.add_arguments(
            subparsers.add_parser(
                name,
                help=sub.help,
                description=sub.help[0].upper() + sub.help[1:] + ".",
                formatter_class=DefaultsHelpFormatter,
            )
        )
    return parser


def run(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    return SUBCOMMANDS[args.subcommand].run(args)
