"""``asrtune train``: one training path for every family, full fine-tuning or LoRA.

Reads top to bottom: load and check rows → load the model (+ LoRA) → admit rows within the
model's limits → build the dataset and trainer → train → save → evaluate → write results.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import Trainer, TrainerCallback, set_seed
from transformers.trainer_utils import get_last_checkpoint

from asrtune.config import TrainJob
from asrtune.data.batching import DurationBatchSampler
from asrtune.data.manifest import BadRow, Row
from asrtune.data.rows import (
    LoadedRows,
    combine,
    eval_source,
    hub_options,
    load_rows,
    training_sources,
)
from asrtune.data.sources import stream_source
from asrtune.data.streaming import Stream, StreamingWindows
from asrtune.data.windows import Example, WindowDataset
from asrtune.errors import AsrtuneError
from asrtune.evaluate import EvalResult, evaluate_rows, write_report
from asrtune.models import LoadedModel, load_model
from asrtune.transcribe import DecodingOptions

log = logging.getLogger("asrtune")


@dataclass(frozen=True)
class TrainResult:
    output_dir: Path
    train_metrics: dict[str, Any]
    eval_result: EvalResult | None


class EpochSetter(TrainerCallback):
    """Tells the training dataset each new epoch (repacking), in every process."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def on_epoch_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(int(state.epoch or 0))


class AsrTrainer(Trainer):
    """A Trainer whose evaluation is generation + corpus WER/CER (the same code as
    ``asrtune eval``), so best-checkpoint selection by WER needs no extra machinery.

    Each evaluation also logs ``eval_train_seconds``: training time so far, evaluation
    excluded (time-to-WER curves).
    """

    def __init__(
        self,
        *args: Any,
        loaded: LoadedModel,
        eval_rows: list[Row],
        decoding: DecodingOptions,
        max_batch_seconds: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, eval_dataset=eval_rows or None, **kwargs)
        self.loaded, self.eval_rows, self.decoding = loaded, eval_rows, decoding
        self.max_batch_seconds = max_batch_seconds
        self.last_eval: EvalResult | None = None
        self.clock_start: float | None = None
        self.eval_seconds = 0.0
        self.add_callback(EpochSetter(self.train_dataset))

    def get_train_dataloader(self) -> Any:
        """Duration-bucketed batches when ``max_batch_seconds`` is set, else Trainer's own."""
        if self.max_batch_seconds is None or not hasattr(self.train_dataset, "window_seconds"):
            return super().get_train_dataloader()
        sampler = DurationBatchSampler(
            self.train_dataset.window_seconds(),
            self.max_batch_seconds,
            max_batch_items=self.args.per_device_train_batch_size,
            seed=self.args.seed,
        )
        loader = torch.utils.data.DataLoader(
            self.train_dataset,
            batch_sampler=sampler,
            collate_fn=self.data_collator,
            num_workers=self.args.dataloader_num_workers,
            pin_memory=self.args.dataloader_pin_memory and torch.cuda.is_available(),
        )
        return self.accelerator.prepare(loader)

    def train(self, *args: Any, **kwargs: Any) -> Any:
        self.clock_start, self.eval_seconds = time.perf_counter(), 0.0
        return super().train(*args, **kwargs)

    def evaluate(
        self, eval_dataset: Any = None, ignore_keys: Any = None, metric_key_prefix: str = "eval"
    ) -> dict[str, float]:
        started = time.perf_counter()
        current = LoadedModel(self.model, self.loaded.processor, self.loaded.family, "training")
        result = evaluate_rows(current, self.eval_rows, self.decoding, progress=True)
        self.last_eval = result
        metrics = {
            f"{metric_key_prefix}_{key}": value
            for key, value in result.report().items()
            if key in ("wer", "cer", "wer_unnormalized", "num_samples")
        }
        metrics[f"{metric_key_prefix}_runtime"] = round(result.seconds, 2)
        if self.clock_start is not None:
            trained = started - self.clock_start - self.eval_seconds
            metrics[f"{metric_key_prefix}_train_seconds"] = round(trained, 2)
            self.eval_seconds += time.perf_counter() - started
        self.log(metrics)
        self.control = self.callback_handler.on_evaluate(
            self.args, self.state, self.control, metrics
        )
        return metrics


