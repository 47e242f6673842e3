"""asrtune eval: corpus WER/CER of a model on a manifest, by generation."""

from __future__ import annotations

import argparse
import json
import sys

from asrtune.commands.common import add_decoding_flags, add_model_flag, decoding_options, new_parser


def build_parser() -> argparse.ArgumentParser:
    parser = new_parser("eval", "Evaluate a model on a manifest: WER, CER, per-utterance report.")
    add_model_flag(parser)
    parser.add_argument("--manifest", required=True, help="JSONL/CSV manifest to evaluate on")
    parser.add_argument(
        "--output",
        default=None,
        help="write report.json here, and <stem>.utterances.jsonl beside it",
    )
    parser.add_argument(
        "--max-samples", "--max_samples", type=int, default=None, help="first N rows only"
    )
    parser.add_argument(
        "--terms",
        default=None,
        help="term file (one term per line; alternative spellings after a tab, separated by "
        "'|'): adds term recall and false alarms to the report, per term and per utterance",
    )
    add_decoding_flags(parser)
    return parser


def run(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from asrtune.api import evaluate
    from asrtune.processes import is_main_process

    result = evaluate(
        args.model,
        args.manifest,
        output=args.output,
        max_samples=args.max_samples,
        allow_pickle=args.allow_pickle,
        options=decoding_options(args),
        terms=args.terms,
    )
    if is_main_process():
        print(json.dumps(result.report(), indent=2))
        if result.terms is not None:
            print(result.terms.summary(), file=sys.stderr)
    return 0
