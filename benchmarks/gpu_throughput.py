"""Training and evaluation throughput of asrtune's own training path on a real-sized model.

The model is random-init with the dimensions of a real checkpoint (``asrtune make-tiny
--size``, the sizes each family registers), so no download is needed; the data are
synthetic clips of 2-10 s with help-desk sentences. Training runs through ``asrtune.train``
(packing, bf16 and the fused optimizer where the GPU has them), timed per optimizer step
after ``--warmup`` steps. One step's FLOPs are counted by torch's ``FlopCounterMode``
(forward + backward of one batch, without activation checkpointing's recomputation: the
usual model-FLOPs definition), which gives MFU against the GPU's dense bf16 peak.

    python benchmarks/gpu_throughput.py --family whisper --size large-v3 --batch-size 16 \\
        --steps 20 --output docs/bench_gpu_whisper_large_v3.json

Writes one JSON object (see :func:`summarize`). On a CPU it runs too (used by the tests with
``--size tiny``); memory and MFU are then left out.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch
from torch.utils.flop_counter import FlopCounterMode
from transformers import TrainerCallback

import asrtune
from asrtune.data.demo_corpus import demo_sentences
from asrtune.data.rows import load_rows
from asrtune.evaluation import evaluate_rows
from asrtune.inference import DecodingOptions
from asrtune.models import FAMILIES, LoadedModel

# Dense bf16 peak (TFLOP/s) of the GPUs this project is lent, from NVIDIA's data sheets:
# the SXM parts, as torch names them (PCIe and NVL parts are slower and get no MFU).
BF16_PEAK_TFLOPS = {"NVIDIA H100 80GB HBM3": 989.4, "NVIDIA H200": 989.4}
SAMPLE_RATE = 16000
CHARS_PER_SECOND = 14.0


def write_clips(folder: Path, files: int, rows: int, seed: int) -> Path:
    """``files`` distinct clips of 2-10 s (tones in noise) and a manifest of ``rows`` rows,
    each with its own sentence and the clip whose length suits it (about 14 characters a
    second, as in read speech). Returns the manifest path."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    durations = np.linspace(2.0, 10.0, files)
    paths = []
    for i, seconds in enumerate(durations):
        t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
        audio = 0.3 * np.sin(2 * np.pi * rng.uniform(150, 600) * t)
        audio += 0.05 * rng.standard_normal(t.shape)
        path = folder / f"clip{i:04d}.wav"
        sf.write(path, audio.astype(np.float32), SAMPLE_RATE)
        paths.append(path)
    manifest = folder / "manifest.jsonl"
    with open(manifest, "w", encoding="utf-8") as handle:
        for i, text in enumerate(demo_sentences(rows, seed)):
            clip = int(np.abs(durations - len(text) / CHARS_PER_SECOND).argmin())
            record = {"id": f"r{i}", "audio_path": str(paths[clip]), "text": text}
            handle.write(json.dumps({**record, "language": "en"}) + "\n")
    return manifest


class StepTimer(TrainerCallback):
    """Wall time of each optimizer step after ``warmup`` steps, and peak GPU memory."""

    def __init__(self, warmup: int) -> None:
        self.warmup, self.started, self.seconds = warmup, 0.0, []
        self.peak_bytes: int | None = None

    @staticmethod
    def _sync() -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._sync()
        self.started = time.perf_counter()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._sync()
        if state.global_step > self.warmup:
            self.seconds.append(time.perf_counter() - self.started)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if torch.cuda.is_available():
            self.peak_bytes = torch.cuda.max_memory_allocated()


def count_step_flops(trainer: Any) -> float:
    """FLOPs of one training step (forward + backward of one batch), as executed."""
    model = trainer.model.to(trainer.args.device)
    items = [trainer.train_dataset[i] for i in range(trainer.args.per_device_train_batch_size)]
    batch = {k: v.to(trainer.args.device) for k, v in trainer.data_collator(items).items()}
    dtype = torch.bfloat16 if trainer.args.bf16 else torch.float32
    device_type = trainer.args.device.type
    with (
        FlopCounterMode(display=False) as counter,
        torch.autocast(device_type, dtype=dtype, enabled=trainer.args.bf16),
    ):
        trainer.compute_loss(model, batch).backward()
    model.zero_grad(set_to_none=True)
    return float(counter.get_total_flops())


