"""asrtune demo: the whole journey offline on an embedded default (whisper tiny.en + espeak)."""

from __future__ import annotations

import argparse

from asrtune.commands.common import new_parser


def build_parser() -> argparse.ArgumentParser:
    from asrtune.demo import DemoOptions

    defaults = DemoOptions()
    parser = new_parser(
        "demo",
        "Offline demo: import whisper tiny.en, synthesize a domain dataset, evaluate, "
        "fine-tune, evaluate again.",
    )
    parser.add_argument(
        "--output-dir",
        "--output_dir",
        default=defaults.output_dir,
        help="where the model, data and reports go",
    )
    parser.add_argument(
        "--train-size",
        "--train_size",
        type=int,
        default=defaults.train_size,
        help="synthetic training sentences",
    )
    parser.add_argument(
        "--test-size",
        "--test_size",
        type=int,
        default=defaults.test_size,
        help="synthetic test sentences",
    )
    parser.add_argument(
        "--probes",
        type=int,
        default=defaults.probes,
        help="non-speech probes (silence, noise, hum) in the test split",
    )
    parser.add_argument(
        "--guard-size",
        "--guard_size",
        type=int,
        default=defaults.guard_size,
        help="everyday sentences in other voices, the guard set",
    )
    parser.add_argument("--epochs", type=float, default=defaults.epochs, help="training epochs")
    parser.add_argument(
        "--learning-rate",
        "--learning_rate",
        type=float,
        default=None,
        help="peak learning rate (default: 1e-4 for full fine-tuning of tiny.en, asrtune's "
        "LoRA default with --lora)",
    )
    parser.add_argument(
        "--eval-subset",
        "--eval_subset",
        type=int,
        default=defaults.eval_subset,
        help="test clips scored after each epoch but the last (all of them at the end); "
        "0: all every epoch",
    )
    parser.add_argument("--lora", action="store_true", help="train LoRA adapters instead")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="random seed")
    return parser


def run(argv: list[str]) -> int:
    from asrtune.demo import DemoOptions, run_demo

    args = build_parser().parse_args(argv)
    run_demo(
        DemoOptions(
            output_dir=args.output_dir,
            train_size=args.train_size,
            test_size=args.test_size,
            probes=args.probes,
            guard_size=args.guard_size,
            epochs=args.epochs,
            learning_rate=args.learning_rate,
            eval_subset=args.eval_subset or None,
            lora=args.lora,
            seed=args.seed,
        )
    )
    return 0
