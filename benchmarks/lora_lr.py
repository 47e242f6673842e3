"""Which learning rate LoRA trains best with: a sweep on the offline demo's data.

Whisper tiny.en (imported from the CTranslate2 files the demo ships) is fine-tuned with
LoRA (asrtune's defaults: r 32, alpha 64, q/k/v/out_proj/fc1/fc2) at each learning rate,
on the demo's synthesized help-desk speech, and evaluated on its test clips by generation.
A full fine-tuning run at its own default (2e-5) is the reference.

    python benchmarks/lora_lr.py --out /tmp/lora_lr --rates 2e-5 1e-4 3e-4 1e-3 \\
        --train-size 120 --test-size 60 --epochs 3 --json /tmp/lora_lr.json

Prints one table row per run: method, learning rate, final train loss, test WER and CER
(corpus level, normalized), and wall seconds of training.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

from asrtune.api import evaluate, train
from asrtune.data.demo_corpus import make_demo_dataset
from asrtune.demo import import_base_model


def run_one(
    base: Path,
    train_manifest: Path,
    test_manifest: Path,
    out: Path,
    lora: bool,
    rate: float,
    epochs: float,
    seed: int,
) -> dict[str, Any]:
    """Train one (method, rate) and score the final model on the test clips."""
    name = f"{'lora' if lora else 'full'}-{rate:g}"
    start = time.perf_counter()
    result = train(
        model=str(base),
        train_manifest=str(train_manifest),
        output_dir=str(out / name),
        num_train_epochs=epochs,
        per_device_train_batch_size=4,
        learning_rate=rate,
        lora=lora,
        seed=seed,
        save_strategy="no",
        report_to="none",
        logging_steps=5,
    )
    seconds = time.perf_counter() - start
    score = evaluate(str(out / name), str(test_manifest)).score
    return {
        "method": "LoRA" if lora else "full",
        "learning_rate": rate,
        "train_loss": round(result.train_metrics["train_loss"], 4),
        "wer": round(score.wer, 4),
        "cer": round(score.cer, 4),
        "train_seconds": round(seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/lora_lr"))
    parser.add_argument("--rates", type=float, nargs="+", default=[2e-5, 1e-4, 3e-4, 1e-3])
    parser.add_argument("--full-rate", type=float, default=2e-5)
    parser.add_argument("--train-size", type=int, default=120)
    parser.add_argument("--test-size", type=int, default=60)
    parser.add_argument("--epochs", type=float, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    args.out.mkdir(parents=True, exist_ok=True)
    base = import_base_model(args.out)
    train_manifest, test_manifest = make_demo_dataset(
        args.out / "data", n_train=args.train_size, n_test=args.test_size, seed=args.seed
    )
    baseline = evaluate(str(base), str(test_manifest)).score
    rows = [
        {
            "method": "none (baseline)",
            "learning_rate": None,
            "train_loss": None,
            "wer": round(baseline.wer, 4),
            "cer": round(baseline.cer, 4),
            "train_seconds": 0,
        }
    ]
    runs = [(False, args.full_rate)] + [(True, rate) for rate in args.rates]
    for lora, rate in runs:
        rows.append(
            run_one(
                base, train_manifest, test_manifest, args.out, lora, rate, args.epochs, args.seed
            )
        )
        print(json.dumps(rows[-1]), flush=True)
    print("\n| method | learning rate | train loss | test WER | test CER | train s |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(
            f"| {r['method']} | {r['learning_rate'] if r['learning_rate'] else '-'} | "
            f"{r['train_loss'] if r['train_loss'] is not None else '-'} | {r['wer']:.1%} | "
            f"{r['cer']:.1%} | {r['train_seconds']} |"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
