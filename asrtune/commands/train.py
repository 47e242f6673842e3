"""asrtune train: fine-tune on a manifest (full or LoRA); every training argument is a flag."""

from __future__ import annotations

import argparse
import json

from asrtune.config import parse_train_args, train_parser


def build_parser() -> argparse.ArgumentParser:
    return train_parser()


def run(argv: list[str]) -> int:
    from asrtune.training import train

    result = train(parse_train_args(argv))
    summary = {"output_dir": str(result.output_dir)}
    if result.eval_result is not None:
        summary.update(result.eval_result.report())
    print(json.dumps(summary, indent=2))
    return 0
