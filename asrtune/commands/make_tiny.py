"""asrtune make-tiny: write a tiny random model (Whisper or Voxtral) for tests and smoke runs."""

from __future__ import annotations

import argparse
import importlib

from asrtune.commands.common import new_parser

# family → "module:function(out_dir, seed=..., size=...)" writing a random checkpoint +
# processor, offline
BUILDERS = {
    "whisper": "asrtune.models.tiny:make_tiny_whisper",
    "voxtral": "asrtune.models.tiny_voxtral:make_tiny_voxtral",
}
SIZES = {"whisper": ("tiny", "small", "large-v3"), "voxtral": ("tiny", "mini-3b")}


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
    parser.add_argument(
        "--size",
        default="tiny",
        help="architecture: tiny (for tests), or the dimensions of a real model for "
        "benchmarks: whisper small / large-v3, voxtral mini-3b (random weights, the "
        "tiny tokenizer; float32 on disk: large-v3 6 GB, mini-3b 19 GB)",
    )
    return parser


def run(argv: list[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.size not in SIZES[args.family]:
        parser.error(f"--size for {args.family}: one of {', '.join(SIZES[args.family])}")
    module, function = BUILDERS[args.family].split(":")
    builder = getattr(importlib.import_module(module), function)
    print(builder(args.out, seed=args.seed, size=args.size))
    return 0
