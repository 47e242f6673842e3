"""``asrtune train``: one training path for every family, full fine-tuning or LoRA.

Reads top to bottom: load and check rows → load the model (+ LoRA) → admit rows within the
model's limits → build the dataset and trainer → train → save → evaluate → write results.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import Trainer, set_seed
from transformers.trainer_utils import get_last_checkpoint

from asrtune.config import TrainJob
from asrtune.data.manifest import Row
from asrtune.data.rows import LoadedRows, load_rows
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


class AsrTrainer(Trainer):
    """A Trainer whose evaluation is generation + corpus WER/CER (the same code as
    ``asrtune eval``), so best-checkpoint selection by WER needs no extra machinery."""

    def __init__(
        self,
        *args: Any,
        loaded: LoadedModel,
        eval_rows: list[Row],
        decoding: DecodingOptions,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, eval_dataset=eval_rows or None, **kwargs)
        self.loaded, self.eval_rows, self.decoding = loaded, eval_rows, decoding
        self.last_eval: EvalResult | None = None

    def evaluate(
        self, eval_dataset: Any = None, ignore_keys: Any = None, metric_key_prefix: str = "eval"
    ) -> dict[str, float]:
        current = LoadedModel(self.model, self.loaded.processor, self.loaded.family, "training")
        result = evaluate_rows(current, self.eval_rows, self.decoding, progress=True)
        self.last_eval = result
        metrics = {
            f"{metric_key_prefix}_{key}": value
            for key, value in result.report().items()
            if key in ("wer", "cer", "wer_unnormalized", "num_samples")
        }
        metrics[f"{metric_key_prefix}_runtime"] = round(result.seconds, 2)
        self.log(metrics)
        self.control = self.callback_handler.on_evaluate(
            self.args, self.state, self.control, metrics
        )
        return metrics


def check_rows(loaded_rows: LoadedRows, drop_invalid: bool, out_dir: Path) -> None:
    """Stop on invalid rows unless ``drop_invalid``; then list them in OUT/dropped.jsonl."""
    if not loaded_rows.invalid:
        return
    for bad in loaded_rows.invalid[:10]:
        log.warning("line %s: %s (%s)", bad.line, bad.reason, bad.audio_path)
    if not drop_invalid:
        raise AsrtuneError(
            f"{len(loaded_rows.invalid)} invalid row(s) in {loaded_rows.source} "
            "(listed above); fix them or pass --drop_invalid"
        )
    _write_jsonl(out_dir / "dropped.jsonl", [b.as_dict() for b in loaded_rows.invalid])
    log.warning(
        "dropped %d invalid row(s): see %s", len(loaded_rows.invalid), out_dir / "dropped.jsonl"
    )


def _write_jsonl(path: Path, records: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")


def build_model(job: TrainJob) -> LoadedModel:
    """Load the model; freeze the encoder and/or wrap it with LoRA as configured."""
    cfg = job.model
    set_seed(job.training.seed)
    loaded = load_model(cfg.model, for_training=True, allow_pickle=cfg.allow_pickle)
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


def admit_rows(
    loaded: LoadedModel, rows: list[Row], task: str
) -> tuple[list[Any], list[dict[str, Any]]]:
    """Split rows into trainable examples and those over the model's limits (with reasons)."""
    adapter = loaded.adapter
    lim = adapter.limits(loaded)
    examples, skipped = [], []
    for row in rows:
        labels = adapter.encode_labels(loaded, [row.text], row.language, task)
        reason = None
        if row.duration and row.duration > lim.max_seconds:
            reason = f"audio {row.duration:.1f} s > {lim.max_seconds:g} s"
        elif len(labels) > lim.max_label_tokens:
            reason = f"{len(labels)} label tokens > {lim.max_label_tokens}"
        if reason:
            skipped.append(
                {"id": row.id, "line": row.line, "audio_path": row.audio_path, "reason": reason}
            )
        else:
            examples.append(adapter.Example(row, row.language, len(labels)))
    return examples, skipped


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


def train(job: TrainJob) -> TrainResult:
    """Run one training job end to end; see the module docstring for the steps."""
    out = Path(job.training.output_dir)
    train_rows = load_rows(job.data.train_manifest, job.model.language)
    check_rows(train_rows, job.data.drop_invalid, out)
    eval_rows: list[Row] = []
    if job.data.eval_manifest:
        loaded_eval = load_rows(job.data.eval_manifest, job.model.language)
        check_rows(loaded_eval, job.data.drop_invalid, out / "eval")
        eval_rows = loaded_eval.rows[: job.data.max_eval_samples]
    resume_from = resume_checkpoint(job)

    loaded = build_model(job)
    examples, skipped = admit_rows(loaded, train_rows.rows, job.model.task)
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
    dataset = loaded.adapter.build_train_dataset(
        loaded, examples, job.model.task, job.data.pack, job.training.seed
    )
    log.info(
        "%d utterances (%.0f s of audio) in %d training items",
        len(examples),
        dataset.audio_seconds(),
        len(dataset),
    )

    trainer = build_trainer(job, loaded, dataset, eval_rows)
    start = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=resume_from)
    seconds = time.perf_counter() - start
    save_outputs(job, loaded, trainer)

    epochs = (
        job.training.num_train_epochs if job.training.max_steps <= 0 else (trainer.state.epoch or 0)
    )
    metrics = {
        **result.metrics,
        "utterances": len(examples),
        "training_items": len(dataset),
        "packed": job.data.pack,
        "audio_seconds_per_epoch": round(dataset.audio_seconds(), 1),
        "audio_seconds_per_second": round(dataset.audio_seconds() * epochs / seconds, 2),
        "skipped_rows": len(skipped),
        "skipped_ids": [s["id"] for s in skipped],
        "invalid_rows_dropped": len(train_rows.invalid),
    }
    write_json(out / "train_results.json", metrics)
    write_json(out / "training_config.json", job.to_dict())

    eval_result = final_evaluation(trainer) if eval_rows else None
    if eval_result is not None:
        write_report(eval_result, out / "eval_results.json", {"model": str(out)})
    return TrainResult(out, metrics, eval_result)
