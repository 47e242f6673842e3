"""asrtune make-tiny: write a tiny random model (Whisper or Voxtral) for tests and smoke runs."""

from __future__ import annotations

import argparse
import importlib

from asrtune.commands.common import new_parser

# family → "module:function(out_dir, seed=...)" writing a tiny checkpoint + processor, offline
BUILDERS = {
    "whisper": "asrtune.models.tiny:make_tiny_whisper",
    "voxtral": "asrtune.models.tiny_voxtral:make_tiny_voxtral",
}


def build_parser() -> argparse.ArgumentParser:
    parser = new_parser(
        "make-tiny",
        "Write a tiny random model with a working processor/tokenizer, fully offline. "
        "train, eval and transcribe accept it like a real checkpoint (it learns nothing "
        "useful: it is for tests and smoke runs).",
    )
    parser.add_argument("out", help="output folder (created)")
    parser.add_argument(
        "--family", choices=sorted(BUILDERS), default="whisper", help="model family"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    return parser


def run(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    module, function = BUILDERS[args.family].split(":")
    print(getattr(importlib.import_module(module), function)(args.out, seed=args.seed))
    return 0
