"""asrtune bench: the seq2seq article's recipe vs asrtune's defaults, one run, one machine."""

from __future__ import annotations

import argparse
import json

from asrtune.commands.common import new_parser


def build_parser() -> argparse.ArgumentParser:
    parser = new_parser(
        "bench",
        "Train the reference recipe (Seq2SeqTrainer, clips padded to 30 s, lr 1e-5, batch 8) "
        "and asrtune's defaults on the same data; compare throughput and time to WER.",
    )
    parser.add_argument("--model", required=True, help="Whisper model (Hub id or folder)")
    parser.add_argument(
        "--train-manifest",
        "--train_manifest",
        required=True,
        help="training rows (any source string)",
    )
    parser.add_argument(
        "--eval-manifest",
        "--eval_manifest",
        required=True,
        help="rows both recipes are evaluated on",
    )
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--epochs", type=float, default=2, help="the reference recipe's epochs")
    budget.add_argument(
        "--budget-seconds",
        "--budget_seconds",
        type=float,
        default=None,
        help="instead of epochs: training seconds for each recipe",
    )
    parser.add_argument(
        "--asrtune-epochs",
        "--asrtune_epochs",
        type=float,
        default=None,
        help="asrtune's epochs (default: asrtune train's default)",
    )
    parser.add_argument("--output", default="bench.json", help="results (JSON)")
    parser.add_argument(
        "--output-dir",
        "--output_dir",
        default="bench-out",
        help="where both recipes' training outputs go",
    )
    parser.add_argument(
        "--plot",
        default=None,
        help="also write a PNG of WER against training time (needs matplotlib)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed for both recipes")
    parser.add_argument(
        "--terms",
        default=None,
        help="term file (as for 'asrtune eval --terms'): both recipes' evaluations also count "
        "term recall and false alarms, per term",
    )
    return parser


def run(argv: list[str]) -> int:
    from asrtune.bench import BenchOptions, plot_curves, run_bench, write_bench

    args = build_parser().parse_args(argv)
    result = run_bench(
        BenchOptions(
            model=args.model,
            train_manifest=args.train_manifest,
            eval_manifest=args.eval_manifest,
            output_dir=args.output_dir,
            epochs=args.epochs,
            asrtune_epochs=args.asrtune_epochs,
            budget_seconds=args.budget_seconds,
            seed=args.seed,
            terms=args.terms,
        )
    )
    write_bench(result, args.output)
    if args.plot:
        plot_curves(result, args.plot)
    keys = ("throughput_ratio", "time_to_reference_wer_ratio", "term_recall")
    summary = {k: result[k] for k in keys if k in result}
    for name in ("reference", "asrtune"):
        summary[name] = {k: v for k, v in result[name].items() if k not in ("curve", "terms")}
    print(json.dumps(summary, indent=2))
    return 0
