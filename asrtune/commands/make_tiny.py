"""asrtune make-tiny: write a tiny random model of any registered family for tests and smoke
runs (each family's builder and sizes come from its registration)."""

from __future__ import annotations

import argparse

from asrtune.commands.common import new_parser
from asrtune.models import FAMILIES


def build_parser() -> argparse.ArgumentParser:
    parser = new_parser(
        "make-tiny",
        "Write a tiny random model with a working processor/tokenizer, fully offline. "
        "train, eval and transcribe accept it like a real checkpoint (it learns nothing "
        "useful: it is for tests and smoke runs).",
    )
    parser.add_argument("out", help="output folder (created)")
    parser.add_argument(
        "--family", choices=sorted(FAMILIES), default=next(iter(FAMILIES)), help="model family"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    parser.add_argument(
        "--size",
        default="tiny",
        help="architecture: tiny (for tests), or the dimensions of a real model for "
        "benchmarks: "
        + ", ".join(
            f"{family.name} {' / '.join(family.tiny_sizes[1:])}"
            for family in FAMILIES.values()
            if len(family.tiny_sizes) > 1
        )
        + " (random weights, the tiny tokenizer; float32 on disk: large-v3 6 GB, mini-3b 19 GB)",
    )
    return parser


def run(argv: list[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    family = FAMILIES[args.family]
    if args.size not in family.tiny_sizes:
        parser.error(f"--size for {args.family}: one of {', '.join(family.tiny_sizes)}")
    print(family.build_tiny(args.out, seed=args.seed, size=args.size))
    return 0
