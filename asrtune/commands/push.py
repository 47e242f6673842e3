"""asrtune push: publish a fine-tuned model (adapter or merged) with its card, in one commit."""

from __future__ import annotations

import argparse

from asrtune.commands.common import new_parser
from asrtune.errors import AsrtuneError


def build_parser() -> argparse.ArgumentParser:
    parser = new_parser(
        "push",
        "Upload a fine-tuned model to the Hugging Face Hub in one commit: safetensors "
        "weights, processor, generation config, a model card and the eval report (never "
        "checkpoints or optimizer state). The token comes from HF_TOKEN or `hf auth login`.",
    )
    parser.add_argument("out", help="output folder of asrtune train (model or LoRA adapter)")
    parser.add_argument("repo", help="Hub model repository, e.g. your-name/whisper-small-ft")
    parser.add_argument("--private", action="store_true", help="create the repository private")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--merged",
        dest="mode",
        action="store_const",
        const="merged",
        default=argparse.SUPPRESS,
        help="publish a LoRA adapter merged into its base (a standalone model); without "
        "--merged or --adapter: the adapter when its base is on the Hub, else merged",
    )
    mode.add_argument(
        "--adapter",
        dest="mode",
        action="store_const",
        const="adapter",
        default=argparse.SUPPRESS,
        help="publish the LoRA adapter itself (its base must be on the Hub)",
    )
    parser.add_argument(
        "--base-model",
        "--base_model",
        default=None,
        help="Hub id of the base model when OUT names a local folder (e.g. one made by "
        "import-ct2); written into the card and the adapter config",
    )
    parser.add_argument(
        "--dataset-repo",
        "--dataset_repo",
        default=None,
        help="Hub dataset the model was trained and evaluated on (card metadata)",
    )
    parser.add_argument(
        "--baseline-report",
        "--baseline_report",
        default=None,
        help="eval report of the base model (asrtune eval --output) for a before/after "
        "comparison; none: OUT/baseline_results.json if present",
    )
    parser.add_argument(
        "--language",
        action="append",
        default=None,
        help="language code for the card (repeatable); none: the training data's",
    )
    parser.add_argument(
        "--commit-message", "--commit_message", default=None, help="Hub commit message"
    )
    parser.add_argument(
        "--dry-run",
        "--dry_run",
        action="store_true",
        help="upload nothing; write the exact folder that would be uploaded to --output",
    )
    parser.add_argument("--output", default=None, help="with --dry-run: folder to write (new)")
    return parser


def run(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.dry_run != (args.output is not None):
        raise AsrtuneError("--dry-run and --output go together")
    from asrtune.publish.upload import push

    where = push(
        args.out,
        args.repo,
        private=args.private,
        mode=getattr(args, "mode", "auto"),
        base_model=args.base_model,
        dataset_repo=args.dataset_repo,
        baseline_report=args.baseline_report,
        languages=args.language,
        dry_run_output=args.output,
        commit_message=args.commit_message,
    )
    print(where)
    return 0