def summarize(
    trainer: Any, timer: StepTimer, flops: float, eval_rate: dict[str, float], args: Any
) -> dict[str, Any]:
    """Throughput, MFU and memory of the timed steps."""
    dataset = trainer.train_dataset
    batch = trainer.args.per_device_train_batch_size
    utterances_per_item = sum(len(w) for w in dataset.windows) / len(dataset)
    audio_per_item = dataset.audio_seconds() / len(dataset)
    step = float(np.median(timer.seconds))
    model = trainer.model
    name = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    peak = BF16_PEAK_TFLOPS.get(name)
    achieved = flops / step / 1e12
    return {
        "device": name,
        "family": args.family,
        "size": args.size,
        "mode": "lora" if args.lora else "full",
        "packed": not args.no_pack,
        "bf16": bool(trainer.args.bf16),
        "activation_checkpointing": args.activation_checkpointing,
        "parameters": sum(p.numel() for p in model.parameters()),
        "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "batch_size": batch,
        "steps_timed": len(timer.seconds),
        "step_seconds_median": round(step, 4),
        "windows_per_second": round(batch / step, 3),
        "samples_per_second": round(batch * utterances_per_item / step, 3),
        # the same rate in the two units people quote: audio-s per s = audio-h per GPU-hour
        "audio_seconds_per_second": round(batch * audio_per_item / step, 1),
        "audio_hours_per_gpu_hour": round(batch * audio_per_item / step, 1),
        "flops_per_step": int(flops),
        "tflops_per_step": round(flops / 1e12, 3),
        "achieved_tflops": round(achieved, 2),
        "mfu": round(achieved / peak, 4) if peak else None,
        "peak_memory_gib": round(timer.peak_bytes / 2**30, 2) if timer.peak_bytes else None,
        **eval_rate,
    }


def measure_eval(trainer: Any, loaded_family: str, manifest: Path, args: Any) -> dict:
    """Evaluation speed of the trained model on ``--eval-clips`` rows (generation, WER)."""
    if args.eval_clips <= 0:
        return {}
    rows = load_rows(manifest).rows[: args.eval_clips]
    processor = trainer.processing_class
    loaded = LoadedModel(trainer.model, processor, loaded_family, "bench")
    options = DecodingOptions(batch_size=args.eval_batch_size, max_new_tokens=args.eval_tokens)
    evaluate_rows(loaded, rows[: args.eval_batch_size], options, progress=False)  # warm-up
    result = evaluate_rows(loaded, rows, options, progress=False)
    audio = sum(r.duration or 0 for r in rows)
    encode = processor.tokenizer.encode
    tokens = sum(len(encode(u.hypothesis, add_special_tokens=False)) for u in result.utterances)
    return {
        "eval_utterances_per_second": round(len(rows) / result.seconds, 2),
        "eval_audio_seconds_per_second": round(audio / result.seconds, 1),
        # a random-init model's speed depends on what it happens to generate
        "eval_tokens_per_utterance": round(tokens / len(rows), 1),
        "eval_precision": result.precision,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(args.work_dir)
    model_dir = work / f"{args.family}-{args.size}"
    if not (model_dir / "config.json").is_file():
        FAMILIES[args.family].build_tiny(model_dir, size=args.size)
    rows = args.rows or args.batch_size * (args.warmup + args.steps + 2) * (
        1 if args.no_pack else 6
    )
    manifest = write_clips(work / "clips", args.files, rows, seed=0)
    timer, held = StepTimer(args.warmup), {}

    def hook(trainer: Any) -> None:
        held["flops"] = count_step_flops(trainer)
        trainer.add_callback(timer)
        held["trainer"] = trainer

    options: dict[str, Any] = {
        "model": str(model_dir),
        "train_manifest": str(manifest),
        "output_dir": str(work / "run"),
        "max_steps": args.warmup + args.steps,
        "per_device_train_batch_size": args.batch_size,
        "report_to": "none",
        "save_strategy": "no",
        "logging_steps": 10_000,
        "dataloader_num_workers": args.workers,
        "lora": args.lora,
        "pack": not args.no_pack,
        "activation_checkpointing": args.activation_checkpointing,
    }
    asrtune.train(trainer_hook=hook, **options)
    trainer = held["trainer"]
    eval_rate = measure_eval(trainer, args.family, manifest, args)
    return summarize(trainer, timer, held["flops"], eval_rate, args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--family", choices=sorted(FAMILIES), default="whisper")
    sizes = "; ".join(f"{f.name}: {', '.join(f.tiny_sizes)}" for f in FAMILIES.values())
    parser.add_argument("--size", default="large-v3", help=f"the family's size ({sizes})")
    parser.add_argument("--lora", action="store_true", help="train LoRA adapters, not all weights")
    parser.add_argument("--no-pack", action="store_true", help="one clip per item, not packed")
    parser.add_argument("--activation-checkpointing", action="store_true")
    parser.add_argument("--batch-size", type=int, default=16, help="items (windows) per step")
    parser.add_argument("--steps", type=int, default=20, help="timed optimizer steps")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    parser.add_argument("--files", type=int, default=64, help="distinct synthetic clips")
    parser.add_argument("--rows", type=int, default=0, help="manifest rows (0: enough)")
    parser.add_argument("--workers", type=int, default=4, help="data loader processes")
    parser.add_argument("--eval-clips", type=int, default=256, help="0 skips evaluation")
    parser.add_argument("--eval-batch-size", type=int, default=32)
    parser.add_argument("--eval-tokens", type=int, default=40, help="generated tokens cap")
    parser.add_argument("--work-dir", default="/tmp/asrtune-gpu-bench")
    parser.add_argument("--output", default=None, help="also write the JSON here")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result = run(args)
    text = json.dumps(result, indent=2)
    print(text)
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
