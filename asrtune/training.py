"""``asrtune train``: one training path for every family, full fine-tuning or LoRA.

Reads top to bottom: load and check rows → load the model (+ LoRA) → admit rows within the
model's limits → build the dataset and trainer → train → save → evaluate → write results.

Under ``torchrun``/``accelerate launch`` every process runs all of it (the data split,
gradient averaging and sharded evaluation happen inside the Trainer); only the main
process writes OUT.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import Trainer, set_seed

from asrtune.checkpoints import checkpoint_folders, newest_complete_checkpoint, staged_output
from asrtune.config import TrainJob
from asrtune.data.manifest import Row
from asrtune.data.windows import Example
from asrtune.errors import AsrtuneError
from asrtune.evaluation import EvalResult, spread_subset, write_report
from asrtune.guards import GUARDED, change, guard_report
from asrtune.inference import DecodingOptions
from asrtune.metrics import headline_metric
from asrtune.models import LoadedModel, load_model
from asrtune.models.ctc_vocabulary import (
    CharVocabulary,
    VocabularyOptions,
    build_vocabulary,
    describe_missing,
    missing_characters,
    write_vocab_json,
)
from asrtune.processes import all_processes, is_main_process
from asrtune.terms import TermList, read_terms, score_terms
from asrtune.tracking import quiet_trackio, reports_to_trackio, tracking_folder
from asrtune.trainer import AsrTrainer
from asrtune.training_data import (
    SkipLog,
    admit_row,
    build_finite_dataset,
    build_stream_dataset,
    load_eval_rows,
    load_guard_rows,
    load_training_rows,
    oversample_terms,
)

log = logging.getLogger("asrtune")


@dataclass(frozen=True)
class TrainResult:
    output_dir: Path
    train_metrics: dict[str, Any]
    eval_result: EvalResult | None
    guards: dict[str, Any] | None = None  # guard_report: each guard set before and after


def build_model(job: TrainJob, vocabulary: CharVocabulary | None = None) -> LoadedModel:
    """Load the model; give it ``vocabulary`` (--new_vocabulary: a tokenizer and a CTC head
    made for it); freeze the encoder and/or wrap it with LoRA as configured."""
    cfg = job.model
    set_seed(job.training.seed)
    options: dict[str, Any] = {"allow_pickle": cfg.allow_pickle}
    if not cfg.lora:
        # full fine-tuning keeps fp32 master weights: bf16/fp16 ones round small updates away
        options["dtype"] = torch.float32
    if cfg.quantization:
        options["quantization"] = cfg.quantization
    loaded = load_model(cfg.model, for_training=True, **options)
    if vocabulary is not None:
        if not loaded.capabilities.new_vocabulary:
            raise AsrtuneError(f"--new_vocabulary is not supported for {loaded.family} models")
        with tempfile.TemporaryDirectory() as folder:  # read once by the tokenizer
            loaded.adapter.use_vocabulary(loaded, vocabulary, folder)
    if cfg.target_lang:
        if not loaded.capabilities.language_adapters:
            raise AsrtuneError(f"--target_lang is not supported for {loaded.family} models")
        loaded.adapter.train_language_adapter(loaded, cfg.target_lang)
    if cfg.freeze_encoder:
        loaded.adapter.freeze_encoder(loaded.model)
    if cfg.lora and not isinstance(loaded.model, PeftModel):
        targets = cfg.lora_target_modules or loaded.spec.default_lora_targets(cfg.freeze_encoder)
        if isinstance(targets, list) and len(targets) == 1 and not targets[0].isidentifier():
            targets = targets[0]  # a single regex
        lora = LoraConfig(
            r=cfg.lora_r,
            lora_alpha=cfg.lora_alpha,
            lora_dropout=cfg.lora_dropout,
            target_modules=targets,
            task_type=loaded.spec.lora_task_type,
        )
        loaded.model = get_peft_model(loaded.model, lora)
        if job.training.gradient_checkpointing or job.training.activation_checkpointing:
            loaded.model.enable_input_require_grads()
    freeze_frozen_batch_norms(loaded.model)
    trainable, total = count_parameters(loaded.model)
    log.info(
        "trainable parameters: %s of %s (%.2f%%)",
        f"{trainable:,}",
        f"{total:,}",
        100 * trainable / max(total, 1),
    )
    return loaded


def new_vocabulary(
    job: TrainJob, rows: list[Row], eval_rows: list[Row], out: Path
) -> CharVocabulary:
    """--new_vocabulary: the characters of the training transcripts (see
    :mod:`asrtune.models.ctc_vocabulary`), reported in the log and in
    OUT/vocabulary/{vocab.json,report.txt}. Characters of the eval rows it lacks are an
    AsrtuneError naming them (the model could never write them), unless
    --allow_unknown_tokens, which turns it into a warning. Every process builds the same
    vocabulary from the same rows; the main one writes the files."""
    if job.data.streaming:
        raise AsrtuneError(
            "--new_vocabulary reads every training transcript first: not with --streaming"
        )
    options = VocabularyOptions(
        job.model.vocabulary_keep_case, job.model.vocabulary_keep_punctuation
    )
    vocabulary = build_vocabulary((row.text or "" for row in rows), options)
    report = vocabulary.report()
    missing = missing_characters((row.text or "" for row in eval_rows), vocabulary.token_to_id())
    if missing:
        report += "\n" + describe_missing(missing, "the eval transcripts")
    if is_main_process():
        write_vocab_json(vocabulary, out / "vocabulary")
        (out / "vocabulary" / "report.txt").write_text(report + "\n", encoding="utf-8")
    log.info("%s", report)
    if missing and not job.data.allow_unknown_tokens:
        raise AsrtuneError(
            describe_missing(missing, "the eval transcripts")
            + " (the model could never write them): add training rows that hold them, fix "
            "the eval transcripts, or pass --allow_unknown_tokens to evaluate anyway"
        )
    return vocabulary


def _normalize_with_running_statistics(module: torch.nn.Module, args: Any) -> None:
    """Forward pre-hook of a frozen batch norm: inference behaviour, whatever ``train()``
    set (the Trainer puts the whole model in training mode at every step)."""
    module.training = False


def freeze_frozen_batch_norms(model: torch.nn.Module) -> int:
    """A batch norm whose weights are frozen (a frozen encoder, the base under LoRA)
    normalizes with its running statistics, as at inference, and leaves them as they are:
    the frozen part then computes in training exactly what it computes when the model is
    used (NeMo's ``freeze()`` does the same), a LoRA adapter, which saves only its own
    weights, matches the model it was trained in, and each utterance's loss no longer
    depends on the others in its micro-batch (so on how a batch is split across processes).
    Returns the number of such batch norms."""
    frozen = [m for m in model.modules() if _is_batch_norm(m) and not _trains(m)]
    for module in frozen:
        module.register_forward_pre_hook(_normalize_with_running_statistics)
    return len(frozen)


def _trains(module: torch.nn.Module) -> bool:
    return any(p.requires_grad for p in module.parameters())


def _is_batch_norm(module: torch.nn.Module) -> bool:
    return isinstance(module, torch.nn.modules.batchnorm._BatchNorm)


def _sync_batch_norms_below(module: torch.nn.Module) -> int:
    """Replace the trainable batch norms below ``module`` by SyncBatchNorm copies."""
    converted = 0
    for name, child in module.named_children():
        if _is_batch_norm(child) and _trains(child):
            setattr(module, name, torch.nn.SyncBatchNorm.convert_sync_batchnorm(child))
            converted += 1
        else:
            converted += _sync_batch_norms_below(child)
    return converted


def sync_trainable_batch_norms(model: torch.nn.Module, device: torch.device, world: int) -> int:
    """With several CUDA processes, a batch norm that trains (Parakeet's conformer under
    full fine-tuning) becomes a ``SyncBatchNorm``: each micro-batch is normalized with the
    statistics of the global batch across processes, as NeMo trains Parakeet
    (``sync_batchnorm``), not with its own share's. Frozen ones stay as they are (see
    :func:`freeze_frozen_batch_norms`). Not on CPUs (gloo): torch's SyncBatchNorm runs on
    GPUs only. Returns the number of batch norms converted."""
    if world < 2 or device.type != "cuda":
        return 0
    return _sync_batch_norms_below(model)


def count_parameters(model: torch.nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    total = sum(p.numel() for p in model.parameters())
    return sum(p.numel() for p in model.parameters() if p.requires_grad), total


def build_trainer(
    job: TrainJob,
    loaded: LoadedModel,
    train_dataset: Any,
    eval_rows: list[Row],
    guard_rows: dict[str, list[Row]] | None = None,
) -> AsrTrainer:
    decoding = DecodingOptions(
        language=job.model.language,
        task=job.model.task,
        batch_size=job.training.per_device_eval_batch_size,
        num_beams=job.training.generation_num_beams or 1,
        max_new_tokens=job.training.generation_max_length,
        precision=job.model.eval_precision,
    )
    eval_examples = loss_examples(loaded, eval_rows, job.model.task)
    if eval_rows and not eval_examples and job.training.metric_for_best_model == "loss":
        raise AsrtuneError(
            "--metric_for_best_model loss: no eval row has labels the model takes "
            "(give the rows a language, or --language)"
        )
    terms = eval_terms(job, eval_rows)
    sample = spread_subset(eval_rows, job.data.eval_subset)
    eval_subset = None
    if sample is not eval_rows:
        log.info(
            "evaluations during training score %d of the %d eval rows (--eval_subset); "
            "the whole set is scored at the end",
            len(sample),
            len(eval_rows),
        )
        eval_subset = (sample, loss_examples(loaded, sample, job.model.task))
    args = job.training
    if synced := sync_trainable_batch_norms(loaded.model, args.device, args.world_size):
        log.info("%d batch norms synchronized across %d processes", synced, args.world_size)
    return AsrTrainer(
        model=loaded.model,
        args=args,
        train_dataset=train_dataset,
        data_collator=loaded.adapter.collate,
        processing_class=loaded.processor,
        loaded=loaded,
        eval_rows=eval_rows,
        decoding=decoding,
        max_batch_seconds=job.data.max_batch_seconds,
        eval_examples=eval_examples,
        guard_rows=guard_rows,
        max_guard_regression=job.data.max_guard_regression,
        terms=terms,
        eval_subset=eval_subset,
    )


def eval_terms(job: TrainJob, eval_rows: list[Row]) -> TermList | None:
    """The --terms file's terms, counted on the eval set (one is needed); checks that
    --metric_for_best_model term_recall has terms to count in the eval references (and no
    guard limit, whose rule is lower-is-better)."""
    terms = read_terms(job.data.terms) if job.data.terms else None
    if terms is not None and not eval_rows and (job.data.term_oversample or job.data.prompt_share):
        return None  # the terms only pick the rows to repeat and the prompts
    if terms is not None and not eval_rows:
        raise AsrtuneError("--terms needs an eval set (--eval-manifest or --eval_split)")
    if str(job.training.metric_for_best_model).removeprefix(GUARDED) != "term_recall":
        return terms
    if terms is None:
        raise AsrtuneError("--metric_for_best_model term_recall needs --terms FILE")
    if job.data.max_guard_regression is not None:
        raise AsrtuneError(
            "--metric_for_best_model term_recall cannot be combined with --max_guard_regression"
        )
    references = [row.text for row in eval_rows]
    languages = [row.language or job.model.language for row in eval_rows]
    if not score_terms(terms, references, references, languages, job.model.task).occurrences:
        raise AsrtuneError(
            f"--metric_for_best_model term_recall: no eval reference holds a term of {terms.source}"
        )
    return terms


def term_oversampling(job: TrainJob, rows: list[Row]) -> tuple[list[Row], dict[str, Any] | None]:
    """The training rows with --term_oversample's repeats (see
    :func:`asrtune.training_data.oversample_terms`) and its report; ``(rows, None)`` when
    the flag is off."""
    target = job.data.term_oversample
    if not target:
        return rows, None
    if target < 0:
        raise AsrtuneError(f"--term_oversample must be 0 (off) or a row count, got {target}")
    if not job.data.terms:
        raise AsrtuneError("--term_oversample needs --terms FILE")
    if job.data.streaming:
        raise AsrtuneError("--term_oversample needs the rows up front: it cannot stream")
    terms = read_terms(job.data.terms)
    rows, report = oversample_terms(rows, terms, target, job.model.language, job.model.task)
    if is_main_process():
        rare = ", ".join(f"{term} ({n})" for term, n in report["rare_terms"].items()) or "none"
        log.info(
            "--term_oversample %d: rare terms (training rows holding them): %s; %d rows added",
            target,
            rare,
            report["added_rows"],
        )
    return rows, report


def loss_examples(loaded: LoadedModel, rows: list[Row], task: str) -> list[Example]:
    """The eval rows the eval loss is computed on: those within the model's limits whose
    labels can be built (a multilingual Whisper's need a language; generation does not)."""
    examples = []
    for row in rows:
        try:
            admitted = admit_row(loaded, row, task)
        except AsrtuneError:
            continue
        if not isinstance(admitted, str):
            examples.append(admitted)
    return examples


def resume_checkpoint(job: TrainJob) -> str | None:
    """With ``--resume``, the newest complete ``checkpoint-N`` in OUT (see
    :mod:`asrtune.checkpoints`), chosen by the main process for all of them; incomplete
    newer ones are named in one warning. No complete one is an error: resuming with a
    fresh optimizer, or starting over, is never done silently."""
    if not job.run.resume:
        return None
    out = Path(job.training.output_dir)
    if not (out.is_dir() and checkpoint_folders(out)):
        raise AsrtuneError(f"--resume: no checkpoint-* folder in {out}")
    point = all_processes(newest_complete_checkpoint(out) if is_main_process() else None)[0]
    if point.checkpoint is None:
        raise AsrtuneError(
            f"--resume: no complete checkpoint in {out}: {point.describe_passed_over()}; "
            "run without --resume to start over"
        )
    if point.passed_over and is_main_process():
        log.warning(
            "--resume: passing over incomplete %s; resuming from %s",
            point.describe_passed_over(),
            point.checkpoint.name,
        )
    log.info("resuming from %s", point.checkpoint)
    return str(point.checkpoint)


def save_outputs(job: TrainJob, loaded: LoadedModel, trainer: AsrTrainer) -> None:
    """Final model + processor in OUT (LoRA: the adapter); --merge adds OUT/merged.

    Each is written aside first and moved into place once complete (see
    :func:`asrtune.checkpoints.staged_output`): a kill during the save leaves the model
    that was in OUT before as it was."""
    out = Path(job.training.output_dir)
    main, wait = is_main_process(), trainer.accelerator.wait_for_everyone
    with staged_output(out, main, wait) as staged:
        trainer.save_model(str(staged))  # the Trainer saves in the main process only
        if main:
            loaded.processor.save_pretrained(str(staged))
            if job.model.lora:  # the adapter's decoding settings (the base's, or changed)
                loaded.model.generation_config.save_pretrained(str(staged))
    if job.model.target_lang and main:  # MMS's adapter file beside the whole model
        loaded.adapter.save_language_adapter(loaded, out, job.model.target_lang)
    if job.model.lora and job.model.merge:
        merged = LoadedModel(
            loaded.model.merge_and_unload(), loaded.processor, loaded.family, str(out)
        )
        with staged_output(out / "merged", main, wait) as staged:
            if main:
                loaded.adapter.save(merged, staged)
                log.info("merged model written to %s", out / "merged")
        loaded.model = merged.model


def final_evaluation(trainer: AsrTrainer) -> EvalResult:
    """The saved model's evaluation on the whole eval set: reused when the last one during
    training scored the whole set with the same weights (the best checkpoint was the last,
    or no best-model reload happened)."""
    state = trainer.state
    last_eval_step = max((e["step"] for e in state.log_history if "eval_wer" in e), default=None)
    same_weights = last_eval_step == state.global_step and (
        not trainer.args.load_best_model_at_end or state.best_global_step == last_eval_step
    )
    if not (same_weights and trainer.last_eval is not None and trainer.last_eval_all):
        trainer.evaluate_all()
    assert trainer.last_eval is not None
    return trainer.last_eval


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` as indented JSON (in the main process only), through a temporary
    file renamed over ``path``: a kill leaves the previous file or the new one."""
    if not is_main_process():
        return
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    os.replace(partial, path)


def train(job: TrainJob, trainer_hook: Callable[[AsrTrainer], None] | None = None) -> TrainResult:
    """Run one training job end to end; see the module docstring for the steps.

    ``trainer_hook`` receives the built trainer before training (e.g. to add callbacks).
    """
    out = Path(job.training.output_dir)
    # the main process decodes every file first (and fills the check cache), then the others
    with job.training.main_process_first(desc="reading and checking the rows"):
        rows, dropped = ([], 0) if job.data.streaming else load_training_rows(job, out)
        eval_rows = load_eval_rows(job, out)
        guard_rows = load_guard_rows(job, out)
    rows, oversampled = term_oversampling(job, rows)
    if job.best_metric_by_language and eval_rows:
        languages = [row.language or job.model.language for row in eval_rows]
        job.training.metric_for_best_model = headline_metric(languages, job.model.task)
    if job.data.max_guard_regression is not None:
        job.training.metric_for_best_model = GUARDED + job.training.metric_for_best_model
    resume_from = resume_checkpoint(job)
    vocabulary = new_vocabulary(job, rows, eval_rows, out) if job.model.new_vocabulary else None

    loaded = build_model(job, vocabulary)
    skips = SkipLog(out, job.training.process_index) if job.data.streaming else None
    if skips is not None:
        dataset, skipped = build_stream_dataset(job, loaded, skips), []
    else:
        dataset, skipped = build_finite_dataset(job, loaded, rows, out)

    if dataset.mix.nonspeech_share > 0:  # trained to say nothing: generation may end at once
        loaded.adapter.allow_empty_transcripts(loaded)
    if reports_to_trackio(job.training.report_to):
        tracking_folder(out)  # before the Trainer imports trackio, which reads it once
    trainer = build_trainer(job, loaded, dataset, eval_rows, guard_rows)
    quiet_trackio(trainer, out, job.training.project)
    if trainer_hook is not None:
        trainer_hook(trainer)
    start = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=resume_from)
    seconds = time.perf_counter() - start
    save_outputs(job, loaded, trainer)

    if skips is not None:
        skipped = skips.finish()
    metrics = {
        **result.metrics,
        "global_step": trainer.state.global_step,
        **dataset_metrics(job, dataset, seconds, trainer),
        "skipped_rows": len(skipped),
        "skipped_ids": [s.get("id") for s in skipped],
        "invalid_rows_dropped": dropped,
    }
    write_json(out / "train_results.json", metrics)
    config = job.to_dict()
    if oversampled is not None:
        config["term_oversample"] = oversampled
    write_json(out / "training_config.json", config)

    eval_result = final_evaluation(trainer) if eval_rows else None
    extra: dict[str, Any] = {"model": str(out)}
    if trainer.guard_rows:
        limit = job.data.max_guard_regression
        extra["guards"] = guard_report(trainer.last_guards, trainer.guard_baseline, limit)
        if limit is not None and not extra["guards"]["within_limit"] and is_main_process():
            warn_guards_regressed(trainer, limit)
    if eval_result is not None and is_main_process():
        write_report(eval_result, out / "eval_results.json", extra)
    return TrainResult(out, metrics, eval_result, extra.get("guards"))


def warn_guards_regressed(trainer: AsrTrainer, limit: float) -> None:
    """Say loudly that no checkpoint kept every guard set within ``limit``."""
    worst = max(
        trainer.last_guards,
        key=lambda name: change(trainer.last_guards[name], trainer.guard_baseline[name]),
    )
    by = change(trainer.last_guards[worst], trainer.guard_baseline[worst])
    line = "!" * 78
    log.warning(
        "\n%s\nNO CHECKPOINT KEPT THE GUARD SETS WITHIN --max_guard_regression %.3f: the saved "
        "model regressed guard %r by %+.1f points.\nTrain less (fewer epochs, a lower learning "
        "rate, LoRA) or mix general speech into the training data (--mix).\n%s",
        line,
        limit,
        worst,
        100 * by,
        line,
    )


def dataset_metrics(job: TrainJob, dataset: Any, seconds: float, trainer: Trainer) -> dict:
    """Size and throughput of the training data (finite datasets only)."""
    if not hasattr(dataset, "audio_seconds"):
        return {"streaming": True, "packed": job.data.pack}
    epochs = trainer.state.epoch or 0
    audio = dataset.audio_seconds()
    return {
        "utterances": sum(ex.clip is None for w in dataset.windows for ex in w),
        "training_items": len(dataset),
        "packed": dataset.items is not None,  # --pack, for a family that packs
        "audio_seconds_per_epoch": round(audio, 1),
        "audio_seconds_per_second": round(audio * epochs / seconds, 2),
    }
