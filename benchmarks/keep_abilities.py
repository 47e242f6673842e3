"""What a fine-tune keeps: asrtune's training mix against plain packed training.

On the demo's data (whisper tiny.en imported from CTranslate2, 240 synthetic help-desk
clips to train on, 100 to test, 12 non-speech probes, a guard set of 30 everyday sentences
in British voices), each configuration fine-tunes the same way as ``asrtune demo`` (4
epochs, batch 4, seed 0, the default learning rate, no evaluation during training) and is
measured against the base model on:

- in-domain WER (test split) and words said on the 12 non-speech probes;
- the guard set's WER;
- long-form WER on 6 files of ~60 s (test clips joined by 0.3-1.0 s pauses);
- timestamps on 20 packed files of 3 test clips (< 30 s): segments in order and inside
  the audio, and how far each utterance's true start is from the nearest segment start
  (share within 0.5 s, median).

Usage: python benchmarks/keep_abilities.py --out /tmp/keep [--configs plain,mix]
Prints a Markdown table; ``--json FILE`` keeps the numbers.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from asrtune.api import evaluate, transcribe_segments
from asrtune.api import train as api_train
from asrtune.data.audio import SAMPLE_RATE, load_audio, write_audio
from asrtune.data.demo_corpus import make_demo_dataset
from asrtune.demo import import_base_model
from asrtune.inference import DecodingOptions

PLAIN = {"timestamp_share": 0.0, "nonspeech_share": 0.0, "single_share": 0.0}
CONFIGS: dict[str, dict[str, Any]] = {
    "plain": {**PLAIN, "natural_gaps": False},  # asrtune's training before the mix
    "mix": {},  # the family's defaults (whisper.TRAINING_MIX)
    "timestamps": {**PLAIN, "timestamp_share": 0.5, "natural_gaps": True},
    "nonspeech": {**PLAIN, "nonspeech_share": 0.05, "natural_gaps": True},
    "mix-10": {"nonspeech_share": 0.1, "single_share": 0.1},
    "ns10": {"nonspeech_share": 0.1},
    "ns20": {"nonspeech_share": 0.2},
    "ns30": {"nonspeech_share": 0.3},
}


def joined_files(
    manifest: Path, out: Path, count: int, per_file: int, seed: int
) -> tuple[Path, list[list[tuple[float, float]]]]:
    """``count`` files of ``per_file`` test clips joined by 0.3-1.0 s of silence: their
    manifest and each file's true (start, end) seconds per clip."""
    rows = [json.loads(x) for x in manifest.read_text().splitlines()]
    rows = [r for r in rows if r["text"]]
    rng = random.Random(seed)
    out.mkdir(parents=True, exist_ok=True)
    lines, truths = [], []
    for i in range(count):
        picked = rng.sample(rows, per_file)
        pieces, spans, position = [], [], 0
        for j, row in enumerate(picked):
            if j:
                gap = np.zeros(int(rng.uniform(0.3, 1.0) * SAMPLE_RATE), np.float32)
                pieces.append(gap)
                position += len(gap)
            audio = load_audio(manifest.parent / row["audio_path"])
            pieces.append(audio)
            spans.append((position / SAMPLE_RATE, (position + len(audio)) / SAMPLE_RATE))
            position += len(audio)
        path = out / f"joined{i:02d}.wav"
        write_audio(path, np.concatenate(pieces))
        text = " ".join(r["text"] for r in picked)
        lines.append(json.dumps({"id": path.stem, "audio_path": path.name, "text": text}))
        truths.append(spans)
    joined = out / "manifest.jsonl"
    joined.write_text("\n".join(lines) + "\n")
    return joined, truths


