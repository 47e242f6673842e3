"""asrtune merge: LoRA adapter folder → standalone model (+ processor, generation config)."""

from __future__ import annotations

import argparse

from asrtune.commands.common import new_parser


def build_parser() -> argparse.ArgumentParser:
    parser = new_parser(
        "merge",
        "Merge a LoRA adapter into its base model and save a standalone model with its "
        "processor and generation config.",
    )
    parser.add_argument("out", help="LoRA output folder of asrtune train")
    parser.add_argument("merged", help="folder for the merged model (new or empty)")
    parser.add_argument(
        "--allow-pickle",
        "--allow_pickle",
        action="store_true",
        help="allow a base with non-safetensors (pickle) weights; only for models you trust",
    )
    return parser


def run(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from asrtune.publish.merge import merge_adapter

    print(merge_adapter(args.out, args.merged, allow_pickle=args.allow_pickle))
    return 0