def check_rows(sources: list[LoadedRows], drop_invalid: bool, out_dir: Path) -> int:
    """Stop on invalid rows unless ``drop_invalid``; then list them in OUT/dropped.jsonl.

    Returns the number of rows dropped.
    """
    invalid = [(lr.source, bad) for lr in sources for bad in lr.invalid]
    if not invalid:
        return 0
    for source, bad in invalid[:10]:
        log.warning("%s line %s: %s (%s)", source, bad.line, bad.reason, bad.audio_path)
    if not drop_invalid:
        raise AsrtuneError(
            f"{len(invalid)} invalid row(s) in {', '.join(lr.source for lr in sources)} "
            "(listed above); fix them or pass --drop_invalid"
        )
    _write_jsonl(out_dir / "dropped.jsonl", [{"source": src, **b.as_dict()} for src, b in invalid])
    log.warning("dropped %d invalid row(s): see %s", len(invalid), out_dir / "dropped.jsonl")
    return len(invalid)


def _write_jsonl(path: Path, records: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")


def build_model(job: TrainJob) -> LoadedModel:
    """Load the model; freeze the encoder and/or wrap it with LoRA as configured."""
    cfg = job.model
    set_seed(job.training.seed)
    options: dict[str, Any] = {"allow_pickle": cfg.allow_pickle}
    if not cfg.lora:
        # full fine-tuning keeps fp32 master weights: bf16/fp16 ones round small updates away
        options["dtype"] = torch.float32
    if cfg.quantization:
        options["quantization"] = cfg.quantization
    loaded = load_model(cfg.model, for_training=True, **options)
    adapter = loaded.adapter
    if cfg.freeze_encoder:
        adapter.freeze_encoder(loaded.model)
    if cfg.lora and not isinstance(loaded.model, PeftModel):
        targets = cfg.lora_target_modules or adapter.default_lora_targets(cfg.freeze_encoder)
        if isinstance(targets, list) and len(targets) == 1 and not targets[0].isidentifier():
            targets = targets[0]  # a single regex
        lora = LoraConfig(
            r=cfg.lora_r,
            lora_alpha=cfg.lora_alpha,
            lora_dropout=cfg.lora_dropout,
            target_modules=targets,
            task_type=adapter.LORA_TASK_TYPE,
        )
        loaded.model = get_peft_model(loaded.model, lora)
        if job.training.gradient_checkpointing or job.training.activation_checkpointing:
            loaded.model.enable_input_require_grads()
    trainable, total = count_parameters(loaded.model)
    log.info(
        "trainable parameters: %s of %s (%.2f%%)",
        f"{trainable:,}",
        f"{total:,}",
        100 * trainable / max(total, 1),
    )
    return loaded


def count_parameters(model: torch.nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    total = sum(p.numel() for p in model.parameters())
    return sum(p.numel() for p in model.parameters() if p.requires_grad), total


def admit_row(loaded: LoadedModel, row: Row, task: str) -> Any:
    """The family's Example for a row, or the reason it is over the model's limits."""
    adapter = loaded.adapter
    lim = adapter.limits(loaded)
    labels = adapter.encode_labels(loaded, [row.text], row.language, task)
    if row.duration and row.duration > lim.max_seconds:
        return f"audio {row.duration:.1f} s > {lim.max_seconds:g} s"
    if len(labels) > lim.max_label_tokens:
        return f"{len(labels)} label tokens > {lim.max_label_tokens}"
    return Example(row, row.language, len(labels))


def admit_rows(
    loaded: LoadedModel, rows: list[Row], task: str
) -> tuple[list[Any], list[dict[str, Any]]]:
    """Split rows into trainable examples and those over the model's limits (with reasons)."""
    examples, skipped = [], []
    for row in rows:
        admitted = admit_row(loaded, row, task)
        if isinstance(admitted, str):
            skipped.append(_skip_record(row, admitted))
        else:
            examples.append(admitted)
    return examples, skipped


def _skip_record(row: Row, reason: str) -> dict[str, Any]:
    return {"id": row.id, "line": row.line, "audio_path": row.audio_path, "reason": reason}


def load_training_rows(job: TrainJob, out: Path) -> tuple[list[Row], int]:
    """Rows of every training source, checked, mixed by weight; and how many were dropped."""
    specs = training_sources(job.data)
    loaded = [load_rows(spec, job.model.language, hub_options(job.data)) for spec in specs]
    dropped = check_rows(loaded, job.data.drop_invalid, out)
    return combine(loaded, specs, job.training.seed), dropped


def load_eval_rows(job: TrainJob, out: Path) -> list[Row]:
    spec = eval_source(job.data)
    if spec is None:
        return []
    loaded = load_rows(
        spec, job.model.language, hub_options(job.data), limit=job.data.max_eval_samples
    )
    check_rows([loaded], job.data.drop_invalid, out / "eval")
    return loaded.rows[: job.data.max_eval_samples]


class SkipLog:
    """Appends rows left out of a stream to OUT/skipped.jsonl (workers append too)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")

    def add(self, record: dict[str, Any]) -> None:
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(x) for x in self.path.read_text(encoding="utf-8").splitlines()]


def build_stream_dataset(job: TrainJob, loaded: LoadedModel, skips: SkipLog) -> Any:
    """--streaming: rows are read, checked, packed and featurized as training goes."""
    adapter, task, language = loaded.adapter, job.model.task, job.model.language
    options = item_options(job, loaded)
    if not hasattr(adapter, "window_item"):
        raise AsrtuneError(f"--streaming is not supported for {loaded.family} models yet")
    streams = []
    for spec in training_sources(job.data):
        records, to_row = stream_source(spec, hub_options(job.data))
        records = records.shuffle(seed=job.training.seed, buffer_size=job.data.shuffle_buffer)
        streams.append(Stream(records, _with_language(to_row, language), spec.weight))

    def admit(row: Row) -> Any:
        example = admit_row(loaded, row, task)
        return (
            example
            if isinstance(example, str)
            else (example, adapter.pack_item(loaded, example, task))
        )

    return StreamingWindows(
        streams,
        admit=admit,
        make_item=lambda window: adapter.window_item(loaded, window, task, **options),
        packer=adapter.packer(loaded, task, language) if job.data.pack else None,
        on_skip=skips.add,
        seed=job.training.seed,
    )


def _with_language(to_row: Any, language: str | None) -> Any:
    def wrapped(record: dict, index: int) -> Row | BadRow:
        row = to_row(record, index)
        if isinstance(row, Row) and language and not row.language:
            return replace(row, language=language)
        return row

    return wrapped


def build_trainer(
    job: TrainJob, loaded: LoadedModel, train_dataset: Any, eval_rows: list[Row]
) -> AsrTrainer:
    decoding = DecodingOptions(
        language=job.model.language,
        task=job.model.task,
        batch_size=job.training.per_device_eval_batch_size,
        num_beams=job.training.generation_num_beams or 1,
        max_new_tokens=job.training.generation_max_length,
    )
    return AsrTrainer(
        model=loaded.model,
        args=job.training,
        train_dataset=train_dataset,
        data_collator=loaded.adapter.collate,
        processing_class=loaded.processor,
        loaded=loaded,
        eval_rows=eval_rows,
        decoding=decoding,
        max_batch_seconds=job.data.max_batch_seconds,
    )


def resume_checkpoint(job: TrainJob) -> str | None:
    if not job.run.resume:
        return None
    out = Path(job.training.output_dir)
    last = get_last_checkpoint(str(out)) if out.is_dir() else None
    if last is None:
        raise AsrtuneError(f"--resume: no checkpoint-* folder in {out}")
    log.info("resuming from %s", last)
    return last


def save_outputs(job: TrainJob, loaded: LoadedModel, trainer: AsrTrainer) -> None:
    """Final model + processor in OUT (LoRA: the adapter); --merge adds OUT/merged."""
    out = Path(job.training.output_dir)
    trainer.save_model(str(out))
    loaded.processor.save_pretrained(str(out))
    if job.model.lora and job.model.merge:
        merged = LoadedModel(
            loaded.model.merge_and_unload(), loaded.processor, loaded.family, str(out)
        )
        loaded.adapter.save(merged, out / "merged")
        loaded.model = merged.model
        log.info("merged model written to %s", out / "merged")


def final_evaluation(trainer: AsrTrainer) -> EvalResult:
    """The saved model's evaluation: reused when the last one during training was of the
    same weights (the best checkpoint was the last, or no best-model reload happened)."""
    state = trainer.state
    last_eval_step = max((e["step"] for e in state.log_history if "eval_wer" in e), default=None)
    same_weights = last_eval_step == state.global_step and (
        not trainer.args.load_best_model_at_end or state.best_global_step == last_eval_step
    )
    if not (same_weights and trainer.last_eval is not None):
        trainer.evaluate()
    assert trainer.last_eval is not None
    return trainer.last_eval


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")


def item_options(job: TrainJob, loaded: LoadedModel) -> dict[str, Any]:
    """Family options for training items; asking for one the family lacks is an error."""
    if not job.data.pack_timestamps:
        return {}
    if not getattr(loaded.adapter, "SUPPORTS_TIMESTAMPS", False):
        raise AsrtuneError(f"--pack_timestamps is not supported for {loaded.family} models")
    if not job.data.pack:
        raise AsrtuneError("--pack_timestamps marks packed utterances: drop --no_pack")
    return {"timestamps": True}


def build_finite_dataset(
    job: TrainJob, loaded: LoadedModel, rows: list[Row], out: Path
) -> tuple[Any, list[dict[str, Any]]]:
    examples, skipped = admit_rows(loaded, rows, job.model.task)
    if skipped:
        _write_jsonl(out / "skipped.jsonl", skipped)
        log.warning(
            "left out %d row(s) over the model's limits, e.g. %s: see %s",
            len(skipped),
            skipped[0]["id"],
            out / "skipped.jsonl",
        )
    if not examples:
        raise AsrtuneError("no training rows left after the checks")
    dataset = WindowDataset(
        loaded,
        examples,
        job.model.task,
        job.data.pack,
        job.training.seed,
        item_options(job, loaded),
    )
    log.info(
        "%d utterances (%.0f s of audio) in %d training items",
        len(examples),
        dataset.audio_seconds(),
        len(dataset),
    )
    return dataset, skipped


def train(job: TrainJob, trainer_hook: Callable[[AsrTrainer], None] | None = None) -> TrainResult:
    """Run one training job end to end; see the module docstring for the steps.

    ``trainer_hook`` receives the built trainer before training (e.g. to add callbacks).
    """
    out = Path(job.training.output_dir)
    rows, dropped = ([], 0) if job.data.streaming else load_training_rows(job, out)
    eval_rows = load_eval_rows(job, out)
    resume_from = resume_checkpoint(job)

    loaded = build_model(job)
    skips = SkipLog(out / "skipped.jsonl") if job.data.streaming else None
    if skips is not None:
        dataset, skipped = build_stream_dataset(job, loaded, skips), []
    else:
        dataset, skipped = build_finite_dataset(job, loaded, rows, out)

    trainer = build_trainer(job, loaded, dataset, eval_rows)
    if trainer_hook is not None:
        trainer_hook(trainer)
    start = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=resume_from)
    seconds = time.perf_counter() - start
    save_outputs(job, loaded, trainer)

    if skips is not None:
        skipped = skips.records()
    metrics = {
        **result.metrics,
        "global_step": trainer.state.global_step,
        **dataset_metrics(job, dataset, seconds, trainer),
        "skipped_rows": len(skipped),
        "skipped_ids": [s.get("id") for s in skipped],
        "invalid_rows_dropped": dropped,
    }
    write_json(out / "train_results.json", metrics)
    write_json(out / "training_config.json", job.to_dict())

    eval_result = final_evaluation(trainer) if eval_rows else None
    if eval_result is not None:
        write_report(eval_result, out / "eval_results.json", {"model": str(out)})
    return TrainResult(out, metrics, eval_result)


def dataset_metrics(job: TrainJob, dataset: Any, seconds: float, trainer: Trainer) -> dict:
    """Size and throughput of the training data (finite datasets only)."""
    if not hasattr(dataset, "audio_seconds"):
        return {"streaming": True, "packed": job.data.pack}
    epochs = trainer.state.epoch or 0
    audio = dataset.audio_seconds()
    return {
        "utterances": sum(len(w) for w in dataset.windows),
        "training_items": len(dataset),
        "packed": job.data.pack,
        "audio_seconds_per_epoch": round(audio, 1),
        "audio_seconds_per_second": round(audio * epochs / seconds, 2),
    }