def timestamp_quality(model: str, manifest: Path, truths: list) -> dict[str, float]:
    """Segments of each packed file against the true utterance starts."""
    rows = [json.loads(x) for x in manifest.read_text().splitlines()]
    files = [str(manifest.parent / r["audio_path"]) for r in rows]
    transcripts = transcribe_segments(model, files, DecodingOptions(language="en"))
    ordered = inside = 0
    errors: list[float] = []
    for transcript, spans in zip(transcripts, truths, strict=True):
        segments = transcript.segments or []
        starts = [s.start for s in segments]
        ordered += all(
            a.end <= b.start + 1e-6 and a.start <= a.end for a, b in itertools.pairwise(segments)
        )
        inside += all(0 <= s.start <= s.end <= transcript.duration + 1e-6 for s in segments)
        for start, _ in spans:
            errors.append(min((abs(start - s) for s in starts), default=float("inf")))
    return {
        "files_in_order": ordered / len(transcripts),
        "files_inside_audio": inside / len(transcripts),
        "starts_within_0.5s": sum(e <= 0.5 for e in errors) / len(errors),
        "median_start_error_s": statistics.median(errors),
        "segments_per_file": statistics.mean(len(t.segments or []) for t in transcripts),
    }


def measure(model: str, sets: dict[str, Any]) -> dict[str, Any]:
    options = DecodingOptions(language="en")
    test = evaluate(model, sets["test"], options=options)
    guard = evaluate(model, sets["guard"], options=options)
    long = evaluate(model, sets["long"], options=options)
    return {
        "test_wer": test.score.wer,
        "probe_words": test.nonspeech.words if test.nonspeech else None,
        "probe_clips_with_words": test.nonspeech.clips_with_words if test.nonspeech else None,
        "guard_wer": guard.score.wer,
        "long_wer": long.score.wer,
        "loops": test.score.loops + long.score.loops,
        **timestamp_quality(model, sets["packed"], sets["packed_truth"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--out", required=True, help="work folder")
    parser.add_argument("--configs", default="plain,mix", help="comma-separated, of CONFIGS")
    parser.add_argument("--epochs", type=float, default=4)
    parser.add_argument("--json", default=None, help="also write the results here")
    parser.add_argument("--no-base", action="store_true", help="skip measuring the base model")
    args = parser.parse_args()
    out = Path(args.out)
    base = str(import_base_model(out))
    train, test = make_demo_dataset(out / "data", n_train=240, n_test=100, seed=0)
    long, _ = joined_files(test, out / "long", count=6, per_file=12, seed=1)
    packed, truth = joined_files(test, out / "packed", count=20, per_file=3, seed=2)
    sets = {
        "test": test,
        "guard": out / "data" / "guard" / "manifest.jsonl",
        "long": long,
        "packed": packed,
        "packed_truth": truth,
    }
    results: dict[str, Any] = {} if args.no_base else {"base": measure(base, sets)}
    for name in args.configs.split(","):
        model_dir = out / f"model-{name}"
        started = time.perf_counter()
        outcome = api_train(
            model=base,
            train_manifest=str(train),
            output_dir=str(model_dir),
            num_train_epochs=args.epochs,
            per_device_train_batch_size=4,
            seed=0,
            save_strategy="no",
            report_to="none",
            logging_steps=50,
            **CONFIGS[name],
        )
        seconds = time.perf_counter() - started
        results[name] = {
            "train_seconds": round(outcome.train_metrics["train_runtime"], 1),
            "wall_seconds": round(seconds, 1),
            "training_items": outcome.train_metrics["training_items"],
            **measure(str(model_dir), sets),
        }
        print(json.dumps({name: results[name]}), flush=True)
    print(markdown(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


def markdown(results: dict[str, Any]) -> str:
    def pct(value: Any) -> str:
        return "–" if value is None else f"{100 * value:.1f}%"

    lines = [
        "| model | train s | items | test WER | probe words (clips) | guard WER | long WER "
        "| loops | ts in order | ts start ≤0.5 s | median start err |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, r in results.items():
        lines.append(
            f"| {name} | {r.get('train_seconds', '–')} | {r.get('training_items', '–')} | "
            f"{pct(r['test_wer'])} | {r['probe_words']} ({r['probe_clips_with_words']}/12) | "
            f"{pct(r['guard_wer'])} | {pct(r['long_wer'])} | {r['loops']} | "
            f"{pct(r['files_in_order'])} | {pct(r['starts_within_0.5s'])} | "
            f"{r['median_start_error_s']:.2f} s |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
